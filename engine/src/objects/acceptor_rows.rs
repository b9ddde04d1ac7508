//! Shrinks acceptor rows once their value is in this node's object table.
//!
//! Every write of a key leaves its value (the version, with an inline body of up to 4 KiB)
//! in the `cas_acceptor` row of each acceptor that accepted it, where it stayed for good:
//! a second copy of every small object's body and metadata, kept even after the object was
//! deleted. An acceptor row needs its value only until the value is in the object table,
//! and this node can tell that for its own replica: once its local entry shows the version
//! (in that state or a later one), or a newer current version that supersedes it, the row's
//! value is replaced by a fence (`None`, "decides nothing") under the same ballot.
//!
//! Why that is safe: a prepare that reaches this acceptor gets its promise *and* its local
//! object entry (`Node::serve_cas`), and the view it builds holds the version either way.
//! Finishing the fence instead of the value then writes nothing — exactly what finishing
//! the value would have done, since `settle` writes nothing for a view that already shows
//! it (`locally_settled` is the same test, on one replica's entry). A prepare that does
//! not reach this acceptor does not see its row at all. What must not happen is a fence in
//! place of a value that is chosen but not yet in this replica's table: a round whose
//! prepare quorum holds only fences and no table entry with the value would decide a write
//! stamped as if the value never existed, while its proposer still answers 200
//! (`acceptor_rows_tests` shows it with a compactor that skips the check).

use super::conditional_rounds::locally_settled;
use super::version::{decode_cas_value, encode_cas_value};
use crate::node::Node;

/// Rows looked at per batch (one read and one write transaction each).
const ROWS_PER_BATCH: usize = 1_000;

/// What one compaction pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactionReport {
    /// Rows whose value was replaced by a fence.
    pub compacted: usize,
    /// Rows whose value is not in this node's object table yet (looked at again next pass).
    pub waiting: usize,
}

/// One pass over the rows accepted since the last pass. `unsafe_skip_check` is the test
/// weakening: fence every value without looking at the object table.
pub fn compact(node: &Node, unsafe_skip_check: bool) -> Result<CompactionReport, String> {
    let fence = encode_cas_value(&None);
    let mut report = CompactionReport::default();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let due = node.cas.compaction_due(after.as_deref(), ROWS_PER_BATCH);
        let due = due.map_err(|e| e.to_string())?;
        let batch_len = due.len();
        let mut items = Vec::with_capacity(batch_len);
        for (key, state) in due {
            after = Some(key.clone());
            let settled = match &state.accepted {
                None => true,
                Some(_) if unsafe_skip_check => true,
                Some((_, bytes)) => match decode_cas_value(bytes) {
                    Ok(None) => true,
                    Ok(Some((id, version))) => {
                        let entry = node.objects.local.get(&key).map_err(|e| e.to_string())?;
                        entry.is_some_and(|entry| locally_settled(&entry, id, &version))
                    }
                    // Not a value this build wrote: leave it as it is.
                    Err(_) => false,
                },
            };
            if settled {
                items.push((key, state.accepted));
            } else {
                report.waiting += 1;
            }
        }
        report.compacted += node.cas.compact(items, &fence).map_err(|e| e.to_string())?;
        if batch_len < ROWS_PER_BATCH {
            return Ok(report);
        }
    }
}
