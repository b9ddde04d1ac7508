//! The seam: everything the engine needs from the world, behind small traits.
//!
//! Hangar's core runs unchanged in two worlds: production (tokio TCP, real files, the OS
//! clock, OS-seeded randomness) and the deterministic simulation (turmoil hosts, a simulated
//! file system with crash semantics, a skewable simulated clock, randomness seeded from the
//! run's seed). Both worlds are tokio runtimes, so the engine may use tokio tasks, sync
//! primitives and `tokio::time`; anything else that touches the world goes through this
//! module. `engine/clippy.toml` bans the direct calls (OS clock, threads, `std::fs`, ...)
//! everywhere in the engine.

mod disk;
mod net;

pub use disk::{
    DEFAULT_METADATA_CACHE_BYTES, Disk, DynBackend, open_database, open_database_with_cache,
};
pub use net::{BoxStream, ByteStream, Listener, Net};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// A boxed, sendable future: the seam's traits are object-safe so the engine is not generic
/// over its world.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Wall-clock time, used only for timestamps (LWW ordering, object dates).
///
/// Durations and timeouts use `tokio::time`, which is simulated under turmoil; this clock
/// exists because wall time can be skewed per node, and skew is a fault we simulate.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch, as this node believes it to be.
    fn now_ms(&self) -> u64;
}

/// Observes engine events for the simulation's canonical trace; production discards them.
pub trait TraceSink: Send + Sync {
    /// Records that `kind` happened now on this node with a payload summarised by the sink.
    fn event(&self, kind: &str, payload: &[u8]);
}

/// A trace sink that drops everything (production).
pub struct NoTrace;

impl TraceSink for NoTrace {
    fn event(&self, _kind: &str, _payload: &[u8]) {}
}

/// Monotonic time for deadlines and backoff: tokio's clock, which the simulation pauses and
/// advances. (The wall clock, which may be skewed, is `Clock`.)
pub fn monotonic_now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

/// The engine's randomness: ChaCha20, seeded through the seam so a run can be replayed.
pub type NodeRng = ChaCha20Rng;

/// One node's view of the world.
#[derive(Clone)]
pub struct Seam {
    pub clock: Arc<dyn Clock>,
    pub net: Arc<dyn Net>,
    pub disk: Arc<dyn Disk>,
    pub trace: Arc<dyn TraceSink>,
    /// Seed of every random stream this node derives (ids, jitter, handshake keys).
    pub rng_seed: u64,
}

impl Seam {
    /// A fresh random stream for one purpose; distinct purposes get independent streams so
    /// that adding a use of randomness in one place does not perturb the others.
    pub fn rng(&self, purpose: &str) -> NodeRng {
        let mut hasher = blake3::Hasher::new_derive_key("hangar seam rng v1");
        hasher.update(&self.rng_seed.to_le_bytes());
        hasher.update(purpose.as_bytes());
        NodeRng::from_seed(*hasher.finalize().as_bytes())
    }
}
