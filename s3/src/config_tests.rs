//! The configuration refuses what it does not understand, and says where.

use std::collections::BTreeMap;
use std::path::Path;

use hangar_engine::table::ConsistencyMode;

use super::{Config, ConfigError};

const SECRET: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn minimal() -> String {
    format!(
        "metadata_dir = \"meta\"\ndata_dir = \"/srv/data\"\nrpc_secret = \"{SECRET}\"\n\
         [[s3_api.access_keys]]\nid = \"GK0123456789abcdef\"\nsecret = \"0123456789abcdef0123\"\n"
    )
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/hangar/hangar.toml"), &no_env)
}

fn parse_env(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars: BTreeMap<String, String> =
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::parse(text, Path::new("/etc/hangar/hangar.toml"), &|k| vars.get(k).cloned())
}

fn error_text(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn defaults_and_relative_paths() {
    let c = parse(&minimal()).unwrap();
    assert_eq!(c.metadata_dir, Path::new("/etc/hangar/meta"));
    assert_eq!(c.data_dir, Path::new("/srv/data"));
    assert_eq!(c.replication_factor, 1);
    assert_eq!(c.consistency_mode, ConsistencyMode::Consistent);
    assert_eq!(c.rpc_bind_addr.to_string(), "0.0.0.0:3901");
    assert_eq!(c.s3_api.api_bind_addr.to_string(), "0.0.0.0:3900");
    assert_eq!(c.s3_api.s3_region, "hangar");
    assert_eq!(c.s3_api.access_keys.len(), 1);
    // Secrets never reach logs through Debug.
    assert!(!format!("{c:?}").contains(SECRET));
}

#[test]
fn unknown_key_is_refused_with_its_line() {
    let err = error_text(&minimal().replace("[[s3", "replicaton_factor = 3\n[[s3"));
    assert!(err.contains("replicaton_factor"), "{err}");
    assert!(err.contains("line 4"), "{err}");
    let err = error_text(&format!("{}colour = 1\n", minimal()));
    assert!(err.contains("colour"), "{err}");
}

#[test]
fn bad_values_name_key_file_and_line() {
    let text = minimal().replace("\ndata_dir", "\nconsistency_mode = \"strong\"\ndata_dir");
    let err = error_text(&text);
    assert!(err.starts_with("/etc/hangar/hangar.toml:2: invalid `consistency_mode`"), "{err}");
    let err = error_text(&format!("replication_factor = 0\n{}", minimal()));
    assert!(err.contains(":1: invalid `replication_factor`"), "{err}");
    let err = error_text(&format!("rpc_bind_addr = \"localhost\"\n{}", minimal()));
    assert!(err.contains("`rpc_bind_addr`"), "{err}");
    let err = error_text(&minimal().replace(SECRET, "short"));
    assert!(err.contains(":3: invalid `rpc_secret`"), "{err}");
    let err = error_text(&minimal().replace("GK0123456789abcdef", "GK-1"));
    assert!(err.contains("s3_api.access_keys.id"), "{err}");
}

#[test]
fn wrong_type_is_a_syntax_error_naming_the_key() {
    let err = error_text(&format!("replication_factor = \"three\"\n{}", minimal()));
    assert!(err.contains("replication_factor"), "{err}");
    assert!(err.contains("line 1"), "{err}");
}

#[test]
fn secret_and_keys_come_from_the_environment() {
    let text = minimal().replace(&format!("rpc_secret = \"{SECRET}\"\n"), "");
    let err = error_text(&text);
    assert!(err.contains("no RPC secret"), "{err}");
    let c = parse_env(&text, &[("HANGAR_RPC_SECRET", SECRET)]).unwrap();
    assert_eq!(c.rpc_secret.0, SECRET);
    let vars = [
        ("HANGAR_RPC_SECRET", SECRET),
        ("HANGAR_ACCESS_KEY_ID", "GKfedcba9876543210"),
        ("HANGAR_SECRET_ACCESS_KEY", "another-secret-key-0123"),
    ];
    let c = parse_env(&text, &vars).unwrap();
    assert_eq!(c.s3_api.access_keys.len(), 2);
    let err = parse_env(&minimal(), &[("HANGAR_ACCESS_KEY_ID", "GKfedcba9876543210")]);
    assert!(err.unwrap_err().to_string().contains("environment"));
}

#[test]
fn access_keys_are_optional_and_unique() {
    let text = minimal();
    // Keys may all live in the key table (created with `hangar key create`).
    let (head, _) = text.split_once("[[s3_api").unwrap();
    assert!(parse(head).unwrap().s3_api.access_keys.is_empty());
    let twice = format!(
        "{text}[[s3_api.access_keys]]\nid = \"GK0123456789abcdef\"\n\
         secret = \"x123456789abcdef0\"\n"
    );
    assert!(error_text(&twice).contains("listed twice"));
}

#[test]
fn the_admin_section_has_safe_defaults_and_checks_its_tokens() {
    let c = parse(&minimal()).unwrap();
    assert_eq!(c.admin.api_bind_addr.to_string(), "127.0.0.1:3903");
    assert!(c.admin.admin_token.is_none() && c.admin.metrics_token.is_none());
    let with = format!(
        "{}[admin]\napi_bind_addr = \"0.0.0.0:4903\"\nadmin_token = \"0123456789abcdefXYZ\"\n",
        minimal()
    );
    let c = parse(&with).unwrap();
    assert_eq!(c.admin.api_bind_addr.port(), 4903);
    assert_eq!(c.admin.admin_token.unwrap().0, "0123456789abcdefXYZ");
    assert!(!format!("{:?}", parse(&with).unwrap()).contains("0123456789abcdefXYZ"));
    let short = format!("{}[admin]\nadmin_token = \"abc\"\n", minimal());
    let err = error_text(&short);
    assert!(err.contains("admin.admin_token") && err.contains(":8:"), "{err}");
    let c = parse_env(&minimal(), &[("HANGAR_ADMIN_TOKEN", "from-the-environment-1")]).unwrap();
    assert_eq!(c.admin.admin_token.unwrap().0, "from-the-environment-1");
}

#[test]
fn bootstrap_peers_are_node_ids_at_addresses_and_rf_goes_up_to_five() {
    let text = format!(
        "replication_factor = 3\nbootstrap_peers = [\"00000000000000ab@10.0.0.2:3901\"]\n{}",
        minimal()
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.replication_factor, 3);
    let peers: Vec<(String, String)> =
        c.bootstrap_peers.iter().map(|(id, a)| (id.to_string(), a.clone())).collect();
    assert_eq!(peers, [("00000000000000ab".to_string(), "10.0.0.2:3901".to_string())]);
    let bad = format!("bootstrap_peers = [\"10.0.0.2:3901\"]\n{}", minimal());
    let err = error_text(&bad);
    assert!(err.contains("bootstrap_peers") && err.contains("hangar node id"), "{err}");
    let bad = format!("bootstrap_peers = [\"xyz@10.0.0.2:3901\"]\n{}", minimal());
    assert!(error_text(&bad).contains("16 hex digits"));
    assert!(error_text(&format!("replication_factor = 6\n{}", minimal())).contains("1..=5"));
}

#[test]
fn fsync_is_on_unless_switched_off_and_a_non_boolean_is_refused() {
    let c = parse(&minimal()).unwrap();
    assert!(c.metadata_fsync && c.data_fsync, "safe by default");
    let text = minimal().replace("[[s3", "data_fsync = false\n[[s3");
    let c = parse(&text).unwrap();
    assert!(c.metadata_fsync && !c.data_fsync);
    let err = error_text(&minimal().replace("[[s3", "metadata_fsync = \"no\"\n[[s3"));
    assert!(err.contains("metadata_fsync") && err.contains("line 4"), "{err}");
}

#[test]
fn root_domain_is_a_dns_name_with_an_optional_leading_dot() {
    let with = |d: &str| format!("{}[s3_api]\nroot_domain = \"{d}\"\n", minimal());
    for good in [".s3.example.com", "s3.example.com", "localhost"] {
        let c = parse(&with(good)).unwrap();
        assert_eq!(c.s3_api.root_domain.as_deref(), Some(good));
    }
    for bad in ["", ".", "s3..example.com", "s3.example.com:3900", "s3 example"] {
        let err = error_text(&with(bad));
        assert!(err.contains("`s3_api.root_domain`"), "{bad}: {err}");
    }
}

#[test]
fn the_website_endpoint_is_served_only_with_an_s3_web_section() {
    assert!(parse(&minimal()).unwrap().s3_web.is_none(), "anonymous reads are opt-in");
    let c = parse(&format!("{}[s3_web]\n", minimal())).unwrap();
    let web = c.s3_web.expect("an empty section takes the defaults");
    assert_eq!(web.bind_addr.to_string(), "0.0.0.0:3902");
    assert_eq!(web.root_domain, None);
    let text = format!(
        "{}[s3_web]\nbind_addr = \"127.0.0.1:4902\"\nroot_domain = \".web.example.com\"\n",
        minimal()
    );
    let web = parse(&text).unwrap().s3_web.unwrap();
    assert_eq!(web.bind_addr.to_string(), "127.0.0.1:4902");
    assert_eq!(web.root_domain.as_deref(), Some(".web.example.com"));
    let err = error_text(&format!("{}[s3_web]\nbind_addr = \"nowhere\"\n", minimal()));
    assert!(err.contains("`s3_web.bind_addr`"), "{err}");
    let err = error_text(&format!("{}[s3_web]\nroot_domain = \"a b\"\n", minimal()));
    assert!(err.contains("`s3_web.root_domain`"), "{err}");
    let err = error_text(&format!("{}[s3_web]\nport = 1\n", minimal()));
    assert!(err.contains("port"), "{err}");
}

#[test]
fn the_lifecycle_interval_is_a_day_unless_set() {
    assert_eq!(parse(&minimal()).unwrap().lifecycle_interval_secs, 86_400);
    let text = minimal().replace("[[s3", "lifecycle_interval_secs = 60\n[[s3");
    assert_eq!(parse(&text).unwrap().lifecycle_interval_secs, 60);
    let err = error_text(&minimal().replace("[[s3", "lifecycle_interval_secs = 0\n[[s3"));
    assert!(err.contains("`lifecycle_interval_secs`"), "{err}");
}

#[test]
fn the_metadata_cache_is_32_mib_unless_set() {
    assert_eq!(parse(&minimal()).unwrap().metadata_cache_mib, 32);
    let text = minimal().replace("[[s3", "metadata_cache_mib = 256\n[[s3");
    assert_eq!(parse(&text).unwrap().metadata_cache_mib, 256);
    for bad in ["0", "-5", "2000000"] {
        let text = minimal().replace("[[s3", &format!("metadata_cache_mib = {bad}\n[[s3"));
        let err = error_text(&text);
        assert!(err.contains("`metadata_cache_mib`") && err.contains("MiB from 1"), "{err}");
    }
}
