//! The settings a client core is created with.

use switchboard_protocol::PROTOCOL_VERSION;

/// How a [`super::ClientCore`] behaves. All durations are milliseconds of the caller's monotonic
/// clock.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Sent in `hello` when the hub requires a token.
    pub token: Option<String>,
    /// A free-form client name, sent in `hello` for the hub's logs and admin views.
    pub name: Option<String>,
    /// The protocol version sent in `hello`; [`PROTOCOL_VERSION`] unless testing the hub.
    pub version: u32,
    /// How long an operation may wait, queued or in flight, before it fails with `timeout`.
    /// Also bounds opening a socket and waiting for `welcome`.
    pub request_timeout_ms: u64,
    /// Reconnect automatically when the socket is lost.
    pub reconnect: bool,
    /// Also retry when the very first attempt fails. Off by default so that a wrong URL or token
    /// is reported at once instead of being retried forever.
    pub retry_initial_connect: bool,
    /// Smallest backoff cap before a reconnect attempt.
    pub min_delay_ms: u64,
    /// Largest backoff cap before a reconnect attempt.
    pub max_delay_ms: u64,
    /// Most operations that may wait for the connection or for a free in-flight slot; beyond it
    /// new operations fail at once with `backlogged` instead of growing memory without bound.
    pub max_pending: usize,
    /// Seed of the jitter generator. Give each client a different one so that many clients
    /// dropped at once do not reconnect in lockstep.
    pub seed: u64,
    /// 32 bytes from the platform's random source (the OS, `crypto.getRandomValues`), seeding
    /// the generator of append idempotency keys. They must differ between clients: two clients
    /// with the same entropy make the same keys, and the hub would answer one client's append
    /// with the other's record. Without it (`None`, the default) an append must carry the
    /// caller's own key and fails with `invalid_argument` otherwise.
    pub entropy: Option<[u8; 32]>,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            token: None,
            name: None,
            version: PROTOCOL_VERSION,
            request_timeout_ms: 10_000,
            reconnect: true,
            retry_initial_connect: false,
            min_delay_ms: 250,
            max_delay_ms: 10_000,
            max_pending: 10_000,
            seed: 0x5EED_5EED_5EED_5EED,
            entropy: None,
        }
    }
}
