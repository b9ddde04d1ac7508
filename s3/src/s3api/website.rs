//! Bucket website configuration: PutBucketWebsite / GetBucketWebsite / DeleteBucketWebsite.
//! The endpoint that serves the sites is `web.rs`.
//!
//! What Hangar keeps of S3's `WebsiteConfiguration`: `IndexDocument/Suffix` (required, not
//! empty, no `/`) and `ErrorDocument/Key` (optional). `RedirectAllRequestsTo` and
//! `RoutingRules` are understood but refused with NotImplemented naming the element, so a
//! client never believes a redirect is in place when it is not. Any other element is
//! MalformedXML. A Content-MD5 or checksum header, when sent, is checked against the body.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::HeaderMap;
use hyper::{Response, StatusCode};

use super::backend::{ObjectBackend, WebsiteConfig};
use super::checksum;
use super::error::S3Error;
use super::router::KEY_BYTES_MAX;
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
    for unsupported in ["RedirectAllRequestsTo", "RoutingRules"] {
        if root.one(unsupported)?.is_some() {
            let operation = format!("The website configuration element {unsupported}");
            return Err(S3Error::NotImplemented { operation });
        }
    }
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
    Ok(WebsiteConfig { index_suffix: suffix.to_string(), error_key })
}

fn invalid(reason: &str) -> S3Error {
    S3Error::InvalidArgument { reason: reason.to_string() }
}

/// The GetBucketWebsite answer.
pub fn render_website(config: &WebsiteConfig) -> String {
    let mut w = XmlWriter::new(ROOT, true);
    w.open("IndexDocument");
    w.element("Suffix", &config.index_suffix);
    w.close("IndexDocument");
    if let Some(key) = &config.error_key {
        w.open("ErrorDocument");
        w.element("Key", key);
        w.close("ErrorDocument");
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
        };
        assert_eq!(parsed, want);
        assert_eq!(parse_website(render_website(&want).as_bytes()), Ok(want));
    }

    #[test]
    fn refuses_what_it_does_not_implement_and_what_is_malformed() {
        let redirect =
            doc("<RedirectAllRequestsTo><HostName>x.example</HostName></RedirectAllRequestsTo>");
        let err = parse_website(&redirect).unwrap_err();
        assert_eq!(err.code(), "NotImplemented");
        assert!(err.message().contains("RedirectAllRequestsTo"), "{}", err.message());
        let rules = doc("<IndexDocument><Suffix>i.html</Suffix></IndexDocument><RoutingRules/>");
        assert!(parse_website(&rules).unwrap_err().message().contains("RoutingRules"));
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
