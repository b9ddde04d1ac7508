//! `/v1/buckets`: create, list, info (size and object count), delete when empty, the
//! per-key grants (allow / deny), quotas (`objects::usage`) and aliases (`objects::alias`).

use hangar_engine::keys::{BucketPerms, KeyStore};
use hangar_engine::objects::ObjectError;
use hangar_engine::objects::usage::Quotas;
use serde::Deserialize;
use serde_json::{Value, json};

use super::keys::key_error;
use super::{AdminError, AdminState, parse_body};
use crate::s3api::router::valid_bucket_name;

/// Objects fetched per listing page while counting a bucket.
const COUNT_BATCH: usize = 1000;

fn object_error(e: ObjectError, bucket: &str) -> AdminError {
    match e {
        ObjectError::NoSuchBucket => {
            AdminError::not_found("NoSuchBucket", format!("no bucket {bucket:?}"))
        }
        ObjectError::BucketAlreadyExists => {
            AdminError::conflict("BucketAlreadyExists", format!("bucket {bucket:?} exists"))
        }
        ObjectError::BucketNotEmpty => AdminError::conflict(
            "BucketNotEmpty",
            format!("bucket {bucket:?} still holds objects (or old versions); empty it first"),
        ),
        ObjectError::AliasTaken { by_bucket } => AdminError::conflict(
            "BucketAlreadyExists",
            format!("{bucket:?} is already bucket {by_bucket:?}'s name or one of its aliases"),
        ),
        ObjectError::Unavailable { reason } => AdminError::unavailable(reason),
        other => AdminError::internal(other.to_string()),
    }
}

/// Errors of alias changes, which name the alias as well as the bucket.
fn alias_error(e: ObjectError, bucket: &str, alias: &str) -> AdminError {
    match e {
        ObjectError::AliasTaken { by_bucket } if by_bucket == alias => AdminError::conflict(
            "BucketAlreadyExists",
            format!("{alias:?} is a bucket: an alias needs a name no bucket has"),
        ),
        ObjectError::AliasTaken { by_bucket } => AdminError::conflict(
            "BucketAlreadyExists",
            format!(
                "{alias:?} is already an alias of bucket {by_bucket:?} \
                 (hangar bucket unalias {by_bucket} {alias} first)"
            ),
        ),
        ObjectError::AliasOfAlias { bucket: of } => AdminError::bad_request(format!(
            "{bucket:?} is itself an alias of bucket {of:?}: alias {of:?} instead"
        )),
        ObjectError::NoSuchAlias => AdminError::not_found(
            "NoSuchAlias",
            format!("{alias:?} is not an alias of bucket {bucket:?}"),
        ),
        other => object_error(other, bucket),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBucket {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAlias {
    alias: String,
}

/// `{key, read, write, owner}`: the flags to grant (allow) or take away (deny); flags left
/// out are unchanged.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Grant {
    key: String,
    #[serde(default)]
    read: bool,
    #[serde(default)]
    write: bool,
    #[serde(default)]
    owner: bool,
}

pub async fn create(state: &AdminState, body: &[u8]) -> Result<Value, AdminError> {
    let req: CreateBucket = parse_body(body)?;
    if !valid_bucket_name(&req.name) {
        let problem = format!(
            "{:?} is not a valid bucket name (3-63 lowercase letters, digits, '.', '-')",
            req.name
        );
        return Err(AdminError::bad_request(problem));
    }
    state.store.create_bucket(&req.name).await.map_err(|e| object_error(e, &req.name))?;
    info(state, &req.name).await
}

pub async fn list(state: &AdminState) -> Result<Value, AdminError> {
    let buckets = state.store.list_buckets().await.map_err(|e| object_error(e, ""))?;
    let aliases = state.store.list_aliases().await.map_err(|e| object_error(e, ""))?;
    let buckets: Vec<Value> = buckets
        .iter()
        .map(|b| {
            let of_b = aliases.iter().filter(|(_, r)| r.bucket == b.name).map(|(a, _)| a);
            let of_b: Vec<&String> = of_b.collect();
            json!({ "name": b.name, "created_ms": b.created_ms, "aliases": of_b })
        })
        .collect();
    Ok(json!({ "buckets": buckets }))
}

/// Makes `{"alias": name}` another name of the bucket (S3 requests may use either).
pub async fn create_alias(
    state: &AdminState,
    bucket: &str,
    body: &[u8],
) -> Result<Value, AdminError> {
    let req: CreateAlias = parse_body(body)?;
    if !valid_bucket_name(&req.alias) {
        let problem = format!(
            "{:?} is not a valid alias: aliases are bucket names \
             (3-63 lowercase letters, digits, '.', '-')",
            req.alias
        );
        return Err(AdminError::bad_request(problem));
    }
    let created = state.store.create_alias(bucket, &req.alias).await;
    created.map_err(|e| alias_error(e, bucket, &req.alias))?;
    info(state, bucket).await
}

pub async fn delete_alias(
    state: &AdminState,
    bucket: &str,
    alias: &str,
) -> Result<Value, AdminError> {
    let deleted = state.store.delete_alias(bucket, alias).await;
    deleted.map_err(|e| alias_error(e, bucket, alias))?;
    info(state, bucket).await
}

/// Counts by listing every current object: O(objects), fine for operator use; a per-bucket
/// counter table would make it O(1).
pub async fn info(state: &AdminState, name: &str) -> Result<Value, AdminError> {
    let record = state.store.head_bucket(name).await.map_err(|e| object_error(e, name))?;
    let (mut objects, mut bytes, mut after) = (0u64, 0u64, String::new());
    loop {
        let page = state.store.list_objects(name, "", &after, COUNT_BATCH).await;
        let page = page.map_err(|e| object_error(e, name))?;
        objects += page.len() as u64;
        bytes += page.iter().map(|o| o.size_bytes).sum::<u64>();
        match page.last() {
            Some(last) if page.len() == COUNT_BATCH => after = last.key.clone(),
            _ => break,
        }
    }
    let keys = grants_on(&state.keys, name).await?;
    let aliases = state.store.aliases_of(name).await.map_err(|e| object_error(e, name))?;
    let usage = state.store.bucket_usage(name).await.map_err(|e| object_error(e, name))?;
    // What the quotas are checked against: the counters, which may drift from the listing
    // (docs/operations.md, "Bucket quotas").
    let quotas = usage.map_or(Value::Null, |u| {
        json!({
            "max_size_bytes": u.quotas.max_size_bytes,
            "max_objects": u.quotas.max_objects,
            "counted_objects": u.objects,
            "counted_size_bytes": u.size_bytes,
        })
    });
    Ok(json!({
        "name": record.name,
        "created_ms": record.created_ms,
        "versioning": format!("{:?}", record.versioning),
        "objects": objects,
        "size_bytes": bytes,
        "quotas": quotas,
        "aliases": aliases,
        "keys": keys,
    }))
}

/// `{"max_size_bytes": N|null, "max_objects": N|null}`: a number sets the limit, `null`
/// removes it, a field left out keeps it.
pub async fn set_quotas(state: &AdminState, name: &str, body: &[u8]) -> Result<Value, AdminError> {
    let req: serde_json::Map<String, Value> = parse_body(body)?;
    let current = state.store.bucket_usage(name).await.map_err(|e| object_error(e, name))?;
    let mut quotas = current.map(|u| u.quotas).unwrap_or_default();
    for (field, value) in &req {
        let limit = match value {
            Value::Null => None,
            v => Some(v.as_u64().ok_or_else(|| {
                AdminError::bad_request(format!("{field}: a whole number of at least 0, or null"))
            })?),
        };
        match field.as_str() {
            "max_size_bytes" => quotas.max_size_bytes = limit,
            "max_objects" => quotas.max_objects = limit,
            other => {
                let problem = format!("unknown field {other:?} (max_size_bytes, max_objects)");
                return Err(AdminError::bad_request(problem));
            }
        }
    }
    let quotas: Quotas = quotas;
    state.store.set_bucket_quotas(name, quotas).await.map_err(|e| object_error(e, name))?;
    info(state, name).await
}

async fn grants_on(keys: &KeyStore, bucket: &str) -> Result<Vec<Value>, AdminError> {
    let mut out = Vec::new();
    for key in keys.list().await.map_err(key_error)? {
        let p = key.perms(bucket);
        if p.any() {
            out.push(json!({
                "id": key.id, "name": key.name, "read": p.read, "write": p.write, "owner": p.owner
            }));
        }
    }
    Ok(out)
}

pub async fn delete(state: &AdminState, name: &str) -> Result<Value, AdminError> {
    state.store.delete_bucket(name).await.map_err(|e| object_error(e, name))?;
    state.keys.revoke_bucket(name).await.map_err(key_error)?;
    Ok(json!({ "deleted": name }))
}

/// Grants (`allow = true`) or takes away the flags named in the body.
pub async fn set_grant(
    state: &AdminState,
    bucket: &str,
    body: &[u8],
    allow: bool,
) -> Result<Value, AdminError> {
    let req: Grant = parse_body(body)?;
    if !(req.read || req.write || req.owner) {
        return Err(AdminError::bad_request("name at least one of read, write, owner".into()));
    }
    state.store.head_bucket(bucket).await.map_err(|e| object_error(e, bucket))?;
    let key = state.keys.get_live(&req.key).await.map_err(key_error)?;
    let mut p = key.perms(bucket);
    let apply = |flag: &mut bool, named: bool| {
        if named {
            *flag = allow;
        }
    };
    apply(&mut p.read, req.read);
    apply(&mut p.write, req.write);
    apply(&mut p.owner, req.owner);
    let p: BucketPerms = p;
    state.keys.set_perms(&req.key, bucket, p).await.map_err(key_error)?;
    Ok(json!({
        "bucket": bucket, "key": req.key, "read": p.read, "write": p.write, "owner": p.owner
    }))
}
