//! `hangar`: the Hangar node binary.
//!
//! - `hangar server -c FILE` runs a node from a TOML configuration file.
//! - `hangar dev` runs a development server (one node, or `--nodes N` on loopback) from a
//!   directory it manages,
//!   printing shell exports for the aws CLI on stdout (logs go to stderr).
//! - `hangar -c FILE status | node … | layout … | key … | bucket … | worker list` talk to a
//!   running node's admin API (`hangar_s3::cli`); docs/cli.md lists them.
//!
//! Logs: human-readable on stderr by default, one JSON object per line with
//! `--log-format json`; the level comes from `RUST_LOG` (default `info`).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use hangar_engine::storage_health::EXIT_STORAGE_FAILED;
use hangar_s3::cli::{self, AdminCommand, client::AdminClient};
use hangar_s3::config::Config;
use hangar_s3::dev;
use hangar_s3::server::{self, Engine};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "hangar", version, about = "Hangar: a geo-distributed S3-compatible object store")]
struct Cli {
    /// The node's TOML configuration file (`server` runs it; the other verbs read the
    /// admin API's address and token from it).
    #[arg(short = 'c', long = "config", value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Print the admin API's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node from a configuration file (`-c FILE`).
    ///
    /// A new node joins its cluster through `bootstrap_peers` or `hangar node connect`,
    /// and serves S3 once `hangar layout assign` + `layout apply` gave it a role
    /// (docs/deploy.md).
    Server,
    /// Run a development server (one node, or `--nodes N`); no configuration needed.
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
        /// Admin API port on 127.0.0.1 [default: 3903, or the port in DIR/hangar.toml]
        #[arg(long, value_name = "PORT")]
        admin_port: Option<u16>,
        /// Static website port on 127.0.0.1 [default: 3902, or the port in DIR/hangar.toml]
        #[arg(long, value_name = "PORT")]
        web_port: Option<u16>,
        /// Run a cluster of N nodes in N zones (DIR/node1 …), replication factor
        /// min(N, 3); node i listens on 3900+10·(i−1) (S3), +1 (RPC), +3 (admin).
        #[arg(long, value_name = "N", default_value_t = 1,
              value_parser = clap::value_parser!(u8).range(1..=dev::CLUSTER_NODES_MAX as i64))]
        nodes: u8,
    },
    #[command(flatten)]
    Admin(AdminCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // CLI verbs log only warnings unless asked: their output is the answer.
    let default_level = if matches!(cli.command, Command::Admin(_)) { "warn" } else { "info" };
    init_logging(cli.log_format, default_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    let config = cli.config;
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server => run_server(&need_config(config.as_deref(), "server")?).await,
            Command::Dev { dir, s3_port, rpc_port, admin_port, web_port, nodes: 1 } => {
                run_dev(&dir, [s3_port, rpc_port, admin_port, web_port]).await
            }
            Command::Dev {
                dir,
                s3_port: None,
                rpc_port: None,
                admin_port: None,
                web_port: None,
                nodes,
            } => dev::cluster::run(&dir, usize::from(nodes)).await,
            Command::Dev { .. } => Err("--nodes N uses fixed ports (3900 + 10 per node); \
                 drop --s3-port, --rpc-port, --admin-port and --web-port"
                .into()),
            Command::Admin(verb) => {
                run_admin(&need_config(config.as_deref(), "this verb")?, verb, cli.json).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        // Colour codes are noise in log files and CI output.
        LogFormat::Human => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

fn need_config(config: Option<&Path>, what: &str) -> Result<PathBuf, String> {
    config.map(Path::to_path_buf).ok_or_else(|| {
        format!(
            "{what} needs the node's config file: hangar -c FILE … (for `hangar dev`: \
             -c hangar-dev/hangar.toml)"
        )
    })
}

async fn run_admin(path: &Path, verb: AdminCommand, json: bool) -> Result<(), String> {
    let env = |name: &str| std::env::var(name).ok();
    let config = Config::load(path, &env).map_err(|e| e.to_string())?;
    let client = AdminClient::from_config(&config, path);
    let out = cli::run(&client, verb, json).await?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush()).map_err(|e| e.to_string())
}

/// Serves S3 until Ctrl-C or SIGTERM, or until the node's metadata database can no longer
/// commit (a full or failing disk): then the process exits with `EXIT_STORAGE_FAILED`, so
/// that the service manager starts it again, which reopens the database
/// (`hangar_engine::storage_health` says why a restart and not a reopen in place).
async fn serve_until_stopped(s3: server::S3Server, engine: &Engine) -> Result<(), String> {
    tokio::select! {
        served = s3.run_until_shutdown() => served.map_err(|e| e.to_string()),
        reason = engine.node.storage_failure() => {
            eprintln!(
                "hangar: error: {reason}; exiting with status {EXIT_STORAGE_FAILED}: start \
                 Hangar again once the disk has room (under systemd, Restart=on-failure does)"
            );
            std::process::exit(EXIT_STORAGE_FAILED);
        }
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("hangar: error: {message}");
    ExitCode::FAILURE
}

async fn run_server(path: &Path) -> Result<(), String> {
    let env = |name: &str| std::env::var(name).ok();
    let config = Config::load(path, &env).map_err(|e| e.to_string())?;
    let engine = server::start_engine(&config).await.map_err(|e| e.to_string())?;
    let admin = server::bind_admin(&engine, &config).await.map_err(|e| e.to_string())?;
    let s3 = server::bind_s3(&engine, &config).await.map_err(|e| e.to_string())?;
    let web = server::bind_web(&engine, &config).await.map_err(|e| e.to_string())?;
    tokio::spawn(admin.serve());
    if let Some(web) = web {
        tokio::spawn(web.serve());
    }
    serve_until_stopped(s3, &engine).await
}

/// `ports`: S3, RPC, admin, website.
async fn run_dev(dir: &Path, ports: [Option<u16>; 4]) -> Result<(), String> {
    // `_lock` keeps other dev servers off this directory for as long as this one runs.
    let (config, _lock) = dev::prepare(dir, ports).map_err(|e| e.to_string())?;
    dev::write_credentials(dir, &config).map_err(|e| e.to_string())?;
    let engine = server::start_single_node(&config).await.map_err(|e| e.to_string())?;
    ensure_dev_bucket(&engine, &config).await?;
    let admin = server::bind_admin(&engine, &config).await.map_err(|e| e.to_string())?;
    let s3 = server::bind_s3(&engine, &config).await.map_err(|e| e.to_string())?;
    let web = server::bind_web(&engine, &config).await.map_err(|e| e.to_string())?;
    let web_hint = web.as_ref().map(|w| dev::website_hint(w.addr(), &config)).unwrap_or_default();
    tokio::spawn(admin.serve());
    if let Some(web) = web {
        tokio::spawn(web.serve());
    }
    // Ready: the exports go to stdout (for `eval`), then the server stays in the
    // foreground, so flush before serving.
    let mut out = std::io::stdout().lock();
    let hint = format!(
        "# hangar dev ready: aws s3 ls s3://{bucket} (config: hangar server -c {file}; \
         admin: hangar -c {file} status)\n",
        bucket = dev::DEV_BUCKET,
        file = dir.join(dev::CONFIG_FILE).display()
    );
    let printed = out
        .write_all(dev::credential_exports(&config).as_bytes())
        .and_then(|()| out.write_all(hint.as_bytes()))
        .and_then(|()| out.write_all(web_hint.as_bytes()))
        .and_then(|()| out.flush());
    if let Err(e) = printed {
        // A closed stdout (e.g. `| head`) must not stop the server.
        tracing::warn!(error = %e, "cannot print the credentials; see credentials.env");
    }
    drop(out);
    serve_until_stopped(s3, &engine).await
}

/// Creates the dev bucket and makes the dev key its owner (both idempotent).
async fn ensure_dev_bucket(engine: &Engine, config: &Config) -> Result<(), String> {
    dev::cluster::ensure_dev_bucket(engine, config).await
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks its definitions (e.g. two options sharing `-c`) only when a command is
    /// parsed: at run time, in front of an operator. Check every verb here instead.
    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
