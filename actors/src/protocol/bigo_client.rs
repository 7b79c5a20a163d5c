//! The platform's side of docs/protocol.md section 1, written once: the request frames BIGO sends
//! (`platformLogin` signed as 1.2, `dataReception` signed as 1.4) and the reading of the
//! broker's answers (1.1). Pure functions over JSON text, no I/O.
//!
//! The BIGO simulator (`danmu-simulator`), the load generator (`danmu-bench`) and the test
//! harness build their frames here. The signatures come from [`super::sign`], the functions
//! the server checks with; the integration tests keep one check against the formulas of
//! docs/protocol.md written out, so that a wrong formula here cannot pass unnoticed on both sides.

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::bigo::{LoginData, URI_DATA, URI_DATA_RESP, URI_ERROR, URI_LOGIN, URI_LOGIN_RESP};
use super::{lenient, sign};

/// One request frame as the platform writes it (section 1.1); `data` is the JSON text of the
/// request's data object, sent as a JSON string.
#[derive(Serialize)]
struct RequestFrame<'a> {
    uri: &'a str,
    retry_cnt: u32,
    send_time: i64,
    data: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sign: Option<&'a str>,
}

fn to_text(frame: &RequestFrame) -> String {
    // A struct of strings and integers always serialises.
    serde_json::to_string(frame).unwrap_or_default()
}

/// The `platformLogin` request text (section 1.2) for `account` at `timestamp` (Unix ms, also
/// the envelope's `send_time`: the platform stamps both from its clock).
pub fn login_request(account: &str, password: &str, platform_abbr: &str, timestamp: i64) -> String {
    let ts = timestamp.to_string();
    let login = LoginData {
        sign: sign::bigo_login(password, &ts, platform_abbr, account),
        account: account.into(),
        timestamp: ts,
    };
    let data = serde_json::to_string(&login).unwrap_or_default();
    to_text(&RequestFrame {
        uri: URI_LOGIN,
        retry_cnt: 0,
        send_time: timestamp,
        data: &data,
        access_token: None,
        sign: None,
    })
}

/// The signed `dataReception` request text (section 1.4) carrying `data`, the JSON text of
/// the data object exactly as signed. A retry of a push sends the same `data` (same `seqid`)
/// with a higher `retry_cnt`.
pub fn data_reception_request(
    data: &str,
    access_token: &str,
    platform_abbr: &str,
    retry_cnt: u32,
    send_time: i64,
) -> String {
    let signature = sign::bigo_message(data, access_token, platform_abbr);
    to_text(&RequestFrame {
        uri: URI_DATA,
        retry_cnt,
        send_time,
        data,
        access_token: Some(access_token),
        sign: Some(&signature),
    })
}

/// `platformLoginResp` data (section 1.2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LoginAnswer {
    pub code: i64,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub message: String,
}

impl LoginAnswer {
    /// The token to send with every `dataReception`, when the login succeeded.
    pub fn accepted_token(&self) -> Option<&str> {
        self.access_token.as_deref().filter(|_| self.code == 200)
    }

    /// A refusal in words for the one who logged in as `account`: the broker's answer and
    /// which check failed, with what to look at.
    pub fn refusal(&self, account: &str) -> String {
        let what = match self.message.as_str() {
            "account not found" => {
                format!("account check failed: {account:?} is not one of the broker's bigo.accounts")
            }
            "sign is error." => format!(
                "password/sign check failed: the password of account {account:?} in bigo.accounts, or \
                 bigo.platform_abbr, is not the broker's"
            ),
            "timestamp expired" => "timestamp check failed: this machine's clock is further than the broker's \
                                    bigo.login_max_skew_ms from the broker's clock"
                .to_string(),
            _ => failed_login_check(&self.message).to_string(),
        };
        format!("code {}: {} ({what})", self.code, self.message)
    }
}

/// Which check of section 1.2 a `platformLogin` failure message names (the wire words are the
/// platform's; the broker's log and the tools say it plainly).
pub fn failed_login_check(message: &str) -> &'static str {
    match message {
        "account not found" => "the account is not in bigo.accounts",
        "sign is error." => "the sign does not match: a wrong password, or another platform_abbr",
        "timestamp expired" => "the timestamp is out of bigo.login_max_skew_ms",
        "data unparsable" => "the login data could not be read",
        _ => "refused",
    }
}

/// `dataReceptionResp` data (section 1.4); serialises back to the same fields (`danmu-broker
/// push` prints it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct DataAnswer {
    #[serde(default, deserialize_with = "lenient::string")]
    pub seqid: String,
    pub rescode: i64,
    #[serde(default)]
    pub message: String,
}

/// `errorResp` data (section 1.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ErrorAnswer {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub message: String,
}

/// One frame from the broker, by its `uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Login(LoginAnswer),
    Data(DataAnswer),
    Error(ErrorAnswer),
    /// A frame with another `uri` (the broker sends none today): the uri.
    Other(String),
}

/// Why a frame from the broker could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("not a JSON frame with a uri")]
    NotAFrame,
    #[error("{uri} with unreadable data")]
    BadData { uri: String },
}

/// The envelope of an answer; only `uri` and `data` matter to the platform.
#[derive(Deserialize)]
struct AnswerFrame<'a> {
    #[serde(borrow)]
    uri: Cow<'a, str>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

/// Reads `data`, a JSON-encoded string (an object is accepted too, as the server does).
fn data_of<T: DeserializeOwned>(data: Option<&RawValue>) -> Option<T> {
    let raw = data?.get();
    if raw.starts_with('"') {
        let text: Cow<str> = serde_json::from_str(raw).ok()?;
        serde_json::from_str(&text).ok()
    } else {
        serde_json::from_str(raw).ok()
    }
}

/// Reads one text frame from the broker.
pub fn parse_answer(text: &str) -> Result<Answer, AnswerError> {
    let frame: AnswerFrame = serde_json::from_str(text).map_err(|_| AnswerError::NotAFrame)?;
    let bad = || AnswerError::BadData { uri: frame.uri.to_string() };
    match frame.uri.as_ref() {
        URI_LOGIN_RESP => data_of(frame.data).map(Answer::Login).ok_or_else(bad),
        URI_DATA_RESP => data_of(frame.data).map(Answer::Data).ok_or_else(bad),
        URI_ERROR => data_of(frame.data).map(Answer::Error).ok_or_else(bad),
        other => Ok(Answer::Other(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::bigo::{DataReception, Request};

    /// The seed's login example (000, section 3.1).
    const ACCOUNT: &str = "bigoUser1";
    const PASSWORD: &str = "213213";
    const TIMESTAMP: i64 = 1_693_796_233_988;
    /// The seed's `dataReception` example (000, section 3.3).
    const SEED_DATA: &str = r#"{"game_sess":"1712876190998","danmu_data":[{"openid":"AREsz4MyPGdw5an9bozBP28V7AGjGC0GvoZQBG","datas":[]}],"seqid":"1712866435","game_id":"10000","status":3,"timestamp":1712866435586}"#;
    const SEED_TOKEN: &str = "42fababa5a4d8059e3efea37b98c9e37";

    #[test]
    fn login_request_for_the_seed_example_carries_its_known_sign() {
        let frame: serde_json::Value =
            serde_json::from_str(&login_request(ACCOUNT, PASSWORD, "inke", TIMESTAMP)).unwrap();
        assert_eq!(frame["uri"], "platformLogin");
        assert_eq!((frame["retry_cnt"].as_i64(), frame["send_time"].as_i64()), (Some(0), Some(TIMESTAMP)));
        assert!(frame.get("access_token").is_none() && frame.get("sign").is_none());
        let data: serde_json::Value = serde_json::from_str(frame["data"].as_str().unwrap()).unwrap();
        // md5("password:213213&tamp:1693796233988&inke&account:bigoUser1"), computed apart.
        let expected = serde_json::json!({"account": ACCOUNT, "timestamp": "1693796233988",
                                          "sign": "eee920929f1b318266c5310f733965b1"});
        assert_eq!(data, expected);
    }

    #[test]
    fn login_request_passes_the_server_check() {
        let text = login_request("acc", "pw", "abbr", 42);
        let req: Request = serde_json::from_str(&text).unwrap();
        assert_eq!(req.uri.as_deref(), Some(URI_LOGIN));
        let login: LoginData = serde_json::from_str(&req.data_text().unwrap()).unwrap();
        assert_eq!((login.account.as_str(), login.timestamp.as_str()), ("acc", "42"));
        assert_eq!(login.sign, sign::bigo_login("pw", &login.timestamp, "abbr", &login.account));
    }

    #[test]
    fn data_reception_for_the_seed_example_carries_its_known_sign() {
        let text = data_reception_request(SEED_DATA, SEED_TOKEN, "inke", 2, 1_712_866_435_852);
        let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(frame["uri"], "dataReception");
        assert_eq!((frame["retry_cnt"].as_i64(), frame["send_time"].as_i64()), (Some(2), Some(1_712_866_435_852)));
        assert_eq!(frame["data"].as_str(), Some(SEED_DATA), "data travels as a JSON string");
        assert_eq!(frame["access_token"], SEED_TOKEN);
        // md5(SEED_DATA + "&token:" + SEED_TOKEN + "&inke"), computed apart.
        assert_eq!(frame["sign"], "4b4ea037da61e0e688c340b8a38fa9b3");
    }

    #[test]
    fn data_reception_request_passes_the_server_check_and_parses() {
        let data = r#"{"seqid":"s-1","game_sess":"g","status":2,"timestamp":5,"danmu_data":[{"openid":"o","datas":[{"type":"msg","content":"说 \"hi\" 🎉\\","ts":"5","data_seq":"1"}]}]}"#;
        let text = data_reception_request(data, "tok", "abbr", 0, 9);
        let req: Request = serde_json::from_str(&text).unwrap();
        assert_eq!(req.uri.as_deref(), Some(URI_DATA));
        let signed = req.data_text().unwrap();
        assert_eq!(signed, data, "quotes, backslashes and emoji survive the string encoding");
        assert_eq!(req.access_token.as_deref(), Some("tok"));
        assert_eq!(req.sign.as_deref(), Some(sign::bigo_message(&signed, "tok", "abbr").as_str()));
        let push: DataReception = serde_json::from_str(&signed).unwrap();
        assert_eq!((push.seqid.as_str(), push.items()[0].content.as_str()), ("s-1", "说 \"hi\" 🎉\\"));
    }

    #[test]
    fn answers_are_read_by_uri_from_their_data_string() {
        let login = r#"{"uri":"platformLoginResp","retry_cnt":0,"send_time":1,"resp_time":2,"up_cost":1,"data":"{\"code\":200,\"access_token\":\"abc\",\"message\":\"\"}"}"#;
        let Ok(Answer::Login(answer)) = parse_answer(login) else { panic!("a login answer") };
        assert_eq!(answer.accepted_token(), Some("abc"));
        let refused = r#"{"uri":"platformLoginResp","data":"{\"code\":400,\"message\":\"sign is error.\"}"}"#;
        let Ok(Answer::Login(answer)) = parse_answer(refused) else { panic!("a login answer") };
        assert_eq!((answer.code, answer.accepted_token(), answer.message.as_str()), (400, None, "sign is error."));
        let words = answer.refusal("bigoUser1");
        assert!(words.starts_with("code 400: sign is error. (password/sign check failed"), "{words}");
        assert!(words.contains("\"bigoUser1\""), "{words}");
        let ack = r#"{"uri":"dataReceptionResp","retry_cnt":0,"send_time":1,"resp_time":2,"up_cost":1,"data":"{\"seqid\":\"464467303_1712826230722\",\"rescode\":503,\"message\":\"busy\"}"}"#;
        let expected = DataAnswer { seqid: "464467303_1712826230722".into(), rescode: 503, message: "busy".into() };
        assert_eq!(parse_answer(ack), Ok(Answer::Data(expected)));
        let error = r#"{"uri":"errorResp","data":"{\"code\":400,\"message\":\"unknown uri\"}"}"#;
        assert_eq!(parse_answer(error), Ok(Answer::Error(ErrorAnswer { code: 400, message: "unknown uri".into() })));
    }

    #[test]
    fn answer_data_as_an_object_and_numeric_seqid_are_accepted() {
        let ack = r#"{"uri":"dataReceptionResp","data":{"seqid":17,"rescode":200}}"#;
        let expected = DataAnswer { seqid: "17".into(), rescode: 200, message: String::new() };
        assert_eq!(parse_answer(ack), Ok(Answer::Data(expected)));
        assert_eq!(parse_answer(r#"{"uri":"somethingNew"}"#), Ok(Answer::Other("somethingNew".into())));
    }

    #[test]
    fn unreadable_frames_say_what_is_wrong() {
        assert_eq!(parse_answer("not json"), Err(AnswerError::NotAFrame));
        assert_eq!(parse_answer(r#"{"data":"{}"}"#), Err(AnswerError::NotAFrame));
        let no_rescode = r#"{"uri":"dataReceptionResp","data":"{\"seqid\":\"1\"}"}"#;
        assert_eq!(parse_answer(no_rescode), Err(AnswerError::BadData { uri: URI_DATA_RESP.into() }));
    }
}
