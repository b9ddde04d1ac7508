//! Checkers: each takes what a run recorded and either passes or names a violation.
//! They are shared by the simulation and the Jepsen harness.

pub mod block_refs;
pub mod convergence;
pub mod register;

/// A property the run broke, with enough detail to find it in the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub checker: &'static str,
    pub details: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.checker, self.details)
    }
}
