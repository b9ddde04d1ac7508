//! Typed RPC messages. Every message is encoded with `crate::codec` inside an `Envelope`.
//!
//! Table entries travel as encoded bytes: the RPC layer routes them by table name and the
//! table layer, which knows each schema, decodes and merges them.

use serde::{Deserialize, Serialize};

use crate::layout::NodeId;
use crate::layout::history::LayoutHistory;

/// Bumped on any incompatible change to the messages below.
pub const PROTOCOL_VERSION: u32 = 1;

/// A `(key, encoded entry)` pair of a table.
pub type RawEntry = (Vec<u8>, Vec<u8>);

/// `Vec<RawEntry>` as pairs of byte strings. bincode writes a byte string as its length
/// and its bytes, exactly as it writes a `Vec<u8>` element by element, so the encoding is
/// the derived one (`raw_entries_keep_the_derived_encoding`); decoding copies each field
/// once instead of calling the visitor per byte (6% of a simulated small-object run).
mod raw_entries {
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    #[allow(clippy::ptr_arg)] // `with` passes the field as it is declared
    pub fn serialize<S: Serializer>(
        entries: &Vec<super::RawEntry>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(entries.len()))?;
        for (key, value) in entries {
            seq.serialize_element(&(Bytes::new(key), Bytes::new(value)))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<super::RawEntry>, D::Error> {
        let pairs = Vec::<(ByteBuf, ByteBuf)>::deserialize(d)?;
        Ok(pairs.into_iter().map(|(k, v)| (k.into_vec(), v.into_vec())).collect())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Envelope {
    /// First message on every connection: who is calling, and with which protocol.
    Hello {
        protocol: u32,
        from: NodeId,
    },
    Request {
        id: u64,
        body: Request,
    },
    Response {
        id: u64,
        body: Result<Response, RemoteError>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    Ping,
    Table(TableRequest),
    Kv(KvRequest),
    Block(BlockRequest),
    Layout(LayoutRequest),
    /// Conditional-write consensus (`crate::cas`). Added last: earlier variants keep
    /// their encoding.
    Cas(crate::cas::CasRequest),
    /// What this node's acceptor holds for each of these keys, without the values
    /// (`objects::acceptor_rows::collect` asks before deleting a row). Added last.
    CasPeek(Vec<crate::cas::PeekKey>),
    /// Catch this node's acceptor up with the caller's fences (`Acceptor::catch_up`),
    /// answered `Done`. Added last.
    CasCatchUp(Vec<crate::cas::CatchUp>),
}

/// Layout gossip (see `crate::layout::manager`). Histories are a few KiB per stored
/// version, so they travel whole; the digest keeps the common case to one tiny round trip.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LayoutRequest {
    /// "My history hashes to `digest`": answered `Layout(None)` if yours does too, else
    /// `Layout(Some(yours))`.
    Gossip { digest: [u8; 32] },
    /// Merge this history into yours; answered `Done`.
    Push { history: Box<LayoutHistory> },
}

/// Node-to-node table replication.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TableRequest {
    /// Merge these entries into the local replica (the write path and read repair).
    Update {
        table: String,
        #[serde(with = "raw_entries")]
        entries: Vec<RawEntry>,
    },
    /// The local replica's entry for `key`, if any.
    Read {
        table: String,
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
    },
    /// For each listed partition, the root hash of its Merkle tree (`table::merkle`) —
    /// unless `root` (the caller's `root_digest` of the same partitions) matches ours, in
    /// which case the answer is just `InSync`: the common case costs one tiny round trip.
    Digests { table: String, partitions: Vec<u8>, root: Option<[u8; 32]> },
    /// Every entry the local replica holds in `partition` (anti-entropy pull).
    PartitionEntries { table: String, partition: u8 },
    /// Up to `limit` entries with keys starting with `prefix`, after `after` (listing).
    Range { table: String, prefix: Vec<u8>, after: Vec<u8>, limit: u32 },
    /// Tombstone collection's last step: delete each listed key whose stored entry still
    /// hashes (blake3 of its encoded bytes) to the given hash; anything else is left alone.
    /// Answered with `Done`. (Added last: earlier variants keep their encoding.)
    DeleteIfUnchanged { table: String, items: Vec<(Vec<u8>, [u8; 32])> },
    /// Anti-entropy descent: the encoded Merkle tree nodes standing at `paths` (nibble
    /// strings) of `partition`'s tree (`table::merkle`), answered `TreeNodes` in the order
    /// asked, empty bytes where nothing stands. (Added last, like the next one.)
    TreeNodes { table: String, partition: u8, paths: Vec<Vec<u8>> },
    /// Anti-entropy pull: the local replica's entries for those of `keys` it holds,
    /// answered `Entries`. Not a read: a syncing replica serves it.
    FetchEntries { table: String, keys: Vec<Vec<u8>> },
}

impl TableRequest {
    /// The table the request is for.
    pub fn table(&self) -> &str {
        match self {
            TableRequest::Update { table, .. }
            | TableRequest::Read { table, .. }
            | TableRequest::Digests { table, .. }
            | TableRequest::PartitionEntries { table, .. }
            | TableRequest::Range { table, .. }
            | TableRequest::DeleteIfUnchanged { table, .. }
            | TableRequest::TreeNodes { table, .. }
            | TableRequest::FetchEntries { table, .. } => table,
        }
    }
}

/// Node-to-node block transfer (see `crate::block`). Block bodies are up to a few MiB:
/// `serde_bytes` makes bincode write them as one length and one copy instead of one
/// serializer call per byte.
#[derive(Clone, Serialize, Deserialize)]
pub enum BlockRequest {
    /// Store this block durably (idempotent); answered with `Response::Done`.
    Put {
        hash: [u8; 32],
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// The local copy of a block, verified; answered with `Response::Block`.
    Get { hash: [u8; 32] },
}

/// Names the block and the body's length: a derived `Debug` would print every byte.
impl std::fmt::Debug for BlockRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex = |h: &[u8; 32]| h.iter().map(|b| format!("{b:02x}")).collect::<String>();
        match self {
            BlockRequest::Put { hash, data } => {
                write!(f, "Put {{ hash: {}, data: {} bytes }}", hex(hash), data.len())
            }
            BlockRequest::Get { hash } => write!(f, "Get {{ hash: {} }}", hex(hash)),
        }
    }
}

/// One hash over a list of partition digests.
pub fn root_digest(digests: &[[u8; 32]]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    for d in digests {
        hasher.update(d);
    }
    *hasher.finalize().as_bytes()
}

/// Client operations on the replicated register table, served by any node acting as
/// coordinator. The simulation's workload drives the cluster through these.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum KvRequest {
    /// Quorum write; `None` deletes.
    Put { key: String, value: Option<Vec<u8>> },
    /// Quorum read.
    Get { key: String },
    /// This node's own replica only, without quorum (used by checkers after quiescence).
    GetLocal { key: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Pong,
    Done,
    Entry(#[serde(with = "serde_bytes")] Option<Vec<u8>>),
    Digests(Vec<[u8; 32]>),
    InSync,
    Entries(#[serde(with = "raw_entries")] Vec<RawEntry>),
    Value(Option<Vec<u8>>),
    /// A block body (`None`: this node has no copy of it).
    Block(#[serde(with = "serde_bytes")] Option<Vec<u8>>),
    /// A layout history (`None`: the same as the caller's).
    Layout(Option<Box<LayoutHistory>>),
    /// An acceptor's answer (`crate::cas`). Added last.
    Cas(crate::cas::CasReply),
    /// Encoded Merkle tree nodes (`TableRequest::TreeNodes`). Added last.
    TreeNodes(Vec<Vec<u8>>),
    /// One summary per key of a `CasPeek`, in its order. Added last.
    CasPeek(Vec<crate::cas::RowSummary>),
}

/// An error the remote side reports (as opposed to failing to reach it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoteError {
    UnknownTable {
        table: String,
    },
    BadEntry {
        reason: String,
    },
    Storage {
        reason: String,
    },
    /// The coordinator could not gather its quorum.
    Quorum {
        needed: usize,
        successes: usize,
        errors: Vec<String>,
    },
    NotForThisNode,
    /// This replica started blank (lost or new disk) and has not finished its first full
    /// sync: its "I have nothing" may hide an acknowledged write, so it refuses table reads
    /// and the coordinator asks another replica (docs/data-model.md, "Blank nodes").
    Syncing,
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteError::UnknownTable { table } => write!(f, "unknown table {table}"),
            RemoteError::BadEntry { reason } => write!(f, "bad entry: {reason}"),
            RemoteError::Storage { reason } => write!(f, "storage error: {reason}"),
            RemoteError::Quorum { needed, successes, errors } => write!(
                f,
                "quorum not reached: {successes} of {needed} needed ({})",
                errors.join("; ")
            ),
            RemoteError::NotForThisNode => write!(f, "request not for this node"),
            RemoteError::Syncing => write!(f, "replica syncing after a blank start"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    /// The messages as they were declared before their byte fields were marked: a node
    /// that still runs that code must read and write the same bytes.
    #[derive(Serialize)]
    enum DerivedTableRequest {
        Update { table: String, entries: Vec<RawEntry> },
        Read { table: String, key: Vec<u8> },
    }

    #[derive(Serialize)]
    enum DerivedResponse {
        Pong,
        Done,
        Entry(Option<Vec<u8>>),
        Digests(Vec<[u8; 32]>),
        InSync,
        Entries(Vec<RawEntry>),
    }

    #[test]
    fn raw_entries_keep_the_derived_encoding() {
        let entries: Vec<RawEntry> = vec![
            (b"k1".to_vec(), (0..=255u8).collect()),
            (Vec::new(), Vec::new()),
            (vec![7; 300], vec![9; 70_000]),
        ];
        let table = "object".to_string();
        let pairs = [
            (
                codec::encode(&TableRequest::Update {
                    table: table.clone(),
                    entries: entries.clone(),
                }),
                codec::encode(&DerivedTableRequest::Update {
                    table: table.clone(),
                    entries: entries.clone(),
                }),
            ),
            (
                codec::encode(&TableRequest::Read { table: table.clone(), key: vec![1, 2, 250] }),
                codec::encode(&DerivedTableRequest::Read { table, key: vec![1, 2, 250] }),
            ),
            (
                codec::encode(&Response::Entry(Some(vec![0, 128, 255]))),
                codec::encode(&DerivedResponse::Entry(Some(vec![0, 128, 255]))),
            ),
            (codec::encode(&Response::Entry(None)), codec::encode(&DerivedResponse::Entry(None))),
            (
                codec::encode(&Response::Entries(entries.clone())),
                codec::encode(&DerivedResponse::Entries(entries.clone())),
            ),
        ];
        for (marked, derived) in pairs {
            assert_eq!(marked, derived);
        }
        let _ = (DerivedResponse::Pong, DerivedResponse::Done, DerivedResponse::InSync);
        let _ = DerivedResponse::Digests(Vec::new());
        let back: Response =
            codec::decode("test", &codec::encode(&Response::Entries(entries.clone()))).unwrap();
        assert_eq!(back, Response::Entries(entries));
    }
}
