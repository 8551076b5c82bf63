//! Starting a hub for a workload, and reading its memory use from /proc.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::Common;

/// A hub the workload drives: one it started (and stops when dropped), or one given by URL.
pub struct Hub {
    pub url: String,
    child: Option<Child>,
    _data: Option<tempfile::TempDir>,
}

impl Hub {
    /// Starts a hub, or uses `--url`.
    pub fn start(common: &Common, extra: &[&str]) -> Result<Hub> {
        if let Some(url) = &common.url {
            return Ok(Hub { url: url.clone(), child: None, _data: None });
        }
        let binary = match &common.hub {
            Some(path) => path.clone(),
            None => {
                let exe = std::env::current_exe()?;
                exe.parent().context("no binary directory")?.join("switchboard")
            }
        };
        if !binary.exists() {
            bail!(
                "hub binary {} not found: build it (cargo build --release -p switchboard-server) or pass --hub",
                binary.display()
            );
        }
        let data = tempfile::tempdir()?;
        let mut child = Command::new(&binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data.path())
            .args(extra)
            .env("SWITCHBOARD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stdout = child.stdout.take().context("hub stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .split("listening on http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .with_context(|| format!("unexpected hub output: {line}"))?
            .to_owned();
        Ok(Hub { url: format!("ws://{addr}/ws"), child: Some(child), _data: Some(data) })
    }

    /// The CPU time the hub has used so far, in seconds, if this workload started it.
    pub fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds_of(self.child.as_ref()?.id())
    }

    /// The hub's resident memory in bytes, if this workload started it.
    pub fn rss_bytes(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kb: u64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some(kb * 1024)
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }
}

/// The user plus system CPU time process `pid` has used, in seconds, from `/proc/PID/stat`.
pub fn cpu_seconds_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    // Then `utime` and `stime` are fields 14 and 15, in clock ticks, which Linux reports to
    // user space at 100 per second whatever the kernel's internal rate.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}
