//! ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode, header};

use super::backend::ObjectBackend;
use super::error::S3Error;
use super::router::valid_bucket_name;
use super::time::format_iso8601;
use super::xml::{XmlWriter, first_element_text};

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

/// Lists the buckets `visible` accepts (those the key has a permission on).
pub async fn list_buckets(
    backend: &dyn ObjectBackend,
    owner: &str,
    visible: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Response<Full<Bytes>>, S3Error> {
    let err = |e| S3Error::from_backend(e, "", "");
    let mut buckets = backend.list_buckets().await.map_err(err)?;
    buckets.retain(|b| visible(&b.name));
    // An alias is listed as a bucket of its own (a name clients can use), dated like its
    // bucket, wherever its bucket is.
    let aliases = backend.bucket_aliases().await.map_err(err)?;
    let dated: Vec<_> = aliases
        .into_iter()
        .filter_map(|(alias, bucket)| {
            let of = buckets.iter().find(|b| b.name == bucket)?;
            Some(super::BucketInfo { name: alias, created_ms: of.created_ms })
        })
        .collect();
    buckets.extend(dated);
    buckets.sort_by(|a, b| a.name.cmp(&b.name));
    let mut w = XmlWriter::new("ListAllMyBucketsResult", true);
    w.open("Owner");
    w.element("ID", owner);
    w.element("DisplayName", owner);
    w.close("Owner");
    w.open("Buckets");
    for b in &buckets {
        w.open("Bucket");
        w.element("Name", &b.name);
        w.element("CreationDate", &format_iso8601(b.created_ms));
        w.close("Bucket");
    }
    w.close("Buckets");
    Ok(super::xml_response(w.finish("ListAllMyBucketsResult")))
}

/// The optional body is `<CreateBucketConfiguration><LocationConstraint>`; a cluster
/// serves one region, so any other constraint is refused rather than silently ignored.
pub async fn create_bucket(
    backend: &dyn ObjectBackend,
    bucket: &str,
    region: &str,
    body: &[u8],
) -> Result<Response<Full<Bytes>>, S3Error> {
    if !valid_bucket_name(bucket) {
        return Err(S3Error::InvalidBucketName { bucket: bucket.to_string() });
    }
    let doc = std::str::from_utf8(body).map_err(|_| S3Error::InvalidRequest {
        reason: "CreateBucketConfiguration must be UTF-8 XML".into(),
    })?;
    if let Some(requested) = first_element_text(doc, "LocationConstraint") {
        let requested = requested.trim();
        if !requested.is_empty() && requested != region {
            return Err(S3Error::InvalidLocationConstraint { requested: requested.to_string() });
        }
    }
    backend.create_bucket(bucket).await.map_err(|e| S3Error::from_backend(e, bucket, ""))?;
    let mut resp = empty(StatusCode::OK);
    let location = header::HeaderValue::from_str(&format!("/{bucket}"))
        .expect("a valid bucket name is a valid header value");
    resp.headers_mut().insert(header::LOCATION, location);
    Ok(resp)
}

pub async fn head_bucket(
    backend: &dyn ObjectBackend,
    bucket: &str,
    region: &str,
) -> Result<Response<Full<Bytes>>, S3Error> {
    backend.head_bucket(bucket).await.map_err(|e| S3Error::from_backend(e, bucket, ""))?;
    let mut resp = empty(StatusCode::OK);
    if let Ok(value) = header::HeaderValue::from_str(region) {
        resp.headers_mut().insert("x-amz-bucket-region", value);
    }
    Ok(resp)
}

pub async fn delete_bucket(
    backend: &dyn ObjectBackend,
    bucket: &str,
) -> Result<Response<Full<Bytes>>, S3Error> {
    backend.delete_bucket(bucket).await.map_err(|e| S3Error::from_backend(e, bucket, ""))?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn get_bucket_location(
    backend: &dyn ObjectBackend,
    bucket: &str,
    region: &str,
) -> Result<Response<Full<Bytes>>, S3Error> {
    backend.head_bucket(bucket).await.map_err(|e| S3Error::from_backend(e, bucket, ""))?;
    // S3 reports its original region as an empty constraint; SDKs map that back.
    let constraint = if region == "us-east-1" { "" } else { region };
    let mut w = XmlWriter::new("LocationConstraint", true);
    w.text(constraint);
    Ok(super::xml_response(w.finish("LocationConstraint")))
}
