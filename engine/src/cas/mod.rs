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

use serde::{Deserialize, Serialize};

use crate::layout::NodeId;

pub use acceptor::{Acceptor, AcceptorOp};

/// A proposal number, totally ordered: counter first, then the proposer's node, then a
/// random nonce, so two proposals never share a ballot even if a restarted node reuses a
/// counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    pub counter: u64,
    pub node: NodeId,
    pub nonce: u64,
}

/// A value accepted under a ballot (opaque to the acceptor: an encoded object version).
pub type Accepted = (Ballot, Vec<u8>);

/// Acceptor requests; `key` is the object table's entry key (its partition picks the
/// acceptors: the key's replicas).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CasRequest {
    /// Phase 1: promise to ignore ballots below `ballot`.
    Prepare { key: Vec<u8>, ballot: Ballot },
    /// Phase 2: accept `value` under `ballot`.
    Accept { key: Vec<u8>, ballot: Ballot, value: Vec<u8> },
}

impl CasRequest {
    pub fn key(&self) -> &[u8] {
        match self {
            CasRequest::Prepare { key, .. } | CasRequest::Accept { key, .. } => key,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CasReply {
    /// Promised: the acceptor's accepted value, if any, and its local object-table entry
    /// for the key (encoded), so that a prepare quorum also reads the key.
    Promise {
        accepted: Option<Accepted>,
        entry: Option<Vec<u8>>,
    },
    Accepted,
    /// Refused: the acceptor's last promise is `promised` (`None`: it promised nothing in
    /// its memory, so it accepts nothing before a prepare).
    Rejected {
        promised: Option<Ballot>,
    },
}
