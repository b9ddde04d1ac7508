//! Anti-entropy of one partition by Merkle tree descent (`merkle`): two replicas whose
//! partition roots differ find the entries that differ and exchange only those.
//!
//! The caller has already seen that the roots differ (`sync::SyncWorker::sync_with`). From
//! the root down, we ask the peer for its nodes at the paths still in question, many paths
//! per request, and compare each with ours at the same path:
//! - equal hashes: that subtree is the same on both sides, done;
//! - their node is inner: every child whose hash differs from ours is still in question —
//!   except a child they lack, whose items are all ours to push, found locally;
//! - their node is a leaf or nothing: their items under the path are known, so the
//!   difference with ours (local) gives keys to pull (their item differs from or is missing
//!   in ours) and keys to push (ours differs from or is missing in theirs).
//!
//! Keys are then pulled (`FetchEntries`, merged here) and pushed (`Update`, our entries after
//! that merge), so a key both sides changed ends as the merge of both on both sides. Cost:
//! with k differing entries, about `depth` requests of at most k paths each, plus the k
//! entries each way. Paths in question are a stack, taken `PATHS_PER_REQUEST` at a time, and
//! keys are exchanged every `KEYS_PER_EXCHANGE`: memory stays bounded even when one side is
//! empty (a blank replica), which then costs one request per few hundred inner nodes.
//!
//! Nodes are read in separate transactions on each side while writes go on: a node that
//! changed between two requests can only make this round exchange a key too many or too
//! few; CRDT merges make the extra harmless, and the next round finds the missing one. A
//! key whose hash equals on both sides at any level was equal at that moment, which is what
//! a blank replica's full sync needs (everything acknowledged before the descent started).

use std::collections::BTreeMap;

use super::merkle::{EMPTY_HASH, Hash, TreeNode, hash_of_encoded};
use super::store::LocalTable;
use crate::rpc::{Response, TableRequest};
use crate::seam::BoxFuture;

/// Tree paths asked per `TreeNodes` request: a response is at most 256 inner nodes of
/// 529 bytes (135 KiB), or leaves with their keys.
pub const PATHS_PER_REQUEST: usize = 256;

/// Keys gathered before they are pulled and pushed; also the most per request.
pub const KEYS_PER_EXCHANGE: usize = 1_000;

/// The other replica, as anti-entropy talks to it: over RPC in a cluster, in process in
/// tests and benchmarks.
pub trait SyncPeer: Send + Sync {
    fn call(&self, request: TableRequest) -> BoxFuture<'_, Result<Response, String>>;
}

/// What one partition's exchange cost and moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Exchanged {
    /// `TreeNodes` requests sent.
    pub tree_requests: usize,
    /// Tree nodes received.
    pub nodes_fetched: usize,
    /// Entries received from the peer and merged here.
    pub entries_pulled: usize,
    /// Entries sent to the peer.
    pub entries_pushed: usize,
}

/// Keys found to differ, not yet exchanged.
#[derive(Default)]
struct Differing {
    pull: Vec<Vec<u8>>,
    /// With the hash of the peer's entry when it has one: a key we just pulled is not sent
    /// back if the merge left us exactly the peer's entry.
    push: Vec<(Vec<u8>, Option<Hash>)>,
}

/// Brings `partition` of `table` and of the peer's replica to the merge of both (absent
/// concurrent writes); see the module comment.
pub async fn sync_partition(
    table: &dyn LocalTable,
    peer: &dyn SyncPeer,
    partition: u8,
) -> Result<Exchanged, String> {
    let name = table.name().to_string();
    let mut done = Exchanged::default();
    let mut in_question: Vec<Vec<u8>> = vec![Vec::new()];
    let mut differing = Differing::default();
    while !in_question.is_empty() {
        let take = in_question.len().min(PATHS_PER_REQUEST);
        let paths = in_question.split_off(in_question.len() - take);
        let request =
            TableRequest::TreeNodes { table: name.clone(), partition, paths: paths.clone() };
        let theirs = match peer.call(request).await? {
            Response::TreeNodes(nodes) if nodes.len() == paths.len() => nodes,
            other => return Err(format!("tree nodes: unexpected answer {other:?}")),
        };
        done.tree_requests += 1;
        done.nodes_fetched += theirs.len();
        let ours = table.tree_nodes(partition, &paths).map_err(|e| e.to_string())?;
        for ((path, their), our) in paths.into_iter().zip(theirs).zip(ours) {
            if hash_of_encoded(&their) == hash_of_encoded(&our) {
                continue;
            }
            let their = TreeNode::decode(&their).map_err(|e| format!("peer's {e}"))?;
            let our = TreeNode::decode(&our).map_err(|e| e.to_string())?;
            compare(table, partition, path, their, our, &mut in_question, &mut differing)?;
        }
        if differing.pull.len() + differing.push.len() >= KEYS_PER_EXCHANGE {
            exchange(table, peer, &mut differing, &mut done).await?;
        }
    }
    exchange(table, peer, &mut differing, &mut done).await?;
    Ok(done)
}

/// Compares their node and ours at `path` (hashes known to differ): adds the children
/// still in question, or the keys that differ.
fn compare(
    table: &dyn LocalTable,
    partition: u8,
    path: Vec<u8>,
    their: TreeNode,
    our: TreeNode,
    in_question: &mut Vec<Vec<u8>>,
    differing: &mut Differing,
) -> Result<(), String> {
    let leaves = |path: &[u8]| table.tree_leaves(partition, path).map_err(|e| e.to_string());
    match their {
        TreeNode::Inner { children } => {
            let theirs: BTreeMap<u8, Hash> = children.into_iter().collect();
            let ours: BTreeMap<u8, Hash> = our.child_hashes(path.len()).into_iter().collect();
            for nibble in 0..16u8 {
                let their_hash = theirs.get(&nibble).copied().unwrap_or(EMPTY_HASH);
                let our_hash = ours.get(&nibble).copied().unwrap_or(EMPTY_HASH);
                if their_hash == our_hash {
                    continue;
                }
                let mut child = path.clone();
                child.push(nibble);
                if their_hash == EMPTY_HASH {
                    differing.push.extend(leaves(&child)?.into_iter().map(|(k, _)| (k, None)));
                } else {
                    in_question.push(child);
                }
            }
        }
        their => {
            let their_leaf = match their {
                TreeNode::Leaf { key, value_hash } => Some((key, value_hash)),
                _ => None,
            };
            let ours = match our {
                TreeNode::Inner { .. } => leaves(&path)?,
                TreeNode::Leaf { key, value_hash } => vec![(key, value_hash)],
                TreeNode::Empty => Vec::new(),
            };
            if let Some(leaf) = &their_leaf
                && !ours.contains(leaf)
            {
                differing.pull.push(leaf.0.clone());
            }
            for item in ours {
                match &their_leaf {
                    Some(leaf) if *leaf == item => {}
                    Some((key, hash)) if *key == item.0 => {
                        differing.push.push((item.0, Some(*hash)))
                    }
                    _ => differing.push.push((item.0, None)),
                }
            }
        }
    }
    Ok(())
}

/// Pulls then pushes the differing keys, `KEYS_PER_EXCHANGE` per request.
async fn exchange(
    table: &dyn LocalTable,
    peer: &dyn SyncPeer,
    differing: &mut Differing,
    done: &mut Exchanged,
) -> Result<(), String> {
    let name = table.name().to_string();
    for keys in differing.pull.chunks(KEYS_PER_EXCHANGE) {
        let request = TableRequest::FetchEntries { table: name.clone(), keys: keys.to_vec() };
        match peer.call(request).await? {
            Response::Entries(entries) => {
                done.entries_pulled += entries.len();
                table.merge_raw(&entries).map_err(|e| e.to_string())?;
            }
            other => return Err(format!("fetch entries: unexpected answer {other:?}")),
        }
    }
    for chunk in differing.push.chunks(KEYS_PER_EXCHANGE) {
        let keys: Vec<Vec<u8>> = chunk.iter().map(|(k, _)| k.clone()).collect();
        let theirs: BTreeMap<&[u8], Hash> =
            chunk.iter().filter_map(|(k, h)| Some((k.as_slice(), (*h)?))).collect();
        let mut entries = table.entries_by_key(&keys).map_err(|e| e.to_string())?;
        entries.retain(|(k, v)| theirs.get(k.as_slice()) != Some(blake3::hash(v).as_bytes()));
        if entries.is_empty() {
            continue;
        }
        done.entries_pushed += entries.len();
        match peer.call(TableRequest::Update { table: name.clone(), entries }).await? {
            Response::Done => {}
            other => return Err(format!("push: unexpected answer {other:?}")),
        }
    }
    *differing = Differing::default();
    Ok(())
}
