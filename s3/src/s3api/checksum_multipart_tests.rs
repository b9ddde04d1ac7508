//! The declaration rules of CreateMultipartUpload and the completed object's checksum,
//! against values computed here independently (whole-object CRCs, SHA of the joined part
//! digests).

use super::*;
use crate::s3api::checksum::Hasher;
use sha2::Digest;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    h
}

fn checksum(algorithm: Algorithm, data: &[u8]) -> String {
    let mut h = Hasher::new(algorithm);
    h.update(data);
    h.finish()
}

#[test]
fn declarations_follow_s3s_rules() {
    let d = |pairs: &[(&str, &str)]| declared(&headers(pairs));
    assert_eq!(d(&[]), Ok(None));
    let crc32 = Declared { algorithm: Algorithm::Crc32, kind: Kind::Composite };
    assert_eq!(d(&[("x-amz-checksum-algorithm", "crc32")]), Ok(Some(crc32)));
    let nvme = Declared { algorithm: Algorithm::Crc64Nvme, kind: Kind::FullObject };
    assert_eq!(d(&[("x-amz-checksum-algorithm", "CRC64NVME")]), Ok(Some(nvme)));
    for bad in [
        &[("x-amz-checksum-algorithm", "MD5")][..],
        &[("x-amz-checksum-type", "COMPOSITE")],
        &[("x-amz-checksum-algorithm", "SHA256"), ("x-amz-checksum-type", "FULL_OBJECT")],
        &[("x-amz-checksum-algorithm", "CRC64NVME"), ("x-amz-checksum-type", "COMPOSITE")],
        &[("x-amz-checksum-algorithm", "CRC32"), ("x-amz-checksum-type", "PARTIAL")],
    ] {
        assert_eq!(d(bad).unwrap_err().code(), "InvalidRequest", "{bad:?}");
    }
    let back = declaration_of(&declaration_metadata(crc32).into_iter().collect());
    assert_eq!(back, Some(crc32));
}

/// Two parts uploaded with checksums (tagged ETags as `TaggedPart` stores them).
fn stored_parts(algorithm: Algorithm, parts: &[&[u8]]) -> Vec<PartInfo> {
    let tag = |data: &[u8]| {
        format!(
            "md5{}{PART_TAG_SEP}{}={}",
            data.len(),
            algorithm.header(),
            checksum(algorithm, data)
        )
    };
    (1..)
        .zip(parts)
        .map(|(n, data)| PartInfo {
            part_number: n,
            etag: tag(data),
            size_bytes: data.len() as u64,
            last_modified_ms: 0,
        })
        .collect()
}

fn chosen(stored: &[PartInfo], with_checksums: bool) -> Vec<ChosenPart> {
    stored
        .iter()
        .map(|p| {
            let (etag, checksum) = split_part_etag(&p.etag);
            let checksums = checksum.filter(|_| with_checksums).map(|(a, v)| (a, v.to_string()));
            ChosenPart {
                part_number: p.part_number,
                etag: etag.into(),
                checksums: checksums.into_iter().collect(),
            }
        })
        .collect()
}

#[test]
fn full_object_crcs_equal_the_crc_of_the_whole_object() {
    let (a, b) = (vec![7u8; 5000], b"the last part".to_vec());
    let whole: Vec<u8> = a.iter().chain(&b).copied().collect();
    for algorithm in [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme] {
        let stored = stored_parts(algorithm, &[&a, &b]);
        let d = Some(Declared { algorithm, kind: Kind::FullObject });
        let r = resolve(&chosen(&stored, false), &stored, d, &HeaderMap::new()).unwrap();
        assert_eq!(r.checksum, Some((algorithm.stored_name(), checksum(algorithm, &whole))));
        // The stored, tagged ETags go to the backend.
        assert_eq!(r.parts, vec![(1, stored[0].etag.clone()), (2, stored[1].etag.clone())]);
        // A whole-object checksum sent with the completion must match it.
        let wrong = headers(&[(algorithm.header(), &checksum(algorithm, b"other"))]);
        let refused = resolve(&chosen(&stored, false), &stored, d, &wrong);
        assert_eq!(refused.err().map(|e| e.code()), Some("BadDigest"));
    }
}

#[test]
fn composite_checksums_hash_the_joined_part_digests() {
    let (a, b) = (b"first".to_vec(), b"second".to_vec());
    let algorithm = Algorithm::Sha256;
    let stored = stored_parts(algorithm, &[&a, &b]);
    let d = Some(Declared { algorithm, kind: Kind::Composite });
    let r = resolve(&chosen(&stored, true), &stored, d, &HeaderMap::new()).unwrap();
    let joined: Vec<u8> = [&a, &b].iter().flat_map(|p| sha2::Sha256::digest(p).to_vec()).collect();
    let expected = format!("{}-2", checksum(algorithm, &joined));
    assert_eq!(r.checksum, Some((algorithm.stored_name(), expected)));
    // COMPOSITE needs each part's checksum in the document.
    let missing = resolve(&chosen(&stored, false), &stored, d, &HeaderMap::new());
    assert_eq!(missing.err().map(|e| e.code()), Some("InvalidRequest"));
    // A part checksum that is not the stored one names a part that does not exist.
    let mut wrong = chosen(&stored, true);
    wrong[1].checksums[0].1 = checksum(algorithm, b"other");
    let refused = resolve(&wrong, &stored, d, &HeaderMap::new());
    assert_eq!(refused.err().map(|e| e.code()), Some("InvalidPart"));
}

#[test]
fn parts_without_the_declared_algorithm_are_refused() {
    let stored = stored_parts(Algorithm::Crc32, &[b"x"]);
    let d = Some(Declared { algorithm: Algorithm::Crc32c, kind: Kind::FullObject });
    let refused = resolve(&chosen(&stored, false), &stored, d, &HeaderMap::new());
    assert_eq!(refused.err().map(|e| e.code()), Some("InvalidRequest"));
    // Without a declaration nothing is computed, and the parts still resolve.
    let r = resolve(&chosen(&stored, true), &stored, None, &HeaderMap::new()).unwrap();
    assert_eq!((r.checksum, r.parts), (None, vec![(1, stored[0].etag.clone())]));
}
