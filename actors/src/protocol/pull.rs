//! Pull compensation wire types (docs/protocol.md 1.5): the body we POST to
//! `{bigo.api_base}/broom/pull_data` and BIGO's answer.
//!
//! BIGO omits fields that hold their default value (0, "", []), and spells the answer's message
//! `messge`; every answer field is therefore optional here, and `message` is accepted as well.

use serde::{Deserialize, Serialize};

use super::bigo::{DanmuEntry, DanmuItem};
use super::lenient;

/// The path under `bigo.api_base`.
pub const PULL_PATH: &str = "/broom/pull_data";

/// The request body.
#[derive(Debug, Serialize)]
pub struct PullRequest<'a> {
    /// Our request id; BIGO echoes it.
    pub seqid: &'a str,
    pub game_id: &'a str,
    pub game_sess: &'a str,
    /// The anchors' openids seen in the session's pushes.
    pub game_users: &'a [String],
    /// BIGO answers items after this time (ms), offset by `context` where they overlap.
    pub timestamp: i64,
    pub batch: u32,
    /// The previous answer's `context`; "" on the first call.
    pub context: &'a str,
}

/// The answer.
#[derive(Debug, Deserialize)]
pub struct PullResponse {
    #[serde(default, deserialize_with = "lenient::string")]
    pub seqid: String,
    /// 200 ok; 300 live status problem; 400 bad request; 401 rate limited; 500 platform error.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub rescode: Option<i64>,
    #[serde(default, alias = "message", deserialize_with = "lenient::string")]
    pub messge: String,
    #[serde(default)]
    pub danmu_data: Vec<DanmuEntry>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub context: String,
}

impl PullResponse {
    /// Every item of every anchor, in the order answered; `fallback_ts` stands in for a
    /// missing `ts`.
    pub fn items(&self, fallback_ts: i64) -> Vec<DanmuItem> {
        self.danmu_data
            .iter()
            .flat_map(|entry| {
                entry.datas.iter().map(move |raw| DanmuItem::from_value(raw.clone(), &entry.openid, fallback_ts))
            })
            .collect()
    }

    /// The most items any one anchor got: when it reaches `batch`, more are waiting.
    pub fn fullest_anchor(&self) -> usize {
        self.danmu_data.iter().map(|e| e.datas.len()).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_with_omitted_defaults_parses() {
        let r: PullResponse = serde_json::from_str(r#"{"seqid":"q1","rescode":200}"#).unwrap();
        assert_eq!((r.rescode, r.context.as_str(), r.items(0).len()), (Some(200), "", 0));
    }

    #[test]
    fn messge_is_read_in_both_spellings_and_items_keep_their_anchor() {
        let r: PullResponse = serde_json::from_str(
            r#"{"rescode":500,"messge":"busy","context":"c9","danmu_data":[{"openid":"a","data":[{"type":"msg","data_seq":"1"}]}]}"#,
        )
        .unwrap();
        assert_eq!((r.messge.as_str(), r.context.as_str()), ("busy", "c9"));
        let items = r.items(42);
        assert_eq!((items[0].openid.as_str(), items[0].ts), ("a", 42));
        let r: PullResponse = serde_json::from_str(r#"{"rescode":401,"message":"slow down"}"#).unwrap();
        assert_eq!(r.messge, "slow down");
    }
}
