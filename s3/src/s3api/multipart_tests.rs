use std::sync::Arc;

use http_body_util::BodyExt;

use super::*;
use crate::s3api::auth::PayloadHash;
use crate::s3api::backend::{ObjectMeta, PART_SIZE_BYTES_MIN};
use crate::s3api::memory::MemoryBackend;

fn doc(parts: &[(&str, &str)]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUpload \
         xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
    );
    for (n, etag) in parts {
        out.push_str(&format!("<Part><ETag>{etag}</ETag><PartNumber>{n}</PartNumber></Part>"));
    }
    out.push_str("</CompleteMultipartUpload>");
    out
}

#[test]
fn parses_what_sdks_send() {
    let body = doc(&[("1", "&quot;AB12&quot;"), ("2", "\"cd34\"")]);
    assert_eq!(
        parse_complete(body.as_bytes()),
        Ok(vec![(1, "ab12".to_string()), (2, "cd34".to_string())])
    );
    // Comments, CDATA, extra checksum elements, self-closing tags and prefixes are fine.
    let body = "<s3:CompleteMultipartUpload xmlns:s3='x>y'><!-- c --><s3:Part>\
                <PartNumber> 3 </PartNumber><ChecksumCRC32/><ETag><![CDATA[\"ef\"]]></ETag>\
                </s3:Part></s3:CompleteMultipartUpload>";
    assert_eq!(parse_complete(body.as_bytes()), Ok(vec![(3, "ef".to_string())]));
}

#[test]
fn malformed_documents_are_refused() {
    let bad = [
        "",
        "not xml",
        "<CompleteMultipartUpload></CompleteMultipartUpload>",
        "<Other><Part><PartNumber>1</PartNumber><ETag>a</ETag></Part></Other>",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><ETag>a</ETag></Part></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>a</ETag></Part>\
         </CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><PartNumber>2</PartNumber>\
         <ETag>a</ETag></Part></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>a</ETag></Part>",
        "<CompleteMultipartUpload><Part></CompleteMultipartUpload></Part>",
        "<!DOCTYPE x [<!ENTITY a \"b\">]><CompleteMultipartUpload/>",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&bogus;</ETag></Part>\
         </CompleteMultipartUpload>",
        "<CompleteMultipartUpload/><CompleteMultipartUpload/>",
        "text<CompleteMultipartUpload/>",
        "<CompleteMultipartUpload",
    ];
    for body in bad {
        assert_eq!(parse_complete(body.as_bytes()), Err(S3Error::MalformedXML), "{body}");
    }
    assert_eq!(parse_complete(&[0xff, 0xfe]), Err(S3Error::MalformedXML));
}

#[test]
fn truncated_and_mutated_documents_never_panic() {
    // Seeded, deterministic: every prefix of a valid document, and single-byte mutations.
    let body = doc(&[("1", "\"a&amp;b\""), ("2", "\"cd\"")]).into_bytes();
    for end in 0..body.len() {
        let _ = parse_complete(&body[..end]);
    }
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..5_000 {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let mut mutated = body.clone();
        let at = (state >> 33) as usize % mutated.len();
        mutated[at] = b"<>/&;\"' x#\0"[(state >> 20) as usize % 11];
        let _ = parse_complete(&mutated);
    }
}

#[test]
fn the_final_etag_is_the_md5_of_the_binary_part_md5s() {
    let (a, b) = (Md5::digest(b"part one"), Md5::digest(b"part two"));
    let parts = vec![(1, hex::encode(a)), (2, hex::encode(b))];
    let expected = hex::encode(Md5::digest([a.as_slice(), b.as_slice()].concat()));
    assert_eq!(multipart_etag(&parts), Ok(format!("{expected}-2")));
    let not_md5 = vec![(1, hex::encode(a)), (2, "zz".to_string())];
    assert_eq!(multipart_etag(&not_md5), Err(S3Error::InvalidPart { part_number: 2 }));
}

async fn text_of(resp: Response<Full<Bytes>>) -> (StatusCode, HeaderMap, String) {
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, String::from_utf8(bytes.to_vec()).unwrap())
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text.find(open).unwrap() + open.len();
    &text[start..start + text[start..].find(close).unwrap()]
}

#[tokio::test]
async fn a_whole_upload_over_the_memory_backend() {
    let backend = MemoryBackend::new(Arc::new(|| 1_000));
    backend.create_bucket("bk").await.unwrap();
    let headers = HeaderMap::new();
    let (_, _, created) = text_of(create(&backend, "bk", "k", &headers).await.unwrap()).await;
    let id = between(&created, "<UploadId>", "</UploadId>").to_string();
    let upload = ("bk", "k", id.as_str());
    let big = Bytes::from(vec![7u8; PART_SIZE_BYTES_MIN as usize]);
    let mut etags = Vec::new();
    for (n, body) in [(2, Bytes::from_static(b"tail")), (1, big.clone())] {
        let mut body = RequestBody::from_bytes(body, &headers, &PayloadHash::Unsigned).unwrap();
        let resp = upload_part(&backend, upload, n, &mut body).await.unwrap();
        etags.push((n, resp.headers()[header::ETAG].to_str().unwrap().to_string()));
    }
    etags.sort();
    let (_, _, listed) = text_of(list_uploads(&backend, "bk", &[]).await.unwrap()).await;
    assert!(listed.contains(&format!("<UploadId>{id}</UploadId>")), "{listed}");
    let (_, _, parts) = text_of(list_parts(&backend, upload, &[]).await.unwrap()).await;
    assert_eq!(parts.matches("<Part>").count(), 2, "{parts}");

    let doc_parts: Vec<(String, &str)> =
        etags.iter().map(|(n, e)| (n.to_string(), e.as_str())).collect();
    let as_refs: Vec<(&str, &str)> = doc_parts.iter().map(|(n, e)| (n.as_str(), *e)).collect();
    let wrong = doc(&[("1", "\"00000000000000000000000000000000\""), as_refs[1]]);
    let err = complete(&backend, upload, &HeaderMap::new(), wrong.as_bytes()).await.unwrap_err();
    assert_eq!(err, S3Error::InvalidPart { part_number: 1 });
    let (status, _, done) = text_of(
        complete(&backend, upload, &HeaderMap::new(), doc(&as_refs).as_bytes()).await.unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(between(&done, "<ETag>", "</ETag>").ends_with("-2&quot;"), "{done}");
    let (_, mut body) = backend.get_object("bk", "k", None).await.unwrap();
    let whole = body.next_chunk().await.unwrap().unwrap();
    assert_eq!(whole, [big, Bytes::from_static(b"tail")].concat());
    let (_, _, listed) = text_of(list_uploads(&backend, "bk", &[]).await.unwrap()).await;
    assert!(!listed.contains("<Upload>"), "{listed}");
    assert_eq!(abort(&backend, upload).await.unwrap_err(), S3Error::NoSuchUpload);
}

#[tokio::test]
async fn aborted_uploads_refuse_parts_and_abort_again_succeeds() {
    let backend = MemoryBackend::new(Arc::new(|| 1_000));
    backend.create_bucket("bk").await.unwrap();
    let id = backend.create_multipart_upload("bk", "k", ObjectMeta::default()).await.unwrap();
    let upload = ("bk", "k", id.as_str());
    let (status, _, _) = text_of(abort(&backend, upload).await.unwrap()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(abort(&backend, upload).await.is_ok());
    let mut empty =
        RequestBody::from_bytes(Bytes::new(), &HeaderMap::new(), &PayloadHash::Unsigned);
    let late = upload_part(&backend, upload, 1, empty.as_mut().unwrap()).await;
    assert_eq!(late.unwrap_err(), S3Error::NoSuchUpload);
    let missing = ("bk", "k", "nope");
    assert_eq!(list_parts(&backend, missing, &[]).await.unwrap_err(), S3Error::NoSuchUpload);
}
