//! Replicated CRDT tables: local replicas in redb, quorum reads and writes, anti-entropy.

pub mod merkle;
pub mod merkle_sync;
pub mod replicated;
pub mod schema;
pub mod store;
pub mod sync;
pub mod tombstones;

pub use replicated::{ConsistencyMode, QuorumError, Quorums, Replicated};
pub use schema::{TableSchema, entry_key};
pub use store::{LocalTable, Store, StoreError};
pub use sync::{SyncGate, SyncReport, SyncWorker, TableSync};

#[cfg(test)]
mod merkle_tests;
#[cfg(test)]
mod tests;
