//! The `cas` workload: conditional writes on a few keys, judged for linearizability
//! (`hangar_checkers::linearizable`).
//!
//! Each client GETs a key, creates it with `If-None-Match: *`, or replaces it with
//! `If-Match: "<ETag of the value it last saw>"` (S3's ETag of a simple PUT is the hex MD5 of
//! the body, so the value names its ETag), plus a few unconditional PUTs and DELETEs (the
//! deletes let creates succeed again; both are part of the register model; `--cas-
//! unconditional false` leaves them out). Bodies are
//! unique per operation (`c3-17`), so a read names the write it saw.
//!
//! Outcomes: 200/204 `Ok`; 412 PreconditionFailed, and 404 NoSuchKey to an `If-Match`,
//! `Refused` — the condition was false, which the order must explain too; 409
//! ConditionalRequestConflict and other 4xx `Fail` (the server decided nothing was
//! accepted); 5xx, timeouts and broken connections `Info`. A GET without an answer is
//! `Info` (dropped by the checker: a read changes nothing).

use hangar_checkers::Violation;
use hangar_checkers::linearizable::{self, Budget, CasKind, CasOp, CasOutcome, Verdict};
use hyper::header::{HeaderName, HeaderValue};

use super::*;

/// Few keys, so conditional writes race each other and the reads.
const CAS_KEYS: u64 = 3;

impl Client {
    pub(super) async fn cas_step(&mut self, roll: u64) {
        let key = format!("c{}", self.rng.next_u64() % CAS_KEYS);
        let value = format!("{}-{}", self.name, self.seq).into_bytes();
        let seen = self.last_read.get(&key).cloned().flatten();
        // Without unconditional writes, the same mix of reads and conditional writes.
        let roll = if self.cas_unconditional { roll } else { roll * 90 / 100 };
        let kind = match (roll, seen) {
            (0..45, _) => CasKind::Read,
            (45..90, Some(expected)) if roll >= 60 => CasKind::WriteIfMatch { expected, value },
            (45..90, _) => CasKind::CreateIfAbsent { value },
            (90..95, _) => CasKind::Write { value },
            _ => CasKind::Delete,
        };
        self.cas_op(key, kind).await;
    }

    pub(super) async fn cas_final_reads(&mut self) {
        for k in 0..CAS_KEYS {
            self.cas_op(format!("c{k}"), CasKind::Read).await;
        }
    }

    async fn cas_op(&mut self, key: String, kind: CasKind) {
        let invoke_us = self.rec.now_us();
        let path = format!("/{BUCKET}/{key}");
        let name = |n: &'static str| HeaderName::from_static(n);
        let value = |v: &str| HeaderValue::from_str(v).expect("ETags and * are visible ASCII");
        let (method, body, headers) = match &kind {
            CasKind::Read => (Method::GET, Bytes::new(), vec![]),
            CasKind::Delete => (Method::DELETE, Bytes::new(), vec![]),
            CasKind::Write { value } => (Method::PUT, Bytes::from(value.clone()), vec![]),
            CasKind::CreateIfAbsent { value: v } => {
                (Method::PUT, Bytes::from(v.clone()), vec![(name("if-none-match"), value("*"))])
            }
            CasKind::WriteIfMatch { expected, value: v } => {
                let etag = format!("\"{}\"", hex::encode(md5::Md5::digest(expected)));
                (Method::PUT, Bytes::from(v.clone()), vec![(name("if-match"), value(&etag))])
            }
        };
        let reply = self.call_with_headers(method, &path, &[], body, &headers).await;
        let outcome = cas_outcome(&kind, reply);
        // What the client now knows the key holds: its If-Match names that.
        match (&kind, &outcome) {
            (CasKind::Read, CasOutcome::Ok { read }) => {
                self.last_read.insert(key.clone(), read.clone());
            }
            (CasKind::Delete, CasOutcome::Ok { .. }) => {
                self.last_read.insert(key.clone(), None);
            }
            (
                CasKind::Write { value }
                | CasKind::CreateIfAbsent { value }
                | CasKind::WriteIfMatch { value, .. },
                CasOutcome::Ok { .. },
            ) => {
                self.last_read.insert(key.clone(), Some(value.clone()));
            }
            _ => {}
        }
        let op = CasOp {
            client: self.name.clone(),
            key,
            kind,
            invoke_us,
            complete_us: self.rec.now_us(),
            outcome,
        };
        if let History::Cas(h) = &mut *self.rec.history.lock().expect("not poisoned") {
            h.push(op);
        }
    }
}

/// Maps an S3 reply onto what the linearizability checker may assume happened.
fn cas_outcome(kind: &CasKind, reply: Reply) -> CasOutcome {
    let code = |a: &Answer| xml_elements(&a.body, "Code").first().cloned().unwrap_or_default();
    let conditional = matches!(kind, CasKind::CreateIfAbsent { .. } | CasKind::WriteIfMatch { .. });
    match reply {
        Reply::NotSent => CasOutcome::Fail,
        Reply::Unknown => CasOutcome::Info,
        Reply::Answer(a) => match (kind, a.status) {
            (CasKind::Read, 200) => CasOutcome::Ok { read: Some(a.body.to_vec()) },
            (CasKind::Read, 404) if code(&a) == "NoSuchKey" => CasOutcome::Ok { read: None },
            (CasKind::Read, 500..) => CasOutcome::Info,
            (CasKind::Read, _) => CasOutcome::Fail,
            (_, 200 | 204) => CasOutcome::Ok { read: None },
            (_, 412) if conditional => CasOutcome::Refused,
            (CasKind::WriteIfMatch { .. }, 404) if code(&a) == "NoSuchKey" => CasOutcome::Refused,
            // 409 ConditionalRequestConflict: nothing was accepted. Other 4xx: refused.
            (_, ..500) => CasOutcome::Fail,
            // 503 (a round's outcome unknown) and other 5xx: may still take effect.
            (_, 500..) => CasOutcome::Info,
        },
    }
}

pub(super) fn ok_reads(h: &[CasOp]) -> usize {
    h.iter()
        .filter(|o| o.kind == CasKind::Read && matches!(o.outcome, CasOutcome::Ok { .. }))
        .count()
}

pub(super) fn check(h: &[CasOp]) -> Result<Option<String>, Violation> {
    match linearizable::check(h, Budget::default()) {
        Verdict::Linearizable => Ok(None),
        Verdict::NotLinearizable(stuck) => {
            Err(Violation { checker: "linearizable", details: linearizable::explain(h, &stuck) })
        }
        Verdict::Unknown { key, reason } => {
            Ok(Some(format!("linearizability of key {key} not decided: {reason}")))
        }
    }
}

pub(super) fn point(o: &CasOp) -> Point {
    let outcome = match o.outcome {
        CasOutcome::Ok { .. } => "ok",
        CasOutcome::Refused | CasOutcome::Fail => "fail",
        CasOutcome::Info => "info",
    };
    let what = match &o.kind {
        CasKind::Read => "get",
        CasKind::Write { .. } => "put",
        CasKind::Delete => "delete",
        CasKind::CreateIfAbsent { .. } => "put if-none-match",
        CasKind::WriteIfMatch { .. } => "put if-match",
    };
    let label = format!("{} {what} {}", o.client, o.key);
    Point { invoke_us: o.invoke_us, complete_us: o.complete_us, outcome, label }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &'static [u8]) -> Reply {
        Reply::Answer(Answer { status, body: Bytes::from_static(body) })
    }

    #[test]
    fn conditional_outcomes_say_only_what_the_client_can_know() {
        let create = CasKind::CreateIfAbsent { value: b"v".to_vec() };
        let if_match = CasKind::WriteIfMatch { expected: b"u".to_vec(), value: b"v".to_vec() };
        let precondition = b"<Error><Code>PreconditionFailed</Code></Error>";
        let conflict = b"<Error><Code>ConditionalRequestConflict</Code></Error>";
        let no_key = b"<Error><Code>NoSuchKey</Code></Error>";
        for kind in [&create, &if_match] {
            assert_eq!(cas_outcome(kind, answer(200, b"")), CasOutcome::Ok { read: None });
            assert_eq!(cas_outcome(kind, answer(412, precondition)), CasOutcome::Refused);
            assert_eq!(cas_outcome(kind, answer(409, conflict)), CasOutcome::Fail);
            assert_eq!(cas_outcome(kind, answer(503, b"")), CasOutcome::Info);
            assert_eq!(cas_outcome(kind, Reply::Unknown), CasOutcome::Info);
            assert_eq!(cas_outcome(kind, Reply::NotSent), CasOutcome::Fail);
        }
        // If-Match on a key without an object: S3 answers NoSuchKey, a false condition.
        assert_eq!(cas_outcome(&if_match, answer(404, no_key)), CasOutcome::Refused);
        // An unconditional write is never "refused": a 412 to it means no effect.
        let put = CasKind::Write { value: b"v".to_vec() };
        assert_eq!(cas_outcome(&put, answer(412, precondition)), CasOutcome::Fail);
        let read = cas_outcome(&CasKind::Read, answer(200, b"c1-2"));
        assert_eq!(read, CasOutcome::Ok { read: Some(b"c1-2".to_vec()) });
        assert_eq!(cas_outcome(&CasKind::Read, answer(404, no_key)), CasOutcome::Ok { read: None });
        assert_eq!(cas_outcome(&CasKind::Delete, answer(204, b"")), CasOutcome::Ok { read: None });
    }
}
