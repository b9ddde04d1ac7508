//! Derived SigV4 signing keys, remembered per (secret, day, region).
//!
//! Deriving a key is four HMAC-SHA256 rounds, and every request needs one; a client signs
//! with the same key all day, so the server (and our own client) remember it. Keys stay
//! valid for a whole day and are a pure function of their inputs, so a cached key is
//! always the one `sigv4::signing_key` would compute: the cache changes the cost, never the
//! answer. Bounded: past `ENTRIES_MAX` it starts over (a day's worth of keys for far more
//! clients than a Hangar node serves).

use std::collections::HashMap;
use std::sync::Mutex;

use super::sigv4;

const ENTRIES_MAX: usize = 4096;

static KEYS: Mutex<Option<HashMap<String, [u8; 32]>>> = Mutex::new(None);

/// `sigv4::signing_key`, computed once per (secret, day, region).
pub fn signing_key(secret: &str, date: &str, region: &str) -> [u8; 32] {
    // Length-prefixed: no two (day, region, secret) triples give the same id, whatever
    // bytes a client put in its credential scope.
    let id = format!("{}:{date}{}:{region}{secret}", date.len(), region.len());
    if let Some(key) = KEYS.lock().unwrap().as_ref().and_then(|keys| keys.get(&id)) {
        return *key;
    }
    let key = sigv4::signing_key(secret, date, region);
    let mut keys = KEYS.lock().unwrap();
    let keys = keys.get_or_insert_with(HashMap::new);
    if keys.len() >= ENTRIES_MAX {
        keys.clear();
    }
    keys.insert(id, key);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_key_is_the_derived_key_for_exactly_its_inputs() {
        let inputs = [
            ("secret-a", "20260101", "garage"),
            ("secret-a", "20260102", "garage"),
            ("secret-a", "20260101", "hangar"),
            ("secret-b", "20260101", "garage"),
        ];
        for _ in 0..2 {
            for (secret, date, region) in inputs {
                assert_eq!(
                    signing_key(secret, date, region),
                    sigv4::signing_key(secret, date, region),
                    "{secret} {date} {region}"
                );
            }
        }
    }
}
