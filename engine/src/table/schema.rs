//! What a table stores: its name, its CRDT entry type, and how keys map to partitions.

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{self, DecodeError};
use crate::crdt::Crdt;
use crate::layout::Partition;

/// Marker byte in front of every stored or transmitted entry: the format of the bincode
/// that follows. Every table started at V1; a table whose entry encoding changes moves its
/// entry type to the next format (`StoredEntry::ENTRY_FORMAT`) and decodes the older ones
/// (`StoredEntry::decode_older_format`), so the versions are per table: format 2 of one
/// table says nothing about another.
pub const ENTRY_FORMAT_V1: u8 = 1;
/// The second format of a table's entries (so far: `mpu`, which gained a finish time).
pub const ENTRY_FORMAT_V2: u8 = 2;
/// The third format of a table's entries (so far: `object`, whose bodies may name a block
/// list in the `version` table).
pub const ENTRY_FORMAT_V3: u8 = 3;

/// How an entry type is stored: the format byte it is written with and how the entries
/// written in its older formats (on disk, or sent by a peer not yet upgraded) decode into
/// it. Every table entry type implements it; the defaults say "V1, nothing older".
///
/// A change of an entry's encoding: copy the old type as a private `…V1` struct, set
/// `ENTRY_FORMAT` to the next format, and decode the old format through the copy into the
/// new type with values that are safe for every reader (see `objects::multipart`, the
/// first table that did it). Entries are rewritten in the new format the next time they
/// are merged; a node that does not know the new format refuses such entries (a decode
/// error, never a wrong value), so such an upgrade is all nodes at once.
pub trait StoredEntry: Serialize + DeserializeOwned + Sized {
    /// The format byte this type writes.
    const ENTRY_FORMAT: u8 = ENTRY_FORMAT_V1;

    /// Decodes `payload` written in the older `format`; `None` for a format this type never
    /// had.
    fn decode_older_format(_format: u8, _payload: &[u8]) -> Option<Result<Self, DecodeError>> {
        None
    }
}

impl<T: Serialize + DeserializeOwned> StoredEntry for crate::crdt::Lww<T> {}

pub trait TableSchema: Send + Sync + 'static {
    /// Unique table name; also the redb table name.
    const NAME: &'static str;
    /// The entry: merging two versions of one key must be a CRDT merge.
    type Entry: Crdt + Clone + PartialEq + Debug + StoredEntry + Send + Sync;

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

/// The stored bytes of `entry`: its type's format byte, then its bincode.
pub fn encode_entry<E: StoredEntry>(entry: &E) -> Vec<u8> {
    let mut bytes = vec![E::ENTRY_FORMAT];
    bytes.extend_from_slice(&codec::encode(entry));
    bytes
}

/// Decodes stored bytes in the type's current format or any older one it knows.
pub fn decode_entry<E: StoredEntry>(bytes: &[u8]) -> Result<E, DecodeError> {
    match bytes.split_first() {
        Some((&v, rest)) if v == E::ENTRY_FORMAT => codec::decode("table entry", rest),
        Some((&v, rest)) => E::decode_older_format(v, rest).unwrap_or_else(|| {
            Err(DecodeError { what: "table entry", reason: format!("format {v}") })
        }),
        None => Err(DecodeError { what: "table entry", reason: "empty".into() }),
    }
}
