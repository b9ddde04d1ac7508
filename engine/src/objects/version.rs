//! The versions of one object key, as one CRDT entry of the `object` table.
//!
//! Each write creates a version named by a `VersionId` (the writer's timestamp, then the
//! writer's node id: a node's timestamps strictly increase, so ids are unique). A version's
//! state only moves up: `Uploading` → `Aborted` (a failed upload) → `Complete` (an object
//! or a delete marker) → `Deleted` (removed by version id). `Complete` beats `Aborted` so
//! that an abort racing a successful completion never loses an acknowledged write.
//!
//! Merging two entries takes the union of their versions, merging each version's state by
//! that order, then *prunes*: every version older than the newest version that ever
//! completed (`Complete` or `Deleted`) is dropped unless it was written while the bucket
//! kept history (versioning on). Once completed, a version stays completed, so the pruning
//! point only moves forward: pruning commutes with merging and the merge stays a CRDT
//! (commutative, associative, idempotent; property-tested below). An aborted upload is not
//! a pruning point, so it never hides the version it failed to replace.
//!
//! Invariants: the current version of a key is its newest `Complete` one; `Uploading`,
//! `Aborted` and `Deleted` versions are never served; a pruned version never comes back.
//! An entry left with nothing to read or list is a tombstone (`tombstone_since_ms`), which
//! `table::tombstones` removes once every replica holds it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::StoredObject;
use crate::codec::{self, DecodeError};
use crate::crdt::Crdt;
use crate::table::schema::{ENTRY_FORMAT_V1, ENTRY_FORMAT_V2, ENTRY_FORMAT_V3, StoredEntry};

/// Names a version; ordered by timestamp first, so newer writes sort last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VersionId {
    pub timestamp: u64,
    pub unique: u64,
}

impl VersionId {
    /// The S3 `versionId` string: 32 lowercase hex digits (sorts like the id).
    pub fn to_hex(&self) -> String {
        format!("{:016x}{:016x}", self.timestamp, self.unique)
    }

    pub fn from_hex(s: &str) -> Option<VersionId> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let timestamp = u64::from_str_radix(&s[..16], 16).ok()?;
        let unique = u64::from_str_radix(&s[16..], 16).ok()?;
        Some(VersionId { timestamp, unique })
    }
}

/// What a complete version holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum VersionData {
    Object(StoredObject),
    DeleteMarker { last_modified_ms: u64 },
}

/// A version's state, ordered as it may only move.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum VersionState {
    /// Being written: its blocks may be partly stored. Never visible to readers.
    Uploading,
    /// Given up (a failed or abandoned upload).
    Aborted,
    Complete(VersionData),
    /// Removed by version id.
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Version {
    pub state: VersionState,
    /// Written while the bucket kept history (versioning on): never pruned.
    pub kept: bool,
    /// Decided by a write of the key's consensus that had no condition (a plain PUT, copy,
    /// completion or DELETE): what it made current does not depend on what was current
    /// before. An unconditional write that this one overtook may be acknowledged as ordered
    /// just before it (`conditional_rounds`, "Overtaken by an unconditional write"). False
    /// for every other version and for entries of the first format: "not known", the safe
    /// answer.
    pub unconditional: bool,
}

impl Version {
    /// A version as written outside the key's consensus, or before its round decides it
    /// (the round sets `unconditional`).
    pub fn new(state: VersionState, kept: bool) -> Version {
        Version { state, kept, unconditional: false }
    }
}

impl Crdt for Version {
    fn merge(&mut self, other: &Self) {
        // States only move up; two different complete states of one id cannot come from a
        // correct writer, but the tie is still broken deterministically by order. The
        // state and its mark go together: the larger `(state, unconditional)` pair wins,
        // so an `Uploading` record never strips the mark of the completion that follows.
        if (&other.state, other.unconditional) > (&self.state, self.unconditional) {
            self.state = other.state.clone();
            self.unconditional = other.unconditional;
        }
        self.kept |= other.kept;
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectEntry {
    pub versions: BTreeMap<VersionId, Version>,
}

impl ObjectEntry {
    pub fn with(id: VersionId, version: Version) -> Self {
        let mut entry = ObjectEntry::default();
        entry.versions.insert(id, version);
        entry
    }

    /// The newest complete version: what a plain GET serves (or a delete marker).
    pub fn current(&self) -> Option<(VersionId, &VersionData)> {
        self.versions.iter().rev().find_map(|(id, v)| match &v.state {
            VersionState::Complete(data) => Some((*id, data)),
            _ => None,
        })
    }

    /// The newest version's id, whatever its state: new writes are stamped above it.
    pub fn newest(&self) -> Option<VersionId> {
        self.versions.keys().next_back().copied()
    }

    /// When the entry holds nothing anyone can read or list — only versions deleted by id,
    /// failed uploads and delete markers of a bucket that keeps no history — the newest
    /// version's timestamp: the entry is a tombstone, collectable once every replica holds
    /// it (`table::tombstones`). Aged from the newest version's own timestamp because the
    /// writes that could bring something back are writes of these versions or older ones,
    /// all stamped no later (as for `block_ref`). Anything being uploaded, any object, and
    /// any delete marker kept as history (ListObjectVersions shows it) keeps the entry.
    pub fn tombstone_since_ms(&self) -> Option<u64> {
        let nothing_visible = self.versions.values().all(|v| match &v.state {
            VersionState::Deleted | VersionState::Aborted => true,
            VersionState::Complete(VersionData::DeleteMarker { .. }) => !v.kept,
            VersionState::Complete(VersionData::Object(_)) | VersionState::Uploading => false,
        });
        if nothing_visible { self.newest().map(|id| id.timestamp) } else { None }
    }

    fn prune(&mut self) {
        let point = self
            .versions
            .iter()
            .rev()
            .find(|(_, v)| matches!(v.state, VersionState::Complete(_) | VersionState::Deleted))
            .map(|(id, _)| *id);
        if let Some(point) = point {
            self.versions.retain(|id, v| *id >= point || v.kept);
        }
    }
}

/// `ObjectEntry` as stored in `ENTRY_FORMAT_V1`, before versions carried their
/// `unconditional` mark: kept only to decode such entries (never written).
#[derive(Deserialize)]
struct ObjectEntryV1 {
    versions: BTreeMap<VersionId, VersionV1>,
}

#[derive(Deserialize)]
struct VersionV1 {
    state: VersionState,
    kept: bool,
}

/// Stored in `ENTRY_FORMAT_V3`, whose bodies may be `Body::Listed` (a block list in the
/// `version` table). V2 (versions carry `unconditional`) is V3 without that variant, so it
/// decodes as it is; a node that predates V3 refuses a V3 entry instead of misreading a
/// listed body. A V1 entry decodes with every mark false, which only ever costs an
/// overtaken write its acknowledgement (a 503, as before the mark existed), never a wrong
/// answer.
impl StoredEntry for ObjectEntry {
    const ENTRY_FORMAT: u8 = ENTRY_FORMAT_V3;

    fn decode_older_format(format: u8, payload: &[u8]) -> Option<Result<Self, DecodeError>> {
        match format {
            ENTRY_FORMAT_V2 => Some(codec::decode("table entry (object, V2)", payload)),
            ENTRY_FORMAT_V1 => {
                let old: Result<ObjectEntryV1, _> =
                    codec::decode("table entry (object, V1)", payload);
                Some(old.map(ObjectEntry::from))
            }
            _ => None,
        }
    }
}

impl From<ObjectEntryV1> for ObjectEntry {
    fn from(old: ObjectEntryV1) -> ObjectEntry {
        let versions = old.versions.into_iter().map(|(id, v)| (id, v.into())).collect();
        ObjectEntry { versions }
    }
}

impl From<VersionV1> for Version {
    fn from(old: VersionV1) -> Version {
        Version::new(old.state, old.kept)
    }
}

/// The value of the key's consensus (`conditional_rounds::CasValue`) in its stored form,
/// which acceptors keep in their `cas_acceptor` rows: `CAS_VALUE_V2`, then the bincode of
/// the value. The first format had no marker: the bincode of an `Option` of a first-format
/// version, whose first byte is 0 (`None`) or 1 (`Some`), so the marker 2 tells them apart.
const CAS_VALUE_V2: u8 = 2;

pub(crate) fn encode_cas_value(value: &Option<(VersionId, Version)>) -> Vec<u8> {
    let mut bytes = vec![CAS_VALUE_V2];
    bytes.extend_from_slice(&codec::encode(value));
    bytes
}

pub(crate) fn decode_cas_value(bytes: &[u8]) -> Result<Option<(VersionId, Version)>, DecodeError> {
    match bytes.split_first() {
        Some((&CAS_VALUE_V2, rest)) => codec::decode("cas value", rest),
        _ => {
            let old: Option<(VersionId, VersionV1)> = codec::decode("cas value (V1)", bytes)?;
            Ok(old.map(|(id, v)| (id, v.into())))
        }
    }
}

impl Crdt for ObjectEntry {
    fn merge(&mut self, other: &Self) {
        for (id, version) in &other.versions {
            self.versions.entry(*id).and_modify(|v| v.merge(version)).or_insert(version.clone());
        }
        self.prune();
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha8Rng;
    use rand_core::{RngCore, SeedableRng};

    use super::*;
    use crate::objects::body::Body;

    fn data(n: u8) -> VersionData {
        VersionData::Object(StoredObject {
            size_bytes: 1,
            etag: format!("e{n}"),
            last_modified_ms: 0,
            content_type: String::new(),
            user_metadata: BTreeMap::new(),
            body: Body::Inline(vec![n]),
        })
    }

    /// A random entry built the way writers build them: a few versions in random states,
    /// pruned, as any stored entry is.
    fn entry(rng: &mut ChaCha8Rng) -> ObjectEntry {
        let mut e = ObjectEntry::default();
        for _ in 0..rng.next_u32() % 4 {
            let id = VersionId { timestamp: (rng.next_u32() % 5) as u64, unique: 7 };
            let state = match rng.next_u32() % 5 {
                0 => VersionState::Uploading,
                1 => VersionState::Complete(data(id.timestamp as u8)),
                2 => VersionState::Complete(VersionData::DeleteMarker { last_modified_ms: 0 }),
                3 => VersionState::Deleted,
                _ => VersionState::Aborted,
            };
            // A version is written with history kept or not, once: derive it from the id.
            let kept = id.timestamp.is_multiple_of(2);
            let unconditional = rng.next_u32().is_multiple_of(2);
            e.merge(&ObjectEntry::with(id, Version { state, kept, unconditional }));
        }
        e
    }

    fn merged(a: &ObjectEntry, b: &ObjectEntry) -> ObjectEntry {
        let mut m = a.clone();
        m.merge(b);
        m
    }

    #[test]
    fn merge_is_commutative_associative_and_idempotent() {
        for seed in 0..2000 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (a, b, c) = (entry(&mut rng), entry(&mut rng), entry(&mut rng));
            assert_eq!(merged(&a, &b), merged(&b, &a), "commutativity, seed {seed}");
            let left = merged(&merged(&a, &b), &c);
            assert_eq!(left, merged(&a, &merged(&b, &c)), "associativity, seed {seed}");
            assert_eq!(merged(&a, &a), a, "idempotence, seed {seed}");
        }
    }

    #[test]
    fn a_complete_version_prunes_older_unkept_versions_but_not_newer_uploads() {
        let id = |t| VersionId { timestamp: t, unique: 1 };
        let v = |state, kept| Version::new(state, kept);
        let mut e = ObjectEntry::with(id(1), v(VersionState::Complete(data(1)), false));
        e.merge(&ObjectEntry::with(id(2), v(VersionState::Complete(data(2)), true)));
        e.merge(&ObjectEntry::with(id(3), v(VersionState::Complete(data(3)), false)));
        e.merge(&ObjectEntry::with(id(4), v(VersionState::Uploading, false)));
        let ids: Vec<u64> = e.versions.keys().map(|k| k.timestamp).collect();
        assert_eq!(ids, vec![2, 3, 4], "version 1 pruned, kept 2 stays, upload 4 stays");
        assert_eq!(e.current().map(|(id, _)| id.timestamp), Some(3), "uploads are never current");
    }

    #[test]
    fn an_aborted_upload_does_not_hide_the_version_it_failed_to_replace() {
        let id = |t| VersionId { timestamp: t, unique: 1 };
        let v = |state| Version::new(state, false);
        let mut e = ObjectEntry::with(id(1), v(VersionState::Complete(data(1))));
        e.merge(&ObjectEntry::with(id(2), v(VersionState::Uploading)));
        e.merge(&ObjectEntry::with(id(2), v(VersionState::Aborted)));
        assert_eq!(e.current().map(|(id, _)| id.timestamp), Some(1));
        // ...but a completion racing the abort wins: the client was told it succeeded.
        e.merge(&ObjectEntry::with(id(2), v(VersionState::Complete(data(2)))));
        assert_eq!(e.current().map(|(id, _)| id.timestamp), Some(2));
    }

    #[test]
    fn only_entries_with_nothing_readable_or_listable_are_tombstones() {
        let id = |t| VersionId { timestamp: t, unique: 1 };
        let v = |state, kept| Version::new(state, kept);
        let marker = || VersionState::Complete(VersionData::DeleteMarker { last_modified_ms: 0 });
        // An unversioned delete: the marker prunes the object; nothing is left to read.
        let mut e = ObjectEntry::with(id(1), v(VersionState::Complete(data(1)), false));
        assert_eq!(e.tombstone_since_ms(), None, "a live object");
        e.merge(&ObjectEntry::with(id(2), v(marker(), false)));
        assert_eq!(e.tombstone_since_ms(), Some(2), "aged from the marker");
        // A failed upload next to it, newer: still nothing to read, aged from the newest.
        e.merge(&ObjectEntry::with(id(3), v(VersionState::Aborted, false)));
        assert_eq!(e.tombstone_since_ms(), Some(3));
        // An upload in progress keeps the entry (its blocks are being referenced).
        e.merge(&ObjectEntry::with(id(4), v(VersionState::Uploading, false)));
        assert_eq!(e.tombstone_since_ms(), None, "an upload in progress");
        // A delete marker kept as history is listed by ListObjectVersions.
        let kept = ObjectEntry::with(id(5), v(marker(), true));
        assert_eq!(kept.tombstone_since_ms(), None);
        // Every version deleted by id, kept or not: a tombstone.
        let mut gone = ObjectEntry::with(id(6), v(VersionState::Deleted, true));
        gone.merge(&ObjectEntry::with(id(7), v(VersionState::Deleted, false)));
        assert_eq!(gone.tombstone_since_ms(), Some(7));
        // A kept object older than an unkept marker survives pruning, so it is readable by id.
        let mut history = ObjectEntry::with(id(8), v(VersionState::Complete(data(8)), true));
        history.merge(&ObjectEntry::with(id(9), v(marker(), false)));
        assert_eq!(history.tombstone_since_ms(), None);
    }

    /// Entries and consensus values written before versions carried their mark (first
    /// formats) still decode, with the mark false ("not known"); second-format entries
    /// decode as they are; new ones round-trip.
    #[test]
    fn first_format_entries_and_cas_values_decode_with_the_mark_unknown() {
        use crate::table::schema::{decode_entry, encode_entry};
        let id = VersionId { timestamp: 9, unique: 2 };
        let state = VersionState::Complete(data(9));
        // A V1 `Version` was the pair (state, kept): bincode encodes a struct as its fields.
        let v1_versions: BTreeMap<VersionId, (VersionState, bool)> =
            [(id, (state.clone(), true))].into();
        let mut v1_entry = vec![ENTRY_FORMAT_V1];
        v1_entry.extend(codec::encode(&v1_versions));
        let decoded: ObjectEntry = decode_entry(&v1_entry).unwrap();
        assert_eq!(decoded, ObjectEntry::with(id, Version::new(state.clone(), true)));

        let marked = Version { state: state.clone(), kept: false, unconditional: true };
        let entry = ObjectEntry::with(id, marked.clone());
        let bytes = encode_entry(&entry);
        assert_eq!(bytes[0], ENTRY_FORMAT_V3);
        assert_eq!(decode_entry::<ObjectEntry>(&bytes).unwrap(), entry);
        // V2 is V3 without listed bodies: the same payload under the older marker.
        let mut v2_entry = bytes.clone();
        v2_entry[0] = ENTRY_FORMAT_V2;
        assert_eq!(decode_entry::<ObjectEntry>(&v2_entry).unwrap(), entry);

        let v1_value = codec::encode(&Some((id, (state.clone(), false))));
        assert_eq!(decode_cas_value(&v1_value).unwrap(), Some((id, Version::new(state, false))));
        let v1_fence = codec::encode(&None::<(VersionId, (VersionState, bool))>);
        assert_eq!(decode_cas_value(&v1_fence).unwrap(), None);
        for value in [Some((id, marked)), None] {
            assert_eq!(decode_cas_value(&encode_cas_value(&value)).unwrap(), value);
        }
    }

    #[test]
    fn version_ids_round_trip_through_hex_and_sort_like_their_strings() {
        let a = VersionId { timestamp: 5, unique: u64::MAX };
        let b = VersionId { timestamp: 6, unique: 0 };
        assert_eq!(VersionId::from_hex(&a.to_hex()), Some(a));
        assert!(a < b && a.to_hex() < b.to_hex());
        assert_eq!(VersionId::from_hex("xyz"), None);
    }
}
