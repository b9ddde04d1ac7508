//! Bearer tokens: `Authorization: Bearer <token>`, compared in constant time.

use hyper::HeaderMap;
use sha2::{Digest, Sha256};

/// Why a request's token was refused (401 for `Missing`, 403 for `Wrong`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Missing,
    Wrong,
}

/// Checks the request's bearer token against `expected`.
pub fn check(headers: &HeaderMap, expected: &str) -> Result<(), TokenError> {
    let given = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(TokenError::Missing)?;
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(TokenError::Wrong)
    }
}

/// Equality whose time depends on neither content nor length: both sides are hashed to
/// 32 bytes first, then every byte pair is compared without an early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (ha, hb) = (Sha256::digest(a), Sha256::digest(b));
    let diff = ha.iter().zip(hb.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert("authorization", a.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_missing_token_differs_from_a_wrong_one() {
        let token = "correct-horse-battery";
        assert_eq!(check(&headers(Some("Bearer correct-horse-battery")), token), Ok(()));
        assert_eq!(check(&headers(None), token), Err(TokenError::Missing));
        assert_eq!(check(&headers(Some("Basic abc")), token), Err(TokenError::Missing));
        assert_eq!(check(&headers(Some("Bearer correct-horse")), token), Err(TokenError::Wrong));
        assert_eq!(check(&headers(Some("Bearer ")), token), Err(TokenError::Wrong));
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
