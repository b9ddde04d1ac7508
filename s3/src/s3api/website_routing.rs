//! Website redirects: `RedirectAllRequestsTo`, `RoutingRules`, and an object's own
//! `x-amz-website-redirect-location`. Parsed and rendered for Put/GetBucketWebsite
//! (`website.rs`), applied by the website endpoint (`web.rs`).
//!
//! S3's semantics, which clients and browsers rely on:
//! - `RedirectAllRequestsTo` (HostName, optional Protocol) sends every request, path kept,
//!   to another host with 301; it excludes every other element of the configuration.
//! - A `RoutingRule` matches when its `Condition` holds — `KeyPrefixEquals` on the
//!   requested key, and/or `HttpErrorCodeReturnedEquals` on the status the request would
//!   get (4xx/5xx) — and redirects: to `HostName` / `Protocol` (the request's when absent),
//!   with the key replaced whole (`ReplaceKeyWith`) or its matched prefix replaced
//!   (`ReplaceKeyPrefixWith`; never both), with `HttpRedirectCode` (3xx, 301 by default).
//!   The first matching rule wins. A rule without a condition matches every request.
//! - An object stored with `x-amz-website-redirect-location` (`/path` or an `http(s)://`
//!   URL) is answered with 301 to it instead of its body.

use std::collections::BTreeMap;

use hyper::HeaderMap;

use super::backend::{RoutingRule, WebsiteRedirect};
use super::error::S3Error;
use super::xml::XmlWriter;
use super::xml_tree::Element;

/// S3's limit on routing rules per configuration.
pub const ROUTING_RULES_MAX: usize = 50;
/// Where an object's redirect location is kept in its metadata (a leading space: no HTTP
/// header name can produce it, as for stored checksums).
pub const OBJECT_REDIRECT_KEY: &str = " website-redirect-location";
/// The header that sets and reports it.
pub const OBJECT_REDIRECT_HEADER: &str = "x-amz-website-redirect-location";
/// Longest redirect location S3 accepts.
const REDIRECT_LOCATION_BYTES_MAX: usize = 2048;

fn invalid(reason: impl Into<String>) -> S3Error {
    S3Error::InvalidArgument { reason: reason.into() }
}

// ---- parsing ----

/// `RedirectAllRequestsTo`: a HostName, and a Protocol if any.
pub fn parse_redirect_all(element: &Element) -> Result<WebsiteRedirect, S3Error> {
    if element.unknown_child(&["HostName", "Protocol"]).is_some() {
        return Err(S3Error::MalformedXML);
    }
    let host_name = host(element.text_of("HostName")?)?;
    if host_name.is_none() {
        return Err(invalid("RedirectAllRequestsTo needs a HostName"));
    }
    let protocol = protocol(element.text_of("Protocol")?)?;
    Ok(WebsiteRedirect { host_name, protocol, ..WebsiteRedirect::default() })
}

/// `RoutingRules`: 1 to `ROUTING_RULES_MAX` `RoutingRule`s.
pub fn parse_routing_rules(element: &Element) -> Result<Vec<RoutingRule>, S3Error> {
    if element.unknown_child(&["RoutingRule"]).is_some() {
        return Err(S3Error::MalformedXML);
    }
    let rules = element.all("RoutingRule").map(parse_rule).collect::<Result<Vec<_>, _>>()?;
    if rules.is_empty() {
        return Err(S3Error::MalformedXML);
    }
    if rules.len() > ROUTING_RULES_MAX {
        return Err(invalid(format!("At most {ROUTING_RULES_MAX} routing rules are allowed")));
    }
    Ok(rules)
}

fn parse_rule(rule: &Element) -> Result<RoutingRule, S3Error> {
    if rule.unknown_child(&["Condition", "Redirect"]).is_some() {
        return Err(S3Error::MalformedXML);
    }
    let mut out = RoutingRule::default();
    if let Some(condition) = rule.one("Condition")? {
        let known = ["KeyPrefixEquals", "HttpErrorCodeReturnedEquals"];
        if condition.unknown_child(&known).is_some() {
            return Err(S3Error::MalformedXML);
        }
        out.key_prefix_equals = condition.text_of("KeyPrefixEquals")?.map(str::to_string);
        if let Some(code) = condition.text_of("HttpErrorCodeReturnedEquals")? {
            let code = status_code(code).filter(|c| (400..600).contains(c)).ok_or_else(|| {
                invalid(format!(
                    "The provided HTTP error code ({code}) is not valid. Valid codes are 4XX \
                     or 5XX."
                ))
            })?;
            out.http_error_code_returned_equals = Some(code);
        }
        if out.key_prefix_equals.is_none() && out.http_error_code_returned_equals.is_none() {
            return Err(invalid(
                "Condition cannot be empty. To redirect all requests without \
                                a condition, the condition element shouldn't be present.",
            ));
        }
    }
    let redirect = rule.one("Redirect")?.ok_or(S3Error::MalformedXML)?;
    let known =
        ["HostName", "Protocol", "ReplaceKeyPrefixWith", "ReplaceKeyWith", "HttpRedirectCode"];
    if redirect.unknown_child(&known).is_some() {
        return Err(S3Error::MalformedXML);
    }
    let r = &mut out.redirect;
    r.host_name = host(redirect.text_of("HostName")?)?;
    r.protocol = protocol(redirect.text_of("Protocol")?)?;
    r.replace_key_prefix_with = redirect.text_of("ReplaceKeyPrefixWith")?.map(str::to_string);
    r.replace_key_with = redirect.text_of("ReplaceKeyWith")?.map(str::to_string);
    if r.replace_key_prefix_with.is_some() && r.replace_key_with.is_some() {
        return Err(invalid("You can only define ReplaceKeyPrefix or ReplaceKey but not both."));
    }
    if let Some(code) = redirect.text_of("HttpRedirectCode")? {
        let code = status_code(code).filter(|c| (301..400).contains(c)).ok_or_else(|| {
            invalid(format!(
                "The provided HTTP redirect code ({code}) is not valid. Valid codes are 3XX \
                 except 300."
            ))
        })?;
        r.http_redirect_code = Some(code);
    }
    if *r == WebsiteRedirect::default() {
        return Err(invalid(
            "Redirect must have at least one of HostName, Protocol, \
                            ReplaceKeyPrefixWith, ReplaceKeyWith or HttpRedirectCode",
        ));
    }
    Ok(out)
}

fn status_code(text: &str) -> Option<u16> {
    text.trim().parse::<u16>().ok()
}

fn host(text: Option<&str>) -> Result<Option<String>, S3Error> {
    match text.map(str::trim) {
        None => Ok(None),
        Some(h) if h.is_empty() || h.contains(['/', ' ', '\\', '?', '#', '@']) => {
            Err(invalid(format!("The HostName {h:?} is not a host name")))
        }
        Some(h) => Ok(Some(h.to_string())),
    }
}

fn protocol(text: Option<&str>) -> Result<Option<String>, S3Error> {
    match text.map(str::trim) {
        None => Ok(None),
        Some(p @ ("http" | "https")) => Ok(Some(p.to_string())),
        Some(_) => Err(invalid(
            "Invalid protocol, protocol can be http or https. If not defined the protocol \
             will be selected automatically.",
        )),
    }
}

// ---- rendering (GetBucketWebsite) ----

pub fn render_redirect_all(w: &mut XmlWriter, r: &WebsiteRedirect) {
    w.open("RedirectAllRequestsTo");
    if let Some(host) = &r.host_name {
        w.element("HostName", host);
    }
    if let Some(protocol) = &r.protocol {
        w.element("Protocol", protocol);
    }
    w.close("RedirectAllRequestsTo");
}

pub fn render_routing_rules(w: &mut XmlWriter, rules: &[RoutingRule]) {
    w.open("RoutingRules");
    for rule in rules {
        w.open("RoutingRule");
        if rule.key_prefix_equals.is_some() || rule.http_error_code_returned_equals.is_some() {
            w.open("Condition");
            if let Some(code) = rule.http_error_code_returned_equals {
                w.element("HttpErrorCodeReturnedEquals", &code.to_string());
            }
            if let Some(prefix) = &rule.key_prefix_equals {
                w.element("KeyPrefixEquals", prefix);
            }
            w.close("Condition");
        }
        let r = &rule.redirect;
        w.open("Redirect");
        for (name, value) in [
            ("HostName", &r.host_name),
            ("HttpRedirectCode", &r.http_redirect_code.map(|c| c.to_string())),
            ("Protocol", &r.protocol),
            ("ReplaceKeyPrefixWith", &r.replace_key_prefix_with),
            ("ReplaceKeyWith", &r.replace_key_with),
        ] {
            if let Some(value) = value {
                w.element(name, value);
            }
        }
        w.close("Redirect");
        w.close("RoutingRule");
    }
    w.close("RoutingRules");
}

// ---- serving ----

/// A redirect to answer: status and `Location`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub location: String,
}

/// The request being redirected: its host (as sent) and protocol.
pub struct Origin<'r> {
    pub host: &'r str,
    pub protocol: &'r str,
}

/// Where `RedirectAllRequestsTo` sends a request for `path` (kept as sent).
pub fn redirect_all(r: &WebsiteRedirect, path: &str, origin: &Origin) -> Answer {
    let protocol = r.protocol.as_deref().unwrap_or(origin.protocol);
    let host = r.host_name.as_deref().unwrap_or(origin.host);
    Answer { status: 301, location: format!("{protocol}://{host}{path}") }
}

/// The first rule matching `key` and the status the request would get (`None` before the
/// object is read: only rules without an error-code condition can match then).
pub fn matching_rule<'c>(
    rules: &'c [RoutingRule],
    key: &str,
    status: Option<u16>,
) -> Option<&'c RoutingRule> {
    rules.iter().find(|rule| {
        rule.key_prefix_equals.as_deref().is_none_or(|p| key.starts_with(p))
            && rule.http_error_code_returned_equals == status
    })
}

/// Where a matching rule sends a request for `key`.
pub fn apply(rule: &RoutingRule, key: &str, origin: &Origin) -> Answer {
    let r = &rule.redirect;
    let new_key = match (&r.replace_key_with, &r.replace_key_prefix_with) {
        (Some(whole), _) => whole.clone(),
        (None, Some(prefix)) => {
            let matched = rule.key_prefix_equals.as_deref().unwrap_or("");
            format!("{prefix}{}", key.strip_prefix(matched).unwrap_or(key))
        }
        (None, None) => key.to_string(),
    };
    let protocol = r.protocol.as_deref().unwrap_or(origin.protocol);
    let host = r.host_name.as_deref().unwrap_or(origin.host);
    let path = super::encoding::uri_encode(&new_key, false);
    Answer {
        status: r.http_redirect_code.unwrap_or(301),
        location: format!("{protocol}://{host}/{path}"),
    }
}

// ---- an object's own redirect ----

/// The `x-amz-website-redirect-location` of a PutObject, as metadata to store: it must
/// start with `/`, `http://` or `https://` (else InvalidArgument, as S3).
pub fn object_redirect(headers: &HeaderMap) -> Result<Option<(String, String)>, S3Error> {
    let Some(value) = headers.get(OBJECT_REDIRECT_HEADER) else { return Ok(None) };
    let location = value.to_str().map_err(|_| invalid("The redirect location is not ASCII"))?;
    let allowed = ["/", "http://", "https://"].iter().any(|p| location.starts_with(p));
    if !allowed || location.len() > REDIRECT_LOCATION_BYTES_MAX {
        return Err(invalid(
            "The website redirect location must have a prefix of 'http://' or 'https://' \
             or '/'.",
        ));
    }
    Ok(Some((OBJECT_REDIRECT_KEY.to_string(), location.to_string())))
}

/// An object's stored redirect location, if any.
pub fn object_redirect_of(user_metadata: &BTreeMap<String, String>) -> Option<&str> {
    user_metadata.get(OBJECT_REDIRECT_KEY).map(String::as_str)
}

#[cfg(test)]
#[path = "website_routing_tests.rs"]
mod tests;
