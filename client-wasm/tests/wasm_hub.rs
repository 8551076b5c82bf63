//! The browser binding's exported API (`Client` and the objects its promises resolve with)
//! against a real hub, compiled to wasm32 and run by `wasm-bindgen-test-runner` in Node or in
//! headless Chromium. `cargo xtask test` starts the hub and runs both.
//!
//! The hub's WebSocket URL arrives at compile time in `SWITCHBOARD_TEST_URL`. By hand:
//!
//! ```text
//! target/debug/switchboard serve --listen 127.0.0.1:0 --data /tmp/sb   # prints the port
//! export SWITCHBOARD_TEST_URL=ws://127.0.0.1:PORT/ws
//! export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
//! # Node 20 needs a global WebSocket:
//! NODE_OPTIONS=--experimental-websocket cargo test -p switchboard-client \
//!     --target wasm32-unknown-unknown --no-default-features --features wasm --test wasm_hub
//! # Chromium:
//! WASM_BINDGEN_USE_BROWSER=1 CHROMEDRIVER=/usr/bin/chromedriver cargo test ... (the same)
//! ```

#![cfg(all(target_arch = "wasm32", feature = "wasm"))]

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Function, Object, Promise, Reflect};
use switchboard_client::Client;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test;

/// The hub under test.
fn url() -> String {
    match option_env!("SWITCHBOARD_TEST_URL") {
        Some(url) => url.to_owned(),
        None => panic!(
            "SWITCHBOARD_TEST_URL was not set when this test was compiled; run `cargo xtask test` \
             or see the header of client-wasm/tests/wasm_hub.rs"
        ),
    }
}

/// A name no other run uses: tests of earlier runs may have left state in the same hub.
fn fresh(prefix: &str) -> String {
    let now = js_sys::Date::now() as u64;
    let random = (js_sys::Math::random() * 1e9) as u64;
    format!("{prefix}-{now:x}-{random:x}")
}

/// `promise`'s value, failing the test if it rejects or takes longer than `ms`.
async fn settle(what: &str, promise: Promise, ms: i32) -> Result<JsValue, JsValue> {
    let what = what.to_owned();
    let timeout = Promise::new(&mut |_, reject| {
        let message = JsValue::from_str(&format!("{what}: no answer in {ms} ms"));
        let fire = Closure::once_into_js(move || reject.call1(&JsValue::UNDEFINED, &message));
        set_timeout(fire.unchecked_ref(), ms);
    });
    JsFuture::from(Promise::race(&Array::of2(&promise, &timeout))).await
}

/// `promise`'s value; panics with the error's name and message if it rejects.
async fn ok(what: &str, promise: Promise) -> JsValue {
    match settle(what, promise, 10_000).await {
        Ok(value) => value,
        Err(error) => panic!("{what} failed: {}", describe(&error)),
    }
}

/// The error `promise` rejects with; panics if it resolves.
async fn rejection(what: &str, promise: Promise) -> JsValue {
    match settle(what, promise, 10_000).await {
        Ok(value) => panic!("{what} should have failed but gave {value:?}"),
        Err(error) => error,
    }
}

fn describe(error: &JsValue) -> String {
    format!("{:?} {:?} {:?}", get(error, "name"), get(error, "code"), get(error, "message"))
}

/// The host's `setTimeout`, looked up rather than imported: the client imports it already, and
/// a second import with the same signature would clash at link time.
fn set_timeout(handler: &Function, ms: i32) {
    let set_timeout: Function = get(&js_sys::global(), "setTimeout").unchecked_into();
    let _ = set_timeout.call2(&JsValue::UNDEFINED, handler, &JsValue::from(ms));
}

async fn sleep(ms: i32) {
    let promise = Promise::new(&mut |resolve, _| {
        set_timeout(&resolve, ms);
    });
    let _ = JsFuture::from(promise).await;
}

/// Waits until `check()` holds, polling; panics after `ms`.
async fn until(what: &str, ms: i32, check: impl Fn() -> bool) {
    let mut waited = 0;
    while !check() {
        assert!(waited < ms, "{what}: not true after {ms} ms");
        sleep(10).await;
        waited += 10;
    }
}

fn get(object: &JsValue, name: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// Calls the method `name` of a JS object (a `Subscription`, `Reader`, `Task`...).
fn call(object: &JsValue, name: &str, args: &[JsValue]) -> JsValue {
    let method: Function = get(object, name).dyn_into().unwrap_or_else(|_| {
        panic!("{name} is not a method of {object:?}");
    });
    let args: Array = args.iter().collect();
    method.apply(object, &args).unwrap_or_else(|e| panic!("{name}() threw {}", describe(&e)))
}

/// Calls a method that returns a promise and awaits it.
async fn call_ok(object: &JsValue, name: &str, args: &[JsValue]) -> JsValue {
    ok(name, call(object, name, args).unchecked_into()).await
}

/// A plain JS object with these properties.
fn object(properties: &[(&str, JsValue)]) -> JsValue {
    let object = Object::new();
    for (name, value) in properties {
        // Setting a property on a fresh plain object cannot fail.
        let _ = Reflect::set(&object, &JsValue::from_str(name), value);
    }
    object.into()
}

fn text(value: &str) -> JsValue {
    JsValue::from_str(value)
}

fn number(value: &JsValue) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("{value:?} is not a number"))
}

/// A JS function that hands each argument it is called with to `sink`.
fn handler(sink: Rc<RefCell<Vec<JsValue>>>) -> Function {
    Closure::<dyn FnMut(JsValue)>::new(move |value| sink.borrow_mut().push(value))
        .into_js_value()
        .unchecked_into()
}

/// A connected client whose states are collected.
async fn connected() -> (Client, Rc<RefCell<Vec<JsValue>>>) {
    let client = Client::new(url(), Some(object(&[("minDelayMs", 50.into())])))
        .unwrap_or_else(|e| panic!("new Client: {}", describe(&e)));
    let states = Rc::new(RefCell::new(Vec::new()));
    client.on_state(Some(handler(Rc::clone(&states))));
    ok("connect", client.connect()).await;
    (client, states)
}

fn strings(values: &RefCell<Vec<JsValue>>) -> Vec<String> {
    values.borrow().iter().map(|v| v.as_string().unwrap_or_default()).collect()
}

#[wasm_bindgen_test]
async fn connect_then_close_should_report_connecting_connected_closed() {
    let (client, states) = connected().await;
    assert_eq!(strings(&states), ["connecting", "connected"]);
    ok("close", client.close()).await;
    assert_eq!(strings(&states), ["connecting", "connected", "closed"]);
}

#[wasm_bindgen_test]
async fn a_subscriber_should_receive_what_is_published_on_matching_topics() {
    let (client, _) = connected().await;
    let base = fresh("prices");
    let messages = Rc::new(RefCell::new(Vec::new()));
    let sub =
        ok("subscribe", client.subscribe(format!("{base}.*"), handler(Rc::clone(&messages)))).await;
    assert_eq!(get(&sub, "pattern").as_string(), Some(format!("{base}.*")));

    let headers = object(&[("headers", object(&[("unit", text("usd"))]))]);
    let published =
        ok("publish", client.publish(format!("{base}.btc"), text("{\"price\":1}"), Some(headers)))
            .await;
    assert_eq!(number(&get(&published, "receivers")), 1.0);
    ok("publish", client.publish(format!("elsewhere.{base}"), text("not matched"), None)).await;
    until("a message", 5_000, || !messages.borrow().is_empty()).await;
    sleep(100).await;

    let got = messages.borrow().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(get(&got[0], "topic").as_string(), Some(format!("{base}.btc")));
    assert_eq!(call(&got[0], "text", &[]).as_string().as_deref(), Some("{\"price\":1}"));
    assert_eq!(get(&get(&got[0], "headers"), "unit").as_string().as_deref(), Some("usd"));
    let json = call(&got[0], "json", &[]);
    assert_eq!(number(&get(&json, "price")), 1.0);

    call_ok(&sub, "unsubscribe", &[]).await;
    let after = ok("publish", client.publish(format!("{base}.btc"), text("late"), None)).await;
    assert_eq!(number(&get(&after, "receivers")), 0.0);
    ok("close", client.close()).await;
}

#[wasm_bindgen_test]
async fn reading_from_earliest_should_give_every_appended_record_in_order() {
    let (client, _) = connected().await;
    let stream = fresh("orders");
    let key = || Some(object(&[("key", text("customer-7"))]));
    let mut offsets = Vec::new();
    for order in ["order 1", "order 2"] {
        let appended = ok("append", client.append(stream.clone(), text(order), key())).await;
        offsets.push(number(&get(&appended, "offset")));
    }
    assert_eq!(offsets, [0.0, 1.0]);

    let records = Rc::new(RefCell::new(Vec::new()));
    let options = object(&[("from", text("earliest"))]);
    let reader =
        ok("read", client.read(stream.clone(), options, handler(Rc::clone(&records)))).await;
    ok("append", client.append(stream.clone(), text("order 3"), key())).await;
    until("three records", 5_000, || records.borrow().len() == 3).await;

    let got: Vec<(f64, String)> = records
        .borrow()
        .iter()
        .map(|r| (number(&get(r, "offset")), call(r, "text", &[]).as_string().unwrap_or_default()))
        .collect();
    assert_eq!(
        got,
        [(0.0, "order 1".to_owned()), (1.0, "order 2".to_owned()), (2.0, "order 3".to_owned())]
    );
    let partition = get(&records.borrow()[0], "partition");
    assert_eq!(get(&records.borrow()[0], "key").as_string().as_deref(), Some("customer-7"));
    until("position 3", 2_000, || {
        get(&call(&reader, "position", &[]), &number(&partition).to_string()).as_f64() == Some(3.0)
    })
    .await;
    call_ok(&reader, "close", &[]).await;
    ok("close", client.close()).await;
}

#[wasm_bindgen_test]
async fn a_pulled_task_should_come_back_after_a_nack_and_be_gone_after_an_ack() {
    let (client, _) = connected().await;
    let queue = fresh("emails");
    let enqueued = ok(
        "enqueue",
        client.enqueue(
            queue.clone(),
            text("{\"to\":\"a@example.com\"}"),
            Some(object(&[("priority", 5.into())])),
        ),
    )
    .await;
    let id = number(&get(&enqueued, "id"));
    let pull = || {
        let options = object(&[("max", 1.into()), ("waitMs", 1_000.into())]);
        client.pull(queue.clone(), Some(options))
    };

    let tasks: Array = ok("pull", pull()).await.unchecked_into();
    assert_eq!(tasks.length(), 1);
    let task = tasks.get(0);
    assert_eq!(number(&get(&task, "id")), id);
    assert_eq!(number(&get(&task, "attempt")), 1.0);
    assert_eq!(number(&get(&task, "priority")), 5.0);
    assert_eq!(get(&call(&task, "json", &[]), "to").as_string().as_deref(), Some("a@example.com"));
    call_ok(&task, "nack", &[object(&[("delayMs", 0.into())])]).await;

    let again: Array = ok("pull", pull()).await.unchecked_into();
    assert_eq!(again.length(), 1);
    let task = again.get(0);
    assert_eq!(number(&get(&task, "id")), id);
    assert_eq!(number(&get(&task, "attempt")), 2.0);
    call_ok(&task, "ack", &[]).await;

    let none = object(&[("max", 5.into()), ("waitMs", 100.into())]);
    let left: Array = ok("pull", client.pull(queue.clone(), Some(none))).await.unchecked_into();
    assert_eq!(left.length(), 0);
    ok("close", client.close()).await;
}

#[wasm_bindgen_test]
async fn failures_should_reject_with_an_error_carrying_code_and_name() {
    let (client, _) = connected().await;
    let error = rejection(
        "publish to an invalid topic",
        client.publish("bad topic!".into(), text("x"), None),
    )
    .await;
    assert!(error.is_instance_of::<js_sys::Error>(), "{error:?} is not an Error");
    assert_eq!(get(&error, "name").as_string().as_deref(), Some("invalid_name"));
    assert!(number(&get(&error, "code")) > 0.0);

    let options = object(&[("from", text("earliest"))]);
    let noop = Function::new_no_args("");
    let missing =
        rejection("read a missing stream", client.read(fresh("missing"), options, noop)).await;
    assert_eq!(get(&missing, "name").as_string().as_deref(), Some("not_found"));
    assert_eq!(number(&get(&missing, "code")), 4000.0);

    ok("close", client.close()).await;
    let closed =
        rejection("publish after close", client.publish("prices.btc".into(), text("x"), None))
            .await;
    assert_eq!(get(&closed, "name").as_string().as_deref(), Some("closed"));
}

#[wasm_bindgen_test]
fn bad_options_should_throw_invalid_argument() {
    let error = match Client::new(url(), Some(object(&[("minDelayMs", text("soon"))]))) {
        Ok(_) => panic!("a string minDelayMs was accepted"),
        Err(error) => error,
    };
    assert_eq!(get(&error, "name").as_string().as_deref(), Some("invalid_argument"));
    assert_eq!(get(&error, "code").as_f64().map(|c| c > 0.0), Some(true));
}
