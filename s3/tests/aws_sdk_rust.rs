//! The AWS SDK for Rust (`aws-sdk-s3`) against a real `hangar dev` process on real TCP:
//! what a Rust program using the official SDK meets. The SDK signs every request with
//! SigV4 and, by default, sends a CRC32 checksum with each upload (as an `aws-chunked`
//! trailer when the body streams), so this also checks those paths with a client we did
//! not write.
//!
//! Covered: CreateBucket, PutObject (with user metadata and content type), GetObject
//! (whole and ranged), HeadObject, ListObjectsV2 with a delimiter, CopyObject, a multipart
//! upload of two parts, a conditional PUT refused with 412, DeleteObject and the
//! `NoSuchKey` error after it.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

/// A `hangar dev` process on free loopback ports, stopped (and its directory removed) on
/// drop.
struct DevServer {
    child: Child,
    dir: PathBuf,
    endpoint: String,
    access_key: String,
    secret_key: String,
    region: String,
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl DevServer {
    fn start() -> DevServer {
        let dir = std::env::temp_dir().join(format!("hangar-sdk-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ports: Vec<String> = (0..4).map(|_| free_port().to_string()).collect();
        let child = Command::new(env!("CARGO_BIN_EXE_hangar"))
            .arg("dev")
            .arg("--dir")
            .arg(&dir)
            .args(["--s3-port", &ports[0], "--rpc-port", &ports[1]])
            .args(["--web-port", &ports[2], "--admin-port", &ports[3]])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the hangar binary starts");
        let mut server = DevServer {
            child,
            dir,
            endpoint: format!("http://127.0.0.1:{}", ports[0]),
            access_key: String::new(),
            secret_key: String::new(),
            region: String::new(),
        };
        // Credentials are written before the server serves; then wait for the S3 port.
        let deadline = Instant::now() + Duration::from_secs(60);
        let credentials = server.dir.join("credentials.env");
        loop {
            assert!(Instant::now() < deadline, "hangar dev did not serve within 60 s");
            if let Ok(file) = std::fs::File::open(&credentials) {
                for line in BufReader::new(file).lines().map_while(Result::ok) {
                    let Some((name, value)) = line.trim_start_matches("export ").split_once('=')
                    else {
                        continue;
                    };
                    match name {
                        "AWS_ACCESS_KEY_ID" => server.access_key = value.to_string(),
                        "AWS_SECRET_ACCESS_KEY" => server.secret_key = value.to_string(),
                        "AWS_REGION" => server.region = value.to_string(),
                        _ => {}
                    }
                }
            }
            let serving = TcpStream::connect(("127.0.0.1", ports[0].parse().unwrap())).is_ok();
            if serving && !server.secret_key.is_empty() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn client(&self) -> aws_sdk_s3::Client {
        let credentials =
            Credentials::new(&self.access_key, &self.secret_key, None, None, "hangar-dev");
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(credentials)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }
}

async fn read(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let got = client.get_object().bucket(bucket).key(key).send().await.unwrap();
    got.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_sdk_for_rust_round_trips_objects() {
    let server = DevServer::start();
    let s3 = server.client();
    let bucket = "rust-sdk";
    s3.create_bucket().bucket(bucket).send().await.expect("CreateBucket");

    // PutObject with metadata; GetObject whole and ranged; HeadObject.
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let put = s3
        .put_object()
        .bucket(bucket)
        .key("dir/a.bin")
        .content_type("application/x-test")
        .metadata("colour", "blue")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("PutObject");
    assert!(put.e_tag().is_some());
    assert_eq!(read(&s3, bucket, "dir/a.bin").await, body);
    let ranged = s3.get_object().bucket(bucket).key("dir/a.bin").range("bytes=10-19");
    let ranged = ranged.send().await.unwrap();
    assert_eq!(ranged.content_range(), Some("bytes 10-19/300000"));
    assert_eq!(ranged.body.collect().await.unwrap().into_bytes().as_ref(), &body[10..20]);
    let head = s3.head_object().bucket(bucket).key("dir/a.bin").send().await.unwrap();
    assert_eq!(head.content_length(), Some(300_000));
    assert_eq!(head.content_type(), Some("application/x-test"));
    assert_eq!(head.metadata().and_then(|m| m.get("colour")).map(String::as_str), Some("blue"));

    // ListObjectsV2 with a delimiter.
    for key in ["dir/b.txt", "dir/sub/c.txt", "top.txt"] {
        let put = s3.put_object().bucket(bucket).key(key).body(ByteStream::from_static(b"x"));
        put.send().await.unwrap();
    }
    let listed = s3.list_objects_v2().bucket(bucket).prefix("dir/").delimiter("/").send();
    let listed = listed.await.unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["dir/a.bin", "dir/b.txt"]);
    let prefixes: Vec<&str> = listed.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, ["dir/sub/"]);

    // CopyObject.
    let copy = s3.copy_object().bucket(bucket).key("copied.bin");
    copy.copy_source(format!("{bucket}/dir/a.bin")).send().await.expect("CopyObject");
    assert_eq!(read(&s3, bucket, "copied.bin").await, body);

    // A multipart upload: a 5 MiB part and a small last one.
    let key = "multipart.bin";
    let created = s3.create_multipart_upload().bucket(bucket).key(key).send().await.unwrap();
    let upload_id = created.upload_id().unwrap();
    let parts_data = [vec![7u8; 5 * 1024 * 1024], b"the end".to_vec()];
    let mut parts = Vec::new();
    for (i, data) in parts_data.iter().enumerate() {
        let number = i as i32 + 1;
        let part = s3.upload_part().bucket(bucket).key(key).upload_id(upload_id);
        let sent = part.part_number(number).body(ByteStream::from(data.clone())).send();
        let etag = sent.await.expect("UploadPart").e_tag().unwrap().to_string();
        parts.push(CompletedPart::builder().part_number(number).e_tag(etag).build());
    }
    let completion = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
    let complete = s3.complete_multipart_upload().bucket(bucket).key(key).upload_id(upload_id);
    let done = complete.multipart_upload(completion).send().await.expect("Complete");
    assert!(done.e_tag().unwrap().ends_with("-2\""), "{:?}", done.e_tag());
    assert_eq!(read(&s3, bucket, key).await, parts_data.concat());

    // A conditional create of an existing key: 412.
    let create = s3.put_object().bucket(bucket).key("top.txt").if_none_match("*");
    let refused = create.body(ByteStream::from_static(b"y")).send().await.unwrap_err();
    assert_eq!(refused.raw_response().map(|r| r.status().as_u16()), Some(412));
    assert_eq!(read(&s3, bucket, "top.txt").await, b"x");

    // DeleteObject, then NoSuchKey.
    s3.delete_object().bucket(bucket).key("top.txt").send().await.expect("DeleteObject");
    let gone = s3.get_object().bucket(bucket).key("top.txt").send().await.unwrap_err();
    assert!(gone.into_service_error().is_no_such_key());
}
