//! hangar-sim: Hangar's deterministic simulation. The real engine runs on turmoil hosts
//! (simulated network, file system and clocks); scenarios inject faults from a timeline;
//! workloads record histories; checkers judge them. A seed replays a run bit for bit.

pub mod check;
pub mod faults;
pub mod finals;
pub mod history;
pub mod hostfs;
pub mod judge;
pub mod liveness;
pub mod netfaults;
pub mod random_faults;
pub mod report;
pub mod research;
pub mod run;
pub mod s3client;
pub mod s3multipart;
pub mod s3workload;
pub mod scenario;
pub mod setworkload;
pub mod swarm;
pub mod sweep;
pub mod trace;
pub mod tracefile;
pub mod workload;
pub mod world;
