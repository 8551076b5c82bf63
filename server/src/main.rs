//! The `switchboard` binary: see [`switchboard_server::cli`].

fn main() -> std::process::ExitCode {
    switchboard_server::cli::main()
}
