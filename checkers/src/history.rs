//! Client operation histories, as recorded by workloads and read by checkers. The same
//! format serves the simulation (simulated time) and Jepsen runs (real time).

use serde::{Deserialize, Serialize};

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpKind {
    /// Write a unique value.
    Put {
        value: Vec<u8>,
    },
    /// Delete (write "absent").
    Delete,
    Get,
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Acknowledged; for a read, the value it returned (`None`: absent).
    Ok { read: Option<Vec<u8>> },
    /// Definitely had no effect (only reads are ever recorded as failed).
    Fail,
    /// Unknown: it may or may not have taken effect, at any time after its invocation.
    Info,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    pub client: String,
    pub key: String,
    pub kind: OpKind,
    pub invoke_us: u64,
    /// When the outcome was known (for `Info`, when the client gave up).
    pub complete_us: u64,
    pub outcome: Outcome,
}

impl Op {
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok { .. })
    }

    /// The value a write leaves in the register (`None` for a delete); `None` for reads.
    pub fn written(&self) -> Option<Option<&[u8]>> {
        match &self.kind {
            OpKind::Put { value } => Some(Some(value)),
            OpKind::Delete => Some(None),
            OpKind::Get => None,
        }
    }
}

pub fn show(value: Option<&[u8]>) -> String {
    match value {
        None => "<absent>".into(),
        Some(v) => String::from_utf8_lossy(v).into_owned(),
    }
}
