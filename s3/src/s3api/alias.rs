//! Bucket aliases in the S3 layer: a request naming an alias acts on its bucket.
//!
//! The alias is swapped for the bucket's own name in the routing path, before routing, so
//! every operation, permission check and key grant sees the bucket's name only (an alias
//! has no grants of its own: a key may use it exactly as it may use its bucket). Copy
//! sources are resolved too. Resolution costs a cached lookup per request
//! (`hangar_engine::objects::alias`).
//!
//! One operation is refused through an alias: DeleteBucket. Deleting a bucket by a name
//! that may be someone's new name for it is too easy a mistake; the error says to remove
//! the alias (`hangar bucket unalias`) or to delete the bucket by its own name.

use super::backend::ObjectBackend;
use super::error::S3Error;
use super::router::{Endpoint, parse_path};

/// The routing path with an alias replaced by its bucket's name, and the alias if any.
pub async fn resolve_path(
    backend: &dyn ObjectBackend,
    route_path: String,
) -> Result<(String, Option<String>), S3Error> {
    let Some(name) = parse_path(&route_path)?.0 else {
        return Ok((route_path, None));
    };
    let target = backend.alias_target(&name).await;
    let Some(bucket) = target.map_err(|e| S3Error::from_backend(e, &name, ""))? else {
        return Ok((route_path, None));
    };
    // Bucket names and aliases are plain ASCII: the first segment is the name as sent.
    let rest = route_path[1..].find('/').map_or("", |i| &route_path[1 + i..]);
    Ok((format!("/{bucket}{rest}"), Some(name)))
}

/// The bucket `name` is an alias of, or `name` (also when the lookup fails: callers are
/// CORS answers, which then find no rules rather than fail the request).
pub async fn bucket_of(backend: &dyn ObjectBackend, name: String) -> String {
    backend.alias_target(&name).await.ok().flatten().unwrap_or(name)
}

/// Resolves a copy's source bucket, and refuses DeleteBucket through an alias.
pub async fn check_endpoint(
    backend: &dyn ObjectBackend,
    endpoint: &mut Endpoint,
    alias: Option<&str>,
) -> Result<(), S3Error> {
    if let (Endpoint::DeleteBucket { bucket }, Some(alias)) = (&*endpoint, alias) {
        let reason = format!(
            "'{alias}' is an alias of bucket '{bucket}': remove the alias \
             (hangar bucket unalias {bucket} {alias}) or delete the bucket by its own name"
        );
        return Err(S3Error::InvalidRequest { reason });
    }
    if let Endpoint::CopyObject { source, .. } | Endpoint::UploadPartCopy { source, .. } = endpoint
    {
        let target = backend.alias_target(&source.bucket).await;
        if let Some(bucket) = target.map_err(|e| S3Error::from_backend(e, &source.bucket, ""))? {
            source.bucket = bucket;
        }
    }
    Ok(())
}
