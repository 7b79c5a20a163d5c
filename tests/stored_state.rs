//! What a shared room (`store.shared_rooms`, docs/protocol.md 7) makes of the state it finds in
//! Redis when it takes a room over: a state it cannot number on from is no state, and the room
//! starts a new numbering under a new epoch (docs/protocol.md 2.6, Epochs), its old events
//! cleared; a room the engine stored before its commits carried state goes on numbering.

mod common;

use common::live::*;
use danmu_broker::config::StoreKind;
use serde_json::json;

/// A shared-room broker, and the state hash of `channel` as the engine before issue 21 stored
/// it (a room's state then lived there only): `epoch`, `next_seq`, nothing applied.
async fn with_stored_state(channel: &str, epoch: &str, next_seq: u64) -> (LiveBroker, redis::Connection, String) {
    let lb = LiveBroker::start_with(StoreKind::Redis, |c| c.store.shared_rooms = true).await;
    let (url, prefix) = (lb.config.store.redis_url.clone(), lb.config.store.key_prefix.clone());
    let mut conn = redis::Client::open(url).and_then(|c| c.get_connection()).expect("a Redis connection");
    let state = json!({"epoch":epoch,"next_seq":next_seq,"members":[],"seats":[],"status":null,
                       "bigo_status":null,"live_status":null});
    let _: () = redis::cmd("HSET")
        .arg(format!("{prefix}room:{{{channel}}}:state"))
        .arg("core")
        .arg(state.to_string())
        .arg("applied")
        .arg("0-0")
        .query(&mut conn)
        .expect("HSET");
    (lb, conn, prefix)
}

/// Issue 26: a stored `next_seq` of `u64::MAX` (only Redis's contents can say so) made the
/// first event take it and the next one wrap to 0 (a panic where overflow checks are on).
#[actix_rt::test]
async fn a_stored_state_no_numbering_can_go_on_from_starts_a_new_epoch() {
    let (lb, mut conn, prefix) = with_stored_state("g-stored", "old", u64::MAX).await;
    let old_event = r#"{"action":"send_topic_msg","content":"from the old numbering"}"#;
    let _: String = redis::cmd("XADD")
        .arg(format!("{prefix}room:{{g-stored}}:events"))
        .arg("9007199254740990-1")
        .arg("e")
        .arg(old_event)
        .query(&mut conn)
        .expect("XADD");

    let mut ann = lb.client("ann").await;
    let ack = ann.enter("g-stored").await;
    assert_eq!(ack["last_seq"], 1, "{ack}");
    let epoch = ack["epoch"].as_str().expect("an epoch").to_string();
    assert_ne!(epoch, "old");
    // It numbers on, and a client recovering from the start of this epoch gets this
    // numbering's events only.
    let mut bob = lb.client("bob").await;
    assert_eq!(bob.enter("g-stored").await["last_seq"], 2);
    let mut cy = lb.client("cy").await;
    cy.send("enter_room_report", json!({"channel_name": "g-stored", "last_seq": 0, "epoch": epoch})).await;
    let ack = cy.recv_action("ack").await;
    assert_eq!((ack["last_seq"].as_u64(), ack["recovered"].as_bool()), (Some(3), Some(true)), "{ack}");
    let replayed = cy.events("enter_room", 2).await;
    let replayed: Vec<_> = replayed.iter().map(|e| (e["user_id"].as_str(), e["seq"].as_u64())).collect();
    assert_eq!(replayed, vec![(Some("ann"), Some(1)), (Some("bob"), Some(2))]);
}

/// A room stored before commits carried its state (issue 21): a state hash and events under
/// ids `<seq>-1`. The engine goes on numbering from it, under the same epoch, and a client
/// recovering from the start of that epoch gets the old events, then the new.
#[actix_rt::test]
async fn a_room_stored_before_commits_carried_state_goes_on_numbering() {
    let (lb, mut conn, prefix) = with_stored_state("g-older", "older", 3).await;
    for seq in [1u64, 2] {
        let event = json!({"action":"send_topic_msg","content":format!("old-{seq}"),"seq":seq});
        let entry = json!([{"seq": seq, "j": event.to_string()}]);
        let _: String = redis::cmd("XADD")
            .arg(format!("{prefix}room:{{g-older}}:events"))
            .arg(format!("{seq}-1"))
            .arg("e")
            .arg(entry.to_string())
            .query(&mut conn)
            .expect("XADD");
    }

    let mut ann = lb.client("ann").await;
    let ack = ann.enter("g-older").await;
    assert_eq!((ack["last_seq"].as_u64(), ack["epoch"].as_str()), (Some(3), Some("older")), "{ack}");
    let mut cy = lb.client("cy").await;
    cy.send("enter_room_report", json!({"channel_name": "g-older", "last_seq": 0, "epoch": "older"})).await;
    let ack = cy.recv_action("ack").await;
    assert_eq!((ack["last_seq"].as_u64(), ack["recovered"].as_bool()), (Some(4), Some(true)), "{ack}");
    let old = cy.events("send_topic_msg", 2).await;
    assert_eq!(old.iter().map(|e| e["content"].as_str()).collect::<Vec<_>>(), [Some("old-1"), Some("old-2")]);
    let entered = cy.events("enter_room", 1).await;
    assert_eq!((entered[0]["user_id"].as_str(), entered[0]["seq"].as_u64()), (Some("ann"), Some(3)));
}
