//! Checkers: each takes what a run recorded and either passes or names a violation.
//! They are shared by the simulation and the Jepsen harness.

pub mod block_refs;
pub mod convergence;
pub mod linearizable;
pub mod register;
pub mod set;

/// Defined in hangar-checkers so the Jepsen harness reports violations the same way.
pub use hangar_checkers::Violation;
