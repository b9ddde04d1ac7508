//! Listing against a model: random keys, prefixes, delimiters, start-after and page sizes,
//! through `collect` over both the in-memory backend and the real engine (one in-memory
//! node), compared with the plainest possible implementation of S3's rules.
//!
//! The alphabet is tiny on purpose (`a`, `b`, `/`, `-`, `é`): keys then share prefixes,
//! contain the delimiters several times, sit next to each other in sort order, and cross a
//! multi-byte character, which is where roll-up and pagination bugs live.

use std::collections::BTreeSet;
use std::sync::Arc;

use hangar_engine::layout::{ClusterLayout, NodeId, NodeRole};
use hangar_engine::node::{Node, NodeConfig};
use hangar_engine::objects::ObjectStore;
use hangar_engine::objects::body::VecSource;
use hangar_engine::rpc::RpcConfig;
use hangar_engine::table::Quorums;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use super::{ListQuery, Listing, collect};
use crate::backend::EngineBackend;
use crate::runtime::production_seam;
use crate::s3api::backend::{ObjectBackend, ObjectMeta};
use crate::s3api::memory::MemoryBackend;

const ALPHABET: [&str; 5] = ["a", "b", "/", "-", "é"];
const DELIMITERS: [&str; 5] = ["/", "-", "a/", "é", "//"];

/// What S3 answers, computed the obvious way: every matching key, rolled up, deduplicated,
/// after `start_after`, cut at `max_keys`.
#[derive(Debug, PartialEq, Eq)]
struct Expected {
    /// Keys and common prefixes in order; a prefix is marked by the `Prefix` variant.
    entries: Vec<Entry>,
    truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Key(String),
    Prefix(String),
}

fn model(keys: &BTreeSet<String>, q: &ListQuery) -> Expected {
    let mut all: Vec<Entry> = Vec::new();
    for key in keys.iter().filter(|k| k.starts_with(&q.prefix)) {
        let tail = &key[q.prefix.len()..];
        let entry = match q.delimiter.as_deref().and_then(|d| tail.find(d).map(|i| (d, i))) {
            Some((d, i)) => Entry::Prefix(key[..q.prefix.len() + i + d.len()].to_string()),
            None => Entry::Key(key.clone()),
        };
        let name = match &entry {
            Entry::Key(k) | Entry::Prefix(k) => k.clone(),
        };
        if name.as_str() > q.start_after.as_str() && all.last() != Some(&entry) {
            all.push(entry);
        }
    }
    let truncated = all.len() > q.max_keys;
    all.truncate(q.max_keys);
    Expected { entries: all, truncated }
}

fn entries_of(listing: &Listing) -> Vec<Entry> {
    // Keys and prefixes come in two lists; merge them back in sort order.
    let mut out: Vec<Entry> = listing.objects.iter().map(|o| Entry::Key(o.key.clone())).collect();
    out.extend(listing.common_prefixes.iter().map(|p| Entry::Prefix(p.clone())));
    out.sort_by(|a, b| {
        let name = |e: &Entry| match e {
            Entry::Key(k) | Entry::Prefix(k) => k.clone(),
        };
        name(a).cmp(&name(b))
    });
    out
}

struct Draw(ChaCha20Rng);

impl Draw {
    fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n as u64) as usize
    }
    fn word(&mut self, max_len: usize) -> String {
        let len = 1 + self.below(max_len);
        (0..len).map(|_| ALPHABET[self.below(ALPHABET.len())]).collect()
    }
    fn keys(&mut self, count: usize) -> BTreeSet<String> {
        (0..count).map(|_| self.word(7)).collect()
    }
    fn query(&mut self, keys: &BTreeSet<String>) -> ListQuery {
        let some_key = keys.iter().nth(self.below(keys.len())).cloned().unwrap_or_default();
        let prefix = match self.below(4) {
            0 => String::new(),
            // A real key's beginning, cut on a character boundary.
            1 | 2 => some_key.chars().take(self.below(4)).collect(),
            _ => self.word(2),
        };
        let delimiter = match self.below(3) {
            0 => None,
            _ => Some(DELIMITERS[self.below(DELIMITERS.len())].to_string()),
        };
        let start_after = match self.below(3) {
            0 => self.word(4),
            _ => String::new(),
        };
        let max_keys = [0, 1, 2, 3, 5, 1000][self.below(6)];
        ListQuery { prefix, delimiter, start_after, max_keys }
    }
}

/// One page against the model, then the whole listing page by page (resuming after each
/// page's last entry, as clients do) against the model without a page limit.
async fn check(backend: &dyn ObjectBackend, keys: &BTreeSet<String>, q: &ListQuery, what: &str) {
    let page = collect(backend, "bk", q).await.unwrap();
    let expected = model(keys, q);
    let got = Expected { entries: entries_of(&page), truncated: page.truncated };
    assert_eq!(got, expected, "{what}: one page of {q:?} over {keys:?}");

    let page_size = q.max_keys.clamp(1, 3);
    let mut seen = Vec::new();
    let mut after = q.start_after.clone();
    for _ in 0..=keys.len() + 1 {
        let pq = ListQuery { start_after: after.clone(), max_keys: page_size, ..q.clone() };
        let page = collect(backend, "bk", &pq).await.unwrap();
        seen.extend(entries_of(&page));
        if !page.truncated {
            let whole = ListQuery { max_keys: usize::MAX, ..q.clone() };
            assert_eq!(seen, model(keys, &whole).entries, "{what}: pages of {q:?} over {keys:?}");
            return;
        }
        after = page.last_entry.clone().expect("a truncated page has a last entry");
    }
    panic!("{what}: pagination of {q:?} does not end over {keys:?}");
}

async fn fill(backend: &dyn ObjectBackend, keys: &BTreeSet<String>) {
    backend.create_bucket("bk").await.unwrap();
    for key in keys {
        let mut body = VecSource::new(b"v".to_vec(), "e".into());
        backend.put_object("bk", key, ObjectMeta::default(), &mut body).await.unwrap();
    }
}

#[tokio::test]
async fn listing_matches_the_model_on_the_memory_backend() {
    for seed in 0..60 {
        let mut d = Draw(ChaCha20Rng::seed_from_u64(seed));
        let count = 1 + d.below(40);
        let keys = d.keys(count);
        let backend = MemoryBackend::new(Arc::new(|| 0));
        fill(&backend, &keys).await;
        for _ in 0..25 {
            let q = d.query(&keys);
            check(&backend, &keys, &q, &format!("memory, seed {seed}")).await;
        }
    }
}

/// A single real node: redb and block files in a fresh directory, RPC on loopback TCP.
async fn engine_backend(name: &str) -> EngineBackend {
    let dir = std::env::temp_dir().join(format!("hangar-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let seam = production_seam(&dir, &dir, Default::default());
    let id = NodeId(1);
    let mut layout = ClusterLayout::new(1).unwrap();
    let role = NodeRole { zone: "z1".into(), capacity: 1, tags: Vec::new() };
    layout.stage_assign(id, role).unwrap();
    layout.apply_staged(1).unwrap();
    let config = NodeConfig {
        id,
        rpc_bind_addr: "127.0.0.1:0".into(),
        public_addr: None,
        peers: Default::default(),
        layout,
        rpc_secret: "list-model-test".into(),
        quorums: Quorums { read: 1, write: 1 },
        rpc: RpcConfig::default(),
        sync_interval_ms: 60_000,
        gc: Default::default(),
        repair: Default::default(),
        metadata_cache_bytes: hangar_engine::seam::DEFAULT_METADATA_CACHE_BYTES,
    };
    let node = Node::start(seam, config).await.unwrap();
    EngineBackend::new(Arc::new(ObjectStore::new(node)))
}

#[tokio::test]
async fn listing_matches_the_model_on_the_engine() {
    for seed in 100..112 {
        let mut d = Draw(ChaCha20Rng::seed_from_u64(seed));
        let count = 1 + d.below(40);
        let keys = d.keys(count);
        let name = format!("list-model-{seed}");
        let backend = engine_backend(&name).await;
        fill(&backend, &keys).await;
        for _ in 0..25 {
            let q = d.query(&keys);
            check(&backend, &keys, &q, &format!("engine, seed {seed}")).await;
        }
        let _ = std::fs::remove_dir_all(
            std::env::temp_dir().join(format!("hangar-{name}-{}", std::process::id())),
        );
    }
}
