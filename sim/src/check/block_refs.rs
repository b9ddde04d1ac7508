//! Block files after quiescence: every node holds exactly the blocks that live object
//! versions reference and that the layout places on it, and every such copy verifies; and
//! every block list a node holds in its `version` table belongs to a live listed version
//! (`check_lists`: deletes cascade from a version to its list).
//!
//! By then every fault is healed and the quiet period has covered anti-entropy, resync,
//! scrub and the collector's delay, so each of the block layer's repairs had its chance:
//!
//! - `missing`: a live block is absent from a node that should hold it (resync did not
//!   fetch it: a lost disk, a write that reached only a quorum);
//! - `corrupt`: a node's copy of a live block does not verify (scrub did not replace it);
//! - `orphan`: a node holds a block no live version references, or one the layout does not
//!   place on it (the collector did not delete it).
//!
//! Liveness follows the collector's rule (`engine/src/objects/gc.rs`): a `Complete` object
//! version holds exactly the blocks of its body (its list in the `version` table, for a
//! listed body); aborted, deleted and pruned versions hold nothing. A version still `Uploading` names no blocks yet (its body is recorded when it
//! completes): the blocks its writer stored before crashing are referenced only in
//! `block_ref`, and the collector aborts such an upload after `upload_timeout_ms`, so the
//! quiet period must cover that timeout plus the collector's delay, and they count as
//! orphans here.

use std::collections::{BTreeMap, BTreeSet};

use hangar_engine::block::{BlockHash, hash_hex};
use hangar_engine::node::Node;
use hangar_engine::objects::body::{Body, BodyBlock};
use hangar_engine::objects::version_blocks::VersionBlocks;
use hangar_engine::objects::{ObjectEntry, VersionData, VersionId, VersionState};
use hangar_engine::table::LocalTable;
use hangar_engine::table::schema::{decode_entry, partition_of_key};

use super::Violation;

/// One node's block files as found on its disk.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NodeBlocks {
    /// Each block file, and whether its content verifies against its name.
    pub files: BTreeMap<BlockHash, bool>,
    /// Files in the block tree that are not block files (temporaries of interrupted
    /// writes); reported, not judged.
    pub strays: usize,
}

/// The blocks of the complete versions of `entries` (the object table, merged over its
/// replicas): every replica of each must hold a copy that verifies. A body listed in the
/// `version` table is found in `lists` (the lists the final reads found on every replica
/// of theirs); a listed version without one there contributes nothing, and the final
/// reads have already given its key a value nobody wrote.
pub fn live_blocks<'a>(
    entries: impl IntoIterator<Item = &'a ObjectEntry>,
    lists: &BTreeMap<VersionId, Vec<BodyBlock>>,
) -> BTreeSet<BlockHash> {
    let mut live = BTreeSet::new();
    for entry in entries {
        for (id, version) in &entry.versions {
            let VersionState::Complete(VersionData::Object(stored)) = &version.state else {
                continue;
            };
            let blocks = match &stored.body {
                Body::Blocks(blocks) => Some(blocks),
                Body::Listed(_) => lists.get(id),
                Body::Inline(_) => None,
            };
            live.extend(blocks.into_iter().flatten().map(|b| b.hash));
        }
    }
    live
}

/// A live block list found in a node's local `version` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveList {
    pub node: String,
    /// The list's partition: whether the node is still one of its replicas (table entries
    /// of partitions a layout change moved away are not cleaned up, and the list's
    /// deletion goes to its current replicas only).
    pub partition: u8,
    pub key: String,
    pub version: VersionId,
}

/// The live block lists node `name` holds in its local `version` table.
pub fn live_lists(name: &str, node: &Node) -> Vec<LiveList> {
    let Ok(entries) = node.block_lists.local.range(b"", b"", usize::MAX) else {
        return Vec::new();
    };
    let decoded = entries.iter().filter_map(|(table_key, raw)| {
        Some((partition_of_key(table_key), decode_entry::<VersionBlocks>(raw).ok()?))
    });
    decoded
        .filter(|(_, l)| !l.deleted.get())
        .map(|(partition, l)| LiveList {
            node: name.to_string(),
            partition,
            key: l.key,
            version: l.version,
        })
        .collect()
}

/// Deletes cascade: once GC has quiesced, a live block list on any node belongs to a
/// complete version of its key (in `objects`, merged over the replicas) whose body is
/// listed. Any other — its version removed, aborted or never completed — is a list the
/// collector should have deleted.
pub fn check_lists(
    live_lists: &[LiveList],
    objects: &BTreeMap<String, ObjectEntry>,
) -> Result<(), Violation> {
    let listed = |key: &str, id: &VersionId| {
        let version = objects.get(key).and_then(|e| e.versions.get(id));
        matches!(version.map(|v| &v.state), Some(VersionState::Complete(VersionData::Object(s)))
            if matches!(s.body, Body::Listed(_)))
    };
    let dangling: Vec<String> = live_lists
        .iter()
        .filter(|l| !listed(&l.key, &l.version))
        .map(|l| format!("{}@{} on {}", l.key, l.version.to_hex(), l.node))
        .collect();
    if dangling.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = dangling.iter().take(6).map(String::as_str).collect();
    Err(Violation {
        checker: "block_refs",
        details: format!(
            "{} block lists outlive their versions: {}{}",
            dangling.len(),
            shown.join(", "),
            if dangling.len() > shown.len() { ", …" } else { "" }
        ),
    })
}

fn short(hash: &BlockHash) -> String {
    hash_hex(hash)[..12].to_string()
}

/// Judges every node's block files; `replicas` names the nodes the layout places a block
/// on.
pub fn check_block_refs(
    disks: &BTreeMap<String, NodeBlocks>,
    live: &BTreeSet<BlockHash>,
    replicas: &dyn Fn(&BlockHash) -> Vec<String>,
) -> Result<(), Violation> {
    let mut problems: Vec<String> = Vec::new();
    let empty = NodeBlocks::default();
    // Missing and corrupt copies of live blocks, block by block.
    for hash in live {
        for node in replicas(hash) {
            match disks.get(&node).unwrap_or(&empty).files.get(hash) {
                None => problems.push(format!("missing {} on {node}", short(hash))),
                Some(false) => problems.push(format!("corrupt {} on {node}", short(hash))),
                Some(true) => {}
            }
        }
    }
    // Orphans, node by node.
    for (node, blocks) in disks {
        for hash in blocks.files.keys() {
            if !live.contains(hash) {
                problems.push(format!("orphan {} on {node} (no live reference)", short(hash)));
            } else if !replicas(hash).contains(node) {
                problems.push(format!("orphan {} on {node} (not a replica)", short(hash)));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = problems.iter().take(6).map(String::as_str).collect();
    let more = problems.len().saturating_sub(shown.len());
    let files: usize = disks.values().map(|d| d.files.len()).sum();
    Err(Violation {
        checker: "block_refs",
        details: format!(
            "{} problems ({} live blocks, {files} block files): {}{}",
            problems.len(),
            live.len(),
            shown.join(", "),
            if more > 0 { format!(", and {more} more") } else { String::new() }
        ),
    })
}

#[cfg(test)]
mod tests {
    use hangar_engine::objects::StoredObject;
    use hangar_engine::objects::version::Version;
    use hangar_engine::objects::version_blocks::listed_body;

    use super::*;

    fn h(n: u8) -> BlockHash {
        [n; 32]
    }

    fn all_three(_: &BlockHash) -> Vec<String> {
        vec!["n1".into(), "n2".into(), "n3".into()]
    }

    fn disks(rows: &[(&str, &[(u8, bool)])]) -> BTreeMap<String, NodeBlocks> {
        rows.iter()
            .map(|(node, files)| {
                let files = files.iter().map(|&(n, ok)| (h(n), ok)).collect();
                (node.to_string(), NodeBlocks { files, strays: 0 })
            })
            .collect()
    }

    fn live(blocks: &[u8]) -> BTreeSet<BlockHash> {
        blocks.iter().map(|&n| h(n)).collect()
    }

    #[test]
    fn every_replica_holding_exactly_the_live_blocks_passes() {
        let d = disks(&[
            ("n1", &[(1, true), (2, true)]),
            ("n2", &[(1, true), (2, true)]),
            ("n3", &[(1, true), (2, true)]),
        ]);
        assert_eq!(check_block_refs(&d, &live(&[1, 2]), &all_three), Ok(()));
    }

    #[test]
    fn a_missing_copy_is_caught_and_named() {
        let d = disks(&[("n1", &[(1, true)]), ("n2", &[(1, true)]), ("n3", &[])]);
        let err = check_block_refs(&d, &live(&[1]), &all_three).unwrap_err();
        assert_eq!(err.checker, "block_refs");
        assert!(err.details.contains("missing 010101010101 on n3"), "{err}");
        // A node whose disk holds nothing at all is judged too.
        let d = disks(&[("n1", &[(1, true)]), ("n2", &[(1, true)])]);
        let err = check_block_refs(&d, &live(&[1]), &all_three).unwrap_err();
        assert!(err.details.contains("missing 010101010101 on n3"), "{err}");
    }

    #[test]
    fn a_corrupt_copy_of_a_live_block_is_caught() {
        let d = disks(&[("n1", &[(1, true)]), ("n2", &[(1, false)]), ("n3", &[(1, true)])]);
        let err = check_block_refs(&d, &live(&[1]), &all_three).unwrap_err();
        assert!(err.details.contains("corrupt 010101010101 on n2"), "{err}");
    }

    #[test]
    fn an_unreferenced_or_misplaced_file_is_an_orphan() {
        let d = disks(&[("n1", &[(1, true), (9, true)]), ("n2", &[(1, true)])]);
        let two = |_: &BlockHash| vec!["n1".to_string(), "n2".to_string()];
        let err = check_block_refs(&d, &live(&[1]), &two).unwrap_err();
        assert!(err.details.contains("orphan 090909090909 on n1 (no live reference)"), "{err}");
        let only_n1 = |_: &BlockHash| vec!["n1".to_string()];
        let d = disks(&[("n1", &[(1, true)]), ("n2", &[(1, true)])]);
        let err = check_block_refs(&d, &live(&[1]), &only_n1).unwrap_err();
        assert!(err.details.contains("orphan 010101010101 on n2 (not a replica)"), "{err}");
    }

    fn version(state: VersionState) -> Version {
        Version::new(state, false)
    }

    fn object(blocks: &[u8]) -> VersionState {
        let blocks = blocks.iter().map(|&n| BodyBlock { hash: h(n), size_bytes: 1 }).collect();
        VersionState::Complete(VersionData::Object(StoredObject {
            size_bytes: 1,
            etag: String::new(),
            last_modified_ms: 0,
            content_type: String::new(),
            user_metadata: BTreeMap::new(),
            body: Body::Blocks(blocks),
        }))
    }

    #[test]
    fn live_blocks_are_those_of_complete_versions() {
        let id = |t| VersionId { timestamp: t, unique: 1 };
        let mut a = ObjectEntry::with(id(1), version(object(&[1, 2])));
        a.versions.insert(id(2), version(VersionState::Uploading));
        let b = ObjectEntry::with(id(3), version(VersionState::Aborted));
        let c = ObjectEntry::with(
            id(4),
            version(VersionState::Complete(VersionData::DeleteMarker { last_modified_ms: 0 })),
        );
        let got = live_blocks([&a, &b, &c], &BTreeMap::new());
        assert_eq!(got, live(&[1, 2]));
    }

    /// A listed body's blocks come from its list; with no list found it holds nothing here
    /// (its files are then orphans, and the final reads report the key).
    #[test]
    fn a_listed_body_s_blocks_come_from_its_list() {
        let id = VersionId { timestamp: 5, unique: 1 };
        let blocks: Vec<BodyBlock> =
            [3, 4].iter().map(|&n| BodyBlock { hash: h(n), size_bytes: 1 }).collect();
        let mut state = object(&[]);
        if let VersionState::Complete(VersionData::Object(stored)) = &mut state {
            stored.body = Body::Listed(listed_body(&blocks));
        }
        let entry = ObjectEntry::with(id, version(state));
        let lists = BTreeMap::from([(id, blocks)]);
        assert_eq!(live_blocks([&entry], &lists), live(&[3, 4]));
        assert_eq!(live_blocks([&entry], &BTreeMap::new()), live(&[]));
        let d = disks(&[("n1", &[(3, true), (4, true)])]);
        let only_n1 = |_: &BlockHash| vec!["n1".to_string()];
        let err = check_block_refs(&d, &live_blocks([&entry], &BTreeMap::new()), &only_n1);
        assert!(err.unwrap_err().details.contains("orphan 030303030303 on n1"));
    }

    /// A live list must belong to a complete listed version; one of a removed, aborted or
    /// unknown version is caught and named.
    #[test]
    fn a_list_outliving_its_version_is_caught() {
        let id = |t| VersionId { timestamp: t, unique: 1 };
        let mut state = object(&[]);
        if let VersionState::Complete(VersionData::Object(stored)) = &mut state {
            stored.body = Body::Listed(listed_body(&[]));
        }
        let mut entry = ObjectEntry::with(id(5), version(state));
        entry.versions.insert(id(6), version(VersionState::Aborted));
        entry.versions.insert(id(7), version(object(&[1])));
        let objects = BTreeMap::from([("k".to_string(), entry)]);
        let list = |node: &str, t| LiveList {
            node: node.to_string(),
            partition: 0,
            key: "k".to_string(),
            version: id(t),
        };
        assert_eq!(check_lists(&[list("n1", 5), list("n2", 5)], &objects), Ok(()));
        for dangling in [list("n2", 6), list("n2", 7), list("n3", 9)] {
            let err = check_lists(&[list("n1", 5), dangling.clone()], &objects).unwrap_err();
            assert!(err.details.starts_with("1 block lists outlive"), "{err}");
            assert!(err.details.contains(&format!("on {}", dangling.node)), "{err}");
        }
        let other_key = [LiveList { key: "k9".into(), ..list("n1", 5) }];
        assert!(check_lists(&other_key, &objects).is_err(), "a key with no entry at all");
    }
}
