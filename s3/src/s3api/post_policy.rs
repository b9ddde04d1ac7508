//! The policy document of a PostObject form: its expiration and conditions, checked
//! against the form's fields.
//!
//! The policy is what the key's owner signed, so it is the only thing that limits what a
//! browser holding the form may upload: every field the form sends (but the few S3
//! exempts) must be named by a condition, otherwise a user could add fields (metadata, a
//! redirect) the signer never allowed.

use serde_json::Value;

use super::error::S3Error;
use super::time::parse_amz_date;

/// Fields a policy need not mention (S3's list; `x-ignore-*` by prefix).
const EXEMPT_FIELDS: [&str; 3] = ["x-amz-signature", "file", "policy"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// `{"field": "v"}` or `["eq", "$field", "v"]`; the name lower-cased, without `$`.
    Eq(String, String),
    StartsWith(String, String),
    /// `["content-length-range", min, max]`, both inclusive.
    LengthRange(u64, u64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub expiration_ms: u64,
    pub conditions: Vec<Condition>,
}

fn invalid(reason: &str) -> S3Error {
    S3Error::Post { code: "InvalidPolicyDocument", message: format!("Invalid Policy: {reason}") }
}

pub fn denied(reason: &str) -> S3Error {
    S3Error::Post {
        code: "AccessDenied",
        message: format!("Invalid according to Policy: {reason}"),
    }
}

/// `2026-11-26T12:00:00Z` or `…:00.000Z` (the ISO 8601 forms clients write).
fn parse_expiration(s: &str) -> Option<u64> {
    let (date, time) = s.strip_suffix('Z')?.split_once('T')?;
    let time = time
        .split_once('.')
        .map_or(time, |(t, frac)| if frac.bytes().all(|c| c.is_ascii_digit()) { t } else { "" });
    let compact = format!("{}T{}Z", date.replace('-', ""), time.replace(':', ""));
    (date.len() == 10 && time.len() == 8).then_some(())?;
    parse_amz_date(&compact)
}

fn field_name(value: &Value) -> Result<String, S3Error> {
    let name = value.as_str().and_then(|s| s.strip_prefix('$'));
    let name = name.ok_or_else(|| invalid("a condition must name a field as \"$name\""))?;
    Ok(name.to_ascii_lowercase())
}

fn number(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| value.as_str()?.trim().parse().ok())
}

fn parse_condition(value: &Value) -> Result<Condition, S3Error> {
    if let Some(object) = value.as_object() {
        let [(name, expected)] = object.iter().collect::<Vec<_>>()[..] else {
            return Err(invalid("a condition object must have exactly one entry"));
        };
        let expected = expected.as_str().ok_or_else(|| invalid("condition values are strings"))?;
        return Ok(Condition::Eq(name.to_ascii_lowercase(), expected.to_string()));
    }
    let Some([op, a, b]) = value.as_array().map(Vec::as_slice) else {
        return Err(invalid("a condition is an object or an array of three elements"));
    };
    let text = |v: &Value| v.as_str().map(str::to_string).ok_or_else(|| invalid("not a string"));
    match op.as_str().map(str::to_ascii_lowercase).as_deref() {
        Some("eq") => Ok(Condition::Eq(field_name(a)?, text(b)?)),
        Some("starts-with") => Ok(Condition::StartsWith(field_name(a)?, text(b)?)),
        Some("content-length-range") => match (number(a), number(b)) {
            (Some(min), Some(max)) if min <= max => Ok(Condition::LengthRange(min, max)),
            _ => Err(invalid("content-length-range needs two byte counts, min <= max")),
        },
        _ => Err(invalid("unknown condition operator")),
    }
}

/// The policy from its decoded JSON text.
pub fn parse(json: &[u8]) -> Result<Policy, S3Error> {
    let doc: Value = serde_json::from_slice(json).map_err(|_| invalid("not a JSON document"))?;
    let expiration = doc.get("expiration").and_then(Value::as_str);
    let expiration = expiration.ok_or_else(|| invalid("Policy missing expiration."))?;
    let expiration_ms =
        parse_expiration(expiration).ok_or_else(|| invalid("Invalid 'expiration' value."))?;
    let conditions = doc.get("conditions").and_then(Value::as_array);
    let conditions = conditions.ok_or_else(|| invalid("Policy missing conditions."))?;
    let conditions = conditions.iter().map(parse_condition).collect::<Result<_, _>>()?;
    Ok(Policy { expiration_ms, conditions })
}

impl Policy {
    /// The content-length-range, if the policy sets one.
    pub fn length_range(&self) -> Option<(u64, u64)> {
        self.conditions.iter().find_map(|c| match c {
            Condition::LengthRange(min, max) => Some((*min, *max)),
            _ => None,
        })
    }

    /// Checks expiration and every condition against `fields` (lower-case names; the
    /// bucket is among them, taken from the request path, and `key` after `${filename}`).
    pub fn check(&self, now_ms: u64, fields: &[(String, String)]) -> Result<(), S3Error> {
        if now_ms >= self.expiration_ms {
            return Err(denied("Policy expired."));
        }
        let get = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        for condition in &self.conditions {
            let ok = match condition {
                Condition::Eq(name, expected) => get(name) == Some(expected.as_str()),
                Condition::StartsWith(name, prefix) => {
                    get(name).is_some_and(|v| v.starts_with(prefix.as_str()))
                }
                Condition::LengthRange(..) => true,
            };
            if !ok {
                return Err(denied(&format!("Policy Condition failed: {}", describe(condition))));
            }
        }
        for (name, _) in fields {
            let exempt = EXEMPT_FIELDS.contains(&name.as_str()) || name.starts_with("x-ignore-");
            let covered = self.conditions.iter().any(|c| match c {
                Condition::Eq(n, _) | Condition::StartsWith(n, _) => n == name,
                Condition::LengthRange(..) => false,
            });
            if !exempt && !covered {
                return Err(denied(&format!("Extra input fields: {name}")));
            }
        }
        Ok(())
    }
}

/// A condition as S3 quotes it in its refusal.
fn describe(condition: &Condition) -> String {
    match condition {
        Condition::Eq(name, v) => format!("[\"eq\", \"${name}\", \"{v}\"]"),
        Condition::StartsWith(name, v) => format!("[\"starts-with\", \"${name}\", \"{v}\"]"),
        Condition::LengthRange(min, max) => format!("[\"content-length-range\", {min}, {max}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const DOC: &str = r#"{"expiration": "2026-11-26T12:00:00.000Z", "conditions": [
        {"bucket": "bk"}, ["starts-with", "$key", "up/"], {"Content-Type": "text/plain"},
        ["content-length-range", 1, "100"], ["eq", "$x-amz-meta-a", "1"]]}"#;

    fn good() -> Vec<(String, String)> {
        fields(&[
            ("bucket", "bk"),
            ("key", "up/a.txt"),
            ("content-type", "text/plain"),
            ("x-amz-meta-a", "1"),
            ("policy", "…"),
            ("x-amz-signature", "…"),
            ("x-ignore-me", "anything"),
        ])
    }

    #[test]
    fn parses_every_condition_form() {
        let policy = parse(DOC.as_bytes()).unwrap();
        assert_eq!(policy.expiration_ms, parse_amz_date("20261126T120000Z").unwrap());
        assert_eq!(policy.length_range(), Some((1, 100)));
        assert_eq!(policy.conditions[2], Condition::Eq("content-type".into(), "text/plain".into()));
        assert_eq!(policy.conditions[4], Condition::Eq("x-amz-meta-a".into(), "1".into()));
        let no_frac = r#"{"expiration": "2026-11-26T12:00:00Z", "conditions": []}"#;
        assert_eq!(parse(no_frac.as_bytes()).unwrap().expiration_ms, policy.expiration_ms);
    }

    #[test]
    fn malformed_policies_are_invalid_policy_documents() {
        for bad in [
            "not json",
            r#"{"conditions": []}"#,
            r#"{"expiration": "tomorrow", "conditions": []}"#,
            r#"{"expiration": "2026-11-26T12:00:00Z"}"#,
            r#"{"expiration": "2026-11-26T12:00:00Z", "conditions": [["in", "$key", "a"]]}"#,
            r#"{"expiration": "2026-11-26T12:00:00Z", "conditions": [["eq", "key", "a"]]}"#,
            r#"{"expiration": "2026-11-26T12:00:00Z", "conditions": [{"a": "1", "b": "2"}]}"#,
            r#"{"expiration": "2026-11-26T12:00:00Z",
                "conditions": [["content-length-range", 10, 1]]}"#,
        ] {
            assert_eq!(parse(bad.as_bytes()).unwrap_err().code(), "InvalidPolicyDocument", "{bad}");
        }
    }

    #[test]
    fn conditions_expiry_and_extra_fields_are_enforced() {
        let policy = parse(DOC.as_bytes()).unwrap();
        let before = policy.expiration_ms - 1;
        assert_eq!(policy.check(before, &good()), Ok(()));
        let expired = policy.check(policy.expiration_ms, &good()).unwrap_err();
        assert_eq!(expired.message(), "Invalid according to Policy: Policy expired.");
        assert_eq!(expired.status(), hyper::StatusCode::FORBIDDEN);

        let mut wrong_prefix = good();
        wrong_prefix[1].1 = "other/a.txt".into();
        let err = policy.check(before, &wrong_prefix).unwrap_err();
        assert_eq!(err.code(), "AccessDenied");
        assert_eq!(
            err.message(),
            "Invalid according to Policy: Policy Condition failed: [\"starts-with\", \"$key\", \
             \"up/\"]"
        );
        let mut wrong_type = good();
        wrong_type[2].1 = "text/html".into();
        assert!(policy.check(before, &wrong_type).unwrap_err().message().contains("content-type"));
        let missing: Vec<_> = good().into_iter().filter(|(n, _)| n != "x-amz-meta-a").collect();
        assert_eq!(policy.check(before, &missing).unwrap_err().code(), "AccessDenied");

        let mut extra = good();
        extra.push(("success_action_redirect".into(), "http://evil/".into()));
        assert_eq!(
            policy.check(before, &extra).unwrap_err().message(),
            "Invalid according to Policy: Extra input fields: success_action_redirect"
        );
    }
}
