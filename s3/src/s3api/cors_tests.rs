//! The CORS matcher and the configuration parser: what a browser is allowed, and which
//! documents S3 refuses.

use super::*;

fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
    let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect();
    CorsRule {
        allowed_origins: v(origins),
        allowed_methods: v(methods),
        allowed_headers: v(headers),
        ..CorsRule::default()
    }
}

#[test]
fn wildcards_stand_for_any_run_of_characters() {
    assert!(wildcard_match("*", "https://a.example"));
    assert!(wildcard_match("https://*.example.com", "https://www.example.com"));
    assert!(!wildcard_match("https://*.example.com", "http://www.example.com"));
    assert!(!wildcard_match("https://*.example.com", "https://example.com"));
    assert!(wildcard_match("x-amz-*", "x-amz-date"));
    assert!(wildcard_match("https://a.example", "https://a.example"));
    assert!(!wildcard_match("https://a.example", "https://a.example.evil"));
    // Head and tail may not overlap: "ab*ba" needs at least four characters.
    assert!(!wildcard_match("ab*ba", "aba"));
}

#[test]
fn first_rule_matching_origin_method_and_every_header_wins() {
    let rules = vec![
        rule(&["https://a.example"], &["GET"], &[]),
        rule(&["https://*.example"], &["GET", "PUT"], &["content-type", "x-amz-*"]),
        rule(&["*"], &["GET"], &["*"]),
    ];
    let h = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let pick = |o: &str, m: &str, hs: &[&str]| {
        find_rule(&rules, o, m, &h(hs)).map(|r| rules.iter().position(|x| x == r).unwrap())
    };
    assert_eq!(pick("https://a.example", "GET", &[]), Some(0));
    // Rule 0 allows no header, so a requested one moves on to the next rule.
    assert_eq!(pick("https://a.example", "GET", &["Content-Type"]), Some(1));
    assert_eq!(pick("https://b.example", "PUT", &["X-Amz-Date", "content-type"]), Some(1));
    assert_eq!(pick("https://b.example", "PUT", &["x-other"]), None);
    assert_eq!(pick("https://other.org", "GET", &["anything"]), Some(2));
    assert_eq!(pick("https://other.org", "PUT", &[]), None);
    assert_eq!(pick("https://a.example", "DELETE", &[]), None);
    // Methods compare exactly, as S3 does.
    assert_eq!(pick("https://a.example", "get", &[]), None);
}

const GOOD: &str = "<CORSConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
    <CORSRule><ID>r1</ID><AllowedOrigin>https://*.example</AllowedOrigin>\
    <AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod>\
    <AllowedHeader>*</AllowedHeader><ExposeHeader>ETag</ExposeHeader>\
    <MaxAgeSeconds>3000</MaxAgeSeconds></CORSRule>\
    <CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>HEAD</AllowedMethod></CORSRule>\
    </CORSConfiguration>";

#[test]
fn parses_rules_and_renders_them_back() {
    let rules = parse_cors(GOOD.as_bytes()).unwrap();
    assert_eq!(rules.len(), 2);
    let first = &rules[0];
    assert_eq!(first.id.as_deref(), Some("r1"));
    assert_eq!(first.allowed_origins, ["https://*.example"]);
    assert_eq!(first.allowed_methods, ["GET", "PUT"]);
    assert_eq!(first.allowed_headers, ["*"]);
    assert_eq!(first.expose_headers, ["ETag"]);
    assert_eq!(first.max_age_seconds, Some(3000));
    assert_eq!(rules[1], rule(&["*"], &["HEAD"], &[]));
    assert_eq!(parse_cors(render_cors(&rules).as_bytes()).unwrap(), rules);
}

#[test]
fn refuses_what_s3_refuses() {
    let doc = |rules: &str| format!("<CORSConfiguration>{rules}</CORSConfiguration>");
    let one = |body: &str| doc(&format!("<CORSRule>{body}</CORSRule>"));
    let code = |d: &str| parse_cors(d.as_bytes()).unwrap_err().code();
    let get = "<AllowedMethod>GET</AllowedMethod>";
    let any = "<AllowedOrigin>*</AllowedOrigin>";
    assert_eq!(code(&doc("")), "MalformedXML");
    assert_eq!(code(&one(get)), "MalformedXML");
    assert_eq!(code(&one(any)), "MalformedXML");
    assert_eq!(code(&one(&format!("{any}<AllowedMethod>PATCH</AllowedMethod>"))), "InvalidRequest");
    let two_stars = format!("<AllowedOrigin>https://*.*.example</AllowedOrigin>{get}");
    assert_eq!(code(&one(&two_stars)), "InvalidRequest");
    assert_eq!(code(&one(&format!("{any}{get}<Bogus>1</Bogus>"))), "MalformedXML");
    assert_eq!(code(&one(&format!("{any}{get}<MaxAgeSeconds>-1</MaxAgeSeconds>"))), "MalformedXML");
    assert_eq!(code(&format!("<Other>{}</Other>", one(&format!("{any}{get}")))), "MalformedXML");
    assert_eq!(code("<CORSConfiguration><CORSRule>"), "MalformedXML");
    let rule = format!("<CORSRule>{any}{get}</CORSRule>");
    assert!(parse_cors(doc(&rule.repeat(CORS_RULES_MAX)).as_bytes()).is_ok());
    assert_eq!(code(&doc(&rule.repeat(CORS_RULES_MAX + 1))), "InvalidRequest");
}
