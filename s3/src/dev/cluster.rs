//! `hangar dev --nodes N`: N nodes in one process, on loopback, in N zones, with the layout
//! applied (replication factor min(N, 3)), a bucket and a key — so a newcomer sees
//! replication at work with one command (stop a node's port with the admin CLI's view in
//! `hangar -c DIR/node1/hangar.toml status`).
//!
//! Each node is a real engine with its own directory (`DIR/nodeI`, a complete config that
//! `hangar server -c` also runs), talking to the others over real RPC on loopback. Only the
//! first start builds the layout; later starts reuse what the nodes persisted.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use hangar_engine::keys::BucketPerms;
use hangar_engine::layout::{ClusterLayout, NodeRole};
use hangar_engine::objects::ObjectError;

use crate::admin::layout::install_first_layout;
use crate::config::Config;
use crate::server::{self, Engine};

use super::{CONFIG_FILE, DEV_BUCKET, credential_exports, prepare_cluster, write_credentials};

/// How long the first start waits for the key table (three local nodes answer at once;
/// this only bounds a surprise).
const KEY_IMPORT_WAIT_MS: u64 = 30_000;

pub async fn run(dir: &Path, nodes: usize) -> Result<(), String> {
    let prepared = prepare_cluster(dir, nodes).map_err(|e| e.to_string())?;
    // The locks keep other dev servers off these directories while this one runs.
    let (configs, _locks): (Vec<Config>, Vec<_>) = prepared.into_iter().unzip();
    write_credentials(dir, &configs[0]).map_err(|e| e.to_string())?;
    let mut engines = Vec::with_capacity(nodes);
    for config in &configs {
        engines.push(server::start_engine(config).await.map_err(|e| e.to_string())?);
    }
    introduce(&engines, &configs);
    apply_first_layout(&engines)?;
    import_keys(&engines[0], &configs[0]).await?;
    ensure_dev_bucket(&engines[0], &configs[0]).await?;
    let mut servers = Vec::with_capacity(nodes);
    for (engine, config) in engines.iter().zip(&configs) {
        let admin = server::bind_admin(engine, config).await.map_err(|e| e.to_string())?;
        let s3 = server::bind_s3(engine, config).await.map_err(|e| e.to_string())?;
        let web = server::bind_web(engine, config).await.map_err(|e| e.to_string())?;
        tokio::spawn(admin.serve());
        if let Some(web) = web {
            tokio::spawn(web.serve());
        }
        servers.push(s3);
    }
    print_ready(dir, &configs);
    let mut servers = servers.into_iter();
    let first = servers.next().expect("at least two nodes");
    for other in servers {
        tokio::spawn(other.run_until_shutdown());
    }
    first.run_until_shutdown().await.map_err(|e| e.to_string())
}

/// Points every node's RPC client at the others (gossip then spreads the addresses the
/// nodes advertise themselves).
fn introduce(engines: &[Engine], configs: &[Config]) {
    for engine in engines {
        for (other, config) in engines.iter().zip(configs) {
            if other.node.id != engine.node.id {
                let addr = config.rpc_bind_addr.to_string();
                engine.node.rpc.set_peer_addr(other.node.id, addr.clone());
                // Also in the persisted layout history, as gossip would record it: a node
                // later run alone with `hangar server -c DIR/nodeI/hangar.toml` (no
                // bootstrap_peers in these configs) must still find the others at once.
                let stamp = engine.node.seam.clock.now_ms();
                let recorded = engine.node.layouts.update(|h| {
                    h.set_addr(other.node.id, stamp, addr);
                    Ok(())
                });
                if let Err(e) = recorded {
                    tracing::warn!(node = %engine.node.id, "cannot record a peer address: {e}");
                }
            }
        }
    }
}

/// Node i in zone "dcI", equal capacities, applied as version 1 on every node — only at
/// the first start (a persisted layout wins afterwards).
fn apply_first_layout(engines: &[Engine]) -> Result<(), String> {
    if engines.iter().any(|e| e.node.current_layout().is_some()) {
        return Ok(());
    }
    let rf = engines[0].replication_factor;
    let mut layout = ClusterLayout::new(rf).map_err(|e| e.to_string())?;
    for (i, engine) in engines.iter().enumerate() {
        let role = NodeRole { zone: format!("dc{}", i + 1), capacity: 1, tags: Vec::new() };
        layout.stage_assign(engine.node.id, role).map_err(|e| e.to_string())?;
    }
    layout.apply_staged(1).map_err(|e| e.to_string())?;
    for engine in engines {
        install_first_layout(&engine.node, &layout).map_err(|e| e.to_string())?;
    }
    tracing::info!(nodes = engines.len(), rf, "applied the dev cluster's first layout");
    Ok(())
}

async fn import_keys(engine: &Engine, config: &Config) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(KEY_IMPORT_WAIT_MS);
    loop {
        match server::import_keys(engine, config).await {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() > deadline => {
                return Err(format!("cannot import the dev access key: {e}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Creates the dev bucket and makes the dev key its owner (both idempotent).
pub async fn ensure_dev_bucket(engine: &Engine, config: &Config) -> Result<(), String> {
    match engine.store.create_bucket(DEV_BUCKET).await {
        Ok(()) => tracing::info!(bucket = DEV_BUCKET, "created the dev bucket"),
        Err(ObjectError::BucketAlreadyExists) => {}
        Err(e) => return Err(format!("cannot create bucket {DEV_BUCKET:?}: {e:?}")),
    }
    for id in config.s3_api.access_keys.keys() {
        let key = engine.keys.get_live(id).await.map_err(|e| e.to_string())?;
        if key.perms(DEV_BUCKET) != BucketPerms::ALL {
            let granted = engine.keys.set_perms(id, DEV_BUCKET, BucketPerms::ALL).await;
            granted.map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// The exports for node 1 (for `eval`), then every node's endpoints as comments.
fn print_ready(dir: &Path, configs: &[Config]) {
    let mut text = credential_exports(&configs[0]);
    text.push_str(&format!(
        "# hangar dev ready: {} nodes, replication factor {}; aws s3 ls s3://{DEV_BUCKET}\n",
        configs.len(),
        configs[0].replication_factor
    ));
    for (i, config) in configs.iter().enumerate() {
        let file = dir.join(format!("node{}", i + 1)).join(CONFIG_FILE);
        let web = config.s3_web.as_ref().map(|w| super::endpoint_url(w.bind_addr));
        text.push_str(&format!(
            "# node{}: S3 {}  website {}  admin: hangar -c {} status\n",
            i + 1,
            super::endpoint_url(config.s3_api.api_bind_addr),
            web.as_deref().unwrap_or("-"),
            file.display()
        ));
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // A closed stdout (e.g. `| head`) must not stop the cluster.
        tracing::warn!(error = %e, "cannot print the credentials; see credentials.env");
    }
}
