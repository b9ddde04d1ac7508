//! Percent-encoding, query strings and base64, as S3 and SigV4 define them.
//!
//! SigV4 signs a canonical form of the URI, so the exact encoding rules matter: only the
//! unreserved characters `A-Z a-z 0-9 - . _ ~` stay literal, everything else is `%XX` with
//! upper-case hex, and `/` stays literal in paths but not in query values.

/// Decodes `%XX` sequences. `+` stays a plus sign: SigV4 clients percent-encode spaces,
/// and S3 object keys may legitimately contain `+`. `None` on a malformed escape or a
/// result that is not UTF-8 (S3 answers InvalidURI).
pub fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex_value(*bytes.get(i + 1)?)?;
            let lo = hex_value(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

/// SigV4 `UriEncode`: every byte but the unreserved ones (and `/` unless `encode_slash`)
/// becomes `%XX`. Also the `encoding-type=url` form of listing responses.
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        push_encoded(&mut out, c, encode_slash);
    }
    out
}

fn push_encoded(out: &mut String, c: u8, encode_slash: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if is_unreserved(c) || (c == b'/' && !encode_slash) {
        out.push(c as char);
    } else {
        out.push('%');
        out.push(HEX[usize::from(c >> 4)] as char);
        out.push(HEX[usize::from(c & 0xf)] as char);
    }
}

/// The SigV4 canonical URI of a raw request path (S3 flavour: no dot-segment removal, no
/// double encoding). Decoding first and re-encoding makes the result independent of which
/// optional escapes the client used, except that an escaped `%2F` must stay escaped: the
/// client signed it as part of a key, not as a path separator.
pub fn canonical_uri(raw_path: &str) -> Option<String> {
    if raw_path.is_empty() {
        return Some("/".to_string());
    }
    let bytes = raw_path.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex_value(*bytes.get(i + 1)?)?;
            let lo = hex_value(*bytes.get(i + 2)?)?;
            push_encoded(&mut out, hi << 4 | lo, true);
            i += 3;
        } else {
            push_encoded(&mut out, bytes[i], false);
            i += 1;
        }
    }
    Some(out)
}

/// Decoded `(name, value)` pairs in request order. A parameter without `=` has an empty
/// value (`?location` is `("location", "")`). `None` on a malformed escape.
pub fn parse_query(raw: Option<&str>) -> Option<Vec<(String, String)>> {
    let Some(raw) = raw else {
        return Some(Vec::new());
    };
    let mut pairs = Vec::new();
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((percent_decode(name)?, percent_decode(value)?));
    }
    Some(pairs)
}

/// Standard base64 with padding (RFC 4648), for comparing `Content-MD5`.
pub fn base64_encode(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648), strict: `None` for a wrong length, a
/// character outside the alphabet, misplaced padding or non-zero padding bits (so that one
/// value has one spelling, as checksums are compared as strings).
pub fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let bytes = input.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, quad) in bytes.chunks(4).enumerate() {
        let last = i + 1 == bytes.len() / 4;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = n << 6 | value(c)?;
        }
        n <<= 6 * pad as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let keep = 3 - pad;
        if decoded[keep..].iter().any(|&b| b != 0) {
            return None;
        }
        out.extend_from_slice(&decoded[..keep]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_encode_follows_sigv4_rules() {
        assert_eq!(uri_encode("a b+c/d~e", false), "a%20b%2Bc/d~e");
        assert_eq!(uri_encode("a/b", true), "a%2Fb");
        assert_eq!(uri_encode("é", true), "%C3%A9");
        assert_eq!(uri_encode("test$file.text", false), "test%24file.text");
    }

    #[test]
    fn canonical_uri_normalises_optional_escapes_but_keeps_escaped_slash() {
        assert_eq!(canonical_uri("/bk/%7Ea%2fb%2B c").unwrap(), "/bk/~a%2Fb%2B%20c");
        assert_eq!(canonical_uri("").unwrap(), "/");
        assert_eq!(canonical_uri("/bad%2"), None);
    }

    #[test]
    fn decode_rejects_bad_escapes_and_non_utf8() {
        assert_eq!(percent_decode("a%20b+c").as_deref(), Some("a b+c"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn query_keeps_valueless_parameters() {
        let q = parse_query(Some("location&prefix=a%2Fb&max-keys=2")).unwrap();
        let expect = [("location", ""), ("prefix", "a/b"), ("max-keys", "2")];
        let expect: Vec<(String, String)> =
            expect.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(q, expect);
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let vectors =
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg==")];
        for (plain, encoded) in vectors {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded).as_deref(), Some(plain.as_bytes()));
        }
        for bad in ["Zg=", "Zh==", "Z===", "Zg==Zg==", "Zm9v!A==", "Zm9"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }
}
