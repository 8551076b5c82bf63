//! HTTP routes: the WebSocket endpoint, the JSON API, and the static web, docs and browser
//! client folders.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use switchboard_protocol::{ErrorCode, WS_PATH};
use tower_http::services::ServeDir;

use crate::Hub;
use crate::session;

/// Read buffer of each socket; it grows for larger messages. Small, because most sessions are
/// idle most of the time and memory per session matters.
const READ_BUFFER: usize = 4 * 1024;

/// Bytes the socket writer gathers before writing to the TCP stream; a flush writes sooner.
const WRITE_BUFFER: usize = 64 * 1024;

/// The hub's router.
pub fn router(hub: Arc<Hub>) -> Router {
    let mut router = Router::new()
        .route(WS_PATH, get(upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/stats", get(stats))
        .route("/api/{*rest}", get(|| async { ApiError::not_found("no such API route") }));
    if let Some(docs) = folder(hub.config.docs_dir.clone(), "docs") {
        router = router.nest_service("/docs", ServeDir::new(docs));
    }
    // The browser client's npm package once `cargo xtask wasm` has built it, so that pages the
    // hub serves can `import init, { Client } from "/client/index.js"`.
    if let Some(client) = folder(None, "client-wasm/pkg") {
        router = router.nest_service("/client", ServeDir::new(client));
    }
    if let Some(web) = folder(hub.config.web_dir.clone(), "web") {
        router = router.fallback_service(ServeDir::new(web));
    }
    router.with_state(hub)
}

/// The configured folder, else the source tree's folder when the hub runs from a checkout.
fn folder(configured: Option<PathBuf>, name: &str) -> Option<PathBuf> {
    if configured.is_some() {
        return configured;
    }
    let local = PathBuf::from(name);
    if local.is_dir() {
        return Some(local);
    }
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(name);
    source.is_dir().then_some(source)
}

async fn upgrade(ws: WebSocketUpgrade, State(hub): State<Arc<Hub>>) -> Response {
    if hub.shutdown.is_cancelled() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ShuttingDown,
            "the hub is shutting down",
        )
        .into_response();
    }
    let permit = hub.connections.clone().try_acquire_owned().ok();
    // Taken before the upgrade so that shutdown, which waits on the tracker, cannot miss a
    // session that is just starting.
    let token = hub.sessions.token();
    let limit = hub.config.hard_message_limit();
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            session::serve(socket, hub, permit).await;
            drop(token);
        })
}

async fn stats(State(hub): State<Arc<Hub>>) -> Json<crate::stats::StatsSnapshot> {
    let writer = hub.queues.writer.counts().read();
    Json(hub.stats.snapshot(hub.topics.subscriptions() as u64, writer))
}

/// An HTTP API error: a 4xx with detail for the caller's mistakes, a 5xx for the hub's.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

#[derive(Serialize)]
struct ApiErrorBody<'a> {
    code: u16,
    name: &'a str,
    message: &'a str,
}

impl ApiError {
    /// An error with an explicit status.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }

    /// A 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = %self.code, "{}", self.message);
        }
        let body = ApiErrorBody {
            code: self.code.as_u16(),
            name: self.code.name(),
            message: &self.message,
        };
        (self.status, Json(body)).into_response()
    }
}
