//! Multipart uploads in the s3 workload (`multipart_fraction`): a PUT done as
//! CreateMultipartUpload, 2–3 UploadParts and CompleteMultipartUpload, each call through a
//! node drawn on its own, as a client behind a load balancer sends them.
//!
//! Why the whole upload is one write of the register history: an object appears only when
//! CompleteMultipartUpload turns the upload's `Uploading` version `Complete`
//! (engine/src/objects/multipart.rs); nothing before that can be read. So the write is
//! invoked at create and completes with complete's answer, and its value is the hex
//! blake3 of the whole body, as a simple PUT's: the GET path and the register checkers
//! apply unchanged. Its outcome follows from the completion alone:
//! - complete answered 200: acknowledged;
//! - complete sent without a 200 (an error, or no answer): unknown — it may have taken
//!   effect on some replicas;
//! - complete never sent (create or a part failed, or the upload was abandoned on purpose,
//!   aborted or left open): failed for sure, whatever the abort answered. Its value must
//!   never be read, which is what the checkers require of a failed write.
//!
//! Abandoned uploads (`multipart_abort_fraction`) are half aborted, half left open: those
//! the block collector must abort after `upload_timeout_ms`, and `block_refs` then finds
//! any of their blocks left behind as orphans.

use std::collections::BTreeMap;

use bytes::Bytes;
use hangar_engine::objects::multipart::PART_SIZE_BYTES_MIN;
use hangar_s3::s3api::xml::{XmlWriter, first_element_text};
use hyper::Method;
use rand_core::RngCore;

use crate::history::{Op, OpKind, Outcome};
use crate::s3client::{S3Client, S3ClientError, S3Response};
use crate::s3workload::{BUCKET, body_for, value_of};
use crate::trace::multipart_op_detail;
use crate::workload::{ClientCtx, now_us, roll};

/// What a client does with an upload once its parts are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Complete,
    /// Abandoned: AbortMultipartUpload.
    Abort,
    /// Abandoned: never completed nor aborted, left to the block collector.
    LeaveOpen,
}

/// One upload, drawn from the client's RNG before any call is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPlan {
    /// Every part but the last is `PART_SIZE_BYTES_MIN`; the last is 1..=max_object_bytes.
    pub part_sizes: Vec<usize>,
    /// The node (an index into the S3 addresses) of each call: create, every part, then
    /// complete or abort.
    pub nodes: Vec<usize>,
    pub fate: Fate,
}

impl UploadPlan {
    /// Draws an upload of 2–3 parts. `abort_fraction` is drawn against only when above 0.
    pub fn draw(
        rng: &mut impl RngCore,
        node_count: usize,
        max_object_bytes: u64,
        abort_fraction: f64,
    ) -> UploadPlan {
        let parts = 2 + (rng.next_u64() % 2) as usize;
        let last = 1 + rng.next_u64() % max_object_bytes.max(1);
        let mut part_sizes = vec![PART_SIZE_BYTES_MIN as usize; parts - 1];
        part_sizes.push(last as usize);
        let fate = match abort_fraction > 0.0 && roll(rng) < abort_fraction {
            false => Fate::Complete,
            true if rng.next_u64().is_multiple_of(2) => Fate::Abort,
            true => Fate::LeaveOpen,
        };
        let nodes = (0..parts + 2).map(|_| (rng.next_u64() % node_count as u64) as usize).collect();
        UploadPlan { part_sizes, nodes, fate }
    }

    pub fn size(&self) -> usize {
        self.part_sizes.iter().sum()
    }
}

/// One call of an upload, as the trace shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    call: String,
    via: String,
    /// 0: no answer.
    status: u16,
    answered_us: u64,
}

/// How an upload went: its calls, the write's outcome, and the object's ETag if completed.
struct Upload {
    steps: Vec<Step>,
    outcome: Outcome,
    etag: Option<String>,
}

/// Does write `seq` of the client as the multipart upload `plan` of `key`, and records it
/// in the history and the trace (one `op` event, its calls in the detail's `multipart`).
pub async fn put_multipart(
    ctx: &ClientCtx,
    client: &S3Client,
    key: String,
    seq: u64,
    plan: UploadPlan,
    etags: &mut BTreeMap<String, String>,
) {
    let body = Bytes::from(body_for(ctx.seam.rng_seed, seq, plan.size()));
    let kind = OpKind::Put { value: value_of(&body) };
    let invoke_us = now_us();
    let upload = upload(client, &ctx.s3_nodes, &key, &plan, body).await;
    if let Some(etag) = &upload.etag {
        etags.insert(key.clone(), etag.clone());
    }
    let outcome = upload.outcome;
    let op = Op { client: ctx.name.clone(), key, kind, invoke_us, complete_us: now_us(), outcome };
    let steps = show_steps(&upload.steps);
    let mut via: Vec<&str> = Vec::new();
    for step in &upload.steps {
        if !via.contains(&step.via.as_str()) {
            via.push(&step.via);
        }
    }
    let via = via.join(",");
    let summary = format!("{op:?} multipart {:?}: {steps}", plan.fate);
    let detail = || multipart_op_detail(&op, &via, &steps);
    ctx.recorder.lock().unwrap().record_detailed(&ctx.name, "op", summary.as_bytes(), detail);
    ctx.history.lock().unwrap().push(op);
}

/// `create n1 200 @1200us, part 1 n3 200 @..., complete n2 0 @...` (status 0: no answer).
fn show_steps(steps: &[Step]) -> String {
    let shown: Vec<String> = steps
        .iter()
        .map(|s| format!("{} {} {} @{}us", s.call, s.via, s.status, s.answered_us))
        .collect();
    shown.join(", ")
}

/// The calls of one upload, each through its own node, kept for the trace.
struct Calls<'a> {
    client: &'a S3Client,
    nodes: &'a [String],
    path: String,
    steps: Vec<Step>,
}

impl Calls<'_> {
    async fn send(
        &mut self,
        call: String,
        node: usize,
        method: Method,
        query: &[(&str, &str)],
        body: Bytes,
    ) -> Result<S3Response, S3ClientError> {
        let addr = &self.nodes[node];
        let query: Vec<(String, String)> =
            query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let answer = self.client.request_query_body(addr, method, &self.path, &query, body).await;
        let via = addr.split(':').next().unwrap_or(addr).to_string();
        let status = answer.as_ref().map_or(0, |a| a.status);
        self.steps.push(Step { call, via, status, answered_us: now_us() });
        answer
    }

    /// AbortMultipartUpload; its answer changes nothing for the history (see the module).
    async fn abort(&mut self, node: usize, upload_id: &str) {
        let query = [("uploadId", upload_id)];
        let _ = self.send("abort".into(), node, Method::DELETE, &query, Bytes::new()).await;
    }
}

/// Sends the upload's calls (see the module for the outcome).
async fn upload(
    client: &S3Client,
    nodes: &[String],
    key: &str,
    plan: &UploadPlan,
    body: Bytes,
) -> Upload {
    let mut calls = Calls { client, nodes, path: format!("/{BUCKET}/{key}"), steps: Vec::new() };
    let failed = |calls: Calls| Upload { steps: calls.steps, outcome: Outcome::Fail, etag: None };
    let create = [("uploads", "")];
    let created = calls.send("create".into(), plan.nodes[0], Method::POST, &create, Bytes::new());
    let Some(upload_id) = answered_text(&created.await, "UploadId") else {
        return failed(calls);
    };
    let finish_node = plan.nodes[plan.part_sizes.len() + 1];
    let mut parts = Vec::new();
    let mut offset = 0;
    for (i, size) in plan.part_sizes.iter().enumerate() {
        let number = i as u32 + 1;
        let shown = number.to_string();
        let query = [("partNumber", shown.as_str()), ("uploadId", upload_id.as_str())];
        let part = body.slice(offset..offset + size);
        offset += size;
        let sent =
            calls.send(format!("part {number}"), plan.nodes[i + 1], Method::PUT, &query, part);
        match sent.await {
            Ok(r) if r.status == 200 && r.etag.is_some() => parts.push((number, r.etag.unwrap())),
            _ => {
                // Complete will never be sent: abort, so the parts go at once rather than
                // at the collector's timeout.
                calls.abort(finish_node, &upload_id).await;
                return failed(calls);
            }
        }
    }
    match plan.fate {
        Fate::LeaveOpen => failed(calls),
        Fate::Abort => {
            calls.abort(finish_node, &upload_id).await;
            failed(calls)
        }
        Fate::Complete => {
            let doc = Bytes::from(complete_document(&parts));
            let query = [("uploadId", upload_id.as_str())];
            let complete = calls.send("complete".into(), finish_node, Method::POST, &query, doc);
            let completed = complete.await;
            let etag = answered_text(&completed, "ETag");
            Upload { steps: calls.steps, outcome: completion_outcome(&completed), etag }
        }
    }
}

/// The outcome of a write whose CompleteMultipartUpload got `answer`. (An S3 server may
/// answer 200 with an error document once it has started answering; that is no success.)
fn completion_outcome<E>(answer: &Result<S3Response, E>) -> Outcome {
    match answer {
        Ok(r) if r.status == 200 && r.error_code().is_none() => Outcome::Ok { read: None },
        _ => Outcome::Info,
    }
}

/// The text of `element` in a 200 answer's document (`UploadId`, the completed `ETag`).
fn answered_text(answer: &Result<S3Response, S3ClientError>, element: &str) -> Option<String> {
    match answer {
        Ok(r) if r.status == 200 && r.error_code().is_none() => {
            first_element_text(std::str::from_utf8(&r.body).ok()?, element)
        }
        _ => None,
    }
}

/// The CompleteMultipartUpload document naming `parts` (number, ETag as UploadPart
/// answered it), in order.
fn complete_document(parts: &[(u32, String)]) -> String {
    let mut w = XmlWriter::new("CompleteMultipartUpload", true);
    for (number, etag) in parts {
        w.open("Part");
        w.element("PartNumber", &number.to_string());
        w.element("ETag", etag);
        w.close("Part");
    }
    w.finish("CompleteMultipartUpload")
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    use super::*;

    /// `upload` against the real frontend (`serve` over a memory backend) on simulated
    /// TCP: signed queries, the part list and the answers as the server sends them.
    #[test]
    fn uploads_complete_abort_and_stay_open_through_serve() {
        use std::sync::Arc;

        use crate::s3client::S3Creds;
        use crate::world::{SimClock, SimNet};

        let creds = S3Creds {
            access_key: "GKTEST".into(),
            secret_key: "right".into(),
            region: "hangar-sim".into(),
        };
        let mut sim = turmoil::Builder::new().build();
        crate::s3client::serve_memory_frontend(&mut sim, "hangar-sim");
        sim.client("client", async move {
            let clock =
                Arc::new(SimClock { skew_ms: Default::default(), drift: Default::default() });
            let client = S3Client::new(Arc::new(SimNet), clock, creds, 5_000);
            let nodes = ["server:3900".to_string()];
            assert_eq!(
                client.request(&nodes[0], Method::PUT, "/sim", Bytes::new()).await?.status,
                200
            );
            let size = PART_SIZE_BYTES_MIN as usize + 10;
            let body = Bytes::from(body_for(1, 1, size));
            let plan = |fate| UploadPlan {
                part_sizes: vec![PART_SIZE_BYTES_MIN as usize, 10],
                nodes: vec![0; 4],
                fate,
            };
            let done = upload(&client, &nodes, "k1", &plan(Fate::Complete), body.clone()).await;
            let calls: Vec<(&str, u16)> =
                done.steps.iter().map(|s| (s.call.as_str(), s.status)).collect();
            assert_eq!(
                calls,
                [("create", 200), ("part 1", 200), ("part 2", 200), ("complete", 200)]
            );
            assert_eq!(done.outcome, Outcome::Ok { read: None });
            assert!(done.etag.as_deref().is_some_and(|e| e.ends_with("-2\"")), "{:?}", done.etag);
            let got = client.request(&nodes[0], Method::GET, "/sim/k1", Bytes::new()).await?;
            assert_eq!((got.status, value_of(&got.body)), (200, value_of(&body)));

            let other = Bytes::from(body_for(1, 2, size));
            let aborted = upload(&client, &nodes, "k1", &plan(Fate::Abort), other.clone()).await;
            assert_eq!(
                aborted.steps.last().map(|s| (s.call.as_str(), s.status)),
                Some(("abort", 204))
            );
            let open = upload(&client, &nodes, "k1", &plan(Fate::LeaveOpen), other).await;
            assert_eq!(open.steps.len(), 3);
            assert_eq!((aborted.outcome, open.outcome), (Outcome::Fail, Outcome::Fail));
            let got = client.request(&nodes[0], Method::GET, "/sim/k1", Bytes::new()).await?;
            assert_eq!(value_of(&got.body), value_of(&body), "the completed upload stays");
            Ok(())
        });
        sim.run().unwrap();
    }

    #[test]
    fn plans_have_two_or_three_parts_all_but_the_last_of_the_minimum_size() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut fates = BTreeMap::new();
        for _ in 0..400 {
            let plan = UploadPlan::draw(&mut rng, 3, 65_536, 0.5);
            let (last, rest) = plan.part_sizes.split_last().unwrap();
            assert!((1..=2).contains(&rest.len()), "{plan:?}");
            assert!(rest.iter().all(|&s| s == PART_SIZE_BYTES_MIN as usize), "{plan:?}");
            assert!((1..=65_536).contains(last), "{plan:?}");
            assert_eq!(plan.nodes.len(), plan.part_sizes.len() + 2);
            assert!(plan.nodes.iter().all(|&n| n < 3));
            *fates.entry(format!("{:?}", plan.fate)).or_insert(0) += 1;
        }
        // Half abandoned, and those half aborted, half left open.
        assert_eq!(fates.len(), 3, "{fates:?}");
        assert!((150..250).contains(&fates["Complete"]), "{fates:?}");
        let never = UploadPlan::draw(&mut rng, 3, 0, 0.0);
        assert_eq!((never.fate, *never.part_sizes.last().unwrap()), (Fate::Complete, 1));
    }

    #[test]
    fn only_a_completion_answered_200_acknowledges_the_write() {
        let answer = |status, body: &'static [u8]| -> Result<S3Response, ()> {
            Ok(S3Response { status, body: Bytes::from_static(body), etag: None })
        };
        assert_eq!(completion_outcome(&answer(200, b"<Result/>")), Outcome::Ok { read: None });
        let late_error = b"<Error><Code>InternalError</Code></Error>";
        assert_eq!(completion_outcome(&answer(200, late_error)), Outcome::Info);
        assert_eq!(completion_outcome(&answer(503, b"")), Outcome::Info);
        assert_eq!(completion_outcome(&Err::<S3Response, ()>(())), Outcome::Info);
    }

    #[test]
    fn the_part_list_reads_back_through_the_servers_parser() {
        let parts = [
            (1, "\"0123456789abcdef0123456789abcdef\"".to_string()),
            (2, "\"fedcba9876543210fedcba9876543210\"".to_string()),
        ];
        let doc = complete_document(&parts);
        let parsed = hangar_s3::s3api::multipart::parse_complete(doc.as_bytes()).unwrap();
        let want: Vec<(u32, String)> =
            parts.iter().map(|(n, e)| (*n, e.trim_matches('"').to_string())).collect();
        assert_eq!(parsed, want);
    }

    #[test]
    fn upload_ids_and_etags_are_read_from_200_answers_only() {
        let ok = |body: &'static str| -> Result<S3Response, S3ClientError> {
            Ok(S3Response { status: 200, body: Bytes::from_static(body.as_bytes()), etag: None })
        };
        let created = ok("<InitiateMultipartUploadResult><UploadId>ab12</UploadId>\
                          </InitiateMultipartUploadResult>");
        assert_eq!(answered_text(&created, "UploadId").as_deref(), Some("ab12"));
        let completed = ok("<CompleteMultipartUploadResult><ETag>&quot;9f-2&quot;</ETag>\
                            </CompleteMultipartUploadResult>");
        assert_eq!(answered_text(&completed, "ETag").as_deref(), Some("\"9f-2\""));
        let error = ok("<Error><Code>NoSuchUpload</Code><UploadId>ab12</UploadId></Error>");
        assert_eq!(answered_text(&error, "UploadId"), None);
        let refused = Ok(S3Response { status: 503, body: Bytes::new(), etag: None });
        assert_eq!(answered_text(&refused, "UploadId"), None);
    }
}
