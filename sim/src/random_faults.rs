//! Random faults in a scenario file (`[random_faults]`): episodes of survivable faults drawn
//! from the run's seed at a given rate, on top of the file's own timeline. Where swarm
//! draws a whole scenario, this keeps the author's cluster, workload and checkers and only
//! lets the seed choose when, where and which faults strike.
//!
//! An episode is one fault on one member node and what undoes it (isolate → heal, crash →
//! restart, pause → resume, skew → skew 0, ...). Episodes never overlap one another, so at
//! most one node is affected at a time: a survivable load for any replica set of three.
//! The file's own timeline is the author's: episodes do not avoid it.

use std::ops::Range;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::Deserialize;
use toml::Spanned;

use crate::faults::Fault;

/// The kinds an episode may be (each with what ends it, `episode`).
pub const RANDOM_KINDS: [&str; 9] = [
    "isolate",
    "partition",
    "crash",
    "crash_mid_write",
    "pause",
    "hold",
    "packet_loss",
    "clock_skew",
    "clock_drift",
];

/// The most episodes a minute a scenario may ask for.
pub const PER_MINUTE_MAX: u64 = 600;
/// The shortest and longest episode a scenario may ask for.
pub const LENGTH_MS_RANGE: (u64, u64) = (100, 60_000);
/// Quiet time at least between one episode's end and the next one's start.
const GAP_MS_MIN: u64 = 200;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomFaults {
    /// Mean episodes per minute of simulated time: the time from one episode's start to
    /// the next is uniform in 0.5..1.5 times `60 000 / per_minute` ms (and at least the
    /// episode plus 200 ms).
    pub per_minute: Spanned<u64>,
    /// The kinds to draw from (default: every kind of `RANDOM_KINDS`).
    #[serde(default = "default_kinds")]
    pub kinds: Spanned<Vec<String>>,
    /// `[min, max]` length of an episode in ms.
    #[serde(default = "default_length")]
    pub length_ms: Spanned<Vec<u64>>,
    /// No episode starts before this (the cluster forms and the bucket is made first).
    #[serde(default = "default_start")]
    pub start_ms: u64,
}

fn default_kinds() -> Spanned<Vec<String>> {
    Spanned::new(0..0, RANDOM_KINDS.iter().map(|k| k.to_string()).collect())
}
fn default_length() -> Spanned<Vec<u64>> {
    Spanned::new(0..0, vec![500, 3_000])
}
fn default_start() -> u64 {
    1_000
}

type FieldError = (Range<usize>, &'static str, String);

impl RandomFaults {
    pub fn validate(&self) -> Result<(), FieldError> {
        let rate = &self.per_minute;
        if !(1..=PER_MINUTE_MAX).contains(rate.get_ref()) {
            let msg = format!("{} is not in 1..={PER_MINUTE_MAX}", rate.get_ref());
            return Err((rate.span(), "random_faults.per_minute", msg));
        }
        let kinds = &self.kinds;
        if kinds.get_ref().is_empty() {
            return Err((kinds.span(), "random_faults.kinds", "is empty".into()));
        }
        if let Some(bad) = kinds.get_ref().iter().find(|k| !RANDOM_KINDS.contains(&k.as_str())) {
            let msg = format!("`{bad}` cannot be drawn (drawn: {})", RANDOM_KINDS.join(", "));
            return Err((kinds.span(), "random_faults.kinds", msg));
        }
        let (lo, hi) = LENGTH_MS_RANGE;
        match self.length_ms.get_ref().as_slice() {
            [min, max] if lo <= *min && min <= max && *max <= hi => Ok(()),
            _ => {
                let msg = format!("must be [min, max] with {lo} <= min <= max <= {hi}");
                Err((self.length_ms.span(), "random_faults.length_ms", msg))
            }
        }
    }

    /// The episodes for one run: `(at_ms, fault)` pairs, sorted, every episode's start
    /// followed by its end, all before `end_ms`, on the nodes `members`.
    pub fn draw(&self, rng_seed: u64, members: &[String], end_ms: u64) -> Vec<(u64, Fault)> {
        let mut rng = ChaCha20Rng::seed_from_u64(rng_seed);
        let mut uniform = |lo: u64, hi: u64| lo + rng.next_u64() % (hi - lo + 1);
        let interval = 60_000 / self.per_minute.get_ref();
        let (min_len, max_len) = (self.length_ms.get_ref()[0], self.length_ms.get_ref()[1]);
        let kinds = self.kinds.get_ref();
        let mut out = Vec::new();
        let mut start = self.start_ms + uniform(0, interval);
        loop {
            let length = uniform(min_len, max_len);
            if start + length >= end_ms {
                break;
            }
            let kind = &kinds[uniform(0, kinds.len() as u64 - 1) as usize];
            let node = members[uniform(0, members.len() as u64 - 1) as usize].clone();
            let sign = if uniform(0, 1) == 0 { 1 } else { -1 };
            let size = uniform(1, 120) as i64 * 1000;
            let (begin, end) = episode(kind, node, sign * size);
            out.push((start, begin));
            out.push((start + length, end));
            let next = start + uniform(interval / 2, interval + interval / 2);
            start = next.max(start + length + GAP_MS_MIN);
        }
        out
    }
}

/// The fault that starts an episode of `kind` on `node` and the one that ends it; `size`
/// (±1..120 thousand) is the skew in ms or the drift in ppm.
fn episode(kind: &str, node: String, size: i64) -> (Fault, Fault) {
    let one = || vec![node.clone()];
    match kind {
        "isolate" => (Fault::Isolate { node: node.clone() }, Fault::Heal),
        "partition" => (Fault::Partition { nodes: one() }, Fault::Heal),
        "crash" => (Fault::Crash { node: node.clone() }, Fault::Restart { node }),
        "crash_mid_write" => (Fault::CrashMidWrite { node: node.clone() }, Fault::Restart { node }),
        "pause" => (Fault::Pause { node: node.clone() }, Fault::Resume { node }),
        "hold" => (Fault::Hold { nodes: one() }, Fault::Release),
        "packet_loss" => (Fault::PacketLoss { nodes: one(), retransmit_ms: 200 }, Fault::Heal),
        "clock_skew" => (
            Fault::ClockSkew { node: node.clone(), skew_ms: size },
            Fault::ClockSkew { node, skew_ms: 0 },
        ),
        "clock_drift" => (
            // ±1..120 thousand ppm: up to 12 % fast or slow.
            Fault::ClockDrift { node: node.clone(), drift_ppm: size },
            Fault::ClockDrift { node, drift_ppm: 0 },
        ),
        other => unreachable!("random fault kind {other} validated at load"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> RandomFaults {
        toml::from_str(text).unwrap()
    }

    fn members() -> Vec<String> {
        ["n1", "n2", "n3"].iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn episodes_follow_the_rate_never_overlap_and_end_before_the_workload() {
        let random = spec("per_minute = 12\nlength_ms = [500, 3000]");
        random.validate().unwrap();
        let drawn = random.draw(7, &members(), 60_000);
        assert_eq!(drawn, random.draw(7, &members(), 60_000), "a seed gives one draw");
        assert_ne!(drawn, random.draw(8, &members(), 60_000), "another seed, another draw");
        let episodes: Vec<_> = drawn.chunks(2).collect();
        // One every 5 s on average from 1 s on: 9 to 15 in a minute.
        assert!((9..=15).contains(&episodes.len()), "{} episodes", episodes.len());
        let mut last_end = 0;
        for pair in &episodes {
            let ((start, _), (end, _)) = (pair[0].clone(), pair[1].clone());
            assert!((500..=3000).contains(&(end - start)), "length {}", end - start);
            assert!(start >= last_end + GAP_MS_MIN, "episodes overlap at {start}");
            assert!(end < 60_000);
            last_end = end;
        }
    }

    #[test]
    fn each_episode_is_undone_by_its_end() {
        let random = spec("per_minute = 60\nkinds = [\"crash\", \"clock_skew\"]");
        for pair in random.draw(3, &members(), 30_000).chunks(2) {
            match (&pair[0].1, &pair[1].1) {
                (Fault::Crash { node }, Fault::Restart { node: again }) => assert_eq!(node, again),
                (Fault::ClockSkew { node, skew_ms }, Fault::ClockSkew { node: n, skew_ms: 0 }) => {
                    assert_eq!(node, n);
                    assert!((1000..=120_000).contains(&skew_ms.abs()));
                }
                other => panic!("unexpected episode {other:?}"),
            }
        }
    }

    #[test]
    fn bad_settings_name_their_field() {
        for (text, field) in [
            ("per_minute = 0", "random_faults.per_minute"),
            ("per_minute = 6\nkinds = []", "random_faults.kinds"),
            ("per_minute = 6\nkinds = [\"disk_loss\"]", "random_faults.kinds"),
            ("per_minute = 6\nlength_ms = [3000, 500]", "random_faults.length_ms"),
            ("per_minute = 6\nlength_ms = [10, 500]", "random_faults.length_ms"),
        ] {
            assert_eq!(spec(text).validate().unwrap_err().1, field, "{text}");
        }
    }
}
