//! The `switchboard` command line: `switchboard serve [--listen ADDR] [--data DIR] ...`.
//!
//! Flags win over `SWITCHBOARD_*` environment variables, which win over the `--config` TOML
//! file, which wins over built-in defaults.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;

use crate::config::{Config, SlowConsumerPolicy};

/// Switchboard: a realtime messaging hub for the browser.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub.
    Serve(ServeArgs),
}

/// Options of `switchboard serve`. Each overrides the same key of the config file.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port) [default: 127.0.0.1:7070].
    #[arg(long, env = "SWITCHBOARD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Data directory [default: ./switchboard-data].
    #[arg(long = "data", env = "SWITCHBOARD_DATA")]
    pub data_dir: Option<PathBuf>,
    /// Folder served at `/`.
    #[arg(long, env = "SWITCHBOARD_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Largest frame decoded, in bytes [default: 1048576].
    #[arg(long, env = "SWITCHBOARD_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<u32>,
    /// Most concurrent sessions [default: 10000].
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS")]
    pub max_connections: Option<u32>,
    /// Bytes of topic messages queued per session before the slow-consumer policy applies.
    #[arg(long, env = "SWITCHBOARD_OUTBOX_BYTES")]
    pub outbox_bytes: Option<u64>,
    /// `notify` (drop and send a lagged notice) or `disconnect` (close with 4005).
    #[arg(long, env = "SWITCHBOARD_SLOW_CONSUMER", value_parser = parse_policy)]
    pub slow_consumer: Option<SlowConsumerPolicy>,
    /// Keep-alive ping interval, in milliseconds [default: 15000].
    #[arg(long, env = "SWITCHBOARD_PING_INTERVAL_MS")]
    pub ping_interval_ms: Option<u32>,
    /// Close sessions silent for this long, in milliseconds [default: 45000].
    #[arg(long, env = "SWITCHBOARD_IDLE_TIMEOUT_MS")]
    pub idle_timeout_ms: Option<u32>,
    /// Time a connection has to send hello, in milliseconds [default: 10000].
    #[arg(long, env = "SWITCHBOARD_HELLO_TIMEOUT_MS")]
    pub hello_timeout_ms: Option<u32>,
    /// Memory redb may keep of the database's pages, in MiB [default: 128].
    #[arg(long, env = "SWITCHBOARD_STORAGE_CACHE_MB")]
    pub storage_cache_mb: Option<u32>,
    /// How far ahead of the database's writes its file is filled with zeros, in MiB; 0 turns
    /// that off [default: 64].
    #[arg(long, env = "SWITCHBOARD_STORAGE_PREFILL_MB")]
    pub storage_prefill_mb: Option<u32>,
    /// Threads of the async runtime [default: one per core].
    #[arg(long, env = "SWITCHBOARD_WORKER_THREADS")]
    pub worker_threads: Option<u32>,
    /// Log filter, e.g. `info` or `switchboard_server=debug` [default: info].
    #[arg(long, env = "SWITCHBOARD_LOG")]
    pub log: Option<String>,
}

fn parse_policy(s: &str) -> Result<SlowConsumerPolicy, String> {
    match s {
        "notify" => Ok(SlowConsumerPolicy::Notify),
        "disconnect" => Ok(SlowConsumerPolicy::Disconnect),
        other => Err(format!("unknown policy {other:?}: use notify or disconnect")),
    }
}

impl ServeArgs {
    /// The configuration: defaults, then the file, then environment and flags.
    ///
    /// # Errors
    /// The file cannot be read or parsed, or the result is invalid.
    pub fn load(&self) -> Result<Config, crate::config::ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        macro_rules! set {
            ($($field:ident),*) => {$(
                if let Some(v) = self.$field.clone() {
                    config.$field = v;
                }
            )*};
        }
        set!(listen, data_dir, max_frame_bytes, max_connections, outbox_bytes, slow_consumer);
        set!(ping_interval_ms, idle_timeout_ms, hello_timeout_ms, worker_threads, storage_cache_mb);
        set!(storage_prefill_mb);
        if self.web_dir.is_some() {
            config.web_dir = self.web_dir.clone();
        }
        config.validate()?;
        Ok(config)
    }
}

/// Entry point of the `switchboard` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(&args),
    }
}

fn serve(args: &ServeArgs) -> ExitCode {
    let filter = args.log.clone().unwrap_or_else(|| "info".to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
    let config = match args.load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("switchboard: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.runtime_threads())
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("switchboard: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve_async(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_async(config: Config) -> Result<(), crate::ServerError> {
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let data = config.data_dir.display().to_string();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "switchboard {} listening on http://{addr} (WebSocket ws://{addr}{}, data {data})",
        crate::VERSION,
        switchboard_protocol::WS_PATH
    );
    let _ = out.flush();
    drop(out);
    crate::run(listener, config, shutdown_signal()).await
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
