//! `/v1/keys`: create, import, list, info, delete, allow create-bucket.

use hangar_engine::keys::{AccessKey, KeyError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AdminError, AdminState, parse_body};

/// A key as the API shows it. The secret only appears where the caller asked for it
/// (create, import, info with `show_secret`): listings never carry secrets.
pub fn key_json(key: &AccessKey, with_secret: bool) -> Value {
    let buckets: Vec<Value> = key
        .buckets
        .iter()
        .map(|(name, p)| {
            json!({ "bucket": name, "read": p.read, "write": p.write, "owner": p.owner })
        })
        .collect();
    let mut v = json!({
        "id": key.id,
        "name": key.name,
        "created_ms": key.created_ms,
        "allow_create_bucket": key.allow_create_bucket,
        "buckets": buckets,
    });
    if with_secret {
        v["secret"] = json!(key.secret);
    }
    v
}

pub fn key_error(e: KeyError) -> AdminError {
    match e {
        KeyError::NoSuchKey { .. } => AdminError::not_found("NoSuchKey", e.to_string()),
        KeyError::AlreadyExists { .. } | KeyError::Deleted { .. } => {
            AdminError::conflict("KeyConflict", e.to_string())
        }
        KeyError::InvalidId { .. } | KeyError::InvalidSecret { .. } => {
            AdminError::bad_request(e.to_string())
        }
        KeyError::Unavailable { reason } => AdminError::unavailable(reason),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    #[serde(default)]
    name: String,
    #[serde(default)]
    allow_create_bucket: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportKey {
    id: String,
    secret: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowKey {
    create_bucket: bool,
}

pub async fn create(state: &AdminState, body: &[u8]) -> Result<Value, AdminError> {
    let req: CreateKey = parse_body(body)?;
    let mut key = state.keys.create(&req.name).await.map_err(key_error)?;
    if req.allow_create_bucket {
        key = state.keys.set_allow_create_bucket(&key.id, true).await.map_err(key_error)?;
    }
    Ok(key_json(&key, true))
}

pub async fn import(state: &AdminState, body: &[u8]) -> Result<Value, AdminError> {
    let req: ImportKey = parse_body(body)?;
    let key = state.keys.import(&req.id, &req.secret, &req.name).await.map_err(key_error)?;
    Ok(key_json(&key, true))
}

pub async fn list(state: &AdminState) -> Result<Value, AdminError> {
    let keys = state.keys.list().await.map_err(key_error)?;
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| json!({ "id": k.id, "name": k.name, "created_ms": k.created_ms }))
        .collect();
    Ok(json!({ "keys": keys }))
}

pub async fn info(state: &AdminState, id: &str, show_secret: bool) -> Result<Value, AdminError> {
    let key = state.keys.get_live(id).await.map_err(key_error)?;
    Ok(key_json(&key, show_secret))
}

pub async fn delete(state: &AdminState, id: &str) -> Result<Value, AdminError> {
    state.keys.delete(id).await.map_err(key_error)?;
    Ok(json!({ "deleted": id }))
}

pub async fn allow(state: &AdminState, id: &str, body: &[u8]) -> Result<Value, AdminError> {
    let req: AllowKey = parse_body(body)?;
    let key = state.keys.set_allow_create_bucket(id, req.create_bucket).await;
    Ok(key_json(&key.map_err(key_error)?, false))
}
