//! Register checkers: moved to hangar-checkers (shared with the Jepsen harness) and
//! re-exported here so simulation code keeps its paths.

pub use hangar_checkers::register::*;
