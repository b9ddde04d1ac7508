//! What a table stores: its name, its CRDT entry type, and how keys map to partitions.

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{self, DecodeError};
use crate::crdt::Crdt;
use crate::layout::Partition;

/// Marker byte in front of every stored or transmitted entry; bump it (and add a migration)
/// when an entry's encoding changes.
pub const ENTRY_FORMAT_V1: u8 = 1;

pub trait TableSchema: Send + Sync + 'static {
    /// Unique table name; also the redb table name.
    const NAME: &'static str;
    /// The entry: merging two versions of one key must be a CRDT merge.
    type Entry: Crdt + Clone + PartialEq + Debug + Serialize + DeserializeOwned + Send + Sync;

    /// Whether tombstones of this table are collected; a table that sets it implements
    /// `tombstone_since_ms`.
    const COLLECTS_TOMBSTONES: bool = false;

    /// When `entry` is a tombstone that may be collected once every replica holds it, the
    /// time (ms, the entry's own timestamp) it became one; `None` for anything else. The
    /// default keeps every entry forever: a table opts in only if forgetting a tombstone
    /// that every replica holds cannot bring back what it deleted (table/tombstones.rs).
    fn tombstone_since_ms(_entry: &Self::Entry) -> Option<u64> {
        None
    }
}

/// The storage key of an entry: `blake3(partition_key) ‖ sort_key`.
///
/// Hashing spreads partition keys uniformly over the ring; the sort key keeps the entries of
/// one partition key in order (listing a bucket is a range scan in later tables).
pub fn entry_key(partition_key: &[u8], sort_key: &[u8]) -> Vec<u8> {
    let mut key = blake3::hash(partition_key).as_bytes().to_vec();
    key.extend_from_slice(sort_key);
    key
}

/// The ring partition a storage key belongs to: the first byte of its hash.
pub fn partition_of_key(key: &[u8]) -> Partition {
    assert!(key.len() >= 32, "storage keys start with a 32-byte hash");
    key[0] as Partition
}

pub fn encode_entry<E: Serialize>(entry: &E) -> Vec<u8> {
    let mut bytes = vec![ENTRY_FORMAT_V1];
    bytes.extend_from_slice(&codec::encode(entry));
    bytes
}

pub fn decode_entry<E: DeserializeOwned>(bytes: &[u8]) -> Result<E, DecodeError> {
    match bytes.split_first() {
        Some((&ENTRY_FORMAT_V1, rest)) => codec::decode("table entry", rest),
        Some((v, _)) => Err(DecodeError { what: "table entry", reason: format!("format {v}") }),
        None => Err(DecodeError { what: "table entry", reason: "empty".into() }),
    }
}
