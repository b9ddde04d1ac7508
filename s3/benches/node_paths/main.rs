//! Micro-benchmarks of a node's hot paths that need the production world (issue 8):
//! SigV4 verification of a PUT (`sigv4`), table writes and reads on redb over a real file
//! with the durable commit (`table`), and an RPC round trip over loopback TCP with Noise
//! (`rpc`). The engine's pure-CPU paths are in `engine/benches/hot_paths.rs`.
//!
//! Run: `cargo bench -p hangar-s3 --bench node_paths -- --warm-up-time 1
//! --measurement-time 3` (figures and machine in docs/benchmarks.md). Files go to a fresh
//! directory under `target/` (the disk the store would use), removed at the end.

mod rpc;
mod sigv4;
mod table;

use criterion::{criterion_group, criterion_main};

criterion_group!(benches, sigv4::bench, table::bench, rpc::bench);
criterion_main!(benches);

/// A fresh, empty directory for one benchmark's files, removed when dropped. Under the
/// build's target directory rather than /tmp: /tmp may be a tmpfs, whose fsync costs
/// nothing and would hide exactly what the table benchmark is about.
pub struct ScratchDir(pub std::path::PathBuf);

impl ScratchDir {
    pub fn new(name: &str) -> ScratchDir {
        let base = std::env::var_os("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        let dir = base.join(format!("bench-scratch/{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the benchmark's scratch directory");
        ScratchDir(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
