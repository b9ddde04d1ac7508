//! Access keys: who may sign S3 requests, and what each key may do to which bucket.
//!
//! One table, `key`: partition key `"keys"` (every key under one partition key, like the
//! `bucket` table, so listing keys is one range read), sort key = the access key id. The
//! table is small; it lives on the replicas of that one partition (every node holds it
//! while the replication factor covers the cluster; a full-copy replication mode for small
//! tables comes with the table layer's replication strategies).
//!
//! Every field of an entry merges on its own (see `KeyEntry`), so a permission granted
//! through one node and a rename through another both survive; a deletion is final: a
//! deleted key id can never sign again, even if an old config file imports it again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand_core::RngCore;
use serde::{Deserialize, Serialize};

use crate::crdt::{Bool, Crdt, Lww, LwwMap};
use crate::node::Node;
use crate::seam::NodeRng;
use crate::table::{QuorumError, TableSchema, entry_key};
use crate::ttl_cache::TtlCache;

pub struct KeySchema;
impl TableSchema for KeySchema {
    const NAME: &'static str = "key";
    type Entry = KeyEntry;
}

/// All access keys live under this partition key.
const KEYS_PARTITION_KEY: &[u8] = b"keys";
/// Entries fetched per range read while listing.
const LIST_BATCH: usize = 1000;
/// Generated ids: "GK" + 24 hex digits (AWS-like length; the prefix tells them apart).
const GENERATED_ID_HEX_DIGITS_BYTES: usize = 12;
/// Generated secrets: 64 hex digits (32 random bytes).
const GENERATED_SECRET_BYTES: usize = 32;
/// How long a key read for request authentication is reused without a quorum read: the
/// bound on how long a key deleted (or a permission taken away) through another node may
/// still work here. Changes made through this node show at once (docs/operations.md).
pub const AUTH_CACHE_TTL_MS: u64 = 5_000;
/// Keys remembered for authentication at most (distinct ids; see `TtlCache`).
const AUTH_CACHE_ENTRIES_MAX: usize = 4096;

/// What a key may do to one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BucketPerms {
    /// GET, HEAD and listings.
    pub read: bool,
    /// PUT, DELETE of objects, multipart uploads.
    pub write: bool,
    /// Bucket settings (versioning) and deleting the bucket.
    pub owner: bool,
}

impl BucketPerms {
    pub const ALL: BucketPerms = BucketPerms { read: true, write: true, owner: true };
    pub const NONE: BucketPerms = BucketPerms { read: false, write: false, owner: false };

    pub fn any(&self) -> bool {
        self.read || self.write || self.owner
    }
}

/// One access key, as the table stores it.
///
/// Merge, field by field (each a semilattice, so the product is one and the CRDT laws hold;
/// property-tested below):
/// - `secret`, `name`, `allow_create_bucket`: last writer wins (`Lww`);
/// - `created_ms`: the minimum (the first creation any replica saw);
/// - `deleted`: or-ed (`Bool`): a deleted key never comes back;
/// - `buckets`: per bucket, last writer wins on the whole `BucketPerms` (`LwwMap`); a
///   revoked permission is an entry of `BucketPerms::NONE`, not a removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEntry {
    pub secret: Lww<String>,
    pub name: Lww<String>,
    pub created_ms: u64,
    pub allow_create_bucket: Lww<bool>,
    pub deleted: Bool,
    pub buckets: LwwMap<String, BucketPerms>,
}

/// Stored in the first entry format (`table::schema`).
impl crate::table::schema::StoredEntry for KeyEntry {}

impl Crdt for KeyEntry {
    fn merge(&mut self, other: &Self) {
        self.secret.merge(&other.secret);
        self.name.merge(&other.name);
        self.created_ms = self.created_ms.min(other.created_ms);
        self.allow_create_bucket.merge(&other.allow_create_bucket);
        self.deleted.merge(&other.deleted);
        self.buckets.merge(&other.buckets);
    }
}

impl KeyEntry {
    /// The newest timestamp of any field: a write replacing this entry is stamped above it.
    fn newest_timestamp(&self) -> u64 {
        let perms = self.buckets.iter().filter_map(|(b, _)| self.buckets.get_entry(b));
        [self.secret.timestamp(), self.name.timestamp(), self.allow_create_bucket.timestamp()]
            .into_iter()
            .chain(perms.map(|p| p.timestamp()))
            .max()
            .unwrap_or(0)
    }
}

/// An access key as callers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub id: String,
    pub name: String,
    pub secret: String,
    pub created_ms: u64,
    pub allow_create_bucket: bool,
    pub deleted: bool,
    /// Buckets with at least one permission, in name order.
    pub buckets: Vec<(String, BucketPerms)>,
}

impl AccessKey {
    fn from_entry(id: String, e: &KeyEntry) -> AccessKey {
        AccessKey {
            id,
            name: e.name.value().clone(),
            secret: e.secret.value().clone(),
            created_ms: e.created_ms,
            allow_create_bucket: *e.allow_create_bucket.value(),
            deleted: e.deleted.get(),
            buckets: e
                .buckets
                .iter()
                .filter(|(_, p)| p.any())
                .map(|(b, p)| (b.clone(), *p))
                .collect(),
        }
    }

    /// This key's permissions on `bucket` (none for a deleted key).
    pub fn perms(&self, bucket: &str) -> BucketPerms {
        if self.deleted {
            return BucketPerms::NONE;
        }
        self.buckets.iter().find(|(b, _)| b == bucket).map_or(BucketPerms::NONE, |(_, p)| *p)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    NoSuchKey {
        id: String,
    },
    /// Importing an id that exists with another secret.
    AlreadyExists {
        id: String,
    },
    /// The id was deleted; deleted ids are never reused.
    Deleted {
        id: String,
    },
    InvalidId {
        id: String,
        problem: &'static str,
    },
    InvalidSecret {
        problem: &'static str,
    },
    Unavailable {
        reason: String,
    },
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::NoSuchKey { id } => write!(f, "no access key {id:?}"),
            KeyError::AlreadyExists { id } => {
                write!(f, "access key {id:?} already exists with another secret")
            }
            KeyError::Deleted { id } => {
                write!(f, "access key {id:?} was deleted; deleted ids are never reused")
            }
            KeyError::InvalidId { id, problem } => write!(f, "access key id {id:?}: {problem}"),
            KeyError::InvalidSecret { problem } => write!(f, "secret key: {problem}"),
            KeyError::Unavailable { reason } => write!(f, "unavailable: {reason}"),
        }
    }
}

impl std::error::Error for KeyError {}

impl From<QuorumError> for KeyError {
    fn from(e: QuorumError) -> Self {
        KeyError::Unavailable { reason: e.to_string() }
    }
}

/// AWS's bounds on ids: 16 to 128 letters and digits.
pub fn check_key_id(id: &str) -> Result<(), KeyError> {
    let ok = (16..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(KeyError::InvalidId {
            id: id.into(),
            problem: "use 16 to 128 ASCII letters and digits",
        })
    }
}

/// Secrets shorter than 16 characters are guessable; AWS issues 40.
pub fn check_secret(secret: &str) -> Result<(), KeyError> {
    if secret.len() >= 16 && secret.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(KeyError::InvalidSecret {
            problem: "must be at least 16 printable ASCII characters, no spaces",
        })
    }
}

/// The access key table, over a node.
pub struct KeyStore {
    node: Arc<Node>,
    /// One stream for the life of the store: `Seam::rng` restarts a purpose's stream.
    rng: Mutex<NodeRng>,
    /// `get_for_auth` answers (unknown ids too) read from a quorum less than
    /// `AUTH_CACHE_TTL_MS` ago: a busy client costs no quorum read per request.
    auth_cache: TtlCache<String, Option<AccessKey>>,
}

impl KeyStore {
    pub fn new(node: Arc<Node>) -> Self {
        Self::with_auth_cache_ttl(node, Duration::from_millis(AUTH_CACHE_TTL_MS))
    }

    /// A store reusing authentication reads for `ttl` (zero: never).
    pub fn with_auth_cache_ttl(node: Arc<Node>, ttl: Duration) -> Self {
        let rng = Mutex::new(node.seam.rng("access-keys"));
        let auth_cache = TtlCache::new(ttl, AUTH_CACHE_ENTRIES_MAX);
        KeyStore { node, rng, auth_cache }
    }

    fn random_hex(&self, bytes: usize) -> String {
        let mut buf = vec![0u8; bytes];
        self.rng.lock().unwrap().fill_bytes(&mut buf);
        buf.iter().map(|b| format!("{b:02x}")).collect()
    }

    async fn entry(&self, id: &str) -> Result<Option<KeyEntry>, KeyError> {
        let key = entry_key(KEYS_PARTITION_KEY, id.as_bytes());
        Ok(self.node.keys.get(&key).await?)
    }

    async fn write(&self, id: &str, entry: &KeyEntry) -> Result<(), KeyError> {
        let key = entry_key(KEYS_PARTITION_KEY, id.as_bytes());
        let written = self.node.keys.insert(key, entry).await;
        // Even after a failed write: it may have reached some replicas.
        self.auth_cache.invalidate(&id.to_string());
        Ok(written?)
    }

    /// The key, deleted or not; `None` if the id was never created.
    pub async fn get(&self, id: &str) -> Result<Option<AccessKey>, KeyError> {
        Ok(self.entry(id).await?.map(|e| AccessKey::from_entry(id.into(), &e)))
    }

    /// The key as request authentication needs it: from a read quorum, or — when no quorum
    /// answers — from this node's own replica if it holds one. Authentication favours
    /// availability: a cluster that lost the key table's quorum keeps serving the buckets
    /// it still can, at the price of a revocation not yet replicated here being missed.
    ///
    /// Quorum answers are reused for `AUTH_CACHE_TTL_MS` (local-replica answers are not:
    /// the next request tries the quorum again).
    pub async fn get_for_auth(&self, id: &str) -> Result<Option<AccessKey>, KeyError> {
        if let Some(cached) = self.auth_cache.get(&id.to_string()) {
            return Ok(cached);
        }
        let generation = self.auth_cache.generation();
        match self.get(id).await {
            Ok(key) => {
                self.auth_cache.put_if_unchanged(id.to_string(), key.clone(), generation);
                Ok(key)
            }
            Err(KeyError::Unavailable { reason }) => {
                let key = entry_key(KEYS_PARTITION_KEY, id.as_bytes());
                match self.node.keys.local.get(&key) {
                    Ok(Some(entry)) => {
                        tracing::debug!(%reason, "access key read from the local replica");
                        Ok(Some(AccessKey::from_entry(id.into(), &entry)))
                    }
                    _ => Err(KeyError::Unavailable { reason }),
                }
            }
            other => other,
        }
    }

    /// `get_for_auth`, skipping the cache (and refreshing it): for confirming a refusal, so
    /// that a grant given through another node — the bucket a client just created there —
    /// is honoured at once instead of after `AUTH_CACHE_TTL_MS`. Only grants, never
    /// refusals, are served from the cache.
    pub async fn get_for_auth_fresh(&self, id: &str) -> Result<Option<AccessKey>, KeyError> {
        self.auth_cache.invalidate(&id.to_string());
        self.get_for_auth(id).await
    }

    /// A live key, or `NoSuchKey`.
    pub async fn get_live(&self, id: &str) -> Result<AccessKey, KeyError> {
        match self.get(id).await? {
            Some(key) if !key.deleted => Ok(key),
            _ => Err(KeyError::NoSuchKey { id: id.into() }),
        }
    }

    /// Creates a key with a generated id and secret.
    pub async fn create(&self, name: &str) -> Result<AccessKey, KeyError> {
        let id = format!("GK{}", self.random_hex(GENERATED_ID_HEX_DIGITS_BYTES));
        let secret = self.random_hex(GENERATED_SECRET_BYTES);
        self.import(&id, &secret, name).await
    }

    /// Creates a key with a given id and secret. Idempotent: importing a live key again with
    /// the same secret changes nothing and returns it.
    pub async fn import(&self, id: &str, secret: &str, name: &str) -> Result<AccessKey, KeyError> {
        self.import_granting(id, secret, name, false, &[]).await.map(|(key, _)| key)
    }

    /// `import`, with the grants a newly created key starts with written in the same entry:
    /// the create-bucket permission and full permissions on `buckets`. One write, so a key
    /// can never be seen imported but not yet granted — and a retried import (whose first
    /// attempt wrote the key but failed after) cannot skip the grants. The flag is true when
    /// this call created the key; an existing key is returned unchanged.
    pub async fn import_granting(
        &self,
        id: &str,
        secret: &str,
        name: &str,
        allow_create_bucket: bool,
        buckets: &[String],
    ) -> Result<(AccessKey, bool), KeyError> {
        check_key_id(id)?;
        check_secret(secret)?;
        let current = self.entry(id).await?;
        if let Some(e) = &current {
            if e.deleted.get() {
                return Err(KeyError::Deleted { id: id.into() });
            }
            if e.secret.value() != secret {
                return Err(KeyError::AlreadyExists { id: id.into() });
            }
            return Ok((AccessKey::from_entry(id.into(), e), false));
        }
        let ts = self.node.stamp();
        let mut entry = KeyEntry {
            secret: Lww::new(ts, secret.into()),
            name: Lww::new(ts, name.into()),
            created_ms: self.node.seam.clock.now_ms(),
            allow_create_bucket: Lww::new(ts, allow_create_bucket),
            deleted: Bool::new(false),
            buckets: LwwMap::new(),
        };
        for bucket in buckets {
            entry.buckets.insert(bucket.clone(), ts, BucketPerms::ALL);
        }
        self.write(id, &entry).await?;
        Ok((AccessKey::from_entry(id.into(), &entry), true))
    }

    /// True while no key was ever written (deleted ones count): a node upgraded from a
    /// version without this table sees it empty.
    pub async fn never_written(&self) -> Result<bool, KeyError> {
        Ok(self.node.keys.get_range(KEYS_PARTITION_KEY, b"", b"", 1).await?.is_empty())
    }

    /// Live keys in id order.
    pub async fn list(&self) -> Result<Vec<AccessKey>, KeyError> {
        let mut out = Vec::new();
        let mut after = Vec::new();
        loop {
            let page =
                self.node.keys.get_range(KEYS_PARTITION_KEY, b"", &after, LIST_BATCH).await?;
            let done = page.len() < LIST_BATCH;
            after = page.last().map(|(k, _)| k.clone()).unwrap_or_default();
            for (id, entry) in page {
                let id = String::from_utf8_lossy(&id).into_owned();
                if !entry.deleted.get() {
                    out.push(AccessKey::from_entry(id, &entry));
                }
            }
            if done {
                return Ok(out);
            }
        }
    }

    /// Reads a live key, changes it with `change(entry, timestamp)` and writes it back,
    /// stamped above everything the entry held.
    async fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut KeyEntry, u64),
    ) -> Result<AccessKey, KeyError> {
        let Some(mut entry) = self.entry(id).await?.filter(|e| !e.deleted.get()) else {
            return Err(KeyError::NoSuchKey { id: id.into() });
        };
        let ts = self.node.stamp_after(entry.newest_timestamp());
        change(&mut entry, ts);
        self.write(id, &entry).await?;
        Ok(AccessKey::from_entry(id.into(), &entry))
    }

    /// Deletes a key for good (its id can never be imported again).
    pub async fn delete(&self, id: &str) -> Result<(), KeyError> {
        self.update(id, |e, _| e.deleted.set()).await.map(|_| ())
    }

    pub async fn set_allow_create_bucket(
        &self,
        id: &str,
        allow: bool,
    ) -> Result<AccessKey, KeyError> {
        self.update(id, |e, ts| e.allow_create_bucket.update(ts, allow)).await
    }

    pub async fn set_name(&self, id: &str, name: &str) -> Result<AccessKey, KeyError> {
        self.update(id, |e, ts| e.name.update(ts, name.to_string())).await
    }

    /// Replaces the key's permissions on `bucket`.
    pub async fn set_perms(
        &self,
        id: &str,
        bucket: &str,
        perms: BucketPerms,
    ) -> Result<AccessKey, KeyError> {
        self.update(id, |e, ts| e.buckets.insert(bucket.to_string(), ts, perms)).await
    }

    /// Takes every permission on `bucket` away from every key: called when the bucket is
    /// deleted, so that a later bucket of the same name starts with no grants.
    pub async fn revoke_bucket(&self, bucket: &str) -> Result<(), KeyError> {
        for key in self.list().await? {
            if key.perms(bucket).any() {
                self.set_perms(&key.id, bucket, BucketPerms::NONE).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::assert_crdt_laws;
    use crate::node_tests::TestCluster;
    use rand_chacha::ChaCha8Rng;

    fn small(rng: &mut ChaCha8Rng, below: u32) -> u32 {
        rng.next_u32() % below
    }

    fn entry(rng: &mut ChaCha8Rng) -> KeyEntry {
        let mut buckets = LwwMap::new();
        for _ in 0..small(rng, 3) {
            let bits = small(rng, 8);
            let perms =
                BucketPerms { read: bits & 1 != 0, write: bits & 2 != 0, owner: bits & 4 != 0 };
            buckets.insert(format!("b{}", small(rng, 3)), u64::from(small(rng, 4)), perms);
        }
        KeyEntry {
            secret: Lww::new(u64::from(small(rng, 4)), format!("s{}", small(rng, 2))),
            name: Lww::new(u64::from(small(rng, 4)), format!("n{}", small(rng, 2))),
            created_ms: u64::from(small(rng, 5)),
            allow_create_bucket: Lww::new(u64::from(small(rng, 4)), small(rng, 2) == 1),
            deleted: Bool::new(small(rng, 4) == 0),
            buckets,
        }
    }

    #[test]
    fn key_entry_obeys_crdt_laws() {
        assert_crdt_laws("KeyEntry", 500, entry);
    }

    #[tokio::test(start_paused = true)]
    async fn keys_created_on_one_node_are_seen_with_their_permissions_on_another() {
        let cluster = TestCluster::start().await;
        let (a, b) =
            (KeyStore::new(cluster.node(1).clone()), KeyStore::new(cluster.node(2).clone()));
        let key = a.create("alice").await.unwrap();
        assert!(key.id.starts_with("GK") && key.id.len() == 26, "{}", key.id);
        assert_eq!(key.secret.len(), 64);
        b.set_perms(&key.id, "photos", BucketPerms { read: true, write: false, owner: false })
            .await
            .unwrap();
        a.set_allow_create_bucket(&key.id, true).await.unwrap();
        let seen = b.get_live(&key.id).await.unwrap();
        assert!(seen.allow_create_bucket);
        assert_eq!(seen.perms("photos"), BucketPerms { read: true, write: false, owner: false });
        assert_eq!(seen.perms("other"), BucketPerms::NONE);
        assert_eq!(a.list().await.unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn import_granting_writes_the_grants_with_the_key_and_leaves_an_existing_key_alone() {
        let cluster = TestCluster::start().await;
        let (a, b) =
            (KeyStore::new(cluster.node(1).clone()), KeyStore::new(cluster.node(2).clone()));
        let (id, secret) = ("GKgranted0000000001", "s3cr3t-s3cr3t-s3cr3t");
        let buckets = vec!["old".to_string()];
        let (key, created) = a.import_granting(id, secret, "cfg", true, &buckets).await.unwrap();
        assert!(created);
        assert!(key.allow_create_bucket);
        let seen = b.get_live(id).await.unwrap();
        assert!(seen.allow_create_bucket, "the grant travels in the key's own write");
        assert_eq!(seen.perms("old"), BucketPerms::ALL);
        // An operator revokes; a later start importing the same config key keeps that.
        b.set_allow_create_bucket(id, false).await.unwrap();
        let (again, created) = b.import_granting(id, secret, "cfg", true, &[]).await.unwrap();
        assert!(!created);
        assert!(!again.allow_create_bucket);
        assert!(!a.get_live(id).await.unwrap().allow_create_bucket);
    }

    #[tokio::test(start_paused = true)]
    async fn import_is_idempotent_and_a_deleted_id_never_returns() {
        let cluster = TestCluster::start().await;
        let keys = KeyStore::new(cluster.node(1).clone());
        let (id, secret) = ("GKimported0000000001", "s3cr3t-s3cr3t-s3cr3t");
        assert!(keys.never_written().await.unwrap());
        let first = keys.import(id, secret, "ops").await.unwrap();
        assert!(!keys.never_written().await.unwrap());
        keys.set_perms(id, "b", BucketPerms::ALL).await.unwrap();
        // Importing again (as every start does for config keys) keeps the grants.
        let again = keys.import(id, secret, "ops").await.unwrap();
        assert_eq!(again.perms("b"), BucketPerms::ALL);
        assert_eq!(again.created_ms, first.created_ms);
        let other = keys.import(id, "another-secret-0000", "ops").await;
        assert_eq!(other, Err(KeyError::AlreadyExists { id: id.into() }));
        keys.delete(id).await.unwrap();
        assert_eq!(keys.get_live(id).await, Err(KeyError::NoSuchKey { id: id.into() }));
        assert_eq!(keys.import(id, secret, "ops").await, Err(KeyError::Deleted { id: id.into() }));
        assert!(keys.list().await.unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn authentication_falls_back_to_the_local_replica_without_a_quorum() {
        let cluster = TestCluster::start().await;
        let keys = KeyStore::new(cluster.node(1).clone());
        let key = keys.create("edge").await.unwrap();
        // The write reached a quorum (n1 and one other); make sure n1 holds it, then cut
        // n1 off: no read quorum, but its own replica still knows the key.
        let stored = entry_key(KEYS_PARTITION_KEY, key.id.as_bytes());
        assert!(cluster.node(1).keys.local.get(&stored).unwrap().is_some());
        cluster.set_down(2, true);
        cluster.set_down(3, true);
        assert!(matches!(keys.get(&key.id).await, Err(KeyError::Unavailable { .. })));
        let seen = keys.get_for_auth(&key.id).await.unwrap().unwrap();
        assert_eq!(seen.secret, key.secret);
        let unknown = keys.get_for_auth("GKnotthere000000000000").await;
        assert!(matches!(unknown, Err(KeyError::Unavailable { .. })));
    }

    /// The staleness bound of the authentication cache, both ways: a deletion made through
    /// this node shows at once; one made through another node shows within the TTL.
    #[tokio::test(start_paused = true)]
    async fn authentication_reads_are_reused_for_the_ttl_and_dropped_on_local_changes() {
        let cluster = TestCluster::start().await;
        let (a, b) =
            (KeyStore::new(cluster.node(1).clone()), KeyStore::new(cluster.node(2).clone()));
        let key = a.create("cached").await.unwrap();
        assert!(a.get_for_auth(&key.id).await.unwrap().is_some());
        assert!(b.get_for_auth(&key.id).await.unwrap().is_some());
        a.delete(&key.id).await.unwrap();
        let here = a.get_for_auth(&key.id).await.unwrap();
        assert!(here.unwrap().deleted, "the deleting node reads the key again");
        let there = b.get_for_auth(&key.id).await.unwrap();
        assert!(!there.unwrap().deleted, "another node may answer from its cache");
        tokio::time::sleep(Duration::from_millis(AUTH_CACHE_TTL_MS)).await;
        let there = b.get_for_auth(&key.id).await.unwrap();
        assert!(there.unwrap().deleted, "but not after the TTL");
        // Unknown ids are cached too, and a key created here shows at once.
        assert_eq!(a.get_for_auth("GKlater0000000000000001").await, Ok(None));
        a.import("GKlater0000000000000001", "s3cr3t-s3cr3t-s3cr3t", "l").await.unwrap();
        assert!(a.get_for_auth("GKlater0000000000000001").await.unwrap().is_some());
    }

    /// A permission given through one node is seen at once by another that cached the key,
    /// when it confirms a refusal with a fresh read (what the S3 layer does).
    #[tokio::test(start_paused = true)]
    async fn a_fresh_read_sees_a_grant_made_through_another_node_within_the_ttl() {
        let cluster = TestCluster::start().await;
        let (a, b) =
            (KeyStore::new(cluster.node(1).clone()), KeyStore::new(cluster.node(2).clone()));
        let key = a.create("grantee").await.unwrap();
        assert_eq!(b.get_for_auth(&key.id).await.unwrap().unwrap().perms("new"), BucketPerms::NONE);
        a.set_perms(&key.id, "new", BucketPerms::ALL).await.unwrap();
        let cached = b.get_for_auth(&key.id).await.unwrap().unwrap();
        assert_eq!(cached.perms("new"), BucketPerms::NONE, "node 2 still answers from its cache");
        let fresh = b.get_for_auth_fresh(&key.id).await.unwrap().unwrap();
        assert_eq!(fresh.perms("new"), BucketPerms::ALL);
        let again = b.get_for_auth(&key.id).await.unwrap().unwrap();
        assert_eq!(again.perms("new"), BucketPerms::ALL, "and the fresh read refreshed the cache");
    }

    #[tokio::test(start_paused = true)]
    async fn revoking_a_bucket_clears_it_from_every_key() {
        let cluster = TestCluster::start().await;
        let keys = KeyStore::new(cluster.node(1).clone());
        let (k1, k2) = (keys.create("one").await.unwrap(), keys.create("two").await.unwrap());
        assert_ne!(k1.id, k2.id, "each key gets a fresh id");
        keys.set_perms(&k1.id, "b", BucketPerms::ALL).await.unwrap();
        keys.set_perms(&k2.id, "c", BucketPerms::ALL).await.unwrap();
        keys.revoke_bucket("b").await.unwrap();
        assert_eq!(keys.get_live(&k1.id).await.unwrap().perms("b"), BucketPerms::NONE);
        assert_eq!(keys.get_live(&k2.id).await.unwrap().perms("c"), BucketPerms::ALL);
        assert!(keys.get_live(&k1.id).await.unwrap().buckets.is_empty());
    }
}
