//! How routing rules pick and rewrite (S3's documented examples), and which object
//! redirect locations are accepted.

use super::*;

fn rule(prefix: Option<&str>, code: Option<u16>, redirect: WebsiteRedirect) -> RoutingRule {
    RoutingRule {
        key_prefix_equals: prefix.map(str::to_string),
        http_error_code_returned_equals: code,
        redirect,
    }
}

const ORIGIN: Origin = Origin { host: "site.web.example:3902", protocol: "http" };

#[test]
fn the_first_matching_rule_wins_and_rewrites_the_key() {
    let docs = rule(
        Some("docs/"),
        None,
        WebsiteRedirect {
            replace_key_prefix_with: Some("documents/".into()),
            ..Default::default()
        },
    );
    let missing = rule(
        None,
        Some(404),
        WebsiteRedirect {
            host_name: Some("other.example".into()),
            protocol: Some("https".into()),
            replace_key_prefix_with: Some("report-404/".into()),
            http_redirect_code: Some(302),
            ..Default::default()
        },
    );
    let rules = vec![docs.clone(), missing.clone()];
    assert_eq!(matching_rule(&rules, "docs/a b.html", None), Some(&docs));
    assert_eq!(matching_rule(&rules, "img/x.png", None), None, "error rules wait for the read");
    assert_eq!(matching_rule(&rules, "img/x.png", Some(404)), Some(&missing));
    assert_eq!(matching_rule(&rules, "img/x.png", Some(403)), None);
    assert_eq!(
        apply(&docs, "docs/a b.html", &ORIGIN),
        Answer {
            status: 301,
            location: "http://site.web.example:3902/documents/a%20b.html".into()
        }
    );
    assert_eq!(
        apply(&missing, "img/x.png", &ORIGIN),
        Answer { status: 302, location: "https://other.example/report-404/img/x.png".into() }
    );
    let whole = rule(
        Some("old"),
        None,
        WebsiteRedirect { replace_key_with: Some("new.html".into()), ..Default::default() },
    );
    assert_eq!(
        apply(&whole, "old/page", &ORIGIN).location,
        "http://site.web.example:3902/new.html"
    );
}

#[test]
fn redirect_all_keeps_the_path() {
    let all = WebsiteRedirect { host_name: Some("www.example".into()), ..Default::default() };
    assert_eq!(
        redirect_all(&all, "/a/b?c", &ORIGIN),
        Answer { status: 301, location: "http://www.example/a/b?c".into() }
    );
}

#[test]
fn object_redirects_must_be_a_path_or_an_http_url() {
    let mut h = HeaderMap::new();
    assert_eq!(object_redirect(&h), Ok(None));
    for good in ["/other.html", "https://example.com/x"] {
        h.insert(OBJECT_REDIRECT_HEADER, good.parse().unwrap());
        assert_eq!(object_redirect(&h), Ok(Some((OBJECT_REDIRECT_KEY.into(), good.into()))));
    }
    for bad in ["other.html", "ftp://example.com/"] {
        h.insert(OBJECT_REDIRECT_HEADER, bad.parse().unwrap());
        assert_eq!(object_redirect(&h).unwrap_err().code(), "InvalidArgument", "{bad}");
    }
}
