//! The one error type every client operation fails with.

use switchboard_protocol::frame::ErrorFrame;
use switchboard_protocol::names::NameError;
use switchboard_protocol::{CloseCode, ErrorCode};

/// A failed client operation: either the hub's `error` frame, or a failure the client detected
/// itself (timeout, disconnect, close, backlog, invalid name, oversized frame).
///
/// The number is the stable part: match on [`ClientError::error_code`] (or on `code` for codes
/// newer than this build knows). `name` and `message` are for people and logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} ({code}): {message}")]
pub struct ClientError {
    /// The stable number of the [`ErrorCode`].
    pub code: u16,
    /// The stable snake_case name of the code.
    pub name: String,
    /// A human-readable explanation.
    pub message: String,
}

impl ClientError {
    /// An error with a known code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ClientError { code: code.as_u16(), name: code.name().to_owned(), message: message.into() }
    }

    /// The code, if this version of the protocol knows it.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_u16(self.code)
    }

    /// Whether this error carries `code`.
    pub fn is(&self, code: ErrorCode) -> bool {
        self.code == code.as_u16()
    }

    pub(crate) fn timeout() -> Self {
        Self::new(ErrorCode::Timeout, "no answer within the request timeout")
    }

    pub(crate) fn disconnected(detail: &str) -> Self {
        Self::new(ErrorCode::Disconnected, detail)
    }

    /// Whether a refused restore (of a reader or a consumer) may work if tried again on the
    /// same session.
    pub(crate) fn is_passing(&self) -> bool {
        matches!(
            self.error_code(),
            Some(
                ErrorCode::TooManyInFlight
                    | ErrorCode::Internal
                    | ErrorCode::ShuttingDown
                    | ErrorCode::StorageFailure
            )
        )
    }

    pub(crate) fn closed() -> Self {
        Self::new(ErrorCode::Closed, "the client was closed")
    }

    pub(crate) fn backlogged(max_pending: usize) -> Self {
        Self::new(
            ErrorCode::Backlogged,
            format!("{max_pending} requests are already waiting for the connection"),
        )
    }

    pub(crate) fn invalid_name(e: &NameError) -> Self {
        Self::new(ErrorCode::InvalidName, e.to_string())
    }

    /// The error a terminal close code stands for, if the code is terminal: the client must not
    /// reconnect after it because the next attempt would be refused the same way.
    pub(crate) fn from_terminal_close(code: u16, reason: &str) -> Option<Self> {
        let close = CloseCode::from_u16(code).filter(|c| c.is_terminal())?;
        let (error, what) = match close {
            CloseCode::UnsupportedVersion => {
                (ErrorCode::UnsupportedVersion, "the hub does not speak this protocol version")
            }
            CloseCode::Unauthorized => (ErrorCode::Unauthorized, "the hub refused the token"),
            _ => return None,
        };
        let message = if reason.is_empty() { what.to_owned() } else { format!("{what}: {reason}") };
        Some(Self::new(error, message))
    }
}

impl From<ErrorFrame> for ClientError {
    fn from(f: ErrorFrame) -> Self {
        ClientError { code: f.code, name: f.name, message: f.message }
    }
}
