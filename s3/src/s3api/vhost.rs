//! Virtual-host-style addressing: `Host: bucket.<root domain>` names the bucket, and the
//! path is the key.
//!
//! Only routing changes: the request is routed as if it had been sent path-style
//! (`/bucket/key`), while the signature is still checked over the path *as sent* (SigV4's
//! canonical URI is the request's own path; the bucket is covered through the signed
//! `host` header). A Host that is not under the root domain — an IP address, `localhost`,
//! the root domain itself — is path-style, so one endpoint serves both styles.

/// The root domain as configured (`[s3_api] root_domain`), normalised: lowercase, without
/// the leading dot that Garage-style configs write (`.s3.example.com`).
pub fn normalise_root_domain(domain: &str) -> String {
    domain.trim().trim_start_matches('.').to_ascii_lowercase()
}

/// The bucket a Host header names under `root_domain` (normalised), if any.
pub fn bucket_from_host(host: &str, root_domain: &str) -> Option<String> {
    if root_domain.is_empty() || host.starts_with('[') {
        return None; // an IPv6 literal never names a bucket
    }
    let name = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) { name } else { host }
    });
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let bucket = name.strip_suffix(root_domain)?.strip_suffix('.')?;
    (!bucket.is_empty()).then(|| bucket.to_string())
}

/// The path to route: `/bucket` + the path as sent when the Host names a bucket, else the
/// path as sent.
pub fn routing_path(raw_path: &str, bucket: Option<&str>) -> String {
    match bucket {
        Some(bucket) => format!("/{bucket}{raw_path}"),
        None => raw_path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_come_from_hosts_under_the_root_domain() {
        let root = normalise_root_domain(".S3.Example.com");
        assert_eq!(root, "s3.example.com");
        let cases = [
            ("bk.s3.example.com", Some("bk")),
            ("bk.s3.example.com:3900", Some("bk")),
            ("My.Bucket.s3.example.com.", Some("my.bucket")),
            ("s3.example.com", None),
            ("s3.example.com:3900", None),
            (".s3.example.com", None),
            ("bks3.example.com", None),
            ("bk.s3.example.org", None),
            ("127.0.0.1:3900", None),
            ("[::1]:3900", None),
            ("localhost", None),
        ];
        for (host, want) in cases {
            assert_eq!(bucket_from_host(host, &root).as_deref(), want, "{host}");
        }
        assert_eq!(bucket_from_host("bk.s3.example.com", ""), None, "no root domain");
    }

    #[test]
    fn the_routing_path_puts_the_bucket_first() {
        assert_eq!(routing_path("/dir/key", Some("bk")), "/bk/dir/key");
        assert_eq!(routing_path("/", Some("bk")), "/bk/");
        assert_eq!(routing_path("/bk/key", None), "/bk/key");
    }
}
