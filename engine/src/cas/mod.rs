//! Single-key consensus for the writes of a key (CASPaxos): the acceptor side and the
//! messages. The proposer lives with the object model (`objects::conditional`,
//! `objects::conditional_rounds`).
//!
//! Why consensus at all: the object table is a CRDT with last-writer-wins order, so two
//! writers that each "checked, then wrote" can both succeed — an `If-None-Match: *` PUT
//! would silently overwrite. A conditional write must instead be decided once, by a
//! quorum that every other write of the key also has to ask: in `consistent` mode every
//! write of a key is decided here, unconditional ones included.
//!
//! Each replica of a key's partition is an acceptor for that key. Its state (`promised`,
//! `accepted`) lives in a local, *not replicated* redb table of the node's metadata
//! database and is committed durably before every answer. Accepted values are never merged
//! into the object table by the acceptor: a value accepted by one acceptor only may lose
//! to a later chosen one, and anti-entropy would otherwise spread it. Only a proposer that
//! knows a value is chosen writes it to the object table.
//!
//! Acceptor rules (see `acceptor`): promise a ballot above every ballot promised so far;
//! accept only the ballot promised *last*, and only one value per ballot. The second rule is
//! stricter than classic Paxos (which accepts any ballot ≥ the promise): an acceptor that
//! lost its disk forgets its promises, and with the classic rule it could accept an older
//! proposal it had already promised to ignore. Under the strict rule it accepts only
//! ballots it promised since it came back. Refusing more never costs safety; it costs a
//! retry when a promise and its accept reach a node out of order.
//!
//! Protocol and guarantees: docs/data-model.md, "Writes of a key: consensus".

pub mod acceptor;
#[cfg(test)]
mod ceiling_tests;

use serde::{Deserialize, Serialize};

use crate::layout::NodeId;

pub use acceptor::{Acceptor, AcceptorOp, AcceptorState, Commit};

/// A proposal number, totally ordered: counter first, then the proposer's node, then a
/// random nonce, so two proposals never share a ballot even if a restarted node reuses a
/// counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    pub counter: u64,
    pub node: NodeId,
    pub nonce: u64,
}

impl Ballot {
    /// The node id of an acceptor's promise ceiling (`acceptor`, "The promise ceiling"); no
    /// proposer's ballot carries it together with the largest nonce.
    pub const CEILING_NODE: NodeId = NodeId(u64::MAX);

    /// Whether this is an acceptor's promise ceiling rather than a proposer's ballot: a
    /// refusal at a ceiling comes from a restarted acceptor, not from a competing proposer.
    pub fn is_ceiling(&self) -> bool {
        self.node == Self::CEILING_NODE && self.nonce == u64::MAX
    }
}

/// A value accepted under a ballot (opaque to the acceptor: an encoded object version).
pub type Accepted = (Ballot, Vec<u8>);

/// `Option<Accepted>` with its bytes as one byte string: bincode writes a byte string as
/// its length and its bytes, exactly as it writes a `Vec<u8>` element by element, so the
/// encoding (on the wire and in `cas_acceptor` rows) is the derived one
/// (`cas_messages_keep_the_derived_encoding`), and decoding copies the value once instead
/// of calling the visitor per byte — an inline body is up to 4 KiB of them.
pub(crate) mod accepted_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    use super::{Accepted, Ballot};

    pub fn serialize<S: Serializer>(accepted: &Option<Accepted>, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(
            &accepted.as_ref().map(|(ballot, value)| (ballot, Bytes::new(value))),
            s,
        )
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Accepted>, D::Error> {
        let accepted = Option::<(Ballot, ByteBuf)>::deserialize(d)?;
        Ok(accepted.map(|(ballot, value)| (ballot, value.into_vec())))
    }
}

/// One key of a `Request::CasCatchUp`: the ballot of the caller's fence, and the caller's
/// object table entry for the key (encoded; `None` if it has none), where the proposal of
/// that ballot is settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatchUp {
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    pub ballot: Ballot,
    #[serde(with = "serde_bytes")]
    pub entry: Option<Vec<u8>>,
}

/// A key of a `Request::CasPeek` (a byte string on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeekKey(#[serde(with = "serde_bytes")] pub Vec<u8>);

/// What an acceptor holds for a key, without its value: enough for another acceptor to
/// tell whether deleting its own row could change what a prepare quorum decides
/// (`objects::acceptor_rows::collect`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowSummary {
    /// The promise it answers from (the floor for a key without a row).
    pub promised: Option<Ballot>,
    /// The ballot of its accepted value, and whether that value is a fence (decides
    /// nothing).
    pub accepted: Option<(Ballot, bool)>,
}

/// Acceptor requests; `key` is the object table's entry key (its partition picks the
/// acceptors: the key's replicas). Byte fields travel as byte strings (`accepted_bytes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CasRequest {
    /// Phase 1: promise to ignore ballots below `ballot`.
    Prepare {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        ballot: Ballot,
    },
    /// Phase 2: accept `value` under `ballot`.
    Accept {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        ballot: Ballot,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// `Prepare` for a key whose every replica set, as the proposer knows the layout, is
    /// this acceptor alone: committed without an fsync (`acceptor::Commit::Volatile`).
    /// Added last: earlier variants keep their encoding.
    PrepareSolo {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        ballot: Ballot,
    },
    /// `Accept` for such a key, likewise.
    AcceptSolo {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        ballot: Ballot,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
}

impl CasRequest {
    /// The key, the acceptor step, and how it is committed.
    pub fn into_parts(self) -> (Vec<u8>, AcceptorOp, Commit) {
        match self {
            CasRequest::Prepare { key, ballot } => {
                (key, AcceptorOp::Prepare(ballot), Commit::Durable)
            }
            CasRequest::Accept { key, ballot, value } => {
                (key, AcceptorOp::Accept(ballot, value), Commit::Durable)
            }
            CasRequest::PrepareSolo { key, ballot } => {
                (key, AcceptorOp::Prepare(ballot), Commit::Volatile)
            }
            CasRequest::AcceptSolo { key, ballot, value } => {
                (key, AcceptorOp::Accept(ballot, value), Commit::Volatile)
            }
        }
    }

    pub fn key(&self) -> &[u8] {
        match self {
            CasRequest::Prepare { key, .. }
            | CasRequest::Accept { key, .. }
            | CasRequest::PrepareSolo { key, .. }
            | CasRequest::AcceptSolo { key, .. } => key,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CasReply {
    /// Promised: the acceptor's accepted value, if any, and its local object-table entry
    /// for the key (encoded), so that a prepare quorum also reads the key.
    Promise {
        #[serde(with = "accepted_bytes")]
        accepted: Option<Accepted>,
        #[serde(with = "serde_bytes")]
        entry: Option<Vec<u8>>,
    },
    Accepted,
    /// Refused: the acceptor's last promise is `promised` (`None`: it promised nothing in
    /// its memory, so it accepts nothing before a prepare).
    Rejected {
        promised: Option<Ballot>,
    },
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::*;
    use crate::codec;

    /// The derived encodings of before the byte strings: a node or a `cas_acceptor` row
    /// written by a build before them must read the same.
    #[derive(Serialize)]
    enum DerivedRequest {
        Prepare { key: Vec<u8>, ballot: Ballot },
        Accept { key: Vec<u8>, ballot: Ballot, value: Vec<u8> },
    }

    #[derive(Serialize)]
    enum DerivedReply {
        Promise { accepted: Option<Accepted>, entry: Option<Vec<u8>> },
    }

    #[derive(Serialize)]
    struct DerivedState {
        promised: Option<Ballot>,
        accepted: Option<Accepted>,
    }

    #[test]
    fn cas_messages_keep_the_derived_encoding() {
        let ballot = Ballot { counter: 1 << 40, node: NodeId(7), nonce: u64::MAX };
        let (key, value): (Vec<u8>, Vec<u8>) =
            (vec![1, 0, 255], (0..=255u8).cycle().take(4_500).collect());
        let prepare = CasRequest::Prepare { key: key.clone(), ballot };
        let derived = DerivedRequest::Prepare { key: key.clone(), ballot };
        assert_eq!(codec::encode(&prepare), codec::encode(&derived));
        let accept = CasRequest::Accept { key: key.clone(), ballot, value: value.clone() };
        let derived = DerivedRequest::Accept { key, ballot, value: value.clone() };
        assert_eq!(codec::encode(&accept), codec::encode(&derived));
        for (accepted, entry) in
            [(Some((ballot, value.clone())), Some(value.clone())), (None, None)]
        {
            let promise = CasReply::Promise { accepted: accepted.clone(), entry: entry.clone() };
            let bytes = codec::encode(&promise);
            assert_eq!(
                bytes,
                codec::encode(&DerivedReply::Promise { accepted: accepted.clone(), entry })
            );
            assert_eq!(codec::decode::<CasReply>("reply", &bytes).unwrap(), promise);
            let state =
                acceptor::AcceptorState { promised: Some(ballot), accepted: accepted.clone() };
            let bytes = codec::encode(&state);
            assert_eq!(bytes, codec::encode(&DerivedState { promised: Some(ballot), accepted }));
            assert_eq!(codec::decode::<acceptor::AcceptorState>("state", &bytes).unwrap(), state);
        }
    }
}
