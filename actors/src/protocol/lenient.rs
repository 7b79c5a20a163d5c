//! Serde helpers for platform fields whose JSON type varies: the seeds show `ts`, `data_seq`,
//! `seqid` and `timestamp` as strings in one place and numbers in another, so we accept both
//! and keep the text form (which is what the signatures cover).

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The text of a JSON string or number (`"12"` and `12` both give `"12"`); null gives "".
pub fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// Deserialize a string-or-number field into its text; absent or null gives "".
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let value = Value::deserialize(d)?;
    text_of(&value).ok_or_else(|| serde::de::Error::custom("expected a string or a number"))
}

/// Deserialize a string-or-number field into its text; absent, null or "" gives None.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = string(d)?;
    Ok((!text.is_empty()).then_some(text))
}

/// Deserialize a string-or-number field into an integer; absent or null gives None.
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let value = Value::deserialize(d)?;
    Ok(as_i64(&value))
}

/// Deserialize a time (Unix ms, string or number); absent, null, unreadable, or a value no
/// clock could tell ([`super::clock::plausible`]) gives None: the field counts as absent.
pub fn opt_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(opt_i64(d)?.and_then(super::clock::plausible))
}

/// An integer from a JSON number or a numeric string. A number beyond `i64` written as a
/// float (`1e19`) reads as the nearest end of `i64` (Rust's float-to-integer `as` saturates).
pub fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
