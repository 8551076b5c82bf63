//! The `switchboard` binary: see [`switchboard_server::cli`].

/// mimalloc: the hub allocates and frees small buffers on one thread and frees them on another
/// (frames decoded by sessions, dropped by the storage writer), where it is markedly cheaper
/// than the system allocator. It is built without transparent huge pages (`no_thp`): zeroing a
/// fresh 2 MiB page on every fault stalled the storage writer.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    switchboard_server::cli::main()
}
