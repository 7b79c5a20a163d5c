//! Log output (docs/protocol.md 4, 5 `log.format`): env_logger filters by `RUST_LOG` (default
//! `info`) and writes to stderr, either as its usual text lines or, with `log.format: json`,
//! as one JSON object per line:
//!
//! ```text
//! {"timestamp":"2026-12-01T19:50:19.123456Z","level":"WARN","target":"actors::ingress::bigo_session",
//!  "message":"bigo 10.0.0.7:51512: dataReception game_sess \"gs-1\" seqid \"s-9\" rejected with 403: ...",
//!  "game_sess":"gs-1","seqid":"s-9"}
//! ```
//!
//! The fields an operator follows one message by (`game_sess`, `seqid`, `channel_name`,
//! `user_id`) become keys of their own. A call site can give them as `log` key-values
//! (`info!(user_id = id; "...")`), and any other key-value becomes a key too. Most call sites
//! still write them into the message text (`game_sess "gs-1"`, `user_id u1`, `room gs-1:`),
//! so [`fields_in_text`] also finds them there; a key-value wins over the text.
//! The JSON is built with serde_json: no escaping by hand.

use std::collections::BTreeMap;
use std::io::Write;

use crate::config::LogFormat;
use log::kv::{self, Key, Value, VisitSource};
use serde::Serialize;

/// Installs the process logger. Call once, first thing after the configuration is read.
pub fn init(format: LogFormat) {
    let mut builder = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let line = json_line(buf.timestamp_micros().to_string(), record);
            writeln!(buf, "{line}")
        });
    }
    builder.init();
}

/// One log line as the json format writes it.
#[derive(Serialize)]
struct Line<'a> {
    timestamp: String,
    level: &'a str,
    target: &'a str,
    message: String,
    #[serde(flatten)]
    fields: BTreeMap<String, serde_json::Value>,
}

const FIXED: [&str; 4] = ["timestamp", "level", "target", "message"];

/// `record` as one JSON object (no newline).
pub fn json_line(timestamp: String, record: &log::Record<'_>) -> String {
    let message = record.args().to_string();
    let mut fields = Fields(BTreeMap::new());
    // A key-value named like a fixed key would make the object ambiguous: it is left out.
    let _ = record.key_values().visit(&mut fields);
    let mut fields = fields.0;
    for (key, value) in fields_in_text(&message) {
        fields.entry(key.to_string()).or_insert(serde_json::Value::String(value));
    }
    let line = Line { timestamp, level: record.level().as_str(), target: record.target(), message, fields };
    serde_json::to_string(&line).unwrap_or_default()
}

/// Collects a record's key-values: numbers and booleans as JSON numbers and booleans, the
/// rest as their `Display` text.
struct Fields(BTreeMap<String, serde_json::Value>);

impl<'kvs> VisitSource<'kvs> for Fields {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), kv::Error> {
        let key = key.as_str();
        if FIXED.contains(&key) {
            return Ok(());
        }
        let json = if let Some(b) = value.to_bool() {
            serde_json::Value::from(b)
        } else if let Some(n) = value.to_u64() {
            serde_json::Value::from(n)
        } else if let Some(n) = value.to_i64() {
            serde_json::Value::from(n)
        } else if let Some(n) = value.to_f64().filter(|n| n.is_finite()) {
            serde_json::Value::from(n)
        } else {
            serde_json::Value::String(value.to_string())
        };
        self.0.insert(key.to_string(), json);
        Ok(())
    }
}

/// The words in a message text that name a protocol field, and the field each names.
/// `room X` names a room by its channel_name (room actors and the live-room list both log so).
const NAMES: [(&str, &str); 5] = [
    ("game_sess", "game_sess"),
    ("seqid", "seqid"),
    ("channel_name", "channel_name"),
    ("user_id", "user_id"),
    ("room", "channel_name"),
];

/// The protocol fields a message text names, first mention of each: `game_sess "gs-1"`
/// (a `{:?}` value, quotes and escapes undone), `user_id u1` (a bare value, up to the next
/// space, without a trailing `:`, `,`, `;` or `)`), `user_id Some("u2")`. `room X` counts only
/// where X is quoted, holds a digit, ends in `:` or ends the text, so that prose such as
/// "the room cannot take" names no room.
pub fn fields_in_text(message: &str) -> Vec<(&'static str, String)> {
    let mut found: Vec<(&'static str, String)> = Vec::new();
    // Each space ends a word, which runs back to the previous space (or the start).
    for (end, _) in message.match_indices(' ') {
        let start = message[..end].rfind(' ').map_or(0, |i| i + 1);
        let word = &message[start..end];
        let Some(&(_, field)) = NAMES.iter().find(|(name, _)| *name == word) else {
            continue;
        };
        if found.iter().any(|(f, _)| *f == field) {
            continue;
        }
        if let Some(value) = value_at(&message[end + 1..], word == "room") {
            found.push((field, value));
        }
    }
    found
}

/// The value at the start of `rest`; `strict` for `room` (see [`fields_in_text`]).
fn value_at(rest: &str, strict: bool) -> Option<String> {
    if let Some(quoted) = rest.strip_prefix('"') {
        return debug_string(quoted);
    }
    if let Some(quoted) = rest.strip_prefix("Some(\"") {
        return debug_string(quoted);
    }
    let token = rest.split(' ').next().unwrap_or_default();
    let value = token.trim_end_matches([':', ',', ';', ')']);
    if value.is_empty() || value == "None" {
        return None;
    }
    let ends_text = token.len() == rest.len();
    if strict && !(token.ends_with(':') || ends_text || value.bytes().any(|b| b.is_ascii_digit())) {
        return None;
    }
    Some(value.to_string())
}

/// The text of a `{:?}`-formatted string whose opening quote is already consumed, up to its
/// closing quote, with `\"`, `\\`, `\n`, `\r`, `\t`, `\'`, `\0` and `\u{..}` undone.
fn debug_string(quoted: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return (!out.is_empty()).then_some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                '0' => out.push('\0'),
                'u' => {
                    let rest: String = chars.by_ref().skip(1).take_while(|&c| c != '}').collect();
                    out.push(u32::from_str_radix(&rest, 16).ok().and_then(char::from_u32)?);
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(message: &str) -> Vec<(&'static str, String)> {
        fields_in_text(message)
    }

    fn pairs(list: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        list.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    #[test]
    fn the_fields_of_the_logs_call_sites_are_found() {
        assert_eq!(
            fields(
                r#"bigo 10.0.0.7:51512: dataReception game_sess "gs-1" seqid "s-9" rejected with 403: sign is error."#
            ),
            pairs(&[("game_sess", "gs-1"), ("seqid", "s-9")])
        );
        assert_eq!(fields("client 10.0.0.9:40022 user_id u1 sid dev1 connected"), pairs(&[("user_id", "u1")]));
        assert_eq!(
            fields(
                "client 10.0.0.9:40022 user_id u1: send_topic_msg_report refused with 1010: timestamp out of window"
            ),
            pairs(&[("user_id", "u1")])
        );
        assert_eq!(
            fields(r#"client 10.0.0.9:40023: upgrade refused for user_id Some("u2"): 401 error_code 1003"#),
            pairs(&[("user_id", "u2")])
        );
        assert_eq!(fields("client 1.2.3.4:5: upgrade refused for user_id None: missing user_id"), vec![]);
        assert_eq!(
            fields("registry: game_sess gs-1 now routes to channel_name 42"),
            pairs(&[("game_sess", "gs-1"), ("channel_name", "42")])
        );
        assert_eq!(
            fields("pull game_sess gs-1 seqid 1f0c-3: failed (3 in a row): rescode 401"),
            pairs(&[("game_sess", "gs-1"), ("seqid", "1f0c-3")])
        );
    }

    #[test]
    fn room_names_a_channel_only_where_it_is_a_name() {
        assert_eq!(
            fields("room gs-log: user_id v1 joined, 1 members"),
            pairs(&[("channel_name", "gs-log"), ("user_id", "v1")])
        );
        assert_eq!(
            fields("live rooms: room 5 linked game_sess g"),
            pairs(&[("channel_name", "5"), ("game_sess", "g")])
        );
        assert_eq!(fields("registry: started room gs-log"), pairs(&[("channel_name", "gs-log")]));
        assert_eq!(fields("pull game_sess g: the room cannot take 3 pulled items now"), pairs(&[("game_sess", "g")]));
        assert_eq!(fields("room queue full, retry later"), vec![]);
        assert_eq!(fields("stream callback: stream 8888_1 event_type 1: room now live"), vec![]);
    }

    #[test]
    fn quoted_values_lose_their_quotes_and_escapes() {
        assert_eq!(
            fields(r#"game_sess "a \"b\" c\\d" seqid "\u{e9}t\u{e9}""#),
            pairs(&[("game_sess", r#"a "b" c\d"#), ("seqid", "été")])
        );
        assert_eq!(fields(r#"game_sess "unterminated"#), vec![]);
        assert_eq!(fields(r#"seqid "" refused"#), vec![]);
    }

    #[test]
    fn a_json_line_has_the_fixed_keys_key_values_and_text_fields() {
        let kvs: [(&str, kv::Value); 3] = [
            ("user_id", kv::Value::from("from-kv")),
            ("members", kv::Value::from(3u64)),
            ("level", kv::Value::from("x")),
        ];
        let args = format_args!("room gs-1: user_id from-text joined");
        let record =
            log::Record::builder().level(log::Level::Info).target("actors::room").args(args).key_values(&kvs).build();
        let line: serde_json::Value = serde_json::from_str(&json_line("2026-01-01T00:00:00Z".into(), &record)).unwrap();
        assert_eq!(
            line,
            serde_json::json!({"timestamp": "2026-01-01T00:00:00Z", "level": "INFO", "target": "actors::room",
                               "message": "room gs-1: user_id from-text joined", "channel_name": "gs-1",
                               "user_id": "from-kv", "members": 3})
        );
    }
}
