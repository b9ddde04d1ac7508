use std::sync::Arc;

use hangar_engine::objects::body::VecSource;

use super::*;
use crate::s3api::backend::ObjectMeta;
use crate::s3api::memory::MemoryBackend;
use crate::s3api::xml::S3_NAMESPACE;

const ENABLED: &str = "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                       <Status>Enabled</Status></VersioningConfiguration>";

#[test]
fn parses_versioning_configurations() {
    assert_eq!(parse_versioning(ENABLED.as_bytes()), Ok(Versioning::Enabled));
    let suspended = "<?xml version=\"1.0\"?>\n<VersioningConfiguration>\n  <MfaDelete>Disabled\
                     </MfaDelete>\n  <Status> Suspended </Status>\n</VersioningConfiguration>";
    assert_eq!(parse_versioning(suspended.as_bytes()), Ok(Versioning::Suspended));
}

#[test]
fn malformed_versioning_configurations_are_refused() {
    for bad in [
        "",
        "not xml",
        "<VersioningConfiguration></VersioningConfiguration>",
        "<VersioningConfiguration><Status>On</Status></VersioningConfiguration>",
        "<VersioningConfiguration><Status>Enabled</Status>",
        "<Other><Status>Enabled</Status></Other>",
        "<VersioningConfiguration><Status>Enabled</Status><Status>Suspended</Status>\
         </VersioningConfiguration>",
        "<VersioningConfiguration><Status><X>Enabled</X></Status></VersioningConfiguration>",
        "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration><More/>",
        "<VersioningConfiguration>junk<Status>Enabled</Status></VersioningConfiguration>",
    ] {
        assert_eq!(parse_versioning(bad.as_bytes()), Err(S3Error::MalformedXML), "{bad}");
    }
    let mfa = "<VersioningConfiguration><Status>Enabled</Status><MfaDelete>Enabled</MfaDelete>\
               </VersioningConfiguration>";
    assert_eq!(parse_versioning(mfa.as_bytes()).unwrap_err().code(), "NotImplemented");
}

#[test]
fn renders_versioning_states() {
    let never = render_versioning(Versioning::Unversioned);
    let empty =
        format!("<VersioningConfiguration xmlns=\"{S3_NAMESPACE}\"></VersioningConfiguration>");
    assert!(never.ends_with(&empty), "{never}");
    assert!(render_versioning(Versioning::Enabled).contains("<Status>Enabled</Status>"));
    assert!(render_versioning(Versioning::Suspended).contains("<Status>Suspended</Status>"));
    // What we render, we read back.
    for state in [Versioning::Enabled, Versioning::Suspended] {
        assert_eq!(parse_versioning(render_versioning(state).as_bytes()), Ok(state));
    }
}

async fn versioned(writes: &[(&str, bool)]) -> MemoryBackend {
    let b = MemoryBackend::new(Arc::new(|| 1_700_000_000_000));
    b.create_bucket("bk").await.unwrap();
    b.put_bucket_versioning("bk", Versioning::Enabled).await.unwrap();
    for (key, is_put) in writes {
        if *is_put {
            let mut body = VecSource::new(b"body".to_vec(), "e".into());
            b.put_object("bk", key, ObjectMeta::default(), &mut body).await.unwrap();
        } else {
            b.delete_object("bk", key, None).await.unwrap();
        }
    }
    b
}

fn query(prefix: &str, delimiter: &str, max_keys: usize) -> VersionQuery {
    VersionQuery {
        prefix: prefix.into(),
        delimiter: Some(delimiter.to_string()).filter(|d| !d.is_empty()),
        max_keys,
        ..VersionQuery::default()
    }
}

fn lines(page: &VersionPage) -> Vec<(String, bool, bool)> {
    page.versions.iter().map(|v| (v.key.clone(), v.object.is_some(), v.is_latest)).collect()
}

#[tokio::test]
async fn lists_versions_newest_first_with_markers() {
    let b = versioned(&[("a", true), ("a", true), ("a", false), ("b", true)]).await;
    let page = collect_versions(&b, "bk", &query("", "", 1000)).await.unwrap();
    let want = [("a", false, true), ("a", true, false), ("a", true, false), ("b", true, true)];
    let want: Vec<_> = want.iter().map(|(k, o, l)| (k.to_string(), *o, *l)).collect();
    assert_eq!(lines(&page), want);
    assert!(!page.truncated && page.next_key_marker.is_none());
    let ids: Vec<_> = page.versions[..3].iter().map(|v| v.version_id.clone()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
}

/// Pages of every size must together list each version exactly once, in order — the bug
/// this guards against is a page boundary inside a key's versions losing or repeating one.
#[tokio::test]
async fn pages_resume_inside_a_key() {
    let writes =
        [("a", true), ("a", true), ("a", false), ("b", true), ("c/1", true), ("c/2", true)];
    let b = versioned(&writes).await;
    let full = collect_versions(&b, "bk", &query("", "", 1000)).await.unwrap();
    for max_keys in 1..=7 {
        let mut q = query("", "", max_keys);
        let mut seen = Vec::new();
        loop {
            let page = collect_versions(&b, "bk", &q).await.unwrap();
            assert!(page.versions.len() <= max_keys);
            seen.extend(page.versions.iter().cloned());
            if !page.truncated {
                break;
            }
            q.key_marker = page.next_key_marker.clone().unwrap();
            q.version_id_marker = page.next_version_id_marker.clone();
            assert!(seen.len() <= full.versions.len(), "pagination does not end");
        }
        assert_eq!(seen, full.versions, "max_keys {max_keys}");
    }
}

#[tokio::test]
async fn delimiter_rolls_versions_up_once() {
    let writes = [("a", true), ("d/1", true), ("d/1", true), ("d/2", false), ("e", true)];
    let b = versioned(&writes).await;
    let page = collect_versions(&b, "bk", &query("", "/", 1000)).await.unwrap();
    assert_eq!(page.common_prefixes, ["d/"]);
    let keys: Vec<_> = page.versions.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(keys, ["a", "e"]);
    // A page ending on the prefix resumes after it.
    let first = collect_versions(&b, "bk", &query("", "/", 2)).await.unwrap();
    assert_eq!((first.truncated, first.next_key_marker.as_deref()), (true, Some("d/")));
    assert_eq!(first.next_version_id_marker, None);
    let mut q = query("", "/", 2);
    q.key_marker = "d/".into();
    let rest = collect_versions(&b, "bk", &q).await.unwrap();
    assert!(rest.common_prefixes.is_empty());
    assert_eq!(lines(&rest), [("e".to_string(), true, true)]);
}

#[tokio::test]
async fn renders_versions_and_delete_markers() {
    let b = versioned(&[("k&1", true), ("k&1", false)]).await;
    let q = query("", "", 1);
    let page = collect_versions(&b, "bk", &q).await.unwrap();
    let doc = render_versions("bk", &q, &page, false);
    let marker = &page.versions[0].version_id;
    assert!(doc.contains(&format!(
        "<DeleteMarker><Key>k&amp;1</Key><VersionId>{marker}</VersionId><IsLatest>true</IsLatest>\
         <LastModified>2023-11-14T22:13:20.000Z</LastModified></DeleteMarker>"
    )), "{doc}");
    assert!(doc.contains("<IsTruncated>true</IsTruncated>"), "{doc}");
    assert!(doc.contains(&format!("<NextVersionIdMarker>{marker}</NextVersionIdMarker>")));
    let all = collect_versions(&b, "bk", &query("", "", 10)).await.unwrap();
    let doc = render_versions("bk", &query("", "", 10), &all, true);
    assert!(doc.contains("<Key>k%261</Key>"), "{doc}");
    assert!(
        doc.contains(
            "<IsLatest>false</IsLatest><LastModified>2023-11-14T22:13:20.000Z\
                          </LastModified><ETag>&quot;e&quot;</ETag><Size>4</Size>"
        ),
        "{doc}"
    );
}

#[test]
fn version_id_marker_needs_a_key_marker_and_a_valid_id() {
    let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    let id = "0000000000000001000000000000000a";
    let err = parse_query(&q(&[("versions", ""), ("version-id-marker", id)])).unwrap_err();
    assert_eq!(err.code(), "InvalidArgument");
    let err = parse_query(&q(&[("key-marker", "k"), ("version-id-marker", "x")])).unwrap_err();
    assert_eq!(err.code(), "InvalidArgument");
    let (parsed, _) = parse_query(&q(&[("key-marker", "k"), ("version-id-marker", id)])).unwrap();
    assert_eq!(parsed.version_id_marker.as_deref(), Some(id));
}

/// The headers S3 clients read versions from: none while the bucket was never versioned,
/// then `x-amz-version-id`, and `x-amz-delete-marker` on a 404 caused by a marker.
#[tokio::test]
async fn object_responses_carry_version_headers() {
    use crate::s3api::object::{Read, delete_object, get_object};
    let b = MemoryBackend::new(Arc::new(|| 1_000));
    b.create_bucket("bk").await.unwrap();
    b.put_object("bk", "k", ObjectMeta::default(), &mut VecSource::new(Vec::new(), "e".into()))
        .await
        .unwrap();
    let (none, query) = (HeaderMap::new(), Vec::new());
    let read = |head| Read { headers: &none, query: &query, part_number: None, head };
    let plain = get_object(&b, ("bk", "k", None), read(true)).await.unwrap();
    assert!(plain.headers().get("x-amz-version-id").is_none());
    let gone = delete_object(&b, "bk", "k", None).await.unwrap();
    assert!(gone.headers().get("x-amz-delete-marker").is_none());
    let err = get_object(&b, ("bk", "k", None), read(true)).await.unwrap_err();
    assert_eq!(err, S3Error::NoSuchKey { key: "k".into() });

    b.put_bucket_versioning("bk", Versioning::Enabled).await.unwrap();
    let info = b
        .put_object("bk", "k", ObjectMeta::default(), &mut VecSource::new(Vec::new(), "e".into()))
        .await
        .unwrap();
    let got = get_object(&b, ("bk", "k", None), read(false)).await.unwrap();
    assert_eq!(got.headers()["x-amz-version-id"], info.version_id.as_str());
    let marked = delete_object(&b, "bk", "k", None).await.unwrap();
    assert_eq!(marked.headers()["x-amz-delete-marker"], "true");
    let marker = marked.headers()["x-amz-version-id"].to_str().unwrap().to_string();
    let err = get_object(&b, ("bk", "k", None), read(false)).await.unwrap_err();
    let version_id = marker.clone();
    assert_eq!(err, S3Error::DeleteMarkerIsCurrent { key: "k".into(), version_id });
    let named = get_object(&b, ("bk", "k", Some(&marker)), read(true)).await;
    assert_eq!(named.unwrap_err(), S3Error::VersionIsDeleteMarker { version_id: marker });
}
