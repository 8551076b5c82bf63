//! The hub binary, built inside the test package so tests can start it as a child process.

fn main() -> std::process::ExitCode {
    switchboard_server::cli::main()
}
