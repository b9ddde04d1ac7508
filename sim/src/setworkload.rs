//! The set workload: set/list completeness through the real S3 frontend.
//!
//! Clients add elements — PUTs of new, unique keys `set/<client>-<seq>` in bucket `sim`,
//! never overwritten or deleted — and list the prefix `set/` with ListObjectsV2, following
//! continuation tokens page by page (`workload.list_max_keys` keys a page, small enough
//! that a run's listings span several pages). The history is the Jepsen harness's
//! (`hangar_checkers::set::SetOp`), judged by the same `check_set`: every add acknowledged
//! before a listing began must be in it, and nothing that was never added may be.
//!
//! Why pages are fine: each page is its own quorum read, so a listing is not a snapshot;
//! but an add acknowledged before the first page was sent must be in whichever page
//! covers its key, and that is all the checker asks.
//!
//! After the quiet period the final checker lists once more (`final_list`), retrying until
//! a listing answers: that listing must hold every acknowledged add (nothing acknowledged
//! was lost once the faults healed).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use rand_core::RngCore;

use crate::check::set::{SetOp, SetOpKind, SetOutcome};
use crate::s3client::{S3Client, S3ClientError, S3Response};
use crate::s3workload::BUCKET;
use crate::trace::{Recorder, set_op_detail};
use crate::workload::{ClientCtx, now_us, roll};

/// The prefix every element is added under and every listing lists.
pub const SET_PREFIX: &str = "set/";
/// The most pages one listing may take: a server whose tokens never end the listing
/// would otherwise hold the client forever.
const LIST_PAGES_MAX: usize = 10_000;
/// Pause between attempts of the final listing.
const FINAL_LIST_RETRY_MS: u64 = 200;

/// One set workload client: adds with probability `write_fraction`, lists otherwise.
pub async fn run_set_client(
    ctx: ClientCtx,
    client: Arc<S3Client>,
    history: Arc<Mutex<Vec<SetOp>>>,
) -> Result<(), String> {
    let w = &ctx.workload;
    let nodes = &ctx.s3_nodes;
    let max_keys = *w.list_max_keys.get_ref();
    let mut rng = ctx.seam.rng("workload");
    let mut seq = 0u64;
    while now_us() < w.duration_ms * 1000 {
        let think = rng.next_u64() % (w.max_think_ms + 1);
        tokio::time::sleep(Duration::from_millis(think)).await;
        let addr = &nodes[(rng.next_u64() % nodes.len() as u64) as usize];
        let invoke_us = now_us();
        let (kind, outcome, note) = if roll(&mut rng) < w.write_fraction {
            seq += 1;
            let element = format!("{SET_PREFIX}{}-{seq}", ctx.name);
            let (outcome, status) = add(&client, addr, &element).await;
            (SetOpKind::Add { element }, outcome, format!("status {status}"))
        } else {
            let listing = list(&client, addr, max_keys).await;
            (SetOpKind::List, listing.outcome, listing.note)
        };
        let op =
            SetOp { client: ctx.name.clone(), kind, invoke_us, complete_us: now_us(), outcome };
        record(&ctx.recorder, &op, addr, &note);
        history.lock().unwrap().push(op);
    }
    Ok(())
}

/// Records `op` in the trace, as the other workloads record theirs.
pub fn record(recorder: &Mutex<Recorder>, op: &SetOp, addr: &str, note: &str) {
    let summary = format!("{op:?} via {addr} {note}");
    let via = addr.split(':').next().unwrap_or(addr);
    let detail = || set_op_detail(op, via, note);
    recorder.lock().unwrap().record_detailed(&op.client, "op", summary.as_bytes(), detail);
}

/// PUTs `element` (its body is its own name: the set is about keys, not bodies); returns
/// the outcome and the status (0: no answer).
async fn add(client: &S3Client, addr: &str, element: &str) -> (SetOutcome, u16) {
    let path = format!("/{BUCKET}/{element}");
    let body = Bytes::from(element.as_bytes().to_vec());
    let answer = client.request(addr, Method::PUT, &path, body).await;
    let status = answer.as_ref().map_or(0, |a| a.status);
    (add_outcome(answer), status)
}

/// A PUT answered 200 is acknowledged; any other answer, or none, may still have reached
/// some replicas (as in the s3 workload).
fn add_outcome<E>(answer: Result<S3Response, E>) -> SetOutcome {
    match answer {
        Ok(r) if r.status == 200 => SetOutcome::Ok { listed: None },
        _ => SetOutcome::Info,
    }
}

/// A whole listing of the prefix, and a note for the trace.
pub struct Listing {
    pub outcome: SetOutcome,
    pub note: String,
}

/// Lists `SET_PREFIX` through `addr`, `max_keys` a page, following continuation tokens.
/// A listing is acknowledged only if every page was; a failed page fails it (a read has
/// no effect).
pub async fn list(client: &S3Client, addr: &str, max_keys: usize) -> Listing {
    let path = format!("/{BUCKET}");
    let mut listed = Vec::new();
    let mut token: Option<String> = None;
    for pages in 1..=LIST_PAGES_MAX {
        let mut query = vec![
            ("list-type".to_string(), "2".to_string()),
            ("prefix".to_string(), SET_PREFIX.to_string()),
            ("max-keys".to_string(), max_keys.to_string()),
        ];
        if let Some(t) = &token {
            query.push(("continuation-token".to_string(), t.clone()));
        }
        let answer = client.request_query(addr, Method::GET, &path, &query).await;
        let page = match page_of(&answer) {
            Ok(page) => page,
            Err(why) => return Listing { outcome: SetOutcome::Fail, note: why },
        };
        listed.extend(page.keys);
        token = page.next_token;
        if token.is_none() {
            let note = format!("{} elements in {pages} pages", listed.len());
            return Listing { outcome: SetOutcome::Ok { listed: Some(listed) }, note };
        }
    }
    let note = format!("no end after {LIST_PAGES_MAX} pages");
    Listing { outcome: SetOutcome::Fail, note }
}

/// The final listing, after the quiet period: tries the nodes in turn until one lists.
pub async fn final_list(
    client: &S3Client,
    addrs: &[String],
    max_keys: usize,
    recorder: &Mutex<Recorder>,
) -> SetOp {
    for addr in addrs.iter().cycle() {
        let invoke_us = now_us();
        let listing = list(client, addr, max_keys).await;
        let op = SetOp {
            client: "checker".into(),
            kind: SetOpKind::List,
            invoke_us,
            complete_us: now_us(),
            outcome: listing.outcome,
        };
        record(recorder, &op, addr, &listing.note);
        if matches!(op.outcome, SetOutcome::Ok { .. }) {
            return op;
        }
        tokio::time::sleep(Duration::from_millis(FINAL_LIST_RETRY_MS)).await;
    }
    unreachable!("addrs is not empty")
}

/// One ListObjectsV2 page: its keys, and the token of the next page if it is truncated.
#[derive(Debug, PartialEq, Eq)]
struct Page {
    keys: Vec<String>,
    next_token: Option<String>,
}

/// Reads a page from an answer; `Err` says why the answer is not a page.
fn page_of(answer: &Result<S3Response, S3ClientError>) -> Result<Page, String> {
    let r = match answer {
        Ok(r) if r.status == 200 => r,
        Ok(r) => return Err(format!("status {} {}", r.status, r.error_code().unwrap_or(""))),
        Err(e) => return Err(e.to_string()),
    };
    let truncated = match elements(&r.body, "IsTruncated").as_slice() {
        [t] if t == "true" => true,
        [t] if t == "false" => false,
        _ => return Err("a page without one IsTruncated".into()),
    };
    let next_token = elements(&r.body, "NextContinuationToken").pop();
    if truncated && next_token.is_none() {
        return Err("a truncated page without NextContinuationToken".into());
    }
    Ok(Page { keys: elements(&r.body, "Key"), next_token: next_token.filter(|_| truncated) })
}

/// The text of every `<name>…</name>` element of an XML document, in order. Enough for
/// listings of keys the workload chose (no characters XML must escape).
fn elements(body: &[u8], name: &str) -> Vec<String> {
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
    use crate::s3client::S3Creds;
    use crate::world::{SimClock, SimNet};

    fn answer(status: u16, body: &str) -> Result<S3Response, S3ClientError> {
        Ok(S3Response { status, body: Bytes::from(body.to_string()), etag: None })
    }

    #[test]
    fn pages_are_read_with_their_keys_and_token() {
        let last = "<R><IsTruncated>false</IsTruncated><Contents><Key>set/a</Key></Contents>\
                    <Contents><Key>set/b</Key></Contents></R>";
        let want = Page { keys: vec!["set/a".into(), "set/b".into()], next_token: None };
        assert_eq!(page_of(&answer(200, last)), Ok(want));
        let more = "<R><IsTruncated>true</IsTruncated><NextContinuationToken>ff\
                    </NextContinuationToken><Contents><Key>set/a</Key></Contents></R>";
        let page = page_of(&answer(200, more)).unwrap();
        assert_eq!(page.next_token.as_deref(), Some("ff"));
    }

    #[test]
    fn answers_that_are_not_pages_fail_the_listing() {
        let no_token = "<R><IsTruncated>true</IsTruncated></R>";
        assert!(page_of(&answer(200, no_token)).unwrap_err().contains("NextContinuationToken"));
        assert!(page_of(&answer(200, "<R></R>")).unwrap_err().contains("IsTruncated"));
        let refused = page_of(&answer(503, "<Error><Code>ServiceUnavailable</Code></Error>"));
        assert_eq!(refused.unwrap_err(), "status 503 ServiceUnavailable");
        let timeout = S3ClientError::Timeout { addr: "n1:3900".into(), timeout_ms: 5 };
        assert!(page_of(&Err(timeout)).is_err());
    }

    #[test]
    fn only_a_200_acknowledges_an_add() {
        assert_eq!(add_outcome(answer(200, "")), SetOutcome::Ok { listed: None });
        assert_eq!(add_outcome(answer(503, "")), SetOutcome::Info);
        assert_eq!(add_outcome(Err::<S3Response, ()>(())), SetOutcome::Info);
    }

    #[test]
    fn adds_and_listings_are_traced_with_their_details() {
        let recorder = Mutex::new(Recorder::new(true));
        let add = SetOp {
            client: "c1".into(),
            kind: SetOpKind::Add { element: "set/c1-1".into() },
            invoke_us: 5,
            complete_us: 9,
            outcome: SetOutcome::Info,
        };
        record(&recorder, &add, "n2:3900", "status 503");
        let listed = Some(vec!["set/c1-1".to_string()]);
        let list = SetOp {
            kind: SetOpKind::List,
            outcome: SetOutcome::Ok { listed },
            client: "checker".into(),
            ..add
        };
        record(&recorder, &list, "n1:3900", "1 elements in 1 pages");
        let mut out = Vec::new();
        recorder.lock().unwrap().write_jsonl(&mut out).unwrap();
        let details: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["detail"].clone())
            .collect();
        let field = |i: usize, name: &str| details[i][name].clone();
        assert_eq!((field(0, "op"), field(0, "key")), ("add".into(), "set/c1-1".into()));
        assert_eq!((field(0, "outcome"), field(0, "via")), ("unknown".into(), "n2".into()));
        assert_eq!((field(1, "op"), field(1, "key")), ("list".into(), SET_PREFIX.into()));
        assert_eq!((field(1, "listed"), field(1, "latency_us")), (1.into(), 4.into()));
    }

    /// Adds and a paginated listing through the real frontend (`serve`, over a memory
    /// backend) over simulated TCP: signed queries, continuation tokens, other prefixes
    /// left out.
    #[test]
    fn a_listing_follows_every_page_through_serve() {
        const REGION: &str = "hangar-sim";
        let creds = || S3Creds {
            access_key: "GKTEST".into(),
            secret_key: "right".into(),
            region: REGION.into(),
        };
        let clock =
            || Arc::new(SimClock { skew_ms: Default::default(), drift: Default::default() });
        let mut sim = turmoil::Builder::new().build();
        crate::s3client::serve_memory_frontend(&mut sim, REGION);
        sim.client("client", async move {
            let client = S3Client::new(Arc::new(SimNet), clock(), creds(), 5_000);
            let addr = "server:3900";
            assert_eq!(client.request(addr, Method::PUT, "/sim", Bytes::new()).await?.status, 200);
            let elements: Vec<String> = (1..=5).map(|i| format!("{SET_PREFIX}c1-{i}")).collect();
            for e in &elements {
                assert_eq!(add(&client, addr, e).await.0, SetOutcome::Ok { listed: None });
            }
            let other = client.request(addr, Method::PUT, "/sim/k0", Bytes::new()).await?;
            assert_eq!(other.status, 200);
            let listing = list(&client, addr, 2).await;
            assert_eq!(listing.outcome, SetOutcome::Ok { listed: Some(elements) });
            assert_eq!(listing.note, "5 elements in 3 pages");
            Ok(())
        });
        sim.run().unwrap();
    }
}
