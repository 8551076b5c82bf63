//! [`TestServer`]: the real hub binary as a child process.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use tempfile::TempDir;

/// A running hub process with its own data directory.
pub struct TestServer {
    child: Option<Child>,
    addr: SocketAddr,
    data: Arc<TempDir>,
    args: Vec<String>,
    logs: Arc<Mutex<String>>,
}

/// The hub binary built alongside the tests (`target/<profile>/test-hub`).
fn hub_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SWITCHBOARD_TEST_HUB") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(format!("test-hub{}", std::env::consts::EXE_SUFFIX))
}

impl TestServer {
    /// Starts a hub with default settings on a free port.
    pub async fn start() -> TestServer {
        TestServer::start_with(&[]).await
    }

    /// Starts a hub with extra `switchboard serve` arguments.
    pub async fn start_with(args: &[&str]) -> TestServer {
        let data = Arc::new(tempfile::tempdir().expect("temp dir"));
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let logs = Arc::new(Mutex::new(String::new()));
        let (child, addr) = spawn(&args, "127.0.0.1:0", data.path(), &logs).await;
        TestServer { child: Some(child), addr, data, args, logs }
    }

    /// The hub's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://…/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// `http://…`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Everything the hub printed so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// The hub's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub async fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("hub is running");
        signal(&child, "TERM");
        tokio::task::spawn_blocking(move || child.wait().expect("wait for hub"))
            .await
            .expect("join")
    }

    /// Kills the process with SIGKILL: no shutdown at all.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        }
    }

    /// Starts the hub again on the same port and data directory after [`stop`](Self::stop) or
    /// [`kill`](Self::kill).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill the hub first");
        let listen = self.addr.to_string();
        let (child, addr) = spawn(&self.args, &listen, self.data.path(), &self.logs).await;
        assert_eq!(addr, self.addr);
        self.child = Some(child);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- hub logs ({}) -----\n{}----- end of hub logs -----",
                self.addr,
                self.logs()
            );
        }
    }
}

fn signal(child: &Child, name: &str) {
    let _ = Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status();
}

async fn spawn(
    args: &[String],
    listen: &str,
    data: &Path,
    logs: &Arc<Mutex<String>>,
) -> (Child, SocketAddr) {
    let binary = hub_binary();
    let mut command = Command::new(&binary);
    command
        .arg("serve")
        .arg("--listen")
        .arg(listen)
        .arg("--data")
        .arg(data)
        .args(args)
        .env("SWITCHBOARD_LOG", std::env::var("HUB_LOG").unwrap_or_else(|_| "debug".into()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // A restart may find the port still held for a moment by the previous process.
    for attempt in 0..50 {
        let mut child =
            command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        collect(stdout, logs.clone(), Some(tx));
        collect(stderr, logs.clone(), None);
        let found = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(20)))
            .await
            .expect("join");
        match found {
            Ok(addr) => return (child, addr),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                if attempt == 49 {
                    panic!("hub did not start ({status:?}); logs:\n{}", logs.lock().unwrap());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    unreachable!()
}

/// Copies a pipe into the log buffer; sends the address from the "listening on" line.
fn collect(
    pipe: impl Read + Send + 'static,
    logs: Arc<Mutex<String>>,
    addr: Option<mpsc::Sender<SocketAddr>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(tx) = &addr
                && let Some(rest) = line.split("listening on http://").nth(1)
                && let Some(addr) = rest.split_whitespace().next().and_then(|a| a.parse().ok())
            {
                let _ = tx.send(addr);
            }
            let mut logs = logs.lock().unwrap();
            logs.push_str(&line);
            logs.push('\n');
        }
    });
}
