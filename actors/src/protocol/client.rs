//! App client frames (docs/protocol.md section 2): what clients send ([`Envelope`] then
//! [`ClientRequest`]), the room events every member receives ([`EventBody`]), and the direct
//! frames of one connection ([`Direct`]).
//!
//! The app's side reads and writes the same types: [`ClientRequest`] and the snapshot, seat and
//! ack types have serde both ways (see [`super::app_client`]).
//!
//! A client frame is parsed twice on purpose: first the envelope (the fields every frame
//! carries, checked in the order of section 2.3), then, once it is authentic, the action's own
//! fields. That keeps "unknown action" (1009) apart from "bad parameters" (1001).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::lenient;
use super::status::ChannelStatus;

/// Client error codes (section 2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    BadParameters = 1001,
    BadSign = 1002,
    TokenInvalid = 1003,
    NotInRoom = 1004,
    SeatTaken = 1005,
    RateLimited = 1006,
    RoomClosed = 1007,
    FrameTooLarge = 1008,
    UnknownAction = 1009,
    TimestampOutOfWindow = 1010,
    /// The store cannot be reached right now: retry (several nodes, docs/protocol.md 7).
    Unavailable = 1011,
}

impl ErrorCode {
    const ALL: [Self; 11] = [
        Self::BadParameters,
        Self::BadSign,
        Self::TokenInvalid,
        Self::NotInRoom,
        Self::SeatTaken,
        Self::RateLimited,
        Self::RoomClosed,
        Self::FrameTooLarge,
        Self::UnknownAction,
        Self::TimestampOutOfWindow,
        Self::Unavailable,
    ];

    pub fn code(self) -> u16 {
        self as u16
    }

    /// The error of a wire code, `None` for a code section 2.7 does not have.
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// Label for the `danmu_rejected_frames_total{reason}` metric and logs.
    pub fn reason(self) -> &'static str {
        match self {
            Self::BadParameters => "bad_parameters",
            Self::BadSign => "bad_sign",
            Self::TokenInvalid => "token_invalid",
            Self::NotInRoom => "not_in_room",
            Self::SeatTaken => "seat_taken",
            Self::RateLimited => "rate_limited",
            Self::RoomClosed => "room_closed",
            Self::FrameTooLarge => "frame_too_large",
            Self::UnknownAction => "unknown_action",
            Self::TimestampOutOfWindow => "timestamp_out_of_window",
            Self::Unavailable => "unavailable",
        }
    }
}

/// Why the server ends a client connection on its own: the `kicked` frame's `reason` and the
/// close code that follows it, in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KickReason {
    /// A newer connection of the same user_id and sid took over (section 2.2).
    Replaced,
    /// The node is shutting down: reconnect through `end_point` (section 4).
    Shutdown,
    /// The node was cut off from the others long enough to be taken for dead: its rooms
    /// removed its members, so they reconnect through `end_point` (section 7).
    Reconnect,
}

impl KickReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Replaced => "replaced",
            Self::Shutdown => "shutdown",
            Self::Reconnect => "reconnect",
        }
    }

    /// The WebSocket close code sent after the `kicked` frame: 1012 (service restart) asks
    /// the client to come back, 1000 says this connection is simply done.
    pub fn close_code(self) -> u16 {
        match self {
            Self::Replaced => 1000,
            Self::Shutdown | Self::Reconnect => 1012,
        }
    }
}

/// The fields every client frame carries (section 2.3).
#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub action: String,
    #[serde(default)]
    pub online_token: Option<String>,
    #[serde(default)]
    pub sid: Option<String>,
    #[serde(default)]
    pub timestamp: Value,
    #[serde(default)]
    pub sign: Option<String>,
}

/// A client action with its own fields, once the envelope passed its checks. App clients
/// write their actions with it too ([`super::app_client::Signer::request`]).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "action")]
pub enum ClientRequest {
    #[serde(rename = "ping")]
    Ping,
    #[serde(rename = "enter_room_report")]
    EnterRoom {
        channel_name: String,
        #[serde(default, deserialize_with = "lenient::opt_i64", skip_serializing_if = "Option::is_none")]
        last_seq: Option<i64>,
        /// The epoch `last_seq` belongs to; absent: the room's current one (older clients).
        #[serde(default, deserialize_with = "lenient::opt_string", skip_serializing_if = "Option::is_none")]
        epoch: Option<String>,
    },
    #[serde(rename = "exit_room_report")]
    ExitRoom {
        #[serde(default, deserialize_with = "lenient::string")]
        user_id: String,
        #[serde(default)]
        channel_name: String,
    },
    // The seed's reports name no channel: an absent (or empty) `channel_name` below means the
    // room the connection is in, so that an app written from seed 001 works unchanged.
    #[serde(rename = "send_topic_msg_report")]
    SendTopicMsg {
        #[serde(default)]
        channel_name: String,
        content: String,
    },
    #[serde(rename = "send_gift_report")]
    SendGift {
        #[serde(default)]
        channel_name: String,
        notify_type: NotifyType,
        gift: GiftReport,
    },
    #[serde(rename = "up_report", alias = "up_deport")]
    Up {
        #[serde(default)]
        channel_name: String,
        /// Absent: the lowest free seat (the seed's `up_deport` names none).
        #[serde(default, deserialize_with = "seat_id", skip_serializing_if = "Option::is_none")]
        seat_id: Option<u32>,
    },
    #[serde(rename = "down_report")]
    Down {
        #[serde(default)]
        channel_name: String,
    },
    #[serde(rename = "hang_up_report")]
    HangUp {
        /// Absent: every other user of the call (the seed's report names only the caller).
        #[serde(default, deserialize_with = "lenient::string")]
        receiver_id: String,
    },
}

impl ClientRequest {
    /// Every action name a client may send; anything else is error 1009.
    pub const ACTIONS: &'static [&'static str] = &[
        "ping",
        "enter_room_report",
        "exit_room_report",
        "send_topic_msg_report",
        "send_gift_report",
        "up_report",
        "up_deport",
        "down_report",
        "hang_up_report",
    ];

    /// The `action` this request is sent as: what its sign covers (docs/protocol.md 2.3).
    pub fn action(&self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::EnterRoom { .. } => "enter_room_report",
            Self::ExitRoom { .. } => "exit_room_report",
            Self::SendTopicMsg { .. } => "send_topic_msg_report",
            Self::SendGift { .. } => "send_gift_report",
            Self::Up { .. } => "up_report",
            Self::Down { .. } => "down_report",
            Self::HangUp { .. } => "hang_up_report",
        }
    }
}

/// `seat_id` as a number or a numeric string; null means "any free seat".
fn seat_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let value = Value::deserialize(d)?;
    if value.is_null() {
        return Ok(None);
    }
    lenient::as_i64(&value)
        .and_then(|n| u32::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom("seat_id must be a non-negative integer"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyType {
    Bc,
    Ptp,
}

/// The `gift` object of `send_gift_report`; fields beyond these pass through untouched.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct GiftReport {
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "lenient::opt_i64", skip_serializing_if = "Option::is_none")]
    pub num: Option<i64>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub receiver_id: String,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// A user's public profile, from the JWT claims (section 2.1).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Profile {
    pub user_id: String,
    pub nickname: String,
    pub sex: Value,
    pub avatar_url: String,
    pub avatar_small_url: String,
}

/// One seat of a room (`room_seat`, section 2.4).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Seat {
    pub id: u32,
    pub user_id: String,
    pub nickname: String,
    pub sex: Value,
    pub avatar_url: String,
    pub avatar_small_url: String,
    /// 0 free, 1 taken.
    pub status: u8,
    /// 0 muted, 1 open.
    pub microphone: u8,
    pub rank: u32,
    pub room_id: String,
}

/// The `gift` object of a `send_gift` event.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Gift {
    pub id: String,
    pub sender_id: String,
    pub receiver_id: String,
    pub sender_nickname: String,
    pub receiver_nickname: String,
    pub name: String,
    pub image_url: String,
    pub image_small_url: String,
    pub image_big_url: String,
    pub dynamic_image_url: String,
    pub num: i64,
    pub sender_room_seat_id: Option<u32>,
    pub receiver_room_seat_id: Option<u32>,
}

/// The body of a room event (section 2.4); [`RoomEventFrame`] adds `seq` and `ts`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum EventBody {
    EnterRoom {
        #[serde(flatten)]
        profile: Profile,
        channel_name: String,
        i_segment: String,
        i_segment_text: String,
        user_car_gift: Value,
    },
    ExitRoom {
        user_id: String,
        channel_name: String,
        room_seat: Option<Seat>,
    },
    SendTopicMsg {
        #[serde(flatten)]
        profile: Profile,
        content: String,
        channel_name: String,
    },
    SendGift {
        notify_type: NotifyType,
        channel_name: String,
        gift: Gift,
    },
    Up {
        channel_name: String,
        room_seat: Seat,
    },
    Down {
        channel_name: String,
        room_seat: Seat,
    },
    RoomNotice {
        channel_name: String,
        expire_time: i64,
        content: String,
        client_url: String,
    },
    HangUp {
        user_id: String,
        receiver_id: String,
        channel_name: String,
    },
    Like {
        channel_name: String,
        user_id: String,
        nickname: String,
        avatar_url: String,
        count: i64,
    },
    Danmu {
        channel_name: String,
        item: Value,
    },
    RoomStatus {
        channel_name: String,
        status: ChannelStatus,
    },
}

/// A room event as written on the wire: the body plus `seq` (absent for `ptp`) and `ts`.
#[derive(Debug, Serialize)]
pub struct RoomEventFrame<'a> {
    #[serde(flatten)]
    pub body: &'a EventBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub ts: i64,
}

/// What the `ack` of `enter_room_report` says about the room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomSnapshot {
    pub channel_name: String,
    pub members: usize,
    pub seats: Vec<Seat>,
    pub last_seq: u64,
    /// What this room's `seq` numbers belong to (docs/protocol.md 2.6, Epochs).
    pub epoch: String,
    /// `live`, `game`, `closed` or `banned` once known; absent before any status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ChannelStatus>,
}

/// Frames addressed to one connection (not room events). Built, serialised and dropped at
/// once, so the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Direct<'a> {
    Connected {
        online_token: &'a str,
        ping_interval: u64,
        server_time: i64,
    },
    Pong {
        server_time: i64,
    },
    Ack {
        #[serde(rename = "for")]
        for_action: &'a str,
        error_code: u16,
        error_reason: &'a str,
        #[serde(flatten)]
        detail: AckDetail,
    },
    Error {
        #[serde(rename = "for")]
        for_action: &'a str,
        error_code: u16,
        error_reason: &'a str,
    },
    Kicked {
        reason: KickReason,
        /// When to reconnect (shutdown: drawn per client over `server.reconnect_spread_ms`).
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

/// Action-specific fields of an `ack`.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AckDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<RoomSnapshot>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_seat: Option<Seat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

impl Direct<'_> {
    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail (no maps with non-string keys).
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_deport_is_read_as_up_report() {
        let req: ClientRequest =
            serde_json::from_str(r#"{"action":"up_deport","channel_name":"c","seat_id":"3","sign":"x"}"#).unwrap();
        assert!(matches!(req, ClientRequest::Up { seat_id: Some(3), .. }));
    }

    #[test]
    fn seed_style_reports_without_channel_seat_or_receiver_parse() {
        let up: ClientRequest = serde_json::from_str(r#"{"action":"up_deport","user_id":"1233"}"#).unwrap();
        assert!(matches!(up, ClientRequest::Up { seat_id: None, ref channel_name } if channel_name.is_empty()));
        let hang: ClientRequest = serde_json::from_str(r#"{"action":"hang_up_report","user_id":"1233"}"#).unwrap();
        assert!(matches!(hang, ClientRequest::HangUp { ref receiver_id } if receiver_id.is_empty()));
        let bad = serde_json::from_str::<ClientRequest>(r#"{"action":"up_report","seat_id":-1}"#);
        assert!(bad.is_err());
    }

    #[test]
    fn room_event_frame_carries_action_seq_and_ts() {
        let body = EventBody::RoomStatus { channel_name: "c".into(), status: ChannelStatus::Live };
        let json = serde_json::to_value(RoomEventFrame { body: &body, seq: Some(4), ts: 9 }).unwrap();
        assert_eq!(json, serde_json::json!({"action":"room_status","channel_name":"c","status":"live","seq":4,"ts":9}));
    }

    #[test]
    fn every_error_code_reads_back_from_its_number() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(code.code()), Some(code));
        }
        assert_eq!(ErrorCode::from_code(1000), None);
    }

    #[test]
    fn kicked_frames_name_their_reason() {
        let json = Direct::Kicked { reason: KickReason::Replaced, retry_after_ms: None }.to_json();
        assert_eq!(json, r#"{"action":"kicked","reason":"replaced"}"#);
        let json = Direct::Kicked { reason: KickReason::Shutdown, retry_after_ms: Some(1234) }.to_json();
        assert_eq!(json, r#"{"action":"kicked","reason":"shutdown","retry_after_ms":1234}"#);
        assert_eq!((KickReason::Shutdown.close_code(), KickReason::Replaced.close_code()), (1012, 1000));
    }

    #[test]
    fn enter_room_report_reads_epoch_as_text() {
        let req: ClientRequest =
            serde_json::from_str(r#"{"action":"enter_room_report","channel_name":"c","last_seq":"4","epoch":"a1"}"#)
                .unwrap();
        assert!(matches!(req, ClientRequest::EnterRoom { last_seq: Some(4), epoch: Some(ref e), .. } if e == "a1"));
    }

    #[test]
    fn ack_flattens_its_detail() {
        let ack = Direct::Ack {
            for_action: "ping",
            error_code: 0,
            error_reason: "",
            detail: AckDetail { last_seq: Some(3), ..Default::default() },
        };
        let json: Value = serde_json::from_str(&ack.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"action":"ack","for":"ping","error_code":0,"error_reason":"","last_seq":3})
        );
    }
}
