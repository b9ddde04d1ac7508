//! Turns for the writes of one key that this node coordinates: they run the key's consensus
//! rounds one after another, in arrival order, instead of against each other.
//!
//! Why: two proposers of one key that prepare at the same time make each other's accepts
//! fail (each prepare outbids the other's ballot), and each loser backs off 20–200 ms
//! before its next round (`conditional`). Sixteen clients writing one key through one node
//! spent most of their time in that duel (p99 above a second). In turns, each write takes
//! one round; writes coordinated by *other* nodes still meet in the rounds, which order
//! them safely — turns are only a local courtesy, never needed for correctness.
//!
//! A turn is a FIFO `tokio::sync::Mutex` per key, created on demand and dropped with the
//! last writer that holds or awaits it, so idle keys cost nothing.
//!
//! A writer waits for its turn `TURN_WAIT_MAX` at most, then goes ahead without one: when
//! the key's replicas are unreachable, each write in line would otherwise spend its own
//! timeouts after the previous one's, and the last of a long line would wait for all of
//! them instead of failing (or succeeding) in parallel with the rest.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

/// The longest a writer waits for the writers of its key ahead of it.
const TURN_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Default)]
pub(super) struct KeyTurns {
    keys: Mutex<BTreeMap<Vec<u8>, Arc<tokio::sync::Mutex<()>>>>,
}

/// This write's turn at its key: the next writer of the key waits until it is dropped.
pub(super) struct Turn<'a> {
    guard: Option<OwnedMutexGuard<()>>,
    key: Vec<u8>,
    turns: &'a KeyTurns,
}

impl KeyTurns {
    /// Waits for the writes of `key` that arrived before this one (`TURN_WAIT_MAX` at most).
    pub(super) async fn take(&self, key: &[u8]) -> Turn<'_> {
        let lock = {
            let mut keys = self.keys.lock().expect("key turns lock");
            keys.entry(key.to_vec()).or_default().clone()
        };
        // Timed out: no turn, and this writer's reference goes now (`Drop` sees the rest).
        let guard = tokio::time::timeout(TURN_WAIT_MAX, lock.lock_owned()).await.ok();
        Turn { guard, key: key.to_vec(), turns: self }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.lock().unwrap().len()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        // Release first: the map's reference is then the only one left unless another
        // writer holds or awaits this key.
        drop(self.guard.take());
        let mut keys = self.turns.keys.lock().expect("key turns lock");
        if keys.get(&self.key).is_some_and(|lock| Arc::strong_count(lock) == 1) {
            keys.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::KeyTurns;

    /// Writers of one key hold their turns one at a time, in arrival order; another key is
    /// not held up; the map forgets a key once its last writer is done.
    #[tokio::test(start_paused = true)]
    async fn writers_of_one_key_take_turns_in_arrival_order() {
        let turns = Arc::new(KeyTurns::default());
        let (inside, order) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(std::sync::Mutex::new(vec![])));
        let mut tasks = Vec::new();
        for i in 0..4 {
            let (turns, inside, order) = (turns.clone(), inside.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = turns.take(b"k").await;
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "one writer at a time");
                order.lock().unwrap().push(i);
                tokio::time::sleep(Duration::from_millis(10)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
            // Arrivals 1 ms apart: the order they queue in is known.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Another key is served while "k" is busy.
        let other = tokio::time::timeout(Duration::from_millis(1), turns.take(b"other")).await;
        assert!(other.is_ok(), "a different key waits for nobody");
        drop(other);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(turns.len(), 0, "no key is remembered once its writers are done");
    }

    /// A writer stuck with its turn holds the next one up for `TURN_WAIT_MAX`, no longer.
    #[tokio::test(start_paused = true)]
    async fn a_writer_waits_for_a_stuck_turn_a_bounded_time() {
        let turns = KeyTurns::default();
        let stuck = turns.take(b"k").await;
        let tick = Duration::from_millis(1);
        let early = tokio::time::timeout(super::TURN_WAIT_MAX - tick, turns.take(b"k")).await;
        assert!(early.is_err(), "waits for the turn ahead");
        let next = tokio::time::timeout(super::TURN_WAIT_MAX + tick, turns.take(b"k")).await;
        let next = next.expect("goes ahead once TURN_WAIT_MAX has passed");
        assert!(next.guard.is_none(), "went ahead without a turn");
        drop(next);
        drop(stuck);
        assert_eq!(turns.len(), 0);
    }
}
