//! One WebSocket to the hub: binary frames as `ArrayBuffer`s, events reported with the core's
//! socket id, listeners unhooked (and the socket closed) when it is dropped — all but a no-op
//! `error` listener, see [`Socket::open`].

use js_sys::{ArrayBuffer, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent, WebSocket};

use crate::core::SocketId;

/// What a socket reports to its owner.
pub(crate) enum SocketEvent {
    Open,
    Binary(Vec<u8>),
    Text(String),
    /// The close code, when the peer sent one, and the reason.
    Closed(Option<u16>, String),
}

/// An open or opening WebSocket and the listeners it calls.
pub(crate) struct Socket {
    pub(crate) id: SocketId,
    ws: WebSocket,
    // Held so the JS side can call them; dropped (and unhooked) with the socket.
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Socket {
    /// Starts connecting to `url`; every event goes to `report` with this socket's id.
    ///
    /// # Errors
    /// The `WebSocket` constructor's exception: a malformed URL, or no `WebSocket` in this host.
    pub(crate) fn open(
        url: &str,
        id: SocketId,
        report: impl Fn(SocketId, SocketEvent) + Clone + 'static,
    ) -> Result<Self, JsValue> {
        let ws = WebSocket::new(url)?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let on_open = {
            let report = report.clone();
            Closure::<dyn FnMut()>::new(move || report(id, SocketEvent::Open))
        };
        let on_message = {
            let report = report.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                let data = event.data();
                if let Some(buffer) = data.dyn_ref::<ArrayBuffer>() {
                    report(id, SocketEvent::Binary(Uint8Array::new(buffer).to_vec()));
                } else if let Some(text) = data.as_string() {
                    report(id, SocketEvent::Text(text));
                }
            })
        };
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
            // 1005 and 1006 say no close frame arrived: the core wants no code then.
            let code = Some(event.code()).filter(|c| !matches!(c, 1005 | 1006));
            report(id, SocketEvent::Closed(code, event.reason()));
        });
        // Errors are followed by a close event, which is what the core hears. The listener stays
        // after the others are unhooked: Node's `ws` package throws an `error` event nobody
        // listens to (a refused connect, a close before open), and that ends the process. It
        // captures nothing, so handing it to the JS garbage collector costs next to nothing.
        let on_error = Closure::<dyn FnMut(Event)>::new(|_: Event| {}).into_js_value();
        ws.set_onerror(Some(on_error.unchecked_ref()));
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(Socket { id, ws, _on_open: on_open, _on_message: on_message, _on_close: on_close })
    }

    /// Sends one binary message.
    ///
    /// # Errors
    /// The socket's exception, when it is not open.
    pub(crate) fn send(&self, frame: &[u8]) -> Result<(), JsValue> {
        self.ws.send_with_u8_array(frame)
    }

    /// Starts the closing handshake with `code` and `reason`; nothing more is reported.
    pub(crate) fn close(self, code: u16, reason: &str) {
        self.unhook();
        // Browsers accept only 1000 and 3000-4999 from scripts; fall back to a plain close.
        if self.ws.close_with_code_and_reason(code, reason).is_err() {
            let _ = self.ws.close();
        }
    }

    fn unhook(&self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.unhook();
        // Closing twice is harmless; a socket nobody listens to must not stay open.
        let _ = self.ws.close();
    }
}
