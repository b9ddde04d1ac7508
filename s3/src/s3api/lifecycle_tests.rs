use super::*;

fn doc(rules: &str) -> Vec<u8> {
    format!("<LifecycleConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{rules}</LifecycleConfiguration>")
        .into_bytes()
}

fn one(rule: &str) -> Result<LifecycleRule, S3Error> {
    parse_lifecycle(&doc(&format!("<Rule>{rule}</Rule>"))).map(|mut r| r.remove(0))
}

#[test]
fn parses_filters_and_actions_and_renders_them_back() {
    let rules = parse_lifecycle(&doc(
        "<Rule><ID>logs</ID><Filter><Prefix>logs/</Prefix></Filter><Status>Enabled</Status>\
         <Expiration><Days>30</Days></Expiration></Rule>\
         <Rule><ID>big</ID><Filter><And><Prefix>v/</Prefix><ObjectSizeGreaterThan>100\
         </ObjectSizeGreaterThan><ObjectSizeLessThan>900</ObjectSizeLessThan></And></Filter>\
         <Status>Disabled</Status><Expiration><Date>2027-01-01T00:00:00.000Z</Date></Expiration>\
         </Rule>\
         <Rule><Prefix>tmp/</Prefix><Status>Enabled</Status><AbortIncompleteMultipartUpload>\
         <DaysAfterInitiation>7</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>",
    ))
    .unwrap();
    assert_eq!(rules[0].prefix, "logs/");
    assert_eq!(rules[0].expiration, Some(Expiration::Days(30)));
    assert!(rules[0].enabled && !rules[1].enabled);
    assert_eq!(
        (rules[1].size_greater_than_bytes, rules[1].size_less_than_bytes),
        (Some(100), Some(900))
    );
    assert_eq!(rules[1].expiration, Some(Expiration::AtMs(1_798_761_600_000)));
    assert_eq!(
        (rules[2].prefix.as_str(), rules[2].abort_incomplete_upload_days),
        ("tmp/", Some(7))
    );
    assert_eq!(parse_lifecycle(render_lifecycle(&rules).as_bytes()), Ok(rules));
}

#[test]
fn actions_hangar_does_not_perform_are_not_implemented_naming_the_element() {
    for (rule, element) in [
        (
            "<Transition><Days>1</Days><StorageClass>GLACIER</StorageClass></Transition>",
            "Transition",
        ),
        (
            "<NoncurrentVersionTransition><NoncurrentDays>1</NoncurrentDays>\
             <StorageClass>GLACIER</StorageClass></NoncurrentVersionTransition>",
            "NoncurrentVersionTransition",
        ),
        (
            "<Filter><Tag><Key>a</Key><Value>b</Value></Tag></Filter><Expiration><Days>1</Days></Expiration>",
            "Tag",
        ),
    ] {
        let err = one(&format!("<Status>Enabled</Status>{rule}")).unwrap_err();
        assert_eq!(err.code(), "NotImplemented", "{rule}");
        assert!(err.message().contains(element), "{}", err.message());
    }
}

#[test]
fn malformed_and_invalid_rules_are_refused() {
    let days = "<Expiration><Days>1</Days></Expiration>";
    for (rule, code) in [
        (format!("<Status>On</Status>{days}"), "MalformedXML"),
        (days.to_string(), "MalformedXML"),
        ("<Status>Enabled</Status>".to_string(), "InvalidArgument"),
        ("<Status>Enabled</Status><Expiration><Days>0</Days></Expiration>".into(), "InvalidArgument"),
        ("<Status>Enabled</Status><Expiration><Days>1</Days><Date>2027-01-01T00:00:00Z</Date></Expiration>".into(), "InvalidArgument"),
        ("<Status>Enabled</Status><Expiration><Date>2027-01-01T10:00:00Z</Date></Expiration>".into(), "InvalidArgument"),
        (format!("<Status>Enabled</Status><Prefix>a</Prefix><Filter/>{days}"), "MalformedXML"),
        (format!("<Status>Enabled</Status><Filter><Prefix>a</Prefix><ObjectSizeLessThan>3</ObjectSizeLessThan></Filter>{days}"), "MalformedXML"),
        (format!("<Status>Enabled</Status><Filter><And><ObjectSizeGreaterThan>9</ObjectSizeGreaterThan><ObjectSizeLessThan>3</ObjectSizeLessThan></And></Filter>{days}"), "InvalidArgument"),
        (format!("<Status>Enabled</Status><Bogus/>{days}"), "MalformedXML"),
        (format!("<ID>{}</ID><Status>Enabled</Status>{days}", "x".repeat(256)), "InvalidArgument"),
    ] {
        assert_eq!(one(&rule).unwrap_err().code(), code, "{rule}");
    }
    let twice = format!("<Rule><ID>a</ID><Status>Enabled</Status>{days}</Rule>").repeat(2);
    assert_eq!(parse_lifecycle(&doc(&twice)).unwrap_err().code(), "InvalidArgument");
    assert_eq!(parse_lifecycle(&doc("")), Err(S3Error::MalformedXML));
}

#[test]
fn dates_must_be_midnight_utc() {
    assert_eq!(parse_midnight("1970-01-02T00:00:00Z"), Some(86_400_000));
    assert_eq!(parse_midnight("1970-01-02T00:00:00.000+00:00"), Some(86_400_000));
    for bad in
        ["1970-01-02", "1970-01-02T00:00:01Z", "1970-01-02T00:00:00.5Z", "1970-1-2T00:00:00Z"]
    {
        assert_eq!(parse_midnight(bad), None, "{bad}");
    }
}

#[test]
fn noncurrent_expiration_and_expired_delete_markers_parse_and_render_back() {
    let rules = parse_lifecycle(&doc(
        "<Rule><ID>old</ID><Filter/><Status>Enabled</Status><NoncurrentVersionExpiration>\
         <NoncurrentDays>30</NoncurrentDays><NewerNoncurrentVersions>3</NewerNoncurrentVersions>\
         </NoncurrentVersionExpiration><Expiration><ExpiredObjectDeleteMarker>true\
         </ExpiredObjectDeleteMarker></Expiration></Rule>\
         <Rule><ID>n</ID><Filter/><Status>Enabled</Status><NoncurrentVersionExpiration>\
         <NoncurrentDays>1</NoncurrentDays></NoncurrentVersionExpiration></Rule>",
    ))
    .unwrap();
    assert_eq!(rules[0].noncurrent_days, Some(30));
    assert_eq!(rules[0].newer_noncurrent_versions, Some(3));
    assert!(rules[0].expired_object_delete_marker && rules[0].expiration.is_none());
    assert_eq!((rules[1].noncurrent_days, rules[1].newer_noncurrent_versions), (Some(1), None));
    assert_eq!(parse_lifecycle(render_lifecycle(&rules).as_bytes()), Ok(rules));
    for (rule, code) in [
        (
            "<NoncurrentVersionExpiration><NoncurrentDays>0</NoncurrentDays></NoncurrentVersionExpiration>",
            "InvalidArgument",
        ),
        ("<NoncurrentVersionExpiration/>", "InvalidArgument"),
        (
            "<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays><NewerNoncurrentVersions>101</NewerNoncurrentVersions></NoncurrentVersionExpiration>",
            "InvalidArgument",
        ),
        (
            "<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays><X/></NoncurrentVersionExpiration>",
            "MalformedXML",
        ),
        (
            "<Expiration><Days>1</Days><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>",
            "InvalidArgument",
        ),
        (
            "<Expiration><ExpiredObjectDeleteMarker>yes</ExpiredObjectDeleteMarker></Expiration>",
            "MalformedXML",
        ),
    ] {
        let err = one(&format!("<Filter/><Status>Enabled</Status>{rule}")).unwrap_err();
        assert_eq!(err.code(), code, "{rule}");
    }
}
