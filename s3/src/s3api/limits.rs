//! Size limits on a request's headers, checked before anything else looks at them, with
//! S3's limits and error codes: clients written against S3 stay within them, and a
//! request beyond them is refused with an error that says which limit and by how much,
//! instead of being stored (metadata) or parsed at length (headers).
//!
//! hyper bounds what reaches us (its read buffer, about 400 KiB, and 100 headers: more
//! is answered `431` before any handler runs), so these checks only ever see bounded
//! input; they keep what S3 promises clients, not the server's memory, in check.

use hyper::HeaderMap;

use super::error::S3Error;

/// S3's limit on a request's header section (names, values, separators).
pub const HEADER_SECTION_BYTES_MAX: usize = 8 * 1024;

/// S3's limit on user metadata: the bytes of every `x-amz-meta-*` name (without the
/// prefix) and value.
pub const USER_METADATA_BYTES_MAX: usize = 2 * 1024;

const USER_METADATA_PREFIX: &str = "x-amz-meta-";

/// Refuses headers beyond S3's limits: the header section first (it contains the rest).
pub fn check_headers(headers: &HeaderMap) -> Result<(), S3Error> {
    // "name: value\r\n" for each header, as on the wire.
    let section: usize = headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    if section > HEADER_SECTION_BYTES_MAX {
        return Err(S3Error::RequestHeaderSectionTooLarge { size_bytes: section });
    }
    let metadata: usize = headers
        .iter()
        .filter_map(|(n, v)| {
            n.as_str().strip_prefix(USER_METADATA_PREFIX).map(|n| n.len() + v.len())
        })
        .sum();
    if metadata > USER_METADATA_BYTES_MAX {
        return Err(S3Error::MetadataTooLarge { size_bytes: metadata });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            let name = hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap();
            map.append(name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn metadata_counts_names_without_prefix_and_values_up_to_2_kib() {
        // 2 + 2046 = 2048 bytes: exactly the limit.
        let at_limit = headers(&[("x-amz-meta-ab", "v".repeat(2046))]);
        assert_eq!(check_headers(&at_limit), Ok(()));
        let above =
            headers(&[("x-amz-meta-ab", "v".repeat(2000)), ("x-amz-meta-c", "v".repeat(47))]);
        assert_eq!(check_headers(&above), Err(S3Error::MetadataTooLarge { size_bytes: 2050 }));
        // Other headers do not count toward metadata.
        let other = headers(&[("x-amz-date", "v".repeat(3000))]);
        assert_eq!(check_headers(&other), Ok(()));
    }

    #[test]
    fn the_header_section_is_limited_to_8_kib_and_checked_first() {
        let big = headers(&[("x-junk", "j".repeat(8200))]);
        assert_eq!(
            check_headers(&big),
            Err(S3Error::RequestHeaderSectionTooLarge { size_bytes: 6 + 8200 + 4 })
        );
        let big_metadata = headers(&[("x-amz-meta-m", "m".repeat(9000))]);
        assert!(matches!(
            check_headers(&big_metadata),
            Err(S3Error::RequestHeaderSectionTooLarge { .. })
        ));
    }
}
