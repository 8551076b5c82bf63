//! A nats-server started on 127.0.0.1 with a temporary configuration and JetStream store.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::net::TcpStream;

/// A running nats-server, stopped when dropped.
pub struct NatsServer {
    pub url: String,
    /// `nats-server --version`, e.g. `v2.9.10`.
    pub version: String,
    /// Whether JetStream fsyncs each write before acknowledging it (`sync_interval: always`,
    /// which nats-server accepts from 2.10 on; 2.9 has no such option and hands writes to the
    /// OS, syncing every two minutes).
    pub fsync_before_ack: bool,
    child: Child,
    _dir: tempfile::TempDir,
}

/// How JetStream is told to sync its file store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// `sync_interval: always`: an fsync before each acknowledgement, as the hub does.
    Always,
    /// The server's default (acknowledge, then fsync every two minutes).
    Default,
}

/// The nats-server to run: `$NATS_SERVER`, else the one `cargo xtask nats` installs in the
/// target directory this binary was built into (`target/nats-server/nats-server`), else a
/// system package's.
fn binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("NATS_SERVER").map(PathBuf::from)
        && path.exists()
    {
        return Ok(path);
    }
    let exe = std::env::current_exe().ok();
    let target = exe.as_deref().and_then(Path::parent).and_then(Path::parent);
    if let Some(installed) = target.map(|t| t.join("nats-server").join("nats-server"))
        && installed.exists()
    {
        return Ok(installed);
    }
    for candidate in ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
    {
        if Path::new(candidate).exists() {
            return Ok(PathBuf::from(candidate));
        }
    }
    bail!(
        "nats-server not found: `cargo xtask nats` installs one into target/nats-server, or set NATS_SERVER, or install the system package (Debian: apt-get install nats-server)"
    )
}

/// The ways of syncing this nats-server can be run with: both when it accepts
/// `sync_interval: always` (2.10 and later), else only its default.
///
/// # Errors
/// No nats-server is found, or the check cannot write its configuration.
pub fn syncs() -> Result<Vec<Sync>> {
    let binary = binary()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("nats.conf");
    std::fs::write(&path, config(free_port()?, &dir.path().join("js"), SYNC_ALWAYS)?)?;
    Ok(if accepts(&binary, &path) {
        vec![Sync::Always, Sync::Default]
    } else {
        vec![Sync::Default]
    })
}

const SYNC_ALWAYS: &str = "  sync_interval: always\n";

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn config(ws: u16, store: &Path, sync: &str) -> Result<String> {
    Ok(format!(
        "listen: \"127.0.0.1:{}\"\nwebsocket {{\n  listen: \"127.0.0.1:{ws}\"\n  no_tls: true\n}}\njetstream {{\n  store_dir: \"{}\"\n{sync}}}\n",
        free_port()?,
        store.display()
    ))
}

/// Whether the server accepts a configuration (`nats-server -t`, which checks it and exits).
fn accepts(binary: &Path, path: &Path) -> bool {
    Command::new(binary)
        .arg("-t")
        .arg("-c")
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl NatsServer {
    /// The CPU time nats-server has used so far, in seconds.
    pub fn cpu_seconds(&self) -> Option<f64> {
        crate::hub::cpu_seconds_of(self.child.id())
    }

    /// Starts nats-server with WebSocket on a free loopback port and JetStream in a temporary
    /// file store, fsyncing before each acknowledgement when `sync` asks for it and this version
    /// can be told to.
    pub async fn start(sync: Sync) -> Result<NatsServer> {
        let binary = binary()?;
        let dir = tempfile::tempdir()?;
        let ws = free_port()?;
        let store = dir.path().join("js");
        let path = dir.path().join("nats.conf");
        std::fs::write(&path, config(ws, &store, SYNC_ALWAYS)?)?;
        let fsync_before_ack = sync == Sync::Always && accepts(&binary, &path);
        if !fsync_before_ack {
            std::fs::write(&path, config(ws, &store, "")?)?;
        }
        let version = Command::new(&binary)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().replace("nats-server: ", ""))
            .unwrap_or_default();
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start nats-server")?;
        let url = format!("ws://127.0.0.1:{ws}");
        let server = NatsServer { url, version, fsync_before_ack, child, _dir: dir };
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", ws)).await.is_ok() {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("nats-server did not open its WebSocket port")
    }

    /// How the server's durability compares with the hub's, for the output.
    pub fn durability(&self) -> String {
        if self.fsync_before_ack {
            format!("nats-server {} fsyncs before each ack, like the hub", self.version)
        } else {
            format!(
                "nats-server {} acks before fsync (its default; 2.9 has no other option); the hub acks after fsync",
                self.version
            )
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
