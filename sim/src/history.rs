//! Client operation histories: the format lives in hangar-checkers, shared with the Jepsen
//! harness; re-exported here so simulation code keeps its paths.

pub use hangar_checkers::history::*;
