//! hangar-s3: the production Hangar node.
//!
//! - `admin` — the admin HTTP API (keys, buckets, status, metrics).
//! - `access` — access keys and bucket permissions as the S3 frontend checks them.
//! - `metrics` — counters and histograms in the Prometheus text format.
//! - `runtime` — the production side of the engine's seam (tokio TCP, `std::fs`, the OS
//!   clock, OS randomness).
//! - `config` — the TOML configuration file, validated at start.
//! - `backend` — the S3 layer's `ObjectBackend` over the engine's `ObjectStore`.
//! - `cli` — the operator verbs of `hangar` over the admin API.
//! - `dev` — `hangar dev`: generated config and credentials in one directory.
//! - `server` — wires config, seam, node and S3 frontend together (used by `hangar server`
//!   and `hangar dev`).
//! - `s3api` — the S3 HTTP frontend itself.

pub mod access;
pub mod admin;
pub mod backend;
pub mod cli;
pub mod client;
pub mod config;
pub mod dev;
pub mod metrics;
pub mod metrics_disk;
pub mod metrics_events;
pub mod runtime;
pub mod s3api;
pub mod server;
