//! S3 errors: one variant per S3 error code the layer can produce, each with the fields
//! its message needs. Clients branch on the code and the HTTP status, so both come from
//! one `match` each and are covered by a test.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode, header};

use super::backend::BackendError;
use super::xml::XmlWriter;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum S3Error {
    NoSuchBucket {
        bucket: String,
    },
    NoSuchKey {
        key: String,
    },
    /// NoSuchKey because the key's current version is a delete marker (S3 says so in
    /// `x-amz-delete-marker` and names the marker in `x-amz-version-id`).
    DeleteMarkerIsCurrent {
        key: String,
        version_id: String,
    },
    /// A GET or HEAD naming a delete marker's version id: S3 answers 405 MethodNotAllowed.
    VersionIsDeleteMarker {
        version_id: String,
    },
    NoSuchVersion {
        key: String,
    },
    BucketAlreadyOwnedByYou {
        bucket: String,
    },
    BucketNotEmpty {
        bucket: String,
    },
    InvalidBucketName {
        bucket: String,
    },
    KeyTooLong {
        length_bytes: usize,
    },
    AccessDenied {
        reason: &'static str,
    },
    /// A write refused by a bucket quota (403, the code Ceph RGW answers too).
    QuotaExceeded {
        message: String,
    },
    SignatureDoesNotMatch,
    InvalidAccessKeyId {
        access_key: String,
    },
    AuthorizationHeaderMalformed {
        reason: String,
        expected_region: Option<String>,
    },
    AuthorizationQueryParametersError {
        reason: String,
    },
    RequestTimeTooSkewed,
    /// x-amz-content-sha256 does not match the body.
    ContentSha256Mismatch,
    BadDigest,
    InvalidDigest,
    InvalidRange {
        size_bytes: u64,
    },
    /// `?partNumber=N` beyond the object's last part.
    InvalidPartNumber,
    PreconditionFailed,
    /// A conditional write (If-None-Match / If-Match on PUT or multipart completion) lost
    /// to concurrent writes of the key: 409, the client retries.
    ConditionalRequestConflict,
    EntityTooLarge {
        size_bytes_max: u64,
    },
    /// The request's headers add up to more than `limits::HEADER_SECTION_BYTES_MAX`.
    RequestHeaderSectionTooLarge {
        size_bytes: usize,
    },
    /// The `x-amz-meta-*` headers add up to more than `limits::USER_METADATA_BYTES_MAX`.
    MetadataTooLarge {
        size_bytes: usize,
    },
    IncompleteBody,
    /// The client stopped sending its body (`request_body::BODY_IDLE_TIMEOUT_MS`).
    RequestTimeout,
    /// An aws-chunked upload without `x-amz-decoded-content-length`.
    MissingContentLength,
    InvalidArgument {
        reason: String,
    },
    InvalidRequest {
        reason: String,
    },
    InvalidLocationConstraint {
        requested: String,
    },
    InvalidURI,
    NoSuchUpload,
    InvalidPart {
        part_number: u32,
    },
    InvalidPartOrder,
    EntityTooSmall {
        part_number: u32,
        size_bytes: u64,
    },
    /// A request document (CompleteMultipartUpload) that is not the XML S3 expects.
    MalformedXML,
    NotImplemented {
        operation: String,
    },
    ServiceUnavailable {
        reason: String,
    },
    InternalError {
        reason: String,
    },
    /// A CORS answer (`cors.rs`): NoSuchCORSConfiguration is 404, AccessForbidden (a
    /// refused preflight) 403, BadRequest (a preflight missing its headers) 400.
    Cors {
        code: &'static str,
        message: String,
    },
    /// A PostObject (browser form) refusal: S3's code for it, and its message.
    /// AccessDenied is 403 (a policy the form breaks), every other code 400.
    Post {
        code: &'static str,
        message: String,
    },
    /// A bucket setting that was never set (NoSuchWebsiteConfiguration,
    /// NoSuchLifecycleConfiguration): 404.
    NoSuchConfiguration {
        code: &'static str,
        message: &'static str,
    },
}

impl S3Error {
    pub fn code(&self) -> &'static str {
        match self {
            S3Error::NoSuchBucket { .. } => "NoSuchBucket",
            S3Error::NoSuchKey { .. } | S3Error::DeleteMarkerIsCurrent { .. } => "NoSuchKey",
            S3Error::VersionIsDeleteMarker { .. } => "MethodNotAllowed",
            S3Error::NoSuchVersion { .. } => "NoSuchVersion",
            S3Error::BucketAlreadyOwnedByYou { .. } => "BucketAlreadyOwnedByYou",
            S3Error::BucketNotEmpty { .. } => "BucketNotEmpty",
            S3Error::InvalidBucketName { .. } => "InvalidBucketName",
            S3Error::KeyTooLong { .. } => "KeyTooLongError",
            S3Error::AccessDenied { .. } => "AccessDenied",
            S3Error::QuotaExceeded { .. } => "QuotaExceeded",
            S3Error::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            S3Error::InvalidAccessKeyId { .. } => "InvalidAccessKeyId",
            S3Error::AuthorizationHeaderMalformed { .. } => "AuthorizationHeaderMalformed",
            S3Error::AuthorizationQueryParametersError { .. } => {
                "AuthorizationQueryParametersError"
            }
            S3Error::RequestTimeTooSkewed => "RequestTimeTooSkewed",
            S3Error::ContentSha256Mismatch => "XAmzContentSHA256Mismatch",
            S3Error::BadDigest => "BadDigest",
            S3Error::InvalidDigest => "InvalidDigest",
            S3Error::InvalidRange { .. } => "InvalidRange",
            S3Error::InvalidPartNumber => "InvalidPartNumber",
            S3Error::PreconditionFailed => "PreconditionFailed",
            S3Error::ConditionalRequestConflict => "ConditionalRequestConflict",
            S3Error::EntityTooLarge { .. } => "EntityTooLarge",
            S3Error::RequestHeaderSectionTooLarge { .. } => "RequestHeaderSectionTooLarge",
            S3Error::MetadataTooLarge { .. } => "MetadataTooLarge",
            S3Error::IncompleteBody => "IncompleteBody",
            S3Error::RequestTimeout => "RequestTimeout",
            S3Error::MissingContentLength => "MissingContentLength",
            S3Error::InvalidArgument { .. } => "InvalidArgument",
            S3Error::InvalidRequest { .. } => "InvalidRequest",
            S3Error::InvalidLocationConstraint { .. } => "InvalidLocationConstraint",
            S3Error::InvalidURI => "InvalidURI",
            S3Error::NoSuchUpload => "NoSuchUpload",
            S3Error::InvalidPart { .. } => "InvalidPart",
            S3Error::InvalidPartOrder => "InvalidPartOrder",
            S3Error::EntityTooSmall { .. } => "EntityTooSmall",
            S3Error::Post { code, .. } => code,
            S3Error::Cors { code, .. } => code,
            S3Error::MalformedXML => "MalformedXML",
            S3Error::NotImplemented { .. } => "NotImplemented",
            S3Error::ServiceUnavailable { .. } => "ServiceUnavailable",
            S3Error::InternalError { .. } => "InternalError",
            S3Error::NoSuchConfiguration { code, .. } => code,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            S3Error::NoSuchBucket { .. }
            | S3Error::NoSuchKey { .. }
            | S3Error::DeleteMarkerIsCurrent { .. }
            | S3Error::NoSuchVersion { .. }
            | S3Error::NoSuchUpload
            | S3Error::NoSuchConfiguration { .. } => StatusCode::NOT_FOUND,
            S3Error::VersionIsDeleteMarker { .. } => StatusCode::METHOD_NOT_ALLOWED,
            S3Error::BucketAlreadyOwnedByYou { .. } | S3Error::BucketNotEmpty { .. } => {
                StatusCode::CONFLICT
            }
            S3Error::AccessDenied { .. }
            | S3Error::QuotaExceeded { .. }
            | S3Error::SignatureDoesNotMatch
            | S3Error::InvalidAccessKeyId { .. }
            | S3Error::RequestTimeTooSkewed => StatusCode::FORBIDDEN,
            S3Error::InvalidRange { .. } | S3Error::InvalidPartNumber => {
                StatusCode::RANGE_NOT_SATISFIABLE
            }
            S3Error::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            S3Error::ConditionalRequestConflict => StatusCode::CONFLICT,
            S3Error::MissingContentLength => StatusCode::LENGTH_REQUIRED,
            S3Error::NotImplemented { .. } => StatusCode::NOT_IMPLEMENTED,
            S3Error::ServiceUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            S3Error::InternalError { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            S3Error::Post { code: "AccessDenied", .. } => StatusCode::FORBIDDEN,
            S3Error::Post { .. } => StatusCode::BAD_REQUEST,
            S3Error::Cors { code: "NoSuchCORSConfiguration", .. } => StatusCode::NOT_FOUND,
            S3Error::Cors { code: "AccessForbidden", .. } => StatusCode::FORBIDDEN,
            S3Error::Cors { .. } => StatusCode::BAD_REQUEST,
            S3Error::InvalidBucketName { .. }
            | S3Error::KeyTooLong { .. }
            | S3Error::AuthorizationHeaderMalformed { .. }
            | S3Error::AuthorizationQueryParametersError { .. }
            | S3Error::ContentSha256Mismatch
            | S3Error::BadDigest
            | S3Error::InvalidDigest
            | S3Error::EntityTooLarge { .. }
            | S3Error::RequestHeaderSectionTooLarge { .. }
            | S3Error::MetadataTooLarge { .. }
            | S3Error::IncompleteBody
            | S3Error::RequestTimeout
            | S3Error::InvalidArgument { .. }
            | S3Error::InvalidRequest { .. }
            | S3Error::InvalidLocationConstraint { .. }
            | S3Error::InvalidURI
            | S3Error::InvalidPart { .. }
            | S3Error::InvalidPartOrder
            | S3Error::EntityTooSmall { .. }
            | S3Error::MalformedXML => StatusCode::BAD_REQUEST,
        }
    }

    /// The human-readable message. Internal reasons are logged, not sent: they may name
    /// nodes and paths a client has no business seeing.
    pub fn message(&self) -> String {
        match self {
            S3Error::NoSuchBucket { bucket } => format!("The bucket '{bucket}' does not exist"),
            S3Error::NoSuchKey { key } | S3Error::DeleteMarkerIsCurrent { key, .. } => {
                format!("The key '{key}' does not exist")
            }
            S3Error::VersionIsDeleteMarker { .. } => {
                "The specified method is not allowed against this resource.".to_string()
            }
            S3Error::NoSuchVersion { key } => {
                format!("The specified version of '{key}' does not exist.")
            }
            S3Error::BucketAlreadyOwnedByYou { bucket } => {
                format!("The bucket '{bucket}' already exists and is owned by you")
            }
            S3Error::BucketNotEmpty { bucket } => {
                format!("The bucket '{bucket}' you tried to delete is not empty")
            }
            S3Error::InvalidBucketName { bucket } => {
                format!("The specified bucket name '{bucket}' is not valid")
            }
            S3Error::KeyTooLong { length_bytes } => {
                format!("Your key is too long ({length_bytes} bytes, at most 1024)")
            }
            S3Error::AccessDenied { reason } => (*reason).to_string(),
            S3Error::QuotaExceeded { message } => message.clone(),
            S3Error::Post { message, .. } => message.clone(),
            S3Error::Cors { message, .. } => message.clone(),
            S3Error::NoSuchConfiguration { message, .. } => (*message).to_string(),
            S3Error::SignatureDoesNotMatch => "The request signature we calculated does not \
                match the signature you provided. Check your key and signing method."
                .to_string(),
            S3Error::InvalidAccessKeyId { .. } => {
                "The AWS Access Key Id you provided does not exist in our records.".to_string()
            }
            S3Error::AuthorizationHeaderMalformed { reason, .. } => {
                format!("The authorization header is malformed; {reason}")
            }
            S3Error::AuthorizationQueryParametersError { reason } => reason.clone(),
            S3Error::RequestTimeTooSkewed => "The difference between the request time and \
                the server's time is too large."
                .to_string(),
            S3Error::ContentSha256Mismatch => {
                "The provided 'x-amz-content-sha256' header does not match what was computed."
                    .to_string()
            }
            S3Error::BadDigest => "The Content-MD5 or checksum value that you specified did \
                not match what the server received."
                .to_string(),
            S3Error::InvalidDigest => "The Content-MD5 you specified is not valid.".to_string(),
            S3Error::InvalidRange { .. } => "The requested range is not satisfiable".to_string(),
            S3Error::InvalidPartNumber => "The requested partnumber is not satisfiable".into(),
            S3Error::PreconditionFailed => {
                "At least one of the pre-conditions you specified did not hold".to_string()
            }
            S3Error::ConditionalRequestConflict => "A conflicting conditional operation is \
                currently in progress against this resource. Please try again."
                .to_string(),
            S3Error::EntityTooLarge { size_bytes_max } => {
                format!("Your proposed upload exceeds the maximum of {size_bytes_max} bytes")
            }
            S3Error::RequestHeaderSectionTooLarge { size_bytes } => format!(
                "Your request's headers are {size_bytes} bytes; at most {} are allowed",
                super::limits::HEADER_SECTION_BYTES_MAX
            ),
            S3Error::MetadataTooLarge { size_bytes } => format!(
                "Your metadata headers (x-amz-meta-*) are {size_bytes} bytes; at most {} are \
                 allowed",
                super::limits::USER_METADATA_BYTES_MAX
            ),
            S3Error::IncompleteBody => {
                "The request body ended early, or was longer than declared".to_string()
            }
            S3Error::RequestTimeout => "Your socket connection to the server was not read from \
                or written to within the timeout period."
                .to_string(),
            S3Error::MissingContentLength => {
                "aws-chunked uploads need x-amz-decoded-content-length".to_string()
            }
            S3Error::InvalidArgument { reason } | S3Error::InvalidRequest { reason } => {
                reason.clone()
            }
            S3Error::InvalidLocationConstraint { requested } => {
                format!("The specified location-constraint '{requested}' is not valid")
            }
            S3Error::InvalidURI => "Couldn't parse the specified URI.".to_string(),
            S3Error::NoSuchUpload => "The specified multipart upload does not exist. The upload \
                ID might be invalid, or the upload might have been aborted or completed."
                .to_string(),
            S3Error::InvalidPart { part_number } => format!(
                "Part {part_number} could not be found, or its entity tag did not match the \
                 part's entity tag."
            ),
            S3Error::InvalidPartOrder => {
                "The list of parts was not in ascending order by part number.".to_string()
            }
            S3Error::EntityTooSmall { part_number, size_bytes } => format!(
                "Your proposed upload is smaller than the minimum allowed size: part \
                 {part_number} has {size_bytes} bytes, parts but the last need 5 MiB."
            ),
            S3Error::MalformedXML => "The XML you provided was not well-formed or did not \
                validate against our published schema."
                .to_string(),
            S3Error::NotImplemented { operation } => {
                format!("{operation} is not implemented by this server")
            }
            S3Error::ServiceUnavailable { .. } => "Please reduce your request rate.".to_string(),
            S3Error::InternalError { .. } => {
                "We encountered an internal error. Please try again.".to_string()
            }
        }
    }

    /// The S3 XML error response. HEAD responses carry no body, so only the status and
    /// headers tell the client what went wrong.
    pub fn to_response(
        &self,
        resource: &str,
        request_id: &str,
        head: bool,
    ) -> Response<Full<Bytes>> {
        let mut w = XmlWriter::new("Error", false);
        w.element("Code", self.code());
        w.element("Message", &self.message());
        w.element("Resource", resource);
        w.element("RequestId", request_id);
        if let S3Error::AuthorizationHeaderMalformed { expected_region: Some(region), .. } = self {
            w.element("Region", region);
        }
        let body = if head { Bytes::new() } else { Bytes::from(w.finish("Error")) };
        let mut builder = Response::builder()
            .status(self.status())
            .header(header::CONTENT_TYPE, "application/xml");
        if let S3Error::InvalidRange { size_bytes } = self {
            builder = builder.header(header::CONTENT_RANGE, format!("bytes */{size_bytes}"));
        }
        if let S3Error::AuthorizationHeaderMalformed { expected_region: Some(region), .. } = self {
            builder = builder.header("x-amz-bucket-region", region.as_str());
        }
        if let S3Error::DeleteMarkerIsCurrent { version_id, .. }
        | S3Error::VersionIsDeleteMarker { version_id } = self
        {
            builder = builder.header("x-amz-delete-marker", "true");
            builder = builder.header("x-amz-version-id", version_id.as_str());
        }
        builder.body(Full::new(body)).expect("static error response headers are valid")
    }

    /// Maps a backend answer to the S3 error of the request that got it.
    pub fn from_backend(err: BackendError, bucket: &str, key: &str) -> S3Error {
        match err {
            BackendError::NoSuchBucket => S3Error::NoSuchBucket { bucket: bucket.to_string() },
            BackendError::NoSuchKey => S3Error::NoSuchKey { key: key.to_string() },
            BackendError::NoSuchVersion => S3Error::NoSuchVersion { key: key.to_string() },
            BackendError::DeleteMarker { version_id } => {
                S3Error::DeleteMarkerIsCurrent { key: key.to_string(), version_id }
            }
            BackendError::BucketAlreadyOwnedByYou => {
                S3Error::BucketAlreadyOwnedByYou { bucket: bucket.to_string() }
            }
            BackendError::BucketNotEmpty => S3Error::BucketNotEmpty { bucket: bucket.to_string() },
            BackendError::QuotaExceeded { message } => S3Error::QuotaExceeded { message },
            BackendError::NoSuchUpload => S3Error::NoSuchUpload,
            BackendError::InvalidPart { part_number } => S3Error::InvalidPart { part_number },
            BackendError::InvalidPartOrder => S3Error::InvalidPartOrder,
            BackendError::EntityTooSmall { part_number, size_bytes } => {
                S3Error::EntityTooSmall { part_number, size_bytes }
            }
            // The S3 layer answers its own refusal; a backend that refuses alone saw the
            // body break off.
            BackendError::BodyRefused { .. } => S3Error::IncompleteBody,
            BackendError::Unavailable { reason } => S3Error::ServiceUnavailable { reason },
            BackendError::Internal { reason } => S3Error::InternalError { reason },
            BackendError::PreconditionFailed => S3Error::PreconditionFailed,
            BackendError::ConditionalConflict => S3Error::ConditionalRequestConflict,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn statuses_match_s3() {
        let cases = [
            (S3Error::NoSuchKey { key: "k".into() }, 404),
            (S3Error::BucketNotEmpty { bucket: "b".into() }, 409),
            (S3Error::SignatureDoesNotMatch, 403),
            (S3Error::InvalidAccessKeyId { access_key: "x".into() }, 403),
            (S3Error::InvalidRange { size_bytes: 3 }, 416),
            (S3Error::InvalidPartNumber, 416),
            (S3Error::NotImplemented { operation: "x".into() }, 501),
            (S3Error::ServiceUnavailable { reason: "x".into() }, 503),
            (S3Error::InvalidBucketName { bucket: "B".into() }, 400),
            (S3Error::NoSuchUpload, 404),
            (S3Error::InvalidPart { part_number: 2 }, 400),
            (S3Error::InvalidPartOrder, 400),
            (S3Error::EntityTooSmall { part_number: 1, size_bytes: 5 }, 400),
            (S3Error::MalformedXML, 400),
            (S3Error::NoSuchVersion { key: "k".into() }, 404),
            (S3Error::DeleteMarkerIsCurrent { key: "k".into(), version_id: "v".into() }, 404),
            (S3Error::VersionIsDeleteMarker { version_id: "v".into() }, 405),
            (S3Error::PreconditionFailed, 412),
            (S3Error::ConditionalRequestConflict, 409),
            (S3Error::RequestHeaderSectionTooLarge { size_bytes: 9000 }, 400),
            (S3Error::MetadataTooLarge { size_bytes: 3000 }, 400),
        ];
        for (err, status) in cases {
            assert_eq!(err.status().as_u16(), status, "{}", err.code());
        }
    }

    #[tokio::test]
    async fn error_document_names_code_resource_and_region() {
        let err = S3Error::AuthorizationHeaderMalformed {
            reason: "the region 'eu-west-1' is wrong; expecting 'us-east-1'".into(),
            expected_region: Some("us-east-1".into()),
        };
        let resp = err.to_response("/bk/a<b", "REQ1", false);
        assert_eq!(resp.status(), 400);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let text = std::str::from_utf8(&body).unwrap();
        assert!(text.contains("<Code>AuthorizationHeaderMalformed</Code>"), "{text}");
        assert!(text.contains("<Resource>/bk/a&lt;b</Resource>"), "{text}");
        assert!(text.contains("<RequestId>REQ1</RequestId>"), "{text}");
        assert!(text.contains("<Region>us-east-1</Region>"), "{text}");
    }

    #[test]
    fn delete_marker_errors_say_so_in_headers() {
        let current = S3Error::DeleteMarkerIsCurrent { key: "k".into(), version_id: "v1".into() };
        let named = S3Error::VersionIsDeleteMarker { version_id: "v2".into() };
        for (err, code, version) in
            [(current, "NoSuchKey", "v1"), (named, "MethodNotAllowed", "v2")]
        {
            assert_eq!(err.code(), code);
            let resp = err.to_response("/bk/k", "REQ", true);
            assert_eq!(resp.headers()["x-amz-delete-marker"], "true");
            assert_eq!(resp.headers()["x-amz-version-id"], version);
        }
        let plain = S3Error::NoSuchKey { key: "k".into() }.to_response("/bk/k", "REQ", true);
        assert!(plain.headers().get("x-amz-delete-marker").is_none());
    }

    #[test]
    fn internal_reasons_are_not_sent() {
        let err = S3Error::from_backend(
            BackendError::Internal { reason: "disk /dev/sdb3 on node-7".into() },
            "b",
            "k",
        );
        assert_eq!(err.code(), "InternalError");
        assert!(!err.message().contains("sdb3"));
    }
}
