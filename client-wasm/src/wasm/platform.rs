//! What the binding takes from the JS host: clocks, timers, random bytes, calling application
//! handlers that may return promises, and the shape of the errors promises reject with.

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;

use crate::core::ClientError;

#[wasm_bindgen]
extern "C" {
    // Globals rather than `window.*`: Node and workers have no `window`.
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &Function, ms: i32) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(handle: &JsValue);
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
    #[wasm_bindgen(catch, js_namespace = crypto, js_name = getRandomValues)]
    fn get_random_values(buf: &mut [u8]) -> Result<(), JsValue>;
}

/// Milliseconds of the host's monotonic clock.
pub(crate) fn monotonic_ms() -> f64 {
    performance_now()
}

/// Milliseconds since the Unix epoch.
pub(crate) fn wall_clock_ms() -> u64 {
    // Date.now() is a whole, non-negative number of ms for any date after 1970.
    js_sys::Date::now().max(0.0) as u64
}

/// 32 bytes from `crypto.getRandomValues`, or `None` when the host has no `crypto`: appends and
/// enqueues then need the caller's idempotency key, and say so when they lack one.
pub(crate) fn entropy() -> Option<[u8; 32]> {
    let mut bytes = [0u8; 32];
    get_random_values(&mut bytes).ok().map(|()| bytes)
}

/// A pending `setTimeout`, cleared on drop.
pub(crate) struct Timer(JsValue);

impl Timer {
    /// Calls `handler` once after `delay_ms`.
    pub(crate) fn start(handler: &Function, delay_ms: u64) -> Self {
        // Browsers treat delays above 2^31-1 ms as 0: cap them; the core is asked again anyway.
        let ms = i32::try_from(delay_ms).unwrap_or(i32::MAX);
        Timer(set_timeout(handler, ms))
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        clear_timeout(&self.0);
    }
}

/// The `Error` a promise rejects with (and `onError` receives): its `message` is the client's,
/// `name` the stable snake_case name of the code and `code` its stable number.
pub(crate) fn js_error(error: &ClientError) -> JsValue {
    let js = js_sys::Error::new(&error.message);
    js.set_name(&error.name);
    // Setting a property on a fresh Error cannot fail.
    let _ = Reflect::set(&js, &JsValue::from_str("code"), &JsValue::from(error.code));
    js.into()
}

/// How an application handler ended: `Ok` when it returned (or its promise resolved), `Err`
/// with the thrown value when it threw (or its promise rejected).
pub(crate) type Handled = Result<JsValue, JsValue>;

/// Calls `handler` with `argument`, then `done` with how it ended: at once when it returned a
/// plain value or threw, or when its promise (or other thenable) settles. A rejection is
/// always handled here, so it never surfaces as an unhandled rejection.
pub(crate) fn call_handler(
    handler: &Function,
    argument: &JsValue,
    done: impl FnOnce(Handled) + 'static,
) {
    match handler.call1(&JsValue::UNDEFINED, argument) {
        Ok(value) if is_thenable(&value) => {
            // One closure for both outcomes, bound to each: the promise calls exactly one of
            // them, once, which also frees the closure.
            let settled = Closure::once_into_js(move |fulfilled: bool, value: JsValue| {
                done(if fulfilled { Ok(value) } else { Err(value) });
            })
            .unchecked_into::<Function>();
            let promise = Promise::resolve(&value);
            let then = Reflect::get(&promise, &JsValue::from_str("then"))
                .map(JsCast::unchecked_into::<Function>);
            if let Ok(then) = then {
                let _ = then.call2(
                    &promise,
                    &settled.bind1(&JsValue::NULL, &JsValue::TRUE),
                    &settled.bind1(&JsValue::NULL, &JsValue::FALSE),
                );
            }
        }
        ended => done(ended),
    }
}

/// Whether `value` is a promise or anything else with a `then` method.
fn is_thenable(value: &JsValue) -> bool {
    value.is_object()
        && Reflect::get(value, &JsValue::from_str("then")).is_ok_and(|then| then.is_function())
}
