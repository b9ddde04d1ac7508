//! hangar-checkers: the operation history format and the checkers that judge it. Shared by
//! the deterministic simulation (hangar-sim) and the real-cluster harness (hangar-jepsen),
//! so both hold the system to the same definitions of "correct".

pub mod history;
pub mod linearizable;
pub mod register;
pub mod set;

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
