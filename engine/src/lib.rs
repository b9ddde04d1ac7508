//! hangar-engine: the core of Hangar, written once against the seam (`seam`) and run
//! unchanged on tokio in production and inside the deterministic simulation.
//!
//! Layers, bottom up: `seam` (clock, net, disk, randomness) → `codec` → `crdt` → `layout`
//! (ring of 256 partitions) → `rpc` (encrypted, multiplexed) → `table` (CRDT replicas in
//! redb, quorums, anti-entropy) → `node` (wires them together).

pub mod block;
pub mod cas;
pub mod codec;
pub mod crdt;
pub mod keys;
pub mod kv;
pub mod layout;
pub mod node;
#[cfg(test)]
mod node_tests;
pub mod objects;
pub mod rpc;
pub mod seam;
pub mod storage_health;
pub mod table;
#[cfg(test)]
pub mod testkit;
pub mod ttl_cache;
