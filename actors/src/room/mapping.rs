//! What a room says about things, as event bodies: the danmu mapping of docs/protocol.md 2.4 (a
//! BIGO item becomes `send_topic_msg`, `send_gift`, `like` or a pass-through `danmu`), and the
//! `send_gift` a member's report becomes. Pure functions of their inputs.

use crate::protocol::bigo::DanmuItem;
use crate::protocol::client::{EventBody, Gift, GiftReport, NotifyType, Profile};
use crate::protocol::lenient;

/// The event a danmu item becomes in `channel_name` (docs/protocol.md 2.4, Danmu mapping).
pub fn item_event(channel_name: &str, item: DanmuItem) -> EventBody {
    let channel_name = channel_name.to_string();
    match item.kind.as_str() {
        "msg" => EventBody::SendTopicMsg {
            profile: Profile {
                user_id: item.user,
                nickname: item.nick_name,
                sex: serde_json::Value::from(0),
                avatar_url: item.user_img.clone(),
                avatar_small_url: item.user_img,
            },
            content: item.content,
            channel_name,
        },
        "gift" => EventBody::SendGift {
            notify_type: NotifyType::Bc,
            channel_name,
            gift: Gift {
                id: item.gift_id,
                sender_id: item.user,
                receiver_id: item.openid,
                sender_nickname: item.nick_name,
                name: item.gift_name,
                image_url: item.gift_url,
                num: item.gift_count,
                ..Gift::default()
            },
        },
        "heart" => EventBody::Like {
            channel_name,
            user_id: item.user,
            nickname: item.nick_name,
            avatar_url: item.user_img,
            count: item.count,
        },
        // An unknown type is forwarded as it came, never dropped (docs/protocol.md 1.4).
        _ => EventBody::Danmu { channel_name, item: item.raw },
    }
}

/// Who is involved in a member's gift, as the room knows them.
pub struct GiftParties<'a> {
    pub sender: &'a Profile,
    pub receiver_nickname: String,
    pub sender_seat: Option<u32>,
    pub receiver_seat: Option<u32>,
}

/// The `send_gift` event of a member's `send_gift_report`: the report's gift, completed with
/// what the room knows of sender and receiver. Image fields pass through from the report.
pub fn gift_event(channel_name: &str, notify_type: NotifyType, gift: &GiftReport, who: GiftParties<'_>) -> EventBody {
    let text = |key: &str| gift.extra.get(key).and_then(lenient::text_of).unwrap_or_default();
    EventBody::SendGift {
        notify_type,
        channel_name: channel_name.to_string(),
        gift: Gift {
            id: gift.id.clone(),
            sender_id: who.sender.user_id.clone(),
            receiver_id: gift.receiver_id.clone(),
            sender_nickname: who.sender.nickname.clone(),
            receiver_nickname: who.receiver_nickname,
            name: gift.name.clone(),
            image_url: text("image_url"),
            image_small_url: text("image_small_url"),
            image_big_url: text("image_big_url"),
            dynamic_image_url: text("dynamic_image_url"),
            num: gift.num.unwrap_or(1),
            sender_room_seat_id: who.sender_seat,
            receiver_room_seat_id: who.receiver_seat,
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn item(raw: Value) -> DanmuItem {
        DanmuItem::from_value(raw, "anchor-1", 7)
    }

    fn wire(body: &EventBody) -> Value {
        serde_json::to_value(crate::protocol::client::RoomEventFrame { body, seq: None, ts: 0 }).unwrap()
    }

    #[test]
    fn a_msg_becomes_send_topic_msg_with_the_user_as_profile() {
        let raw = json!({"type":"msg","user":"u1","nick_name":"Ann","user_img":"http://i/a.png","content":"hi"});
        let event = wire(&item_event("gs", item(raw)));
        assert_eq!(event["action"], "send_topic_msg");
        assert_eq!((event["user_id"].as_str(), event["nickname"].as_str()), (Some("u1"), Some("Ann")));
        assert_eq!(event["avatar_small_url"], "http://i/a.png");
        assert_eq!((event["content"].as_str(), event["channel_name"].as_str()), (Some("hi"), Some("gs")));
    }

    #[test]
    fn a_gift_goes_to_the_anchor_and_a_heart_becomes_like() {
        let raw = json!({"type":"gift","user":"u1","gift_id":"g","gift_name":"Rose","gift_count":"3","gift_url":"x"});
        let gift = wire(&item_event("gs", item(raw)));
        assert_eq!((gift["action"].as_str(), gift["notify_type"].as_str()), (Some("send_gift"), Some("bc")));
        assert_eq!(gift["gift"]["receiver_id"], "anchor-1");
        assert_eq!((gift["gift"]["num"].as_i64(), gift["gift"]["image_url"].as_str()), (Some(3), Some("x")));
        let like = wire(&item_event("gs", item(json!({"type":"heart","user":"u2","count":5}))));
        assert_eq!((like["action"].as_str(), like["count"].as_i64()), (Some("like"), Some(5)));
    }

    #[test]
    fn an_unknown_type_passes_through_as_danmu() {
        let raw = json!({"type":"firework","user":"u1","size":9});
        let event = wire(&item_event("gs", item(raw.clone())));
        assert_eq!(event["action"], "danmu");
        assert_eq!(event["item"], raw);
    }

    #[test]
    fn a_member_gift_is_completed_with_the_room_knowledge() {
        let report: GiftReport =
            serde_json::from_value(json!({"id":"g1","name":"Car","num":2,"receiver_id":"bob","image_url":"i"}))
                .unwrap();
        let ann = Profile { user_id: "ann".into(), nickname: "Ann".into(), ..Default::default() };
        let who =
            GiftParties { sender: &ann, receiver_nickname: "Bob".into(), sender_seat: Some(2), receiver_seat: None };
        let event = wire(&gift_event("c", NotifyType::Ptp, &report, who));
        assert_eq!(event["notify_type"], "ptp");
        let g = &event["gift"];
        assert_eq!((g["sender_id"].as_str(), g["receiver_nickname"].as_str()), (Some("ann"), Some("Bob")));
        assert_eq!((g["sender_room_seat_id"].as_u64(), g["image_url"].as_str()), (Some(2), Some("i")));
        assert_eq!(g["num"], 2);
    }
}
