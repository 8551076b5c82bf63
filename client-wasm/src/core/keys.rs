//! Idempotency keys for appends and enqueues: 128 random bits each, from a generator the
//! transport seeds with real entropy, behind the wall-clock milliseconds when the transport
//! gives a wall clock.
//!
//! The time prefix makes keys from every client sort roughly by time, so the hub's dedup index
//! grows at one end instead of taking each new key at a random place: far fewer index pages
//! change per commit.
//!
//! A key only has to be unique among the appends or enqueues the hub remembers (its dedup
//! window), across every client. Two clients whose generators start from independent 256-bit seeds produce
//! overlapping keys with negligible probability. The generator (xoshiro256**) is not a
//! cryptographic one: someone who saw many of this client's keys could predict the next ones.
//! Keys go only to the hub, so that is acceptable; a transport with a cryptographic source at
//! hand could still feed keys through `AppendOptions::idempotency_key` (or
//! `EnqueueOptions::idempotency_key`) instead.

use switchboard_protocol::ErrorCode;

use super::{ClientCore, ClientError, OpId};

/// The generator of one client.
#[derive(Debug, Clone)]
pub(crate) struct IdempotencyKeys {
    s: [u64; 4],
}

impl IdempotencyKeys {
    /// A generator seeded with 32 bytes of entropy.
    pub(crate) fn new(entropy: [u8; 32]) -> Self {
        let mut s = [0u64; 4];
        for (word, chunk) in s.iter_mut().zip(entropy.chunks_exact(8)) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            *word = u64::from_le_bytes(bytes);
        }
        // The all-zero state is the one state xoshiro never leaves.
        if s == [0; 4] {
            s = [0x9E37_79B9_7F4A_7C15, 0xBF58_476D_1CE4_E5B9, 0x94D0_49BB_1331_11EB, 1];
        }
        IdempotencyKeys { s }
    }

    fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// The next key: the wall-clock milliseconds as 12 hex digits (when known), then 128
    /// random bits as 32 hex digits.
    pub(crate) fn next_key(&mut self, wall_ms: Option<u64>) -> String {
        let (high, low) = (self.next_u64(), self.next_u64());
        let mut key = String::with_capacity(44);
        if let Some(ms) = wall_ms {
            push_hex(&mut key, ms, 12);
        }
        push_hex(&mut key, high, 16);
        push_hex(&mut key, low, 16);
        key
    }
}

/// Appends the low `digits` hex digits of `value`, lower case, most significant first (what
/// `format!("{value:0digits$x}")` writes for a value that fits, without the formatter).
fn push_hex(out: &mut String, value: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        out.push(char::from(HEX[((value >> (4 * i)) & 0xf) as usize]));
    }
}

impl ClientCore {
    /// The key a request carries: the caller's, or a fresh one. `None` after failing `op` with
    /// `invalid_argument` when there is neither.
    pub(crate) fn idempotency_key(
        &mut self,
        now_ms: u64,
        op: OpId,
        given: Option<String>,
    ) -> Option<String> {
        if given.is_some() {
            return given;
        }
        let wall = self.queues.wall(now_ms);
        if let Some(keys) = self.keys.as_mut() {
            return Some(keys.next_key(wall));
        }
        // A fixed fallback would give every client the same keys, and the hub would answer one
        // client's request with another's result: refuse instead.
        let error = ClientError::new(
            ErrorCode::InvalidArgument,
            "no idempotency key given and the transport set no CoreConfig::entropy to make one",
        );
        self.complete(op, Err(error));
        None
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn hex_digits_should_match_the_formatter() {
        for value in [0, 1, 0xf, 0x10, 0xabc_def, 0x0123_4567_89ab_cdef, u64::MAX] {
            let mut sixteen = String::new();
            push_hex(&mut sixteen, value, 16);
            assert_eq!(sixteen, format!("{value:016x}"));
            let mut twelve = String::new();
            push_hex(&mut twelve, value, 12);
            assert_eq!(twelve, format!("{:012x}", value & 0xffff_ffff_ffff));
        }
    }

    #[test]
    fn keys_should_be_32_hex_digits_and_not_repeat() {
        let mut keys = IdempotencyKeys::new([7; 32]);
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let key = keys.next_key(None);
            assert_eq!(key.len(), 32);
            assert!(key.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert!(seen.insert(key));
        }
    }

    #[test]
    fn keys_with_a_wall_clock_should_sort_by_time() {
        let mut keys = IdempotencyKeys::new([7; 32]);
        let mut previous = String::new();
        for ms in [1_700_000_000_000u64, 1_700_000_000_001, 1_700_000_000_500, 1_800_000_000_000] {
            let key = keys.next_key(Some(ms));
            assert_eq!(key.len(), 44);
            assert!(key.starts_with(&format!("{ms:012x}")));
            assert!(key > previous, "{key} sorts after {previous}");
            previous = key;
        }
    }

    #[test]
    fn different_seeds_should_give_different_keys_and_equal_seeds_equal_ones() {
        let mut a = IdempotencyKeys::new([1; 32]);
        let mut b = IdempotencyKeys::new([2; 32]);
        let mut c = IdempotencyKeys::new([1; 32]);
        let (ka, kb, kc) = (a.next_key(None), b.next_key(None), c.next_key(None));
        assert_ne!(ka, kb);
        assert_eq!(ka, kc);
    }

    #[test]
    fn a_zero_seed_should_still_produce_changing_keys() {
        let mut keys = IdempotencyKeys::new([0; 32]);
        assert_ne!(keys.next_key(None), keys.next_key(None));
    }
}
