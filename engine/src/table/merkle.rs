//! A Merkle tree per partition of a table, stored beside the table in the node's redb
//! database. Writes record their keys in a to-do list in their own transaction, and
//! `Store::flush_tree` applies the list in batches (`apply`) before any tree is read, so a
//! crash can leave the tree behind but never disagreeing with the entries when read (why
//! not in the write transaction itself: docs/data-model.md, "Anti-entropy").
//!
//! Why: anti-entropy compares trees instead of hashing and shipping whole partitions. A
//! bucket's objects all live in one partition, so a partition can hold millions of entries;
//! with the tree, replicas that differ in k entries exchange O(k × depth) nodes and the k
//! entries, and reading a partition's digest is one lookup instead of a scan.
//!
//! Shape. An item is `(entry key, blake3 of the encoded entry)`; its *path* is the string of
//! 64 nibbles of `blake3(entry key)`. The node *at* a path P stands for the items whose path
//! starts with P:
//! - no item: `Empty` (never stored; its hash is all zeros);
//! - one item: a `Leaf` holding it, stored at the shortest P under which it is alone;
//! - two or more: an `Inner` node listing its non-empty children `(nibble, child hash)`.
//!
//! The shape depends only on the set of items, never on the order of writes, so replicas
//! holding the same entries have the same root. A node's hash is the blake3 of its
//! encoding, and a leaf's encoding does not depend on its depth: the node at any path can be
//! compared between replicas even where one stores its only item higher up (`node_at`).
//! Sixteen children per node keep an inner node at most 529 bytes, so an insert rewrites a
//! few hundred bytes per level (about 5 levels at 100k entries) rather than 8 KiB per level
//! for 256 children.
//!
//! Storage (redb table `<table>$merkle_v1`): key `partition ‖ path` (one byte per nibble,
//! 0..=15; the root is the key `[partition]`), value the node's encoding:
//! - `Leaf`:  `0x00 ‖ value hash (32 bytes) ‖ entry key`
//! - `Inner`: `0x01 ‖ (nibble ‖ child hash (32 bytes))*`, nibbles ascending.
//!
//! A change of this format gets a new table name (`TREE_TABLE_SUFFIX`): the new table starts
//! empty and `Store::open` rebuilds it from the entries.

use redb::{ReadableTable, Table};

pub type Hash = [u8; 32];

/// The hash of an empty subtree (no node stored).
pub const EMPTY_HASH: Hash = [0; 32];

/// Appended to a table's name to name its tree's redb table; the version is the format's.
pub const TREE_TABLE_SUFFIX: &str = "$merkle_v1";

/// Appended to a table's name to name its list of keys changed since the trees were last
/// brought up to date (`Store::flush_tree`); keys only, empty values.
pub const TODO_TABLE_SUFFIX: &str = "$merkle_todo";

/// Nibbles in a path: blake3 gives 32 bytes.
pub const PATH_LEN: usize = 64;

const LEAF: u8 = 0;
const INNER: u8 = 1;

/// One stored node, or the absence of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeNode {
    Empty,
    Leaf { key: Vec<u8>, value_hash: Hash },
    Inner { children: Vec<(u8, Hash)> },
}

/// A tree that cannot be read: a storage failure, or bytes that are not a node.
#[derive(Debug)]
pub enum TreeError {
    Storage(redb::StorageError),
    Corrupt { reason: String },
}

impl std::fmt::Display for TreeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TreeError::Storage(e) => write!(f, "merkle tree: {e}"),
            TreeError::Corrupt { reason } => write!(f, "merkle tree corrupt: {reason}"),
        }
    }
}

impl From<redb::StorageError> for TreeError {
    fn from(e: redb::StorageError) -> Self {
        TreeError::Storage(e)
    }
}

impl TreeNode {
    /// The stored (and transmitted) bytes; empty for `Empty`.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            TreeNode::Empty => Vec::new(),
            TreeNode::Leaf { key, value_hash } => {
                let mut out = Vec::with_capacity(1 + 32 + key.len());
                out.push(LEAF);
                out.extend_from_slice(value_hash);
                out.extend_from_slice(key);
                out
            }
            TreeNode::Inner { children } => {
                let mut out = Vec::with_capacity(1 + 33 * children.len());
                out.push(INNER);
                for (nibble, hash) in children {
                    out.push(*nibble);
                    out.extend_from_slice(hash);
                }
                out
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<TreeNode, TreeError> {
        let corrupt = |reason: &str| TreeError::Corrupt { reason: reason.into() };
        match bytes.split_first() {
            None => Ok(TreeNode::Empty),
            Some((&LEAF, rest)) if rest.len() > 32 => {
                let (hash, key) = rest.split_at(32);
                Ok(TreeNode::Leaf { key: key.to_vec(), value_hash: hash.try_into().unwrap() })
            }
            Some((&INNER, rest)) if !rest.is_empty() && rest.len() % 33 == 0 => {
                let children: Vec<(u8, Hash)> =
                    rest.chunks(33).map(|c| (c[0], c[1..].try_into().unwrap())).collect();
                let ascending = children.windows(2).all(|w| w[0].0 < w[1].0);
                if !ascending || children.iter().any(|(n, _)| *n > 15) {
                    return Err(corrupt("inner node children out of order"));
                }
                Ok(TreeNode::Inner { children })
            }
            Some(_) => Err(corrupt("unknown node kind or length")),
        }
    }

    pub fn hash(&self) -> Hash {
        hash_of_encoded(&self.encode())
    }

    /// The hashes of the nodes one level below this one, when it stands at `depth`: an
    /// inner node's children, or a leaf seen as the only child on its own path.
    pub fn child_hashes(&self, depth: usize) -> Vec<(u8, Hash)> {
        match self {
            TreeNode::Empty => Vec::new(),
            TreeNode::Leaf { key, .. } => vec![(item_path(key)[depth], self.hash())],
            TreeNode::Inner { children } => children.clone(),
        }
    }
}

/// The hash of a node given its encoding (`EMPTY_HASH` for no bytes).
pub fn hash_of_encoded(bytes: &[u8]) -> Hash {
    if bytes.is_empty() { EMPTY_HASH } else { *blake3::hash(bytes).as_bytes() }
}

/// An entry key's position in its partition's tree.
pub fn item_path(key: &[u8]) -> [u8; PATH_LEN] {
    let hash = blake3::hash(key);
    let mut path = [0u8; PATH_LEN];
    for (i, byte) in hash.as_bytes().iter().enumerate() {
        path[2 * i] = byte >> 4;
        path[2 * i + 1] = byte & 0x0f;
    }
    path
}

fn node_key(partition: u8, path: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + path.len());
    key.push(partition);
    key.extend_from_slice(path);
    key
}

/// The node stored exactly at `path` (`Empty` if none is).
pub fn read_node(
    tree: &impl ReadableTable<&'static [u8], &'static [u8]>,
    partition: u8,
    path: &[u8],
) -> Result<TreeNode, TreeError> {
    match tree.get(node_key(partition, path).as_slice())? {
        Some(bytes) => TreeNode::decode(bytes.value()),
        None => Ok(TreeNode::Empty),
    }
}

/// The node standing for the items under `path`, stored there or not: a leaf stored higher
/// up whose path continues with `path` stands there too.
pub fn node_at(
    tree: &impl ReadableTable<&'static [u8], &'static [u8]>,
    partition: u8,
    path: &[u8],
) -> Result<TreeNode, TreeError> {
    let exact = read_node(tree, partition, path)?;
    if exact != TreeNode::Empty {
        return Ok(exact);
    }
    for depth in 0..path.len() {
        match read_node(tree, partition, &path[..depth])? {
            TreeNode::Empty => return Ok(TreeNode::Empty),
            TreeNode::Leaf { key, value_hash } => {
                let under = item_path(&key).starts_with(path);
                return Ok(if under {
                    TreeNode::Leaf { key, value_hash }
                } else {
                    TreeNode::Empty
                });
            }
            TreeNode::Inner { children } => {
                if !children.iter().any(|(n, _)| *n == path[depth]) {
                    return Ok(TreeNode::Empty);
                }
            }
        }
    }
    if path.is_empty() {
        return Ok(TreeNode::Empty);
    }
    Err(TreeError::Corrupt { reason: format!("partition {partition}: child listed, not stored") })
}

/// Every item under `path`, in stored-key order.
pub fn leaves_under(
    tree: &impl ReadableTable<&'static [u8], &'static [u8]>,
    partition: u8,
    path: &[u8],
    mut f: impl FnMut(Vec<u8>, Hash),
) -> Result<(), TreeError> {
    match node_at(tree, partition, path)? {
        TreeNode::Empty => Ok(()),
        TreeNode::Leaf { key, value_hash } => {
            f(key, value_hash);
            Ok(())
        }
        TreeNode::Inner { .. } => {
            // Every node below `path` is stored under keys that start with it.
            let start = node_key(partition, path);
            for item in tree.range::<&[u8]>(start.as_slice()..)? {
                let (k, v) = item?;
                if !k.value().starts_with(&start) {
                    break;
                }
                if let TreeNode::Leaf { key, value_hash } = TreeNode::decode(v.value())? {
                    f(key, value_hash);
                }
            }
            Ok(())
        }
    }
}

fn write_node(
    tree: &mut Table<'_, &'static [u8], &'static [u8]>,
    partition: u8,
    path: &[u8],
    node: &TreeNode,
) -> Result<(), TreeError> {
    tree.insert(node_key(partition, path).as_slice(), node.encode().as_slice())?;
    Ok(())
}

fn set_child(children: &mut Vec<(u8, Hash)>, nibble: u8, hash: Hash) {
    match children.binary_search_by_key(&nibble, |(n, _)| *n) {
        Ok(i) => children[i].1 = hash,
        Err(i) => children.insert(i, (nibble, hash)),
    }
}

/// A change to a partition's items: the item at `path` (of `key`) now hashes to `hash`, or
/// is gone (`None`).
pub type Change = ([u8; PATH_LEN], Vec<u8>, Option<Hash>);

/// What the node at a path became.
enum After {
    Gone,
    Leaf(TreeNode),
    Inner(Hash),
}

/// Applies `changes` (distinct keys, all of `partition`) to its tree. Sorted by path, a
/// batch rewrites each node it touches once, however many of its changes fall below it:
/// the upper levels cost once per batch, not once per change.
pub fn apply(
    tree: &mut Table<'_, &'static [u8], &'static [u8]>,
    partition: u8,
    changes: &mut [Change],
) -> Result<(), TreeError> {
    changes.sort();
    assert!(changes.windows(2).all(|w| w[0].1 != w[1].1), "one change per key");
    if !changes.is_empty() {
        apply_at(tree, partition, changes, 0)?;
    }
    Ok(())
}

/// Applies `changes` (all under the same `depth`-nibble prefix) to the node there.
fn apply_at(
    tree: &mut Table<'_, &'static [u8], &'static [u8]>,
    partition: u8,
    changes: &[Change],
    depth: usize,
) -> Result<After, TreeError> {
    let here = &changes[0].0[..depth];
    let mut children = match read_node(tree, partition, here)? {
        TreeNode::Inner { children } => children,
        other => return replace(tree, partition, changes, depth, other),
    };
    let mut start = 0;
    while start < changes.len() {
        let nibble = changes[start].0[depth];
        let len = changes[start..].iter().take_while(|c| c.0[depth] == nibble).count();
        match apply_at(tree, partition, &changes[start..start + len], depth + 1)? {
            After::Gone => children.retain(|(n, _)| *n != nibble),
            After::Leaf(leaf) => set_child(&mut children, nibble, leaf.hash()),
            After::Inner(hash) => set_child(&mut children, nibble, hash),
        }
        start += len;
    }
    // An inner node stands for two items or more: with none left it goes; with a single
    // leaf left, the leaf moves up here (and may keep moving up from the caller's level).
    if children.is_empty() {
        tree.remove(node_key(partition, here).as_slice())?;
        return Ok(After::Gone);
    }
    if let [(only, _)] = children[..] {
        let mut child_path = here.to_vec();
        child_path.push(only);
        let child = read_node(tree, partition, &child_path)?;
        if let TreeNode::Leaf { .. } = child {
            tree.remove(node_key(partition, &child_path).as_slice())?;
            write_node(tree, partition, here, &child)?;
            return Ok(After::Leaf(child));
        }
    }
    let node = TreeNode::Inner { children };
    write_node(tree, partition, here, &node)?;
    Ok(After::Inner(node.hash()))
}

/// Replaces a leaf or nothing at `changes`' common prefix by the subtree of its items after
/// the changes.
fn replace(
    tree: &mut Table<'_, &'static [u8], &'static [u8]>,
    partition: u8,
    changes: &[Change],
    depth: usize,
    existing: TreeNode,
) -> Result<After, TreeError> {
    let here = &changes[0].0[..depth];
    let mut items: Vec<Item> =
        changes.iter().filter_map(|(path, key, h)| Some((*path, key.clone(), (*h)?))).collect();
    if let TreeNode::Leaf { key, value_hash } = existing {
        tree.remove(node_key(partition, here).as_slice())?;
        if !changes.iter().any(|c| c.1 == key) {
            items.push((item_path(&key), key, value_hash));
            items.sort();
        }
    }
    match items.len() {
        0 => Ok(After::Gone),
        1 => {
            let (_, key, value_hash) = items.pop().expect("one item");
            let leaf = TreeNode::Leaf { key, value_hash };
            write_node(tree, partition, here, &leaf)?;
            Ok(After::Leaf(leaf))
        }
        _ => {
            assert!(depth < PATH_LEN, "two entry keys with one blake3 hash");
            let write = &mut |path: &[u8], node: &TreeNode| write_node(tree, partition, path, node);
            Ok(After::Inner(build(&items, depth, write)?))
        }
    }
}

/// Deletes every node of `partition`'s tree.
pub fn drop_partition(
    tree: &mut Table<'_, &'static [u8], &'static [u8]>,
    partition: u8,
) -> Result<(), TreeError> {
    use std::ops::Bound;
    let start = [partition];
    let end = [partition.wrapping_add(1)];
    let upper = if partition == u8::MAX { Bound::Unbounded } else { Bound::Excluded(&end[..]) };
    let range = (Bound::Included(&start[..]), upper);
    for removed in tree.extract_from_if::<&[u8], _>(range, |_, _| true)? {
        removed?;
    }
    Ok(())
}

/// An item ready to be placed: its path, key and value hash.
pub type Item = ([u8; PATH_LEN], Vec<u8>, Hash);

/// Builds the tree of `items` (sorted by path, paths distinct) from the bottom up, handing
/// each node and its path to `write`; returns the root hash. Used to fill a tree that does
/// not exist yet (an upgraded database) and, writing nothing, as the reference in tests.
pub fn build(
    items: &[Item],
    depth: usize,
    write: &mut impl FnMut(&[u8], &TreeNode) -> Result<(), TreeError>,
) -> Result<Hash, TreeError> {
    let (first, rest) = match items.split_first() {
        None => return Ok(EMPTY_HASH),
        Some(split) => split,
    };
    let here = &first.0[..depth];
    if rest.is_empty() {
        let leaf = TreeNode::Leaf { key: first.1.clone(), value_hash: first.2 };
        write(here, &leaf)?;
        return Ok(leaf.hash());
    }
    let mut children = Vec::new();
    let mut start = 0;
    while start < items.len() {
        let nibble = items[start].0[depth];
        let len = items[start..].iter().take_while(|i| i.0[depth] == nibble).count();
        children.push((nibble, build(&items[start..start + len], depth + 1, write)?));
        start += len;
    }
    let node = TreeNode::Inner { children };
    write(here, &node)?;
    Ok(node.hash())
}

/// The root hash a tree holding exactly `items` `(entry key, value hash)` has.
pub fn root_of(items: impl IntoIterator<Item = (Vec<u8>, Hash)>) -> Hash {
    let mut items: Vec<Item> = items.into_iter().map(|(k, h)| (item_path(&k), k, h)).collect();
    items.sort();
    build(&items, 0, &mut |_, _| Ok(())).expect("writing nothing cannot fail")
}

/// Builds `partition`'s tree from its entries `(entry key, encoded entry)`.
pub fn build_partition(
    tree: &mut Table<'_, &'static [u8], &'static [u8]>,
    partition: u8,
    entries: impl IntoIterator<Item = (Vec<u8>, Hash)>,
) -> Result<Hash, TreeError> {
    let mut items: Vec<Item> = entries.into_iter().map(|(k, h)| (item_path(&k), k, h)).collect();
    items.sort();
    build(&items, 0, &mut |path, node| write_node(tree, partition, path, node))
}
