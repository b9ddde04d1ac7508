//! Which access keys exist and what each may do: the S3 frontend's view of the key table.
//!
//! Authentication (`s3api::auth`) checks a signature against one secret; this module finds
//! that secret before, and checks the key's permission on the bucket after routing. Two
//! implementations of `KeyLookup`:
//! - `StaticKeys`: a fixed map of id → secret, every key allowed everything (unit tests,
//!   the simulator's S3 workload);
//! - `EngineKeys`: the engine's replicated `key` table with per-bucket read/write/owner
//!   grants (the production server).
//!
//! What each operation needs (`required`): reads (GET, HEAD, listings, GetBucketLocation,
//! GetBucketVersioning, ListParts, ListMultipartUploads) need `read`; object writes,
//! deletes and multipart uploads need `write`; PutBucketVersioning and DeleteBucket need
//! `owner`; CreateBucket needs the key's `allow_create_bucket` and makes it owner.
//! ListBuckets needs a valid key only and lists the buckets the key has a permission on.
//!
//! A refused operation on a bucket that does not exist answers NoSuchBucket, as S3 does:
//! clients (and the S3 tests) tell "gone" from "forbidden" by it. The existence check is
//! made only on the refusal path, so allowed requests cost no extra read.

use std::collections::BTreeMap;
use std::sync::Arc;

use hangar_engine::keys::{BucketPerms, KeyError, KeyStore};

use crate::s3api::router::Endpoint;
use crate::s3api::{BackendError, BoxFuture, ObjectBackend, S3Error};

/// A key as authorization needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyGrant {
    pub secret: String,
    pub allow_create_bucket: bool,
    /// Per-bucket grants; `None` means every permission on every bucket.
    pub buckets: Option<BTreeMap<String, BucketPerms>>,
}

impl KeyGrant {
    pub fn perms(&self, bucket: &str) -> BucketPerms {
        match &self.buckets {
            None => BucketPerms::ALL,
            Some(map) => map.get(bucket).copied().unwrap_or(BucketPerms::NONE),
        }
    }
}

/// Where the frontend finds keys. Object-safe, like `ObjectBackend`.
pub trait KeyLookup: Send + Sync {
    /// The live key `id`, or `None` (unknown or deleted).
    fn lookup<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<KeyGrant>, S3Error>>;
    /// `lookup`, bypassing any cache: confirms a refusal (`check_confirmed`).
    fn lookup_fresh<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<KeyGrant>, S3Error>> {
        self.lookup(id)
    }
    /// `id` just created `bucket`: it becomes its owner (read, write, owner).
    fn bucket_created<'a>(
        &'a self,
        id: &'a str,
        bucket: &'a str,
    ) -> BoxFuture<'a, Result<(), S3Error>>;
    /// `bucket` was deleted: no key keeps a grant a later bucket of that name would inherit.
    fn bucket_deleted<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<(), S3Error>>;
}

/// Fixed keys, each allowed everything.
pub struct StaticKeys(pub BTreeMap<String, String>);

impl KeyLookup for StaticKeys {
    fn lookup<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<KeyGrant>, S3Error>> {
        let grant = self.0.get(id).map(|secret| KeyGrant {
            secret: secret.clone(),
            allow_create_bucket: true,
            buckets: None,
        });
        Box::pin(async move { Ok(grant) })
    }

    fn bucket_created<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, Result<(), S3Error>> {
        Box::pin(async { Ok(()) })
    }

    fn bucket_deleted<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), S3Error>> {
        Box::pin(async { Ok(()) })
    }
}

/// The engine's key table.
pub struct EngineKeys(pub Arc<KeyStore>);

fn unavailable(e: KeyError) -> S3Error {
    match e {
        KeyError::Unavailable { reason } => S3Error::ServiceUnavailable { reason },
        other => S3Error::InternalError { reason: other.to_string() },
    }
}

fn live_grant(key: Option<hangar_engine::keys::AccessKey>) -> Option<KeyGrant> {
    key.filter(|k| !k.deleted).map(|k| KeyGrant {
        secret: k.secret,
        allow_create_bucket: k.allow_create_bucket,
        buckets: Some(k.buckets.into_iter().collect()),
    })
}

impl KeyLookup for EngineKeys {
    fn lookup<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<KeyGrant>, S3Error>> {
        Box::pin(async move { Ok(live_grant(self.0.get_for_auth(id).await.map_err(unavailable)?)) })
    }

    fn lookup_fresh<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<KeyGrant>, S3Error>> {
        Box::pin(async move {
            Ok(live_grant(self.0.get_for_auth_fresh(id).await.map_err(unavailable)?))
        })
    }

    fn bucket_created<'a>(
        &'a self,
        id: &'a str,
        bucket: &'a str,
    ) -> BoxFuture<'a, Result<(), S3Error>> {
        Box::pin(async move {
            self.0.set_perms(id, bucket, BucketPerms::ALL).await.map(|_| ()).map_err(unavailable)
        })
    }

    fn bucket_deleted<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<(), S3Error>> {
        Box::pin(async move { self.0.revoke_bucket(bucket).await.map_err(unavailable) })
    }
}

/// The access key id a request claims, before any check: the `Credential=` of a SigV4
/// Authorization header or the `X-Amz-Credential` query parameter. `auth` validates the
/// whole credential; this only picks the id to look up.
pub fn claimed_key_id<'a>(
    headers: &'a hyper::HeaderMap,
    query: &'a [(String, String)],
) -> Option<&'a str> {
    let credential = match headers.get(hyper::header::AUTHORIZATION) {
        Some(value) => value
            .to_str()
            .ok()?
            .split([' ', ','])
            .find_map(|field| field.trim().strip_prefix("Credential="))?,
        None => query.iter().find(|(k, _)| k == "X-Amz-Credential").map(|(_, v)| v.as_str())?,
    };
    credential.split('/').next().filter(|id| !id.is_empty())
}

/// What an operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// A valid key and nothing more.
    Nothing,
    CreateBucket,
    Read,
    Write,
    Owner,
}

/// The bucket an operation acts on and what it needs there.
pub fn required(endpoint: &Endpoint) -> (Option<&str>, Need) {
    use Endpoint as E;
    match endpoint {
        E::ListBuckets => (None, Need::Nothing),
        E::CreateBucket { bucket } => (Some(bucket), Need::CreateBucket),
        E::HeadBucket { bucket }
        | E::GetBucketLocation { bucket }
        | E::ListObjectsV2 { bucket }
        | E::ListObjects { bucket }
        | E::ListObjectVersions { bucket }
        | E::GetBucketVersioning { bucket }
        | E::GetBucketCors { bucket }
        | E::GetBucketWebsite { bucket }
        | E::GetBucketLifecycle { bucket }
        | E::GetObject { bucket, .. }
        | E::HeadObject { bucket, .. }
        | E::GetObjectAttributes { bucket, .. }
        | E::ListParts { bucket, .. }
        | E::ListMultipartUploads { bucket } => (Some(bucket), Need::Read),
        E::PutObject { bucket, .. }
        | E::CopyObject { bucket, .. }
        | E::UploadPartCopy { bucket, .. }
        | E::DeleteObject { bucket, .. }
        | E::DeleteObjects { bucket }
        | E::CreateMultipartUpload { bucket, .. }
        | E::UploadPart { bucket, .. }
        | E::CompleteMultipartUpload { bucket, .. }
        | E::AbortMultipartUpload { bucket, .. } => (Some(bucket), Need::Write),
        E::DeleteBucket { bucket }
        | E::PutBucketVersioning { bucket }
        | E::PutBucketCors { bucket }
        | E::DeleteBucketCors { bucket }
        | E::PutBucketWebsite { bucket }
        | E::DeleteBucketWebsite { bucket }
        | E::PutBucketLifecycle { bucket }
        | E::DeleteBucketLifecycle { bucket } => (Some(bucket), Need::Owner),
    }
}

/// Refuses the operation unless `grant` allows it.
pub fn authorize(grant: &KeyGrant, endpoint: &Endpoint) -> Result<(), S3Error> {
    let (bucket, need) = required(endpoint);
    let perms = bucket.map_or(BucketPerms::NONE, |b| grant.perms(b));
    let (ok, reason) = match need {
        Need::Nothing => (true, ""),
        Need::CreateBucket => (grant.allow_create_bucket, "This access key may not create buckets"),
        Need::Read => (perms.read, "This access key may not read this bucket"),
        Need::Write => (perms.write, "This access key may not write to this bucket"),
        Need::Owner => (perms.owner, "Only an owner key may change or delete this bucket"),
    };
    if ok { Ok(()) } else { Err(S3Error::AccessDenied { reason }) }
}

/// `check`, except that a refusal is confirmed with a fresh read of the key first: the
/// grant at hand may come from the authentication cache, older than a permission given
/// through another node (a bucket the client just created there). Returns the grant the
/// request goes on with.
pub async fn check_confirmed(
    grant: KeyGrant,
    access_key: &str,
    endpoint: &Endpoint,
    backend: &dyn ObjectBackend,
    keys: &dyn KeyLookup,
) -> Result<KeyGrant, S3Error> {
    match check(&grant, endpoint, backend).await {
        Err(S3Error::AccessDenied { .. }) => {
            let fresh = keys.lookup_fresh(access_key).await?.ok_or_else(|| {
                S3Error::InvalidAccessKeyId { access_key: access_key.to_string() }
            })?;
            check(&fresh, endpoint, backend).await?;
            Ok(fresh)
        }
        Err(other) => Err(other),
        Ok(()) => Ok(grant),
    }
}

/// `authorize`, except that a refusal on a bucket that does not exist is NoSuchBucket.
pub async fn check(
    grant: &KeyGrant,
    endpoint: &Endpoint,
    backend: &dyn ObjectBackend,
) -> Result<(), S3Error> {
    let denied = match authorize(grant, endpoint) {
        Ok(()) => return Ok(()),
        Err(denied) => denied,
    };
    match required(endpoint) {
        (Some(bucket), need) if need != Need::CreateBucket => {
            match backend.head_bucket(bucket).await {
                Err(BackendError::NoSuchBucket) => {
                    Err(S3Error::NoSuchBucket { bucket: bucket.to_string() })
                }
                _ => Err(denied),
            }
        }
        _ => Err(denied),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::HeaderMap;

    fn grant(perms: BucketPerms, create: bool) -> KeyGrant {
        KeyGrant {
            secret: "s".into(),
            allow_create_bucket: create,
            buckets: Some([("b".to_string(), perms)].into_iter().collect()),
        }
    }

    #[test]
    fn the_claimed_id_comes_from_the_header_or_the_presigned_query() {
        let mut headers = HeaderMap::new();
        let auth = "AWS4-HMAC-SHA256 Credential=GKabc/20250101/hangar/s3/aws4_request, \
                    SignedHeaders=host, Signature=00";
        headers.insert("authorization", auth.parse().unwrap());
        assert_eq!(claimed_key_id(&headers, &[]), Some("GKabc"));
        let query = vec![("X-Amz-Credential".to_string(), "GKq/2025/r/s3/aws4_request".into())];
        assert_eq!(claimed_key_id(&HeaderMap::new(), &query), Some("GKq"));
        assert_eq!(claimed_key_id(&HeaderMap::new(), &[]), None);
    }

    #[test]
    fn each_operation_needs_its_permission_on_its_bucket() {
        let get = Endpoint::GetObject {
            bucket: "b".into(),
            key: "k".into(),
            version_id: None,
            part_number: None,
        };
        let put = Endpoint::PutObject { bucket: "b".into(), key: "k".into() };
        let delete_bucket = Endpoint::DeleteBucket { bucket: "b".into() };
        let read_only = grant(BucketPerms { read: true, ..BucketPerms::NONE }, false);
        assert_eq!(authorize(&read_only, &get), Ok(()));
        assert!(matches!(authorize(&read_only, &put), Err(S3Error::AccessDenied { .. })));
        assert!(authorize(&read_only, &delete_bucket).is_err());
        let write_only = grant(BucketPerms { write: true, ..BucketPerms::NONE }, false);
        assert!(authorize(&write_only, &get).is_err());
        assert_eq!(authorize(&write_only, &put), Ok(()));
        // Another bucket: nothing, whatever the grant on "b".
        let other = Endpoint::ListObjectsV2 { bucket: "c".into() };
        assert!(authorize(&grant(BucketPerms::ALL, true), &other).is_err());
        assert_eq!(authorize(&grant(BucketPerms::ALL, false), &delete_bucket), Ok(()));
        let create = Endpoint::CreateBucket { bucket: "new".into() };
        assert!(authorize(&grant(BucketPerms::NONE, false), &create).is_err());
        assert_eq!(authorize(&grant(BucketPerms::NONE, true), &create), Ok(()));
        assert_eq!(authorize(&grant(BucketPerms::NONE, false), &Endpoint::ListBuckets), Ok(()));
    }

    #[test]
    fn cors_is_read_by_readers_and_changed_by_owners_only() {
        let read_write = grant(BucketPerms { read: true, write: true, owner: false }, true);
        let owner = grant(BucketPerms::ALL, false);
        assert_eq!(authorize(&read_write, &Endpoint::GetBucketCors { bucket: "b".into() }), Ok(()));
        for change in [
            Endpoint::PutBucketCors { bucket: "b".into() },
            Endpoint::DeleteBucketCors { bucket: "b".into() },
        ] {
            assert!(authorize(&read_write, &change).is_err(), "{change:?}");
            assert_eq!(authorize(&owner, &change), Ok(()));
        }
    }

    #[tokio::test]
    async fn a_refusal_on_a_missing_bucket_is_no_such_bucket() {
        let backend = crate::s3api::MemoryBackend::new(std::sync::Arc::new(|| 0));
        backend.create_bucket("b").await.unwrap();
        let nobody = grant(BucketPerms::NONE, false);
        let list = |b: &str| Endpoint::ListObjectsV2 { bucket: b.into() };
        let refused = check(&nobody, &list("b"), &backend).await;
        assert!(matches!(refused, Err(S3Error::AccessDenied { .. })), "{refused:?}");
        let missing = check(&nobody, &list("gone"), &backend).await;
        assert_eq!(missing, Err(S3Error::NoSuchBucket { bucket: "gone".into() }));
        let create = Endpoint::CreateBucket { bucket: "gone".into() };
        assert!(matches!(
            check(&nobody, &create, &backend).await,
            Err(S3Error::AccessDenied { .. })
        ));
    }
}
