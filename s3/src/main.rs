//! `hangar`: the Hangar node binary.
//!
//! - `hangar server -c FILE` runs a node from a TOML configuration file.
//! - `hangar dev` runs a single-node development server from a directory it manages,
//!   printing shell exports for the aws CLI on stdout (logs go to stderr).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hangar_engine::objects::ObjectError;
use hangar_s3::config::Config;
use hangar_s3::dev;
use hangar_s3::server::{self, Engine};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "hangar", version, about = "Hangar: a geo-distributed S3-compatible object store")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node from a configuration file.
    ///
    /// This version runs a single-node cluster (replication factor capped at 1);
    /// multi-node layouts come with the operations commands.
    Server {
        /// The TOML configuration file.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
    },
    /// Run a single-node development server; no configuration needed.
    ///
    /// The first start writes DIR/hangar.toml (a fresh access key and RPC secret) and
    /// DIR/credentials.env; later starts reuse them and the data. The export lines are
    /// printed on stdout once the server is ready.
    Dev {
        /// Directory holding the configuration, credentials and data.
        #[arg(long, value_name = "DIR", default_value = dev::DEFAULT_DIR)]
        dir: PathBuf,
        /// S3 API port on 127.0.0.1 [default: 3900, or the port in DIR/hangar.toml]
        #[arg(long, value_name = "PORT")]
        s3_port: Option<u16>,
        /// Inter-node RPC port on 127.0.0.1 [default: 3901, or the port in DIR/hangar.toml]
        #[arg(long, value_name = "PORT")]
        rpc_port: Option<u16>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server { config } => run_server(&config).await,
            Command::Dev { dir, s3_port, rpc_port } => run_dev(&dir, s3_port, rpc_port).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes are noise in log files and CI output.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn fail(message: &str) -> ExitCode {
    eprintln!("hangar: error: {message}");
    ExitCode::FAILURE
}

async fn run_server(path: &Path) -> Result<(), String> {
    let env = |name: &str| std::env::var(name).ok();
    let config = Config::load(path, &env).map_err(|e| e.to_string())?;
    let engine = server::start_engine(&config).await.map_err(|e| e.to_string())?;
    let s3 = server::bind_s3(&engine, &config).await.map_err(|e| e.to_string())?;
    s3.run_until_shutdown().await.map_err(|e| e.to_string())
}

async fn run_dev(dir: &Path, s3_port: Option<u16>, rpc_port: Option<u16>) -> Result<(), String> {
    // `_lock` keeps other dev servers off this directory for as long as this one runs.
    let (config, _lock) = dev::prepare(dir, s3_port, rpc_port).map_err(|e| e.to_string())?;
    dev::write_credentials(dir, &config).map_err(|e| e.to_string())?;
    let engine = server::start_engine(&config).await.map_err(|e| e.to_string())?;
    ensure_dev_bucket(&engine).await?;
    let s3 = server::bind_s3(&engine, &config).await.map_err(|e| e.to_string())?;
    // Ready: the exports go to stdout (for `eval`), then the server stays in the
    // foreground, so flush before serving.
    let mut out = std::io::stdout().lock();
    let hint = format!(
        "# hangar dev ready: aws s3 ls s3://{} (config: hangar server -c {})\n",
        dev::DEV_BUCKET,
        dir.join(dev::CONFIG_FILE).display()
    );
    let printed = out
        .write_all(dev::credential_exports(&config).as_bytes())
        .and_then(|()| out.write_all(hint.as_bytes()))
        .and_then(|()| out.flush());
    if let Err(e) = printed {
        // A closed stdout (e.g. `| head`) must not stop the server.
        tracing::warn!(error = %e, "cannot print the credentials; see credentials.env");
    }
    drop(out);
    s3.run_until_shutdown().await.map_err(|e| e.to_string())
}

async fn ensure_dev_bucket(engine: &Engine) -> Result<(), String> {
    match engine.store.create_bucket(dev::DEV_BUCKET).await {
        Ok(()) => {
            tracing::info!(bucket = dev::DEV_BUCKET, "created the dev bucket");
            Ok(())
        }
        Err(ObjectError::BucketAlreadyExists) => Ok(()),
        Err(e) => Err(format!("cannot create bucket {:?}: {e:?}", dev::DEV_BUCKET)),
    }
}
