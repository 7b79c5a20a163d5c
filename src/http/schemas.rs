//! Schemas of fields the HTTP API reads leniently (`actors::protocol::lenient`): a string or a
//! number, with the bounds the handlers check, so that the OpenAPI document ([`super::openapi`])
//! never promises more than the server takes. The handlers' types name them with
//! `#[schema(schema_with = ...)]`.

use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};

use crate::live::MAX_GAME_CHARS;

/// The schema of a field read leniently (`actors::protocol::lenient`): a string or a number.
pub fn string_or_number() -> Schema {
    string_of(None, None)
}

/// A string-or-number field whose text must not be empty (a number always has some).
pub fn text_or_number() -> Schema {
    string_of(Some(1), None)
}

/// `game_sess` of `/game`: not empty, at most `MAX_GAME_CHARS` characters, or a number.
pub fn game_sess() -> Schema {
    string_of(Some(1), Some(MAX_GAME_CHARS))
}

/// `game_id` of `/game`: at most `MAX_GAME_CHARS` characters, or a number.
pub fn game_id() -> Schema {
    string_of(None, Some(MAX_GAME_CHARS))
}

/// A string of `min..=max` characters, or a number (whose text is short).
fn string_of(min: Option<usize>, max: Option<usize>) -> Schema {
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String).min_length(min).max_length(max))
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .build()
        .into()
}

/// A Unix time read leniently: a string of digits, or a number not below 0.
pub fn unix_time() -> Schema {
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[0-9]{1,18}$")))
        .item(ObjectBuilder::new().schema_type(Type::Number).minimum(Some(0)))
        .build()
        .into()
}
