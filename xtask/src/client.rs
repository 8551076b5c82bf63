//! `cargo xtask client CHECK`: the checks of the browser client's npm package, each one step of
//! `cargo xtask test`. They use the package `cargo xtask wasm` built in client-wasm/pkg/ and
//! the hub `cargo build -p switchboard-server` built in target/debug/.
//!
//! - `npm-ci`: the pinned test dependencies of client-wasm/js (TypeScript, ws, Playwright).
//! - `typecheck`: `tsc --noEmit` of client-wasm/js/example.ts against the package's types.
//! - `wasm-test node|chromium`: client-wasm/tests/wasm_hub.rs through wasm-bindgen-test-runner,
//!   in Node or in headless Chromium, against a hub started here for the run.
//! - `js-test`: the node:test suites of client-wasm/js/test (each starts its own hub), the
//!   Playwright page test among them.

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};

use super::{cargo, describe, wasm, workspace_root};

pub(super) const USAGE: &str = "client npm-ci | typecheck | wasm-test node|chromium | js-test";

pub(super) fn main(args: &[OsString]) -> Result<ExitCode> {
    let args: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
    let passed = match args[..] {
        ["npm-ci"] => npm_ci()?,
        ["typecheck"] => typecheck()?,
        ["wasm-test", host] => wasm_test(Host::parse(host)?)?,
        ["js-test"] => js_test()?,
        _ => bail!("usage: cargo xtask {USAGE}"),
    };
    Ok(if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Where wasm-bindgen-test-runner runs the tests.
#[derive(Clone, Copy)]
enum Host {
    Node,
    Chromium,
}

impl Host {
    fn parse(name: &str) -> Result<Host> {
        match name {
            "node" => Ok(Host::Node),
            "chromium" => Ok(Host::Chromium),
            other => bail!("unknown test host {other:?}: use node or chromium"),
        }
    }
}

fn js_dir() -> PathBuf {
    workspace_root().join("client-wasm").join("js")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// The debug hub binary, built first so each check also works on its own.
fn hub_binary() -> Result<PathBuf> {
    let mut build = cargo();
    build.args(["build", "-q", "-p", "switchboard-server"]).current_dir(workspace_root());
    if !run(build)? {
        bail!("cannot build the hub");
    }
    Ok(target_dir().join("debug").join(format!("switchboard{}", std::env::consts::EXE_SUFFIX)))
}

fn npm() -> Command {
    let mut npm = Command::new("npm");
    npm.current_dir(js_dir());
    npm
}

fn npm_ci() -> Result<bool> {
    let mut ci = npm();
    ci.args(["ci", "--no-audit", "--no-fund"]);
    run(ci)
}

fn typecheck() -> Result<bool> {
    let mut tsc = npm();
    tsc.args(["run", "typecheck", "--", "--noEmit"]);
    run(tsc)
}

fn js_test() -> Result<bool> {
    let bin = hub_binary()?;
    let mut test = npm();
    test.args(["test"]).env("SWITCHBOARD_BIN", bin);
    run(test)
}

fn wasm_test(host: Host) -> Result<bool> {
    wasm::ensure_target()?;
    wasm::ensure_wasm_bindgen()?;
    let hub = Hub::start(&hub_binary()?)?;
    println!("xtask: hub at {}", hub.url);
    let mut test = cargo();
    test.args(["test", "-p", "switchboard-client", "--target", wasm::TARGET])
        .args(["--no-default-features", "--features", "wasm", "--test", "wasm_hub"])
        .env("SWITCHBOARD_TEST_URL", &hub.url)
        // Installed next to wasm-bindgen by `cargo install wasm-bindgen-cli`, same version.
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER", "wasm-bindgen-test-runner")
        .current_dir(workspace_root());
    match host {
        Host::Node => {
            // Node 20 has a WebSocket only behind this flag (Node 22 has it by default).
            let mut options = std::env::var_os("NODE_OPTIONS").unwrap_or_default();
            if !options.is_empty() {
                options.push(" ");
            }
            options.push("--experimental-websocket");
            test.env("NODE_OPTIONS", options);
        }
        Host::Chromium => {
            test.env("WASM_BINDGEN_USE_BROWSER", "1")
                .env("CHROMEDRIVER", chromedriver())
                .env_remove("NODE_OPTIONS");
        }
    }
    let passed = run(test)?;
    if !passed {
        eprintln!("xtask: the hub's log:\n{}", hub.log());
    }
    Ok(passed)
}

/// `CHROMEDRIVER` when set, else Debian's (`apt-get install chromium-driver`), else PATH's.
fn chromedriver() -> OsString {
    if let Some(path) = std::env::var_os("CHROMEDRIVER") {
        return path;
    }
    let debian = Path::new("/usr/bin/chromedriver");
    if debian.exists() { debian.into() } else { "chromedriver".into() }
}

/// Runs `command` with its output streamed to ours; whether it succeeded.
fn run(mut command: Command) -> Result<bool> {
    println!("xtask: {}", describe(&command));
    let status =
        command.status().with_context(|| format!("cannot start {}", describe(&command)))?;
    if !status.success() {
        eprintln!("xtask: `{}` failed ({status})", describe(&command));
    }
    Ok(status.success())
}

/// A hub on a free port with a fresh data folder, stopped and cleaned up on drop.
struct Hub {
    child: Child,
    data: PathBuf,
    log: PathBuf,
    url: String,
}

impl Hub {
    fn start(bin: &Path) -> Result<Hub> {
        let data = std::env::temp_dir().join(format!("switchboard-xtask-{}", std::process::id()));
        if data.exists() {
            std::fs::remove_dir_all(&data)
                .with_context(|| format!("cannot empty {}", data.display()))?;
        }
        std::fs::create_dir_all(&data)
            .with_context(|| format!("cannot create {}", data.display()))?;
        let log = data.join("hub.log");
        let stderr = std::fs::File::create(&log).context("cannot create the hub's log")?;
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--log", "warn", "--data"])
            .arg(data.join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let Some(stdout) = child.stdout.take() else {
            bail!("the hub's stdout is not piped");
        };
        // Built before the address is known, so that a hub that fails is still stopped and
        // its folder removed.
        let mut hub = Hub { child, data, log, url: String::new() };
        let mut lines = BufReader::new(stdout).lines();
        // The first line names the address; the hub logs to stderr after that.
        let first = lines.next().transpose().context("cannot read the hub's output")?;
        let Some(addr) = first.as_deref().and_then(listening_address) else {
            bail!("the hub did not say where it listens ({first:?}); its log:\n{}", hub.log());
        };
        hub.url = format!("ws://{addr}/ws");
        // Keep reading, so that a later line on stdout cannot block the hub.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(hub)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// `127.0.0.1:PORT` from the hub's `switchboard VERSION listening on http://127.0.0.1:PORT (...)`.
fn listening_address(line: &str) -> Option<&str> {
    let rest = line.split_once("listening on http://")?.1;
    let addr = rest.split_whitespace().next()?;
    (!addr.is_empty()).then_some(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_address_should_come_from_its_first_line() {
        let line = "switchboard 0.1.0 listening on http://127.0.0.1:37977 (WebSocket \
                    ws://127.0.0.1:37977/ws, data /tmp/x)";
        assert_eq!(listening_address(line), Some("127.0.0.1:37977"));
        assert_eq!(listening_address("error: address in use"), None);
    }
}
