//! Bucket website configuration: PutBucketWebsite / GetBucketWebsite / DeleteBucketWebsite.
//! The endpoint that serves the sites is `web.rs`.
//!
//! What Hangar keeps of S3's `WebsiteConfiguration`: `IndexDocument/Suffix` (required, not
//! empty, no `/`), `ErrorDocument/Key` (optional) and `RoutingRules`; or
//! `RedirectAllRequestsTo` alone (`website_routing.rs` parses, renders and applies both).
//! Any other element is MalformedXML. A Content-MD5 or checksum header, when sent, is
//! checked against the body.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::HeaderMap;
use hyper::{Response, StatusCode};

use super::backend::{ObjectBackend, WebsiteConfig};
use super::checksum;
use super::error::S3Error;
use super::router::KEY_BYTES_MAX;
use super::website_routing;
use super::xml::XmlWriter;
use super::xml_tree;

const ROOT: &str = "WebsiteConfiguration";

/// Parses and validates a `WebsiteConfiguration` document.
pub fn parse_website(doc: &[u8]) -> Result<WebsiteConfig, S3Error> {
    let root = xml_tree::parse(doc, ROOT)?;
    let known = ["IndexDocument", "ErrorDocument", "RedirectAllRequestsTo", "RoutingRules"];
    if root.unknown_child(&known).is_some() {
        return Err(S3Error::MalformedXML);
    }
    if let Some(all) = root.one("RedirectAllRequestsTo")? {
        if root.children.len() > 1 {
            return Err(invalid(
                "RedirectAllRequestsTo cannot be provided in conjunction with other \
                 Routing/Website configurations.",
            ));
        }
        let redirect_all = Some(website_routing::parse_redirect_all(all)?);
        return Ok(WebsiteConfig { redirect_all, ..WebsiteConfig::default() });
    }
    let routing_rules = match root.one("RoutingRules")? {
        None => Vec::new(),
        Some(rules) => website_routing::parse_routing_rules(rules)?,
    };
    let index = root.one("IndexDocument")?.ok_or_else(|| invalid("IndexDocument is required"))?;
    if index.unknown_child(&["Suffix"]).is_some() {
        return Err(S3Error::MalformedXML);
    }
    let suffix = index.text_of("Suffix")?.unwrap_or_default();
    if suffix.is_empty() || suffix.contains('/') || suffix.len() > KEY_BYTES_MAX {
        return Err(invalid("The IndexDocument Suffix is not well formed"));
    }
    let error_key = match root.one("ErrorDocument")? {
        None => None,
        Some(error) => {
            if error.unknown_child(&["Key"]).is_some() {
                return Err(S3Error::MalformedXML);
            }
            let key = error.text_of("Key")?.unwrap_or_default();
            if key.is_empty() || key.len() > KEY_BYTES_MAX {
                return Err(invalid("The ErrorDocument Key is not well formed"));
            }
            Some(key.to_string())
        }
    };
    Ok(WebsiteConfig {
        index_suffix: suffix.to_string(),
        error_key,
        redirect_all: None,
        routing_rules,
    })
}

fn invalid(reason: &str) -> S3Error {
    S3Error::InvalidArgument { reason: reason.to_string() }
}

/// The GetBucketWebsite answer.
pub fn render_website(config: &WebsiteConfig) -> String {
    let mut w = XmlWriter::new(ROOT, true);
    if let Some(all) = &config.redirect_all {
        website_routing::render_redirect_all(&mut w, all);
        return w.finish(ROOT);
    }
    w.open("IndexDocument");
    w.element("Suffix", &config.index_suffix);
    w.close("IndexDocument");
    if let Some(key) = &config.error_key {
        w.open("ErrorDocument");
        w.element("Key", key);
        w.close("ErrorDocument");
    }
    if !config.routing_rules.is_empty() {
        website_routing::render_routing_rules(&mut w, &config.routing_rules);
    }
    w.finish(ROOT)
}

fn stored(err: super::BackendError, bucket: &str) -> S3Error {
    S3Error::from_backend(err, bucket, "")
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

/// The S3 error of a bucket without a website configuration.
pub fn no_such_website() -> S3Error {
    S3Error::NoSuchConfiguration {
        code: "NoSuchWebsiteConfiguration",
        message: "The specified bucket does not have a website configuration",
    }
}

/// Checks Content-MD5 or an `x-amz-checksum-*` value when the client sent one (S3 does
/// not require one for this operation).
pub(super) fn check_integrity_if_sent(headers: &HeaderMap, body: &[u8]) -> Result<(), S3Error> {
    let has_checksum = matches!(checksum::expected(headers)?, Some(e) if e.value.is_some());
    if headers.contains_key("content-md5") || has_checksum {
        super::delete_objects::check_body_integrity(headers, body)?;
    }
    Ok(())
}

pub async fn get_bucket_website(
    backend: &dyn ObjectBackend,
    bucket: &str,
) -> Result<Response<Full<Bytes>>, S3Error> {
    let config = backend.get_bucket_website(bucket).await.map_err(|e| stored(e, bucket))?;
    let config = config.ok_or_else(no_such_website)?;
    Ok(super::xml_response(render_website(&config)))
}

pub async fn put_bucket_website(
    backend: &dyn ObjectBackend,
    bucket: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response<Full<Bytes>>, S3Error> {
    check_integrity_if_sent(headers, body)?;
    let config = parse_website(body)?;
    backend.put_bucket_website(bucket, Some(config)).await.map_err(|e| stored(e, bucket))?;
    Ok(empty(StatusCode::OK))
}

pub async fn delete_bucket_website(
    backend: &dyn ObjectBackend,
    bucket: &str,
) -> Result<Response<Full<Bytes>>, S3Error> {
    backend.put_bucket_website(bucket, None).await.map_err(|e| stored(e, bucket))?;
    Ok(empty(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(inner: &str) -> Vec<u8> {
        format!("<WebsiteConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{inner}</WebsiteConfiguration>")
            .into_bytes()
    }

    #[test]
    fn parses_index_and_error_documents_and_renders_them_back() {
        let parsed =
            parse_website(&doc("<IndexDocument><Suffix>index.html</Suffix></IndexDocument>\
             <ErrorDocument><Key>err/404.html</Key></ErrorDocument>"))
            .unwrap();
        let want = WebsiteConfig {
            index_suffix: "index.html".into(),
            error_key: Some("err/404.html".into()),
            ..WebsiteConfig::default()
        };
        assert_eq!(parsed, want);
        assert_eq!(parse_website(render_website(&want).as_bytes()), Ok(want));
    }

    #[test]
    fn redirects_parse_and_render_back() {
        let all = doc("<RedirectAllRequestsTo><HostName>x.example</HostName>\
                       <Protocol>https</Protocol></RedirectAllRequestsTo>");
        let parsed = parse_website(&all).unwrap();
        let host = parsed.redirect_all.as_ref().and_then(|r| r.host_name.as_deref());
        assert_eq!(host, Some("x.example"));
        assert_eq!(parse_website(render_website(&parsed).as_bytes()), Ok(parsed));
        let rules = doc("<IndexDocument><Suffix>i.html</Suffix></IndexDocument><RoutingRules>\
             <RoutingRule><Condition><KeyPrefixEquals>docs/</KeyPrefixEquals></Condition>\
             <Redirect><ReplaceKeyPrefixWith>documents/</ReplaceKeyPrefixWith></Redirect>\
             </RoutingRule><RoutingRule><Condition><HttpErrorCodeReturnedEquals>404\
             </HttpErrorCodeReturnedEquals></Condition><Redirect><HostName>h.example</HostName>\
             <HttpRedirectCode>302</HttpRedirectCode></Redirect></RoutingRule></RoutingRules>");
        let parsed = parse_website(&rules).unwrap();
        assert_eq!(parsed.routing_rules.len(), 2);
        assert_eq!(parsed.routing_rules[1].http_error_code_returned_equals, Some(404));
        assert_eq!(parse_website(render_website(&parsed).as_bytes()), Ok(parsed));
    }

    #[test]
    fn refuses_what_is_malformed_or_invalid() {
        let index = "<IndexDocument><Suffix>i</Suffix></IndexDocument>";
        let rule = |inner: &str| {
            format!("{index}<RoutingRules><RoutingRule>{inner}</RoutingRule></RoutingRules>")
        };
        for (inner, code) in [
            (format!("{index}<RedirectAllRequestsTo><HostName>h</HostName></RedirectAllRequestsTo>"), "InvalidArgument"),
            ("<RedirectAllRequestsTo><Protocol>http</Protocol></RedirectAllRequestsTo>".into(), "InvalidArgument"),
            ("<RedirectAllRequestsTo><HostName>h</HostName><Protocol>ftp</Protocol></RedirectAllRequestsTo>".into(), "InvalidArgument"),
            (format!("{index}<RoutingRules/>"), "MalformedXML"),
            (rule("<Redirect><ReplaceKeyWith>a</ReplaceKeyWith><ReplaceKeyPrefixWith>b</ReplaceKeyPrefixWith></Redirect>"), "InvalidArgument"),
            (rule("<Redirect><HttpRedirectCode>200</HttpRedirectCode></Redirect>"), "InvalidArgument"),
            (rule("<Condition><HttpErrorCodeReturnedEquals>302</HttpErrorCodeReturnedEquals></Condition><Redirect><HostName>h</HostName></Redirect>"), "InvalidArgument"),
            (rule("<Condition/><Redirect><HostName>h</HostName></Redirect>"), "InvalidArgument"),
            (rule("<Redirect/>"), "InvalidArgument"),
            (rule("<Condition><KeyPrefixEquals>a</KeyPrefixEquals></Condition>"), "MalformedXML"),
            (rule("<Redirect><Other>x</Other></Redirect>"), "MalformedXML"),
        ] {
            assert_eq!(parse_website(&doc(&inner)).unwrap_err().code(), code, "{inner}");
        }
        for (inner, code) in [
            ("", "InvalidArgument"),
            ("<IndexDocument><Suffix></Suffix></IndexDocument>", "InvalidArgument"),
            ("<IndexDocument><Suffix>a/b.html</Suffix></IndexDocument>", "InvalidArgument"),
            (
                "<IndexDocument><Suffix>i</Suffix></IndexDocument><ErrorDocument/>",
                "InvalidArgument",
            ),
            ("<IndexDocument><Suffix>i</Suffix></IndexDocument><Other/>", "MalformedXML"),
            ("<IndexDocument><Suffix>i</Suffix><X/></IndexDocument>", "MalformedXML"),
        ] {
            assert_eq!(parse_website(&doc(inner)).unwrap_err().code(), code, "{inner}");
        }
        assert_eq!(parse_website(b"<CORSConfiguration/>"), Err(S3Error::MalformedXML));
    }
}
