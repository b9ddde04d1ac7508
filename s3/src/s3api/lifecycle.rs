//! Bucket lifecycle configuration: PutBucketLifecycleConfiguration (`PUT ?lifecycle`),
//! GetBucketLifecycleConfiguration, DeleteBucketLifecycle. The engine's lifecycle worker
//! (`hangar_engine::objects::lifecycle`) applies the rules.
//!
//! What a rule may hold: `ID` (≤ 255 characters, unique), `Status` (`Enabled` /
//! `Disabled`), a filter — `Filter` with `Prefix`, `ObjectSizeGreaterThan`,
//! `ObjectSizeLessThan` or an `And` of them, or the older `Prefix` directly in the rule —
//! and the actions `Expiration` (`Days` > 0, or a `Date` at midnight UTC, or
//! `ExpiredObjectDeleteMarker` `true` alone), `NoncurrentVersionExpiration`
//! (`NoncurrentDays` > 0, optionally `NewerNoncurrentVersions` 1..=100) and
//! `AbortIncompleteMultipartUpload`
//! (`DaysAfterInitiation` > 0). The actions Hangar does not perform are refused with
//! NotImplemented naming the element (`Transition`, `NoncurrentVersionTransition`, and `Tag`
//! filters: Hangar has no object tags), so a client never believes a rule is in force when
//! it is not. As in S3, the body needs Content-MD5 or an `x-amz-checksum-*`
//! header.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::HeaderMap;
use hyper::{Response, StatusCode};

use super::backend::{Expiration, LifecycleRule, ObjectBackend};
use super::error::S3Error;
use super::time::{format_iso8601, parse_amz_date};
use super::xml::XmlWriter;
use super::xml_tree::{self, Element};

const ROOT: &str = "LifecycleConfiguration";
/// S3's limits: rules per configuration, characters per rule id.
pub const LIFECYCLE_RULES_MAX: usize = 1000;
const RULE_ID_CHARS_MAX: usize = 255;
/// Actions and filters S3 defines that Hangar does not perform.
const UNSUPPORTED: [&str; 2] = ["Transition", "NoncurrentVersionTransition"];
/// S3's bound on `NewerNoncurrentVersions`.
const NEWER_NONCURRENT_VERSIONS_MAX: u32 = 100;

fn invalid(reason: impl Into<String>) -> S3Error {
    S3Error::InvalidArgument { reason: reason.into() }
}

fn not_implemented(element: &str) -> S3Error {
    S3Error::NotImplemented { operation: format!("The lifecycle element {element}") }
}

/// Parses and validates a `LifecycleConfiguration` document.
pub fn parse_lifecycle(doc: &[u8]) -> Result<Vec<LifecycleRule>, S3Error> {
    let root = xml_tree::parse(doc, ROOT)?;
    if root.unknown_child(&["Rule"]).is_some() {
        return Err(S3Error::MalformedXML);
    }
    let rules = root.all("Rule").map(parse_rule).collect::<Result<Vec<_>, _>>()?;
    if rules.is_empty() {
        return Err(S3Error::MalformedXML);
    }
    if rules.len() > LIFECYCLE_RULES_MAX {
        return Err(invalid(format!(
            "A lifecycle configuration holds at most {LIFECYCLE_RULES_MAX} rules"
        )));
    }
    let mut ids: Vec<&str> = rules.iter().filter_map(|r| r.id.as_deref()).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid("Rule ID must be unique. Found same ID for more than one rule"));
    }
    Ok(rules)
}

fn parse_rule(rule: &Element) -> Result<LifecycleRule, S3Error> {
    for element in UNSUPPORTED {
        if rule.one(element)?.is_some() {
            return Err(not_implemented(element));
        }
    }
    let known = [
        "ID",
        "Status",
        "Filter",
        "Prefix",
        "Expiration",
        "AbortIncompleteMultipartUpload",
        "NoncurrentVersionExpiration",
    ];
    if rule.unknown_child(&known).is_some() {
        return Err(S3Error::MalformedXML);
    }
    let mut out =
        LifecycleRule { id: rule.text_of("ID")?.map(str::to_string), ..Default::default() };
    if out.id.as_ref().is_some_and(|id| id.chars().count() > RULE_ID_CHARS_MAX) {
        return Err(invalid("The rule ID may hold at most 255 characters"));
    }
    out.enabled = match rule.text_of("Status")? {
        Some("Enabled") => true,
        Some("Disabled") => false,
        _ => return Err(S3Error::MalformedXML),
    };
    match (rule.one("Filter")?, rule.text_of("Prefix")?) {
        (Some(_), Some(_)) => return Err(S3Error::MalformedXML),
        (Some(filter), None) => parse_filter(filter, &mut out)?,
        (None, prefix) => out.prefix = prefix.unwrap_or_default().to_string(),
    }
    if let Some(expiration) = rule.one("Expiration")? {
        match expiration.text_of("ExpiredObjectDeleteMarker")? {
            None => out.expiration = Some(parse_expiration(expiration)?),
            Some(flag) => out.expired_object_delete_marker = parse_delete_marker(expiration, flag)?,
        }
    }
    if let Some(noncurrent) = rule.one("NoncurrentVersionExpiration")? {
        parse_noncurrent(noncurrent, &mut out)?;
    }
    if let Some(abort) = rule.one("AbortIncompleteMultipartUpload")? {
        if abort.unknown_child(&["DaysAfterInitiation"]).is_some() {
            return Err(S3Error::MalformedXML);
        }
        let days = positive_days(abort.text_of("DaysAfterInitiation")?, "DaysAfterInitiation")?;
        out.abort_incomplete_upload_days = Some(days);
    }
    if out.expiration.is_none()
        && out.abort_incomplete_upload_days.is_none()
        && out.noncurrent_days.is_none()
        && !out.expired_object_delete_marker
    {
        return Err(invalid("At least one action needs to be specified in a rule"));
    }
    Ok(out)
}

/// `Filter`: empty, or one of `Prefix` / `ObjectSizeGreaterThan` / `ObjectSizeLessThan`, or
/// an `And` of several.
fn parse_filter(filter: &Element, out: &mut LifecycleRule) -> Result<(), S3Error> {
    const PARTS: [&str; 3] = ["Prefix", "ObjectSizeGreaterThan", "ObjectSizeLessThan"];
    if filter.one("Tag")?.is_some() {
        return Err(not_implemented("Filter/Tag (Hangar has no object tags)"));
    }
    let target = match filter.one("And")? {
        Some(and) if filter.children.len() == 1 => {
            if and.one("Tag")?.is_some() {
                return Err(not_implemented("Filter/And/Tag (Hangar has no object tags)"));
            }
            and
        }
        Some(_) => return Err(S3Error::MalformedXML),
        None if filter.children.len() > 1 => return Err(S3Error::MalformedXML),
        None => filter,
    };
    if target.unknown_child(&PARTS).is_some() {
        return Err(S3Error::MalformedXML);
    }
    out.prefix = target.text_of("Prefix")?.unwrap_or_default().to_string();
    let size = |name: &str| -> Result<Option<u64>, S3Error> {
        let Some(text) = target.text_of(name)? else { return Ok(None) };
        text.parse()
            .map(Some)
            .map_err(|_| invalid(format!("{name} must be a whole number of bytes")))
    };
    out.size_greater_than_bytes = size("ObjectSizeGreaterThan")?;
    out.size_less_than_bytes = size("ObjectSizeLessThan")?;
    if let (Some(min), Some(max)) = (out.size_greater_than_bytes, out.size_less_than_bytes)
        && min >= max
    {
        return Err(invalid("ObjectSizeGreaterThan must be less than ObjectSizeLessThan"));
    }
    Ok(())
}

/// `Expiration` holding `ExpiredObjectDeleteMarker`: alone (S3 refuses it next to `Days`
/// or `Date`), `true` or `false`.
fn parse_delete_marker(expiration: &Element, flag: &str) -> Result<bool, S3Error> {
    if expiration.unknown_child(&["ExpiredObjectDeleteMarker"]).is_some() {
        return Err(invalid(
            "ExpiredObjectDeleteMarker cannot be specified with Days or Date in a Lifecycle \
             Expiration Policy.",
        ));
    }
    match flag.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(S3Error::MalformedXML),
    }
}

/// `NoncurrentVersionExpiration`: `NoncurrentDays` > 0, and `NewerNoncurrentVersions`
/// between 1 and 100 if given.
fn parse_noncurrent(noncurrent: &Element, out: &mut LifecycleRule) -> Result<(), S3Error> {
    if noncurrent.unknown_child(&["NoncurrentDays", "NewerNoncurrentVersions"]).is_some() {
        return Err(S3Error::MalformedXML);
    }
    let days = noncurrent.text_of("NoncurrentDays")?;
    out.noncurrent_days = Some(positive_days(days, "NoncurrentDays")?);
    if let Some(newer) = noncurrent.text_of("NewerNoncurrentVersions")? {
        let newer = newer.trim().parse::<u32>().ok();
        let newer = newer.filter(|n| (1..=NEWER_NONCURRENT_VERSIONS_MAX).contains(n));
        out.newer_noncurrent_versions = Some(newer.ok_or_else(|| {
            invalid(format!(
                "'NewerNoncurrentVersions' must be between 1 and {NEWER_NONCURRENT_VERSIONS_MAX}"
            ))
        })?);
    }
    Ok(())
}

fn parse_expiration(expiration: &Element) -> Result<Expiration, S3Error> {
    if expiration.unknown_child(&["Days", "Date"]).is_some() {
        return Err(S3Error::MalformedXML);
    }
    match (expiration.text_of("Days")?, expiration.text_of("Date")?) {
        (Some(days), None) => Ok(Expiration::Days(positive_days(Some(days), "Days")?)),
        (None, Some(date)) => parse_midnight(date).map(Expiration::AtMs).ok_or_else(|| {
            invalid("'Date' must be at midnight UTC in ISO 8601, e.g. 2027-01-01T00:00:00.000Z")
        }),
        _ => Err(invalid("Expiration needs exactly one of Days and Date")),
    }
}

fn positive_days(text: Option<&str>, name: &str) -> Result<u32, S3Error> {
    let days = text.and_then(|t| t.parse::<u32>().ok()).filter(|&d| d > 0);
    days.ok_or_else(|| invalid(format!("'{name}' must be a positive integer")))
}

/// Milliseconds of `YYYY-MM-DDT00:00:00[.000…](Z|+00:00)`; `None` for any other instant.
pub fn parse_midnight(text: &str) -> Option<u64> {
    let (date, time) = text.split_once('T')?;
    let time = time.strip_suffix('Z').or_else(|| time.strip_suffix("+00:00"))?;
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    if hms != "00:00:00" || !fraction.bytes().all(|b| b == b'0') || fraction.is_empty() {
        return None;
    }
    let compact: String = date.split('-').collect();
    if date.len() != 10 || compact.len() != 8 {
        return None;
    }
    parse_amz_date(&format!("{compact}T000000Z"))
}

/// The GetBucketLifecycleConfiguration answer.
pub fn render_lifecycle(rules: &[LifecycleRule]) -> String {
    let mut w = XmlWriter::new(ROOT, true);
    for rule in rules {
        w.open("Rule");
        if let Some(id) = &rule.id {
            w.element("ID", id);
        }
        render_filter(&mut w, rule);
        w.element("Status", if rule.enabled { "Enabled" } else { "Disabled" });
        match rule.expiration {
            Some(Expiration::Days(days)) => {
                w.open("Expiration");
                w.element("Days", &days.to_string());
                w.close("Expiration");
            }
            Some(Expiration::AtMs(ms)) => {
                w.open("Expiration");
                w.element("Date", &format_iso8601(ms));
                w.close("Expiration");
            }
            None if rule.expired_object_delete_marker => {
                w.open("Expiration");
                w.element("ExpiredObjectDeleteMarker", "true");
                w.close("Expiration");
            }
            None => {}
        }
        if let Some(days) = rule.noncurrent_days {
            w.open("NoncurrentVersionExpiration");
            w.element("NoncurrentDays", &days.to_string());
            if let Some(newer) = rule.newer_noncurrent_versions {
                w.element("NewerNoncurrentVersions", &newer.to_string());
            }
            w.close("NoncurrentVersionExpiration");
        }
        if let Some(days) = rule.abort_incomplete_upload_days {
            w.open("AbortIncompleteMultipartUpload");
            w.element("DaysAfterInitiation", &days.to_string());
            w.close("AbortIncompleteMultipartUpload");
        }
        w.close("Rule");
    }
    w.finish(ROOT)
}

fn render_filter(w: &mut XmlWriter, rule: &LifecycleRule) {
    let mut parts: Vec<(&str, String)> = Vec::new();
    if !rule.prefix.is_empty() {
        parts.push(("Prefix", rule.prefix.clone()));
    }
    if let Some(min) = rule.size_greater_than_bytes {
        parts.push(("ObjectSizeGreaterThan", min.to_string()));
    }
    if let Some(max) = rule.size_less_than_bytes {
        parts.push(("ObjectSizeLessThan", max.to_string()));
    }
    w.open("Filter");
    let and = parts.len() > 1;
    if and {
        w.open("And");
    }
    parts.iter().for_each(|(name, value)| w.element(name, value));
    if and {
        w.close("And");
    }
    w.close("Filter");
}

fn stored(err: super::BackendError, bucket: &str) -> S3Error {
    S3Error::from_backend(err, bucket, "")
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

pub async fn get_bucket_lifecycle(
    backend: &dyn ObjectBackend,
    bucket: &str,
) -> Result<Response<Full<Bytes>>, S3Error> {
    let rules = backend.get_bucket_lifecycle(bucket).await.map_err(|e| stored(e, bucket))?;
    let rules = rules.ok_or(S3Error::NoSuchConfiguration {
        code: "NoSuchLifecycleConfiguration",
        message: "The lifecycle configuration does not exist",
    })?;
    Ok(super::xml_response(render_lifecycle(&rules)))
}

pub async fn put_bucket_lifecycle(
    backend: &dyn ObjectBackend,
    bucket: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response<Full<Bytes>>, S3Error> {
    super::delete_objects::check_body_integrity(headers, body)?;
    let rules = parse_lifecycle(body)?;
    backend.put_bucket_lifecycle(bucket, Some(rules)).await.map_err(|e| stored(e, bucket))?;
    Ok(empty(StatusCode::OK))
}

pub async fn delete_bucket_lifecycle(
    backend: &dyn ObjectBackend,
    bucket: &str,
) -> Result<Response<Full<Bytes>>, S3Error> {
    backend.put_bucket_lifecycle(bucket, None).await.map_err(|e| stored(e, bucket))?;
    Ok(empty(StatusCode::NO_CONTENT))
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
