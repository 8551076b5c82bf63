//! The options a native client is created with.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::core::CoreConfig;

/// How a native [`super::Client`] behaves.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Sent in `hello` when the hub requires a token.
    pub token: Option<String>,
    /// A free-form client name, shown in the hub's logs and admin views.
    pub name: Option<String>,
    /// How long an operation may wait (queued or in flight) before it fails with `timeout`.
    /// Also bounds opening the socket and the `hello` exchange.
    pub request_timeout: Duration,
    /// Reconnect automatically when the connection is lost after the first `welcome`.
    pub reconnect: bool,
    /// Smallest backoff cap before a reconnect attempt.
    pub min_delay: Duration,
    /// Largest backoff cap before a reconnect attempt.
    pub max_delay: Duration,
    /// Messages each [`super::Subscription`] buffers for the application. When it is full the
    /// driver drops new messages for that subscription and counts them in
    /// [`super::Subscription::missed`]: topics are at-most-once and a slow reader must never
    /// stall the connection or the other subscriptions.
    pub subscription_buffer: usize,
    /// Most operations that may wait for the connection or for a free in-flight slot; beyond
    /// it operations fail at once with `backlogged`.
    pub max_pending: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        let core = CoreConfig::default();
        ClientOptions {
            token: None,
            name: None,
            request_timeout: Duration::from_millis(core.request_timeout_ms),
            reconnect: core.reconnect,
            min_delay: Duration::from_millis(core.min_delay_ms),
            max_delay: Duration::from_millis(core.max_delay_ms),
            subscription_buffer: 1024,
            max_pending: core.max_pending,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// 32 bytes for the core's idempotency keys, without a dependency: SipHash under the standard
/// library's `RandomState` keys, which are drawn from the operating system's random source
/// (128 bits, once per thread, then stepped for each new `RandomState`), over the time, the
/// process id and a counter. Two clients, in one process or many, get different bytes.
fn os_entropy() -> [u8; 32] {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut out = [0u8; 32];
    for (i, chunk) in (0u64..).zip(out.chunks_exact_mut(8)) {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(nanos);
        hasher.write_u32(std::process::id());
        hasher.write_u64(call);
        hasher.write_u64(i);
        chunk.copy_from_slice(&hasher.finish().to_le_bytes());
    }
    out
}

impl ClientOptions {
    pub(crate) fn core_config(&self) -> CoreConfig {
        CoreConfig {
            token: self.token.clone(),
            name: self.name.clone(),
            request_timeout_ms: millis(self.request_timeout),
            reconnect: self.reconnect,
            min_delay_ms: millis(self.min_delay),
            max_delay_ms: millis(self.max_delay),
            max_pending: self.max_pending,
            // Each process gets fresh random keys here, so clients spread their reconnects.
            seed: RandomState::new().build_hasher().finish(),
            entropy: Some(os_entropy()),
            ..CoreConfig::default()
        }
    }
}
