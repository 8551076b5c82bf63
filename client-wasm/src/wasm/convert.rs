//! Reading what JS passes in — option objects, payloads, headers — and building the plain
//! objects promises resolve with.

use js_sys::{Object, Reflect, Uint8Array};
use switchboard_protocol::ErrorCode;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::core::ClientError;
use crate::{Headers, Payload};

/// `options[name]`, or `None` when `options` is not an object or the field is missing, `null`
/// or `undefined`.
pub(crate) fn field(options: &JsValue, name: &str) -> Option<JsValue> {
    if !options.is_object() {
        return None;
    }
    Reflect::get(options, &JsValue::from_str(name))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

/// A string field.
///
/// # Errors
/// `invalid_argument` when the field is present and not a string.
pub(crate) fn string(options: &JsValue, name: &str) -> Result<Option<String>, ClientError> {
    field(options, name)
        .map(|v| v.as_string().ok_or_else(|| invalid(&format!("`{name}` must be a string"))))
        .transpose()
}

/// A boolean field.
///
/// # Errors
/// `invalid_argument` when the field is present and not a boolean.
pub(crate) fn boolean(options: &JsValue, name: &str) -> Result<Option<bool>, ClientError> {
    field(options, name)
        .map(|v| v.as_bool().ok_or_else(|| invalid(&format!("`{name}` must be a boolean"))))
        .transpose()
}

/// A whole, non-negative number field no larger than `max`.
///
/// # Errors
/// `invalid_argument` when the field is present and not such a number.
pub(crate) fn whole(options: &JsValue, name: &str, max: u64) -> Result<Option<u64>, ClientError> {
    field(options, name)
        .map(|v| {
            v.as_f64()
                .filter(|n| n.fract() == 0.0 && *n >= 0.0 && *n <= max as f64)
                .map(|n| n as u64)
                .ok_or_else(|| invalid(&format!("`{name}` must be a whole number from 0 to {max}")))
        })
        .transpose()
}

/// The `headers` field: an object whose values are strings.
///
/// # Errors
/// `invalid_argument` when it is present and not such an object.
pub(crate) fn headers(options: &JsValue) -> Result<Headers, ClientError> {
    let mut headers = Headers::new();
    let Some(value) = field(options, "headers") else {
        return Ok(headers);
    };
    let object = value
        .dyn_into::<Object>()
        .map_err(|_| invalid("`headers` must be an object of strings"))?;
    for entry in Object::entries(&object).iter() {
        let pair: js_sys::Array = entry.unchecked_into();
        let (Some(name), Some(value)) = (pair.get(0).as_string(), pair.get(1).as_string()) else {
            return Err(invalid("`headers` must be an object of strings"));
        };
        headers.insert(name, value);
    }
    Ok(headers)
}

/// A payload: a `Uint8Array` (copied) or a string (as UTF-8).
///
/// # Errors
/// `invalid_argument` for anything else.
pub(crate) fn payload(data: &JsValue) -> Result<Payload, ClientError> {
    if let Some(text) = data.as_string() {
        return Ok(Payload::from(text));
    }
    data.dyn_ref::<Uint8Array>()
        .map(|bytes| Payload::from(bytes.to_vec()))
        .ok_or_else(|| invalid("data must be a Uint8Array or a string"))
}

/// A plain object with these fields.
pub(crate) fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let object = Object::new();
    for (name, value) in fields {
        // Defining a field on a fresh plain object cannot fail.
        let _ = Reflect::set(&object, &JsValue::from_str(name), value);
    }
    object.into()
}

/// Headers as a plain object.
pub(crate) fn headers_object(headers: &Headers) -> Object {
    let object = Object::new();
    for (name, value) in headers {
        let _ = Reflect::set(&object, &JsValue::from_str(name), &JsValue::from_str(value));
    }
    object
}

/// A thrown JS value as text, for a reason string.
pub(crate) fn describe(error: &JsValue) -> String {
    error
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| error.as_string())
        .or_else(|| js_sys::JSON::stringify(error).ok().and_then(|s| s.as_string()))
        .unwrap_or_else(|| "a thrown value that is not an Error".to_owned())
}

fn invalid(message: &str) -> ClientError {
    ClientError::new(ErrorCode::InvalidArgument, message)
}

/// The largest integer a JS number holds exactly, 2^53 - 1.
pub(crate) const MAX_SAFE: u64 = (1 << 53) - 1;
