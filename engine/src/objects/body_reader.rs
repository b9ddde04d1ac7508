//! Reading a body back as a stream of chunks, a bounded few blocks at a time.
//!
//! A reader is made from the object's stored body and fetches nothing until it is read;
//! `select` first narrows it to a byte range, and then only the blocks overlapping the
//! range are fetched. While one block is handed out, the next `READ_AHEAD_BLOCKS` are
//! being fetched, so a GET keeps the replicas busy without holding more than
//! `GET_BLOCKS_HELD_MAX` blocks, whatever the object's size. A block is handed out in
//! slices of at most `CHUNK_BYTES_MAX` (zero-copy) so that the HTTP layer's write buffer
//! is never asked to take a whole block at once.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use tokio::task::JoinHandle;

use super::ObjectError;
use super::body::{Body, BodyBlock, BodyMemory, Held};
use crate::block::{BlockError, BlockHash};
use crate::node::Node;

/// Blocks fetched ahead of the one being handed out.
pub const READ_AHEAD_BLOCKS: usize = 2;
/// The most blocks' worth of body bytes one GET holds: the read-ahead and the one being
/// handed out.
pub const GET_BLOCKS_HELD_MAX: usize = READ_AHEAD_BLOCKS + 1;
/// The largest chunk handed out at once.
pub const CHUNK_BYTES_MAX: usize = 256 * 1024;

/// The part of one block a read needs: bytes `start..end` of it.
#[derive(Debug, Clone)]
struct Piece {
    hash: BlockHash,
    size_bytes: u32,
    start: usize,
    end: usize,
}

type Fetch = JoinHandle<Result<(Vec<u8>, Held), BlockError>>;

/// A body being read (see the module documentation).
pub struct BodyReader {
    node: Arc<Node>,
    memory: Arc<BodyMemory>,
    inline: Option<Bytes>,
    blocks: Vec<BodyBlock>,
    /// Pieces not yet being fetched, in order.
    todo: VecDeque<Piece>,
    /// Fetches started, in body order, with the piece each is for.
    fetching: VecDeque<(Piece, Fetch)>,
    /// The block being handed out: what is left of it, and its count.
    current: Option<(Bytes, Held)>,
    started: bool,
}

impl BodyReader {
    /// A reader of `body`, whose blocks (if it is not inline) are `blocks`, as read from
    /// the body or from its list in the `version` table.
    pub(super) fn new(
        node: Arc<Node>,
        memory: Arc<BodyMemory>,
        body: &Body,
        blocks: Vec<BodyBlock>,
    ) -> BodyReader {
        let inline = match body {
            Body::Inline(data) => Some(Bytes::from(data.clone())),
            Body::Blocks(_) | Body::Listed(_) => None,
        };
        let mut reader = BodyReader {
            node,
            memory,
            inline,
            blocks,
            todo: VecDeque::new(),
            fetching: VecDeque::new(),
            current: None,
            started: false,
        };
        reader.select_all();
        reader
    }

    fn select_all(&mut self) {
        self.todo = self
            .blocks
            .iter()
            .map(|b| Piece {
                hash: b.hash,
                size_bytes: b.size_bytes,
                start: 0,
                end: b.size_bytes as usize,
            })
            .collect();
    }

    /// Narrows the read to bytes `start..end` of the body (`end` exclusive, clamped to the
    /// body). Panics if called after the first read: that is a caller's bug.
    pub fn select(&mut self, start: u64, end: u64) {
        assert!(!self.started, "select before reading");
        if let Some(data) = &self.inline {
            let end = (end as usize).min(data.len());
            let start = (start as usize).min(end);
            self.inline = Some(data.slice(start..end));
            return;
        }
        self.todo.clear();
        let mut offset = 0u64;
        for b in &self.blocks {
            let (block_start, block_end) = (offset, offset + u64::from(b.size_bytes));
            offset = block_end;
            if block_end <= start || block_start >= end {
                continue;
            }
            let from = start.saturating_sub(block_start) as usize;
            let to = (end.min(block_end) - block_start) as usize;
            self.todo.push_back(Piece {
                hash: b.hash,
                size_bytes: b.size_bytes,
                start: from,
                end: to,
            });
        }
    }

    /// Starts fetches until `READ_AHEAD_BLOCKS` are running.
    fn top_up(&mut self) {
        while self.fetching.len() < READ_AHEAD_BLOCKS {
            let Some(piece) = self.todo.pop_front() else { return };
            // Counted from the start: the block arrives whole.
            let held = self.memory.hold(u64::from(piece.size_bytes));
            let (node, hash) = (self.node.clone(), piece.hash);
            let fetch = tokio::spawn(async move {
                let data = node.blocks.get_block(&hash).await?;
                Ok((data, held))
            });
            self.fetching.push_back((piece, fetch));
        }
    }

    /// The next chunk of the selected bytes, `None` after the last.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ObjectError> {
        self.started = true;
        if let Some(data) = self.inline.take() {
            return Ok(Some(data).filter(|d| !d.is_empty()));
        }
        loop {
            if let Some((rest, _)) = &mut self.current {
                if !rest.is_empty() {
                    let n = rest.len().min(CHUNK_BYTES_MAX);
                    return Ok(Some(rest.split_to(n)));
                }
                self.current = None;
            }
            self.top_up();
            let Some((piece, fetch)) = self.fetching.pop_front() else { return Ok(None) };
            let (data, held) = match fetch.await {
                Ok(fetched) => fetched?,
                Err(e) => {
                    return Err(ObjectError::Internal { reason: format!("block read task: {e}") });
                }
            };
            // The block layer verified the hash; a size that differs from the entry means
            // the entry and the block disagree, which a correct writer never produces.
            assert_eq!(
                data.len(),
                piece.size_bytes as usize,
                "block size differs from its reference"
            );
            self.current = Some((Bytes::from(data).slice(piece.start..piece.end), held));
            self.top_up();
        }
    }

    /// Reads everything selected into one buffer (tests and small bodies).
    pub async fn read_all(mut self) -> Result<Vec<u8>, ObjectError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.next_chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

impl Drop for BodyReader {
    /// A reader dropped early (the client went away) stops its read-ahead.
    fn drop(&mut self) {
        for (_, fetch) in &self.fetching {
            fetch.abort();
        }
    }
}
