//! `hangar-jepsen`: Jepsen-style testing of real Hangar clusters (real processes, network
//! namespaces, nftables partitions, signals), reusing hangar-sim's checkers.
//!
//! Skeleton: the harness is not written yet (see the Jepsen issue). It refuses to pretend:
//! every command explains that and exits with status 2.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Referenced so the crate already builds against the shared checkers it will use.
    let _checker: fn(&[hangar_sim::history::Op]) -> Result<(), hangar_sim::check::Violation> =
        hangar_sim::check::register::check_read_after_write;
    eprintln!(
        "hangar-jepsen: the real-cluster harness is not implemented yet; use hangar-sim for \
         simulated fault testing"
    );
    ExitCode::from(2)
}
