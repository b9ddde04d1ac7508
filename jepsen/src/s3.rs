//! The harness's S3 client is Hangar's own (`hangar_s3::client`); this adds what only the
//! workloads need.

pub use hangar_s3::client::{Answer, Call, CallError, Connection, Creds};

/// The text of every `<Name>…</Name>` element of an XML document, in order (enough for
/// ListObjectsV2 answers, whose keys the workload chooses: no entities to decode).
pub fn xml_elements(body: &[u8], name: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(len) = after.find(&close) else { break };
        out.push(after[..len].to_string());
        rest = &after[len + close.len()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_elements_finds_every_key_in_order() {
        let xml = b"<R><Contents><Key>s/a</Key></Contents><Contents><Key>s/b</Key></Contents>\
                    <NextContinuationToken>ff</NextContinuationToken></R>";
        assert_eq!(xml_elements(xml, "Key"), ["s/a", "s/b"]);
        assert_eq!(xml_elements(xml, "NextContinuationToken"), ["ff"]);
        assert!(xml_elements(xml, "Missing").is_empty());
    }
}
