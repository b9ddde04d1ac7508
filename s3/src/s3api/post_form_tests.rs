use std::collections::VecDeque;

use super::*;

const B: &str = "XyZ-boundary-42";

/// A form with `fields` then a file part holding `file`.
fn form(fields: &[(&str, &str)], file: Option<&[u8]>) -> Vec<u8> {
    let mut out = b"preamble to ignore\r\n".to_vec();
    for (name, value) in fields {
        let part =
            format!("--{B}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n");
        out.extend_from_slice(part.as_bytes());
    }
    if let Some(file) = file {
        let head = format!(
            "--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        );
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(file);
        out.extend_from_slice(b"\r\n");
        let trailing = format!("--{B}\r\nContent-Disposition: form-data; name=\"after\"\r\n\r\nx");
        out.extend_from_slice(trailing.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{B}--\r\n").as_bytes());
    out
}

fn pieces(data: &[u8], size: usize) -> VecDeque<Bytes> {
    data.chunks(size).map(Bytes::copy_from_slice).collect()
}

fn run<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(fut)
}

/// The head and the whole file, plus the largest piece of file handed out at once.
fn code(result: Result<(FormHead, Vec<u8>, usize), S3Error>) -> &'static str {
    match result {
        Ok(_) => "accepted",
        Err(e) => e.code(),
    }
}

async fn read_all(source: VecDeque<Bytes>) -> Result<(FormHead, Vec<u8>, usize), S3Error> {
    let mut form = MultipartForm::new(source, B);
    let head = form.read_head().await?;
    let (mut file, mut largest) = (Vec::new(), 0);
    while let Some(piece) = form.next_file_chunk().await? {
        largest = largest.max(piece.len());
        file.extend_from_slice(&piece);
    }
    Ok((head, file, largest))
}

#[test]
fn the_form_parses_whatever_the_piece_boundaries() {
    // The file holds near-delimiters ("\r\n--XyZ" without the rest) to trip a naive search.
    let mut file: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    file.extend_from_slice(b"\r\n--XyZ-boundary-4\r\n--");
    let body = form(&[("key", "up/${filename}"), ("Content-Type", "text/plain")], Some(&file));
    for size in [1, 2, 3, 7, 16, 17, 100, 4096, body.len()] {
        let (head, got, _) = run(read_all(pieces(&body, size))).unwrap();
        assert_eq!(got, file, "pieces of {size}");
        let fields = vec![
            ("key".to_string(), "up/${filename}".to_string()),
            ("content-type".to_string(), "text/plain".to_string()),
        ];
        assert_eq!(head, FormHead { fields, file_name: Some("a.bin".into()) });
    }
}

#[test]
fn the_file_streams_in_pieces_not_whole() {
    let file = vec![b'z'; 1 << 20];
    let body = form(&[("key", "k")], Some(&file));
    let (_, got, largest) = run(read_all(pieces(&body, 8192))).unwrap();
    assert_eq!(got.len(), file.len());
    // Never more than one piece (and a held-back delimiter tail) in memory.
    assert!(largest <= 8192 + B.len() + 4, "{largest}");
}

#[test]
fn an_empty_file_is_a_file() {
    let body = form(&[("key", "k")], Some(b""));
    let (head, got, _) = run(read_all(pieces(&body, 5))).unwrap();
    assert!(got.is_empty());
    assert_eq!(head.file_name.as_deref(), Some("a.bin"));
}

#[test]
fn oversized_fields_are_refused_before_the_file() {
    let big = "v".repeat(FIELDS_BYTES_MAX + 1);
    let body = form(&[("key", "k"), ("x-ignore-pad", &big)], Some(b"data"));
    assert_eq!(code(run(read_all(pieces(&body, 1024)))), "MaxPostPreDataLengthExceeded");
    // Whatever the pieces: one piece holding the whole form too.
    assert_eq!(code(run(read_all(pieces(&body, body.len())))), "MaxPostPreDataLengthExceeded");
    assert_eq!(fields_too_large().status(), hyper::StatusCode::BAD_REQUEST);
    // Just under the limit is fine.
    let fits = "v".repeat(FIELDS_BYTES_MAX - 200);
    let body = form(&[("x-ignore-pad", &fits)], Some(b"data"));
    assert_eq!(run(read_all(pieces(&body, 1024))).unwrap().1, b"data");
}

#[test]
fn a_form_without_file_or_cut_short_is_refused() {
    let body = form(&[("key", "k")], None);
    assert_eq!(code(run(read_all(pieces(&body, 10)))), "IncorrectNumberOfFilesInPostRequest");
    let body = form(&[("key", "k")], Some(b"some data"));
    // Cut inside the file: its closing delimiter never comes.
    let at = body.windows(9).position(|w| w == b"some data").unwrap();
    let cut = &body[..at + 4];
    assert_eq!(code(run(read_all(pieces(cut, 10)))), "IncompleteBody");
    let no_delimiter = b"just some bytes, no form at all".to_vec();
    assert_eq!(code(run(read_all(pieces(&no_delimiter, 10)))), "MalformedPOSTRequest");
    let no_name = format!("--{B}\r\nContent-Disposition: form-data\r\n\r\nv\r\n--{B}--");
    assert_eq!(code(run(read_all(pieces(no_name.as_bytes(), 10)))), "MalformedPOSTRequest");
}

#[test]
fn boundaries_come_from_the_content_type() {
    assert_eq!(boundary("multipart/form-data; boundary=abc"), Some(Ok("abc".into())));
    assert_eq!(boundary("Multipart/Form-Data;charset=x; Boundary=\"a b\""), Some(Ok("a b".into())));
    assert_eq!(boundary("application/xml"), None);
    let bad = boundary("multipart/form-data").unwrap().unwrap_err();
    assert_eq!(bad.code(), "MalformedPOSTRequest");
    let long = format!("multipart/form-data; boundary={}", "b".repeat(71));
    assert!(boundary(&long).unwrap().is_err());
}

#[test]
fn a_refused_file_is_skipped_up_to_a_bound() {
    let body = form(&[("key", "k")], Some(&vec![b's'; 10_000]));
    run(async {
        let mut form = MultipartForm::new(pieces(&body, 1000), B);
        form.read_head().await.unwrap();
        form.next_file_chunk().await.unwrap();
        form.skip_file(1 << 20).await;
        // The whole file was read: nothing of it is left.
        assert_eq!(form.next_file_chunk().await.unwrap(), None);
        let mut form = MultipartForm::new(pieces(&body, 1000), B);
        form.read_head().await.unwrap();
        form.skip_file(2000).await;
        // Cut off past the bound: the rest of the file is still unread.
        assert!(form.next_file_chunk().await.unwrap().is_some());
    });
}
