//! Stable numeric codes: error codes carried in `error` frames and WebSocket close codes.
//!
//! Numbers never change meaning once released; new codes get new numbers. Clients match on the
//! number, the name is for humans and logs.

use std::fmt;

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $num:literal, $name:literal;)*) => {
        /// A stable error code. On the wire an `error` frame carries both the number and the name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in numeric order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The stable number of this code.
            pub const fn as_u16(self) -> u16 {
                match self { $(ErrorCode::$variant => $num,)* }
            }

            /// The stable snake_case name of this code.
            pub const fn name(self) -> &'static str {
                match self { $(ErrorCode::$variant => $name,)* }
            }

            /// The code with this number, if it is known to this version of the protocol.
            pub fn from_u16(n: u16) -> Option<ErrorCode> {
                match n { $($num => Some(ErrorCode::$variant),)* _ => None }
            }
        }
    };
}

error_codes! {
    /// The bytes are not a MessagePack or JSON document (garbage, truncated input).
    MalformedFrame = 1000, "malformed_frame";
    /// The frame names an operation this hub does not know.
    UnknownOp = 1001, "unknown_op";
    /// The operation is known but its fields are missing or of the wrong type.
    InvalidFrame = 1002, "invalid_frame";
    /// The frame is larger than the `max_frame_bytes` limit announced in `welcome`.
    FrameTooLarge = 1003, "frame_too_large";
    /// The first frame of a session was not `hello`.
    HelloRequired = 1004, "hello_required";
    /// `hello` asked for a protocol version this hub does not speak.
    UnsupportedVersion = 1005, "unsupported_version";
    /// `hello` was sent again on a session that already has one.
    UnexpectedHello = 1006, "unexpected_hello";
    /// The token in `hello` was refused.
    Unauthorized = 2000, "unauthorized";
    /// The session already holds `max_subscriptions` subscriptions.
    TooManySubscriptions = 2001, "too_many_subscriptions";
    /// The session already has `max_in_flight` requests being handled.
    TooManyInFlight = 2002, "too_many_in_flight";
    /// A topic, pattern, stream or queue name breaks the naming rules.
    InvalidName = 3000, "invalid_name";
    /// An argument is out of range or inconsistent with another.
    InvalidArgument = 3001, "invalid_argument";
    /// A record or task body is larger than the configured maximum.
    PayloadTooLarge = 3002, "payload_too_large";
    /// The named stream, queue, group or task does not exist.
    NotFound = 4000, "not_found";
    /// The resource already exists with other options.
    AlreadyExists = 4001, "already_exists";
    /// The offset is below the low watermark (removed by retention) or past the high watermark.
    OffsetOutOfRange = 4002, "offset_out_of_range";
    /// The stream was deleted and recreated since the reader's position was taken.
    EpochMismatch = 4003, "epoch_mismatch";
    /// The queue holds its maximum number of tasks; retry later.
    QueueFull = 4004, "queue_full";
    /// The lease named in a settle expired and the task was leased again.
    LeaseExpired = 4005, "lease_expired";
    /// A group commit came from a member of an older generation.
    StaleGeneration = 4006, "stale_generation";
    /// The hub failed; the request may be retried.
    Internal = 5000, "internal";
    /// The hub is shutting down and takes no new work.
    ShuttingDown = 5001, "shutting_down";
    /// Durable storage failed the operation; nothing was acknowledged.
    StorageFailure = 5002, "storage_failure";
    /// Client-side: no answer arrived within the request timeout.
    Timeout = 9000, "timeout";
    /// Client-side: the connection dropped while the request was in flight and it cannot be
    /// retried safely.
    Disconnected = 9001, "disconnected";
    /// Client-side: the client was closed by the application.
    Closed = 9002, "closed";
    /// Client-side: the client holds too many requests waiting for a connection.
    Backlogged = 9003, "backlogged";
    /// Client-side: the hub dropped topic messages this client did not read fast enough (a
    /// `lagged` notice); the message says how many, on which topic.
    Lagged = 9004, "lagged";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.as_u16())
    }
}

macro_rules! close_codes {
    ($($(#[$doc:meta])* $variant:ident = $num:literal, $name:literal;)*) => {
        /// A WebSocket close code the hub uses, with its stable meaning.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum CloseCode {
            $($(#[$doc])* $variant,)*
        }

        impl CloseCode {
            /// Every close code, in numeric order.
            pub const ALL: &'static [CloseCode] = &[$(CloseCode::$variant,)*];

            /// The number sent in the WebSocket close frame.
            pub const fn as_u16(self) -> u16 {
                match self { $(CloseCode::$variant => $num,)* }
            }

            /// The reason text sent with the close frame.
            pub const fn name(self) -> &'static str {
                match self { $(CloseCode::$variant => $name,)* }
            }

            /// The close code with this number, if it is one of the hub's.
            pub fn from_u16(n: u16) -> Option<CloseCode> {
                match n { $($num => Some(CloseCode::$variant),)* _ => None }
            }
        }
    };
}

close_codes! {
    /// Normal closure, asked for by either side.
    Normal = 1000, "normal";
    /// The hub is shutting down; reconnect later.
    GoingAway = 1001, "going_away";
    /// A message exceeded the hard transport limit (4 × `max_frame_bytes`).
    MessageTooBig = 1009, "message_too_big";
    /// The hub hit an internal error on this session.
    InternalError = 1011, "internal_error";
    /// The hub is at its connection limit; try again later.
    TryAgainLater = 1013, "try_again_later";
    /// The first frame was not `hello`.
    HelloRequired = 4000, "hello_required";
    /// No `hello` arrived within the hello deadline.
    HelloTimeout = 4001, "hello_timeout";
    /// `hello` asked for a protocol version this hub does not speak.
    UnsupportedVersion = 4002, "unsupported_version";
    /// The token in `hello` was refused.
    Unauthorized = 4003, "unauthorized";
    /// Too many consecutive bad frames.
    TooManyBadFrames = 4004, "too_many_bad_frames";
    /// The session's outbound queue overflowed and the hub is set to disconnect slow sessions.
    SlowConsumer = 4005, "slow_consumer";
    /// Nothing was heard from the client within the keep-alive timeout.
    KeepaliveTimeout = 4006, "keepalive_timeout";
}

impl CloseCode {
    /// Whether a client must not reconnect after this close: the next attempt would be refused
    /// the same way (wrong protocol version, refused token).
    pub const fn is_terminal(self) -> bool {
        matches!(self, CloseCode::UnsupportedVersion | CloseCode::Unauthorized)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn error_codes_should_round_trip_and_be_unique() {
        let mut numbers = HashSet::new();
        let mut names = HashSet::new();
        for &code in ErrorCode::ALL {
            assert!(numbers.insert(code.as_u16()), "duplicate number {code}");
            assert!(names.insert(code.name()), "duplicate name {code}");
            assert_eq!(ErrorCode::from_u16(code.as_u16()), Some(code));
        }
        assert_eq!(ErrorCode::from_u16(1), None);
    }

    #[test]
    fn close_codes_should_round_trip_and_be_unique() {
        let mut numbers = HashSet::new();
        for &code in CloseCode::ALL {
            assert!(numbers.insert(code.as_u16()));
            assert_eq!(CloseCode::from_u16(code.as_u16()), Some(code));
        }
    }

    #[test]
    fn numbers_should_stay_stable() {
        assert_eq!(ErrorCode::MalformedFrame.as_u16(), 1000);
        assert_eq!(ErrorCode::InvalidName.as_u16(), 3000);
        assert_eq!(ErrorCode::Timeout.as_u16(), 9000);
        assert_eq!(CloseCode::SlowConsumer.as_u16(), 4005);
        assert_eq!(CloseCode::GoingAway.as_u16(), 1001);
    }

    #[test]
    fn only_refusals_a_retry_cannot_fix_should_be_terminal() {
        let terminal: Vec<_> = CloseCode::ALL.iter().filter(|c| c.is_terminal()).collect();
        assert_eq!(terminal, [&CloseCode::UnsupportedVersion, &CloseCode::Unauthorized]);
    }
}
