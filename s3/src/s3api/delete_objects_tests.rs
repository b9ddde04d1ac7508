//! DeleteObjects: the document, the integrity header, and the per-key answers over the
//! memory backend (3 keys, a missing one, quiet mode, versioned delete markers).

use std::sync::Arc;

use hangar_engine::objects::body::VecSource;
use http_body_util::BodyExt;
use hyper::header::HeaderValue;

use super::*;
use crate::s3api::backend::{ObjectBackend, ObjectMeta};
use crate::s3api::encoding::base64_encode;
use crate::s3api::memory::MemoryBackend;

fn doc(keys: &[(&str, Option<&str>)], quiet: bool) -> String {
    let mut s = String::from("<?xml version=\"1.0\"?><Delete xmlns=\"x\">");
    for (key, version) in keys {
        s += &format!("<Object><Key>{key}</Key>");
        if let Some(v) = version {
            s += &format!("<VersionId>{v}</VersionId>");
        }
        s += "</Object>";
    }
    if quiet {
        s += "<Quiet>true</Quiet>";
    }
    s + "</Delete>"
}

fn md5_headers(body: &[u8]) -> HeaderMap {
    let mut h = HeaderMap::new();
    let md5 = base64_encode(&Md5::digest(body));
    h.insert("content-md5", HeaderValue::from_str(&md5).unwrap());
    h
}

#[test]
fn parses_keys_versions_and_quiet() {
    let id = "0000018f00000000000000000000000a";
    let parsed = parse_delete(doc(&[("a &amp; b", None), ("c", Some(id))], true).as_bytes());
    let want = DeleteRequest {
        objects: vec![
            ToDelete { key: "a & b".into(), version_id: None },
            ToDelete { key: "c".into(), version_id: Some(id.into()) },
        ],
        quiet: true,
    };
    assert_eq!(parsed, Ok(want));
}

#[test]
fn malformed_documents_are_refused() {
    let keys: Vec<String> = (0..=KEYS_MAX).map(|i| format!("k{i}")).collect();
    let too_many: Vec<(&str, Option<&str>)> = keys.iter().map(|k| (k.as_str(), None)).collect();
    let bad = [
        doc(&too_many, false),
        doc(&[], false),
        "<Delete><Object><VersionId>1</VersionId></Object></Delete>".into(),
        "<Other><Object><Key>k</Key></Object></Other>".into(),
        "<Delete><Object><Key>k</Key></Object><Quiet>maybe</Quiet></Delete>".into(),
        "<Delete><Object><Key>k</Key></Object>".into(),
    ];
    for d in bad {
        assert_eq!(parse_delete(d.as_bytes()), Err(S3Error::MalformedXML), "{d:.80}");
    }
    assert!(parse_delete(doc(&too_many[..KEYS_MAX], false).as_bytes()).is_ok(), "1000 is fine");
}

#[test]
fn the_body_needs_a_matching_md5_or_checksum() {
    let body = doc(&[("k", None)], false);
    assert_eq!(check_body_integrity(&md5_headers(body.as_bytes()), body.as_bytes()), Ok(()));
    let err = check_body_integrity(&md5_headers(b"other"), body.as_bytes());
    assert_eq!(err, Err(S3Error::BadDigest));
    let missing = check_body_integrity(&HeaderMap::new(), body.as_bytes()).unwrap_err();
    assert_eq!(missing.code(), "InvalidRequest");
    let mut crc = HeaderMap::new();
    let mut hasher = Hasher::new(checksum::Algorithm::Crc32);
    hasher.update(body.as_bytes());
    crc.insert("x-amz-checksum-crc32", HeaderValue::from_str(&hasher.finish()).unwrap());
    assert_eq!(check_body_integrity(&crc, body.as_bytes()), Ok(()));
    assert_eq!(check_body_integrity(&crc, b"tampered"), Err(S3Error::BadDigest));
}

async fn put(backend: &MemoryBackend, key: &str) -> String {
    let mut body = VecSource::new(b"x".to_vec(), "etag".into());
    let put = backend.put_object("bk", key, ObjectMeta::default(), &mut body).await;
    put.unwrap().version_id
}

async fn run(backend: &Arc<dyn ObjectBackend>, body: &str) -> String {
    let headers = md5_headers(body.as_bytes());
    let resp = delete_objects(backend, "bk", &headers, body.as_bytes()).await.unwrap();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn deletes_each_key_and_answers_per_key() {
    let memory = Arc::new(MemoryBackend::new(Arc::new(|| 1_000)));
    memory.create_bucket("bk").await.unwrap();
    for key in ["a", "b", "c"] {
        put(&memory, key).await;
    }
    let backend: Arc<dyn ObjectBackend> = memory.clone();
    let body = doc(&[("a", None), ("b", None), ("c", None), ("missing", None)], false);
    let answer = run(&backend, &body).await;
    for key in ["a", "b", "c", "missing"] {
        assert!(answer.contains(&format!("<Deleted><Key>{key}</Key></Deleted>")), "{answer}");
    }
    assert!(!answer.contains("<Error>") && !answer.contains("DeleteMarker"), "{answer}");
    assert!(backend.list_objects("bk", "", "", 10).await.unwrap().is_empty());

    // Quiet: only errors are listed (here a version id Hangar never issues).
    put(&memory, "d").await;
    let quiet = run(&backend, &doc(&[("d", None), ("e", Some("null"))], true)).await;
    assert!(!quiet.contains("<Deleted>"), "{quiet}");
    assert!(quiet.contains("<Error><Key>e</Key><VersionId>null</VersionId><Code>NoSuchVersion"));

    // Versioned: a marker per key, named; deleting the marker by id says it was one.
    backend.put_bucket_versioning("bk", Versioning::Enabled).await.unwrap();
    put(&memory, "v").await;
    let answer = run(&backend, &doc(&[("v", None)], false)).await;
    let marker = answer.split("<DeleteMarkerVersionId>").nth(1).unwrap();
    let marker = &marker[..32];
    assert!(answer.contains("<DeleteMarker>true</DeleteMarker>"), "{answer}");
    let answer = run(&backend, &doc(&[("v", Some(marker))], false)).await;
    let want = format!(
        "<Deleted><Key>v</Key><VersionId>{marker}</VersionId><DeleteMarker>true</DeleteMarker>\
         <DeleteMarkerVersionId>{marker}</DeleteMarkerVersionId></Deleted>"
    );
    assert!(answer.contains(&want), "{answer}");
}
