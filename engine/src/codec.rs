//! The one place that knows how typed values become bytes (RPC messages, table entries).
//!
//! bincode 2 with its standard configuration (varint integers, little endian). Persisted
//! values carry their own version marker in their type (see `table::schema`), so changing
//! this configuration is a format change: don't, without a migration.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value that could not be decoded: corrupt bytes, or a peer speaking another version.
#[derive(Debug)]
pub struct DecodeError {
    pub what: &'static str,
    pub reason: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot decode {}: {}", self.what, self.reason)
    }
}

impl std::error::Error for DecodeError {}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes a value. Encoding our own types cannot fail (no maps with non-string keys are
/// rejected by bincode), so a failure is a programmer error.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, config()).expect("bincode encodes every engine type")
}

/// Decodes a value that must span all of `bytes`.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, DecodeError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| DecodeError { what, reason: e.to_string() })?;
    if used != bytes.len() {
        let reason = format!("{} trailing bytes", bytes.len() - used);
        return Err(DecodeError { what, reason });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trailing_bytes_refused() {
        let v: (u64, String, Option<Vec<u8>>) = (7, "k".into(), Some(vec![1, 2]));
        let mut bytes = encode(&v);
        assert_eq!(decode::<(u64, String, Option<Vec<u8>>)>("t", &bytes).unwrap(), v);
        bytes.push(0);
        let err = decode::<(u64, String, Option<Vec<u8>>)>("t", &bytes).unwrap_err();
        assert!(err.reason.contains("trailing"), "{err}");
    }
}
