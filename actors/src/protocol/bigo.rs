//! BIGO ingress frames (docs/protocol.md section 1): the request/response envelope, `platformLogin`
//! and `dataReception`, and the danmu item as the room sees it.
//!
//! `data` travels as a JSON-encoded string; [`Request::data_text`] recovers the exact text the
//! platform signed, whether it arrived as a string or as a plain object.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::{clock, lenient};

pub const URI_LOGIN: &str = "platformLogin";
pub const URI_LOGIN_RESP: &str = "platformLoginResp";
pub const URI_DATA: &str = "dataReception";
pub const URI_DATA_RESP: &str = "dataReceptionResp";
pub const URI_ERROR: &str = "errorResp";

/// One request frame from BIGO (section 1.1).
#[derive(Debug, Deserialize)]
pub struct Request<'a> {
    pub uri: Option<String>,
    #[serde(default)]
    pub retry_cnt: Value,
    #[serde(default)]
    pub send_time: Value,
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub sign: Option<String>,
}

impl Request<'_> {
    /// The exact text of `data`: the decoded string when it is a JSON string, else the raw
    /// JSON text of the object as received (section 1.4: the sign covers that text).
    pub fn data_text(&self) -> Option<String> {
        let raw = self.data?.get();
        if raw.starts_with('"') {
            serde_json::from_str::<String>(raw).ok()
        } else {
            Some(raw.to_string())
        }
    }
}

/// One response frame to BIGO (section 1.1).
#[derive(Debug, Serialize)]
pub struct Response<'a> {
    pub uri: &'a str,
    pub retry_cnt: &'a Value,
    pub send_time: &'a Value,
    pub resp_time: i64,
    pub up_cost: i64,
    /// JSON-encoded string, as the platform expects.
    pub data: String,
}

/// `platformLogin` data (section 1.2); the platform's side writes it too ([`super::bigo_client`]).
#[derive(Debug, Deserialize, Serialize)]
pub struct LoginData {
    #[serde(default, deserialize_with = "lenient::string")]
    pub account: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub timestamp: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub sign: String,
}

/// `platformLoginResp` data.
#[derive(Debug, Serialize)]
pub struct LoginResult<'a> {
    pub code: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<&'a str>,
    pub message: &'a str,
}

/// `dataReceptionResp` data.
#[derive(Debug, Serialize)]
pub struct DataResult<'a> {
    pub seqid: &'a str,
    pub rescode: u16,
    pub message: &'a str,
}

/// `errorResp` data.
#[derive(Debug, Serialize)]
pub struct ErrorResult<'a> {
    pub code: u16,
    pub message: &'a str,
}

/// `dataReception` data (section 1.4), also the shape of one pulled batch (section 1.5).
#[derive(Debug, Deserialize)]
pub struct DataReception {
    #[serde(default, deserialize_with = "lenient::string")]
    pub seqid: String,
    /// `None` when absent or no time at all (`lenient::opt_time`): the broker's clock stands in.
    #[serde(default, deserialize_with = "lenient::opt_time")]
    pub timestamp: Option<i64>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub game_id: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub game_sess: String,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub status: Option<i64>,
    #[serde(default)]
    pub danmu_data: Vec<DanmuEntry>,
}

/// One anchor's batch inside `danmu_data`.
#[derive(Debug, Deserialize)]
pub struct DanmuEntry {
    #[serde(default, deserialize_with = "lenient::string")]
    pub openid: String,
    /// The platform's docs use both `datas` and `data`.
    #[serde(default, alias = "data")]
    pub datas: Vec<Value>,
}

/// BIGO live status of a game session (section 1.4 `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BigoStatus {
    Live,
    Game,
    Closed,
}

impl BigoStatus {
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(Self::Live),
            2 => Some(Self::Game),
            3 => Some(Self::Closed),
            _ => None,
        }
    }
}

/// One danmu item with the fields the room needs pulled out; `raw` keeps the item as received
/// for the pass-through `danmu` event.
#[derive(Debug, Clone)]
pub struct DanmuItem {
    pub kind: String,
    pub user: String,
    pub nick_name: String,
    pub user_img: String,
    pub ts: i64,
    pub data_seq: String,
    pub count: i64,
    pub content: String,
    pub gift_id: String,
    pub gift_url: String,
    pub gift_count: i64,
    pub gift_name: String,
    /// The anchor whose `danmu_data` entry carried the item (`gift.receiver_id`).
    pub openid: String,
    pub raw: Value,
}

impl DanmuItem {
    /// Reads an item; `fallback_ts` (the push's timestamp) stands in for a `ts` that is missing
    /// or that no clock could tell (docs/protocol.md 1.4): such a `ts` is not a value to order by.
    pub fn from_value(raw: Value, openid: &str, fallback_ts: i64) -> Self {
        let text = |key: &str| raw.get(key).and_then(lenient::text_of).unwrap_or_default();
        let int = |key: &str| raw.get(key).and_then(lenient::as_i64);
        Self {
            kind: text("type"),
            user: text("user"),
            nick_name: text("nick_name"),
            user_img: text("user_img"),
            ts: int("ts").and_then(clock::plausible).unwrap_or(fallback_ts),
            data_seq: text("data_seq"),
            count: int("count").unwrap_or(1),
            content: text("content"),
            gift_id: text("gift_id"),
            gift_url: text("gift_url"),
            gift_count: int("gift_count").unwrap_or(1),
            gift_name: text("gift_name"),
            openid: openid.to_string(),
            raw,
        }
    }
}

impl DataReception {
    /// Every item of every anchor, in the order received.
    pub fn items(&self) -> Vec<DanmuItem> {
        let fallback_ts = self.timestamp.unwrap_or_else(super::now_ms);
        self.danmu_data
            .iter()
            .flat_map(|entry| {
                entry.datas.iter().map(move |raw| DanmuItem::from_value(raw.clone(), &entry.openid, fallback_ts))
            })
            .collect()
    }

    /// The anchors' openids of this push (pull compensation's `game_users`).
    pub fn openids(&self) -> impl Iterator<Item = &str> {
        self.danmu_data.iter().map(|e| e.openid.as_str()).filter(|o| !o.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_text_of_a_string_is_the_decoded_string() {
        let req: Request = serde_json::from_str(r#"{"uri":"x","data":"{\"a\":1}"}"#).unwrap();
        assert_eq!(req.data_text().as_deref(), Some(r#"{"a":1}"#));
    }

    #[test]
    fn data_text_of_an_object_is_its_text_as_received() {
        let req: Request = serde_json::from_str(r#"{"uri":"x","data":{"a": 1}}"#).unwrap();
        assert_eq!(req.data_text().as_deref(), Some(r#"{"a": 1}"#));
    }

    #[test]
    fn a_timestamp_or_ts_no_clock_could_tell_counts_as_absent() {
        for absurd in ["-9223372036854775808", "\"-9223372036854775808\"", "-1e19", "1e19", "-1", "253402300800000"] {
            let d: DataReception = serde_json::from_str(&format!(
                r#"{{"seqid":1,"game_sess":"g","timestamp":{absurd},"danmu_data":[{{"openid":"o","datas":[{{"ts":{absurd}}},{{"ts":"7"}}]}}]}}"#
            ))
            .unwrap();
            assert_eq!(d.timestamp, None, "timestamp {absurd}");
            let items = d.items();
            let now = crate::protocol::now_ms();
            assert!((now - 1000..=now + 1000).contains(&items[0].ts), "ts {absurd} takes the broker's clock");
            assert_eq!(items[1].ts, 7);
        }
        let d: DataReception =
            serde_json::from_str(r#"{"seqid":1,"timestamp":"253402300799999","danmu_data":[{"datas":[{"ts":-5}]}]}"#)
                .unwrap();
        assert_eq!((d.timestamp, d.items()[0].ts), (Some(253_402_300_799_999), 253_402_300_799_999));
    }

    #[test]
    fn items_accept_data_as_alias_of_datas_and_numeric_ts() {
        let d: DataReception = serde_json::from_str(
            r#"{"seqid":1,"game_sess":"g","danmu_data":[{"openid":"o","data":[{"type":"msg","ts":5,"data_seq":"7","content":"hi"}]}]}"#,
        )
        .unwrap();
        let items = d.items();
        assert_eq!(d.seqid, "1");
        assert_eq!(items.len(), 1);
        assert_eq!((items[0].ts, items[0].data_seq.as_str(), items[0].openid.as_str()), (5, "7", "o"));
    }
}
