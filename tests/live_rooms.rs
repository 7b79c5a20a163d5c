//! The live-room list (docs/protocol.md 3). Every test body is written once and runs on every
//! store: `memory::<name>` on the embedded store, `redis::<name>` on a real redis-server,
//! `redis_cluster::<name>` on a real 3-master Redis Cluster (docs/protocol.md 7: the live list
//! works on a cluster). The Redis-only tests at the end cover what only Redis has: outages,
//! keys, restarts.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::live::*;
use common::*;
use danmu_broker::config::StoreKind;
use serde_json::{json, Value};

macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $( #[actix_rt::test] async fn $name() { super::$name(super::StoreKind::Memory).await } )*
        }
        mod redis {
            $( #[actix_rt::test] async fn $name() { super::$name(super::StoreKind::Redis).await } )*
        }
        mod redis_cluster {
            $( #[actix_rt::test] async fn $name() { super::$name(super::StoreKind::RedisCluster).await } )*
        }
    };
}

on_every_store!(
    creating_a_room_answers_status_new_and_a_push_url_whose_signature_recomputes,
    a_new_room_is_not_listed_until_it_goes_live,
    pagination_over_25_live_rooms_gives_10_10_5_newest_first_without_overlap,
    only_the_owner_may_move_its_room,
    illegal_status_changes_are_refused_with_a_clear_error,
    closing_takes_a_room_off_the_list_and_tells_its_members,
    ban_without_the_admin_key_is_refused,
    ban_sends_room_status_banned_to_members_and_a_later_report_gets_1007,
    a_failed_forbid_call_is_retried_and_the_ban_stands,
    notice_reaches_the_members_of_the_room,
    stream_callback_with_a_bad_sign_or_an_expired_t_is_refused,
    stream_callback_takes_a_new_room_live_and_a_live_room_closed,
    zombie_poller_closes_a_room_after_three_offline_answers_and_not_after_two,
    likes_end_exact_under_1000_concurrent_increments,
    viewers_follow_joins_and_leaves,
    a_linked_game_sess_routes_its_danmu_to_the_room_members,
    a_game_sess_linked_to_an_open_room_cannot_be_taken_by_another,
    a_closed_room_still_answers_1007_after_its_room_actor_stopped,
    calls_without_a_valid_token_are_refused,
);

async fn creating_a_room_answers_status_new_and_a_push_url_whose_signature_recomputes(kind: StoreKind) {
    let lb = LiveBroker::start(kind).await;
    let body = json!({"title": "Evening show", "location": "Shenzhen", "cover_url": "http://img/c.png"});
    let room = lb.ok("POST", "/iapi/rooms", As::User("anchor-1"), Some(body)).await;
    let room_id = room_id_of(&room);
    let stream_id = stream_of(room_id);
    assert_eq!(room["status"], "new");
    assert_eq!(room["owner_id"], "anchor-1");
    assert_eq!((room["title"].clone(), room["location"].clone()), (json!("Evening show"), json!("Shenzhen")));
    assert_eq!(room["channel_name"], room_id.to_string());
    assert_eq!(room["stream_id"], stream_id);

    let push_url = room["push_url"].as_str().expect("push_url");
    let (base, query) = push_url.split_once('?').expect("push_url has a query");
    assert_eq!(base, format!("rtmp://{PUSH_DOMAIN}/live/{stream_id}"));
    let params: std::collections::HashMap<&str, &str> =
        query.split('&').map(|kv| kv.split_once('=').expect("key=value")).collect();
    assert_eq!(params["bizid"], BIZID);
    let tx_time = params["txTime"];
    assert_eq!(params["txSecret"], md5(&format!("{PUSH_KEY}{stream_id}{tx_time}")));
    assert_eq!(tx_time, tx_time.to_uppercase(), "txTime is upper-case hex");
    let expires = i64::from_str_radix(tx_time, 16).expect("txTime is hex");
    let expected = now_ms() / 1000 + lb.config.live.push_url_ttl_s as i64;
    assert!((expires - expected).abs() <= 5, "txTime {expires} vs now + ttl {expected}");

    let fetched = lb.room(room_id).await;
    assert_eq!(fetched["status"], "new");
    assert_eq!(fetched["channel_name"], room_id.to_string());
    assert!(fetched.get("push_url").is_none(), "only the owner's create answer carries push_url");
    let (status, missing) = lb.call("GET", "/iapi/rooms/999999", As::User("viewer"), None).await;
    assert_eq!((status, missing["error_code"].clone()), (404, json!(2001)), "{missing}");
}

async fn a_new_room_is_not_listed_until_it_goes_live(kind: StoreKind) {
    let lb = LiveBroker::start(kind).await;
    let room_id = room_id_of(&lb.create_room("anchor-1").await);
    assert!(lb.listed(1, 20).await.is_empty());
    let live = lb.go_live("anchor-1", room_id).await;
    assert_eq!(live["status"], "live");
    assert_eq!(live["channel_name"], room_id.to_string());
    assert_eq!(lb.listed(1, 20).await, vec![room_id]);
}

async fn pagination_over_25_live_rooms_gives_10_10_5_newest_first_without_overlap(kind: StoreKind) {
    let lb = LiveBroker::start(kind).await;
    let mut went_live = Vec::new();
    for i in 0..25 {
        went_live.push(lb.live_room(&format!("anchor-{}", i % 5)).await);
    }
    // A room that is not live is never on a page.
    lb.create_room("anchor-x").await;
    let pages = [lb.listed(1, 10).await, lb.listed(2, 10).await, lb.listed(3, 10).await];
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 5]);
    assert!(lb.listed(4, 10).await.is_empty());
    let all: Vec<u64> = pages.concat();
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 25, "no room on two pages");
    let newest_first: Vec<u64> = went_live.iter().rev().copied().collect();
    assert_eq!(all, newest_first);

    let page = lb.ok("GET", "/iapi/rooms?page=1&page_size=10", As::User("viewer"), None).await;
    assert_eq!(
        (page["total"].clone(), page["page"].clone(), page["page_size"].clone()),
        (json!(25), json!(1), json!(10))
    );
    let first = &page["rooms"][0];
    let stream_id = stream_of(room_id_of(first));
    assert_eq!(first["play_urls"]["rtmp"], format!("rtmp://{PLAY_DOMAIN}/live/{stream_id}"));
    assert_eq!(first["play_urls"]["flv"], format!("http://{PLAY_DOMAIN}/live/{stream_id}.flv"));
    assert_eq!(first["play_urls"]["hls"], format!("http://{PLAY_DOMAIN}/live/{stream_id}.m3u8"));
    assert_eq!((first["viewers"].clone(), first["likes"].clone()), (json!(0), json!(0)));

    let (status, bad) = lb.call("GET", "/iapi/rooms?page=0", As::User("viewer"), None).await;
    assert_eq!((status, bad["error_code"].clone()), (400, json!(1001)), "{bad}");
    let (status, bad) = lb.call("GET", "/iapi/rooms?page_size=101", As::User("viewer"), None).await;
    assert_eq!((status, bad["error_code"].clone()), (400, json!(1001)), "{bad}");
}

async fn only_the_owner_may_move_its_room(kind: StoreKind) {
    let lb = LiveBroker::start(kind).await;
    let room_id = room_id_of(&lb.create_room("owner").await);
    for action in ["live", "close", "game"] {
        let body = (action == "game").then(|| json!({"game_id": "1", "game_sess": "gs-not-yours"}));
        let (status, answer) =
            lb.call("POST", &format!("/iapi/rooms/{room_id}/{action}"), As::User("intruder"), body).await;
        assert_eq!((status, answer["error_code"].clone()), (403, json!(2002)), "{action}: {answer}");
        assert!(answer["error_reason"].as_str().unwrap().contains("owner"), "{answer}");
    }
    assert_eq!(lb.room(room_id).await["status"], "new");
    assert_eq!(lb.go_live("owner", room_id).await["status"], "live");
}

async fn illegal_status_changes_are_refused_with_a_clear_error(kind: StoreKind) {
    let lb = LiveBroker::start(kind).await;
    let room_id = lb.live_room("owner").await;
    let post = |action: &'static str, who| {
        let lb = &lb;
        async move { lb.call("POST", &format!("/iapi/rooms/{room_id}/{action}"), who, None).await }
    };
    let (status, again) = post("live", As::User("owner")).await;
    assert_eq!((status, again["error_code"].clone()), (409, json!(2003)), "{again}");
    assert_eq!(again["error_reason"], format!("room {room_id} is live: it cannot go live"));

    lb.ok("POST", &format!("/iapi/rooms/{room_id}/close"), As::User("owner"), None).await;
    let (status, reopen) = post("live", As::User("owner")).await;
    assert_eq!((status, reopen["error_code"].clone()), (409, json!(2003)));
    assert_eq!(reopen["error_reason"], format!("room {room_id} is closed: it cannot go live again; create a new room"));
    let (_, close_again) = post("close", As::User("owner")).await;
    assert_eq!(close_again["error_reason"], format!("room {room_id} is closed: it cannot be closed"));
    let (_, like) = post("like", As::User("fan")).await;
    assert_eq!(like["error_code"], 2003, "{like}");
    let (status, ban) = lb.call("POST", &format!("/iapi/admin/rooms/{room_id}/ban"), As::Admin, None).await;
    assert_eq!((status, ban["error_code"].clone()), (409, json!(2003)), "{ban}");
    assert_eq!(lb.room(room_id).await["status"], "closed");

    // A room that never went live may be closed by its owner, and a closed one links no game.
    let unused = room_id_of(&lb.create_room("owner").await);
    lb.ok("POST", &format!("/iapi/rooms/{unused}/close"), As::User("owner"), None).await;
    let body = Some(json!({"game_id": "1", "game_sess": "gs-late"}));
    let (status, game) = lb.call("POST", &format!("/iapi/rooms/{unused}/game"), As::User("owner"), body).await;
    assert_eq!((status, game["error_code"].clone()), (409, json!(2003)), "{game}");

    let (status, bad) = lb.call("POST", "/iapi/rooms/abc/live", As::User("owner"), None).await;
    assert_eq!((status, bad["error_code"].clone()), (400, json!(1001)), "{bad}");
}

async fn closing_takes_a_room_off_the_list_and_tells_its_members(kind: StoreKind) {
    let lb = LiveBroker::start(kind).await;
    let room_id = lb.live_room("owner").await;
    let mut viewer = lb.client("viewer-1").await;
    viewer.enter(&room_id.to_string()).await;
    let closed = lb.ok("POST", &format!("/iapi/rooms/{room_id}/close"), As::User("owner"), None).await;
    assert_eq!(closed["status"], "closed");
    assert!(closed["ended_at"].as_i64().unwrap() > 0);
    assert!(lb.listed(1, 20).await.is_empty());
    let event = viewer.recv_action("room_status").await;
    assert_eq!((event["status"].clone(), event["channel_name"].clone()), (json!("closed"), json!(room_id.to_string())));
}

async fn ban_without_the_admin_key_is_refused(kind: StoreKind) {
    let lb = LiveBroker::start(kind).await;
    let room_id = lb.live_room("owner").await;
    let path = format!("/iapi/admin/rooms/{room_id}/ban");
    for who in [As::Nobody, As::AdminKey("guess"), As::User("owner")] {
        let (status, answer) = lb.call("POST", &path, who, None).await;
        assert_eq!((status, answer["error_code"].clone()), (403, json!(2006)), "{answer}");
    }
    let notice = format!("/iapi/admin/rooms/{room_id}/notice");
    let (status, _) = lb.call("POST", &notice, As::AdminKey("guess"), Some(json!({"content": "x"}))).await;
    assert_eq!(status, 403);
    assert_eq!(lb.listed(1, 20).await, vec![room_id]);
    let banned = lb.ok("POST", &path, As::Admin, None).await;
    assert_eq!(banned["status"], "banned");
    assert!(lb.listed(1, 20).await.is_empty());
}

async fn ban_sends_room_status_banned_to_members_and_a_later_report_gets_1007(kind: StoreKind) {
    let cloud = FakeCloud::start().await;
    let lb = LiveBroker::start_with(kind, |c| c.live.forbid_api = cloud.forbid_url()).await;
    let room_id = lb.live_room("owner").await;
    let channel = room_id.to_string();
    let mut viewer = lb.client("viewer-1").await;
    viewer.enter(&channel).await;
    lb.ok("POST", &format!("/iapi/admin/rooms/{room_id}/ban"), As::Admin, None).await;
    let event = viewer.recv_action("room_status").await;
    assert_eq!((event["status"].clone(), event["channel_name"].clone()), (json!("banned"), json!(channel.clone())));
    viewer.send("send_topic_msg_report", json!({"channel_name": channel, "content": "still here?"})).await;
    let refused = viewer.recv_action("error").await;
    assert_eq!((refused["for"].clone(), refused["error_code"].clone()), (json!("send_topic_msg_report"), json!(1007)));
    let stream_id = stream_of(room_id);
    eventually("the push is forbidden", || async { !cloud.forbid_calls().is_empty() }).await;
    assert_eq!(cloud.forbid_calls(), vec![(stream_id, "0".to_string())]);
}

async fn a_failed_forbid_call_is_retried_and_the_ban_stands(kind: StoreKind) {
    let cloud = FakeCloud::start().await;
    cloud.fail_forbid(1);
    let lb = LiveBroker::start_with(kind, |c| c.live.forbid_api = cloud.forbid_url()).await;
    let room_id = lb.live_room("owner").await;
    lb.ok("POST", &format!("/iapi/admin/rooms/{room_id}/ban"), As::Admin, None).await;
    assert_eq!(lb.room(room_id).await["status"], "banned");
    eventually("a second forbid call", || async { cloud.forbid_calls().len() >= 2 }).await;
    assert_eq!(lb.room(room_id).await["status"], "banned");
}

async fn notice_reaches_the_members_of_the_room(kind: StoreKind) {
    let lb = LiveBroker::start(kind).await;
    let room_id = lb.live_room("owner").await;
    let channel = room_id.to_string();
    let mut viewer = lb.client("viewer-1").await;
    viewer.enter(&channel).await;
    let body = json!({"content": "Be kind in chat", "expire_time": 60, "client_url": "http://rules"});
    let answer = lb.ok("POST", &format!("/iapi/admin/rooms/{room_id}/notice"), As::Admin, Some(body)).await;
    assert_eq!(answer["channel_name"], channel);
    let notice = viewer.recv_action("room_notice").await;
    assert_eq!(notice["channel_name"], channel);
    assert_eq!(notice["content"], "Be kind in chat");
    assert_eq!(notice["expire_time"], 60);
    assert_eq!(notice["client_url"], "http://rules");
    let (status, empty) =
        lb.call("POST", &format!("/iapi/admin/rooms/{room_id}/notice"), As::Admin, Some(json!({}))).await;
    assert_eq!((status, empty["error_code"].clone()), (400, json!(1001)), "{empty}");
}

async fn stream_callback_with_a_bad_sign_or_an_expired_t_is_refused(kind: StoreKind) {
    let lb = LiveBroker::start(kind).await;
    let room_id = lb.live_room("owner").await;
    let stream_id = stream_of(room_id);

    let mut forged = callback_body(&stream_id, 0, 60);
    forged["sign"] = json!(md5("not-the-key1234"));
    let (status, answer) = lb.callback(forged).await;
    assert_eq!((status, answer["code"].clone()), (403, json!(1002)), "{answer}");

    let (status, answer) = lb.callback(callback_body(&stream_id, 0, -10)).await;
    assert_eq!((status, answer["code"].clone()), (403, json!(1010)), "{answer}");

    let (status, answer) = lb.call("POST", "/callback/stream", As::Nobody, Some(json!({"event_type": 0}))).await;
    assert_eq!((status, answer["code"].clone()), (400, json!(1001)), "{answer}");
    assert_eq!(lb.room(room_id).await["status"], "live");

    let (status, answer) = lb.callback(callback_body(&stream_id, 0, 60)).await;
    assert_eq!((status, answer), (200, json!({"code": 0})));
    assert_eq!(lb.room(room_id).await["status"], "closed");
}

async fn stream_callback_takes_a_new_room_live_and_a_live_room_closed(kind: StoreKind) {
    let lb = LiveBroker::start(kind).await;
    let room_id = room_id_of(&lb.create_room("owner").await);
    let stream_id = stream_of(room_id);
    assert_eq!(lb.callback(callback_body(&stream_id, 1, 60)).await, (200, json!({"code": 0})));
    assert_eq!(lb.room(room_id).await["status"], "live");
    assert_eq!(lb.listed(1, 20).await, vec![room_id]);
    // A retried event changes nothing and is still acknowledged.
    assert_eq!(lb.callback(callback_body(&stream_id, 1, 60)).await, (200, json!({"code": 0})));
    assert_eq!(lb.callback(callback_body(&stream_id, 0, 60)).await, (200, json!({"code": 0})));
    assert_eq!(lb.room(room_id).await["status"], "closed");
    assert!(lb.listed(1, 20).await.is_empty());
    // Streams that are not ours are acknowledged and ignored.
    assert_eq!(lb.callback(callback_body("other_42", 1, 60)).await, (200, json!({"code": 0})));
}

async fn zombie_poller_closes_a_room_after_three_offline_answers_and_not_after_two(kind: StoreKind) {
    let cloud = FakeCloud::start().await;
    let lb = LiveBroker::start_with(kind, |c| {
        c.live.status_api = cloud.status_url();
        c.live.status_poll_s = 0.05;
    })
    .await;
    let zombie = room_id_of(&lb.create_room("a").await);
    let flaky = room_id_of(&lb.create_room("b").await);
    let api_down = room_id_of(&lb.create_room("c").await);
    let through_errors = room_id_of(&lb.create_room("d").await);
    // Two offline answers, then pushing, then three offline: closed at the sixth answer.
    cloud.script(&stream_of(zombie), vec![OFFLINE, OFFLINE, PUSHING, OFFLINE, OFFLINE, OFFLINE]);
    // Never more than two offline answers in a row: stays live.
    cloud.script(&stream_of(flaky), vec![OFFLINE, OFFLINE, PUSHING]);
    // The API cannot answer: that is not "offline".
    cloud.script(&stream_of(api_down), vec![StatusAnswer::RetError, StatusAnswer::HttpError]);
    // Errors between offline answers neither count nor break the streak.
    cloud.script(
        &stream_of(through_errors),
        vec![OFFLINE, StatusAnswer::HttpError, OFFLINE, StatusAnswer::RetError, OFFLINE],
    );
    for (owner, room_id) in [("a", zombie), ("b", flaky), ("c", api_down), ("d", through_errors)] {
        lb.go_live(owner, room_id).await;
    }

    lb.room_field_becomes(zombie, "status", json!("closed")).await;
    lb.room_field_becomes(through_errors, "status", json!("closed")).await;
    eventually("nine polls of the flaky stream", || async { cloud.queries(&stream_of(flaky)) >= 9 }).await;
    eventually("six polls of the unanswered stream", || async { cloud.queries(&stream_of(api_down)) >= 6 }).await;
    assert_eq!(lb.room(flaky).await["status"], "live");
    assert_eq!(lb.room(api_down).await["status"], "live");
    // Closed at its sixth answer, not earlier (a closed room is no longer polled; one poll may
    // have been under way when it closed).
    let zombie_polls = cloud.queries(&stream_of(zombie));
    assert!((6..=7).contains(&zombie_polls), "the zombie was polled {zombie_polls} times");
    assert_eq!(lb.listed(1, 20).await.iter().collect::<HashSet<_>>(), [flaky, api_down].iter().collect());
}

async fn likes_end_exact_under_1000_concurrent_increments(kind: StoreKind) {
    let lb = LiveBroker::start(kind).await;
    let room_id = lb.live_room("owner").await;
    let token = lb.token("fan");
    let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    let url = lb.http_url(&format!("/iapi/rooms/{room_id}/like"));
    let likes = (0..1000).map(|_| {
        let request = client.post(url.as_str()).bearer_auth(&token);
        async move {
            let mut resp = request.send().await.expect("like");
            let body: Value = resp.json().await.expect("JSON");
            (resp.status().as_u16(), body["error_code"].clone())
        }
    });
    let answers = futures_util::future::join_all(likes).await;
    assert!(answers.iter().all(|a| *a == (200, json!(0))), "every like succeeds");
    assert_eq!(lb.room(room_id).await["likes"], 1000);
}

async fn viewers_follow_joins_and_leaves(kind: StoreKind) {
    let lb = LiveBroker::start(kind).await;
    let room_id = lb.live_room("owner").await;
    let channel = room_id.to_string();
    let mut viewers = Vec::new();
    for user in ["v1", "v2", "v3"] {
        let mut client = lb.client(user).await;
        client.enter(&channel).await;
        viewers.push(client);
    }
    lb.room_field_becomes(room_id, "viewers", json!(3)).await;
    let mut leaving = viewers.pop().unwrap();
    leaving.send("exit_room_report", json!({"user_id": "v3", "channel_name": channel})).await;
    lb.room_field_becomes(room_id, "viewers", json!(2)).await;
    let dropped = viewers.pop().unwrap();
    drop(dropped);
    lb.room_field_becomes(room_id, "viewers", json!(1)).await;
    // A member moving to another channel leaves this one.
    viewers[0].enter("somewhere-else").await;
    lb.room_field_becomes(room_id, "viewers", json!(0)).await;
    assert_eq!(lb.listed(1, 20).await, vec![room_id]);
}

async fn a_linked_game_sess_routes_its_danmu_to_the_room_members(kind: StoreKind) {
    let lb = LiveBroker::start(kind).await;
    let room_id = lb.live_room("owner").await;
    let channel = room_id.to_string();
    let game_sess = format!("gs-{}", actors::protocol::sign::random_token());
    let body = json!({"game_id": "10000", "game_sess": game_sess});
    let linked = lb.ok("POST", &format!("/iapi/rooms/{room_id}/game"), As::User("owner"), Some(body)).await;
    assert_eq!((linked["game_sess"].clone(), linked["game_id"].clone()), (json!(game_sess), json!("10000")));
    assert_eq!(lb.room(room_id).await["game_sess"], game_sess);

    let mut viewer = lb.client("viewer-1").await;
    viewer.enter(&channel).await;
    let mut bigo = lb.bigo_logged_in().await;
    let push = push_data("1", &game_sess, 2, vec![msg_item("1", now_ms(), "hello from the game")]);
    assert_eq!(bigo.push(&push).await["rescode"], 200);
    let msg = viewer.recv_action("send_topic_msg").await;
    assert_eq!((msg["channel_name"].clone(), msg["content"].clone()), (json!(channel), json!("hello from the game")));
}

async fn a_game_sess_linked_to_an_open_room_cannot_be_taken_by_another(kind: StoreKind) {
    let lb = LiveBroker::start(kind).await;
    let first = lb.live_room("first").await;
    let second = lb.live_room("second").await;
    let body = || Some(json!({"game_id": "1", "game_sess": "gs-shared"}));
    lb.ok("POST", &format!("/iapi/rooms/{first}/game"), As::User("first"), body()).await;
    let (status, taken) = lb.call("POST", &format!("/iapi/rooms/{second}/game"), As::User("second"), body()).await;
    assert_eq!((status, taken["error_code"].clone()), (409, json!(2004)), "{taken}");
    lb.ok("POST", &format!("/iapi/rooms/{first}/close"), As::User("first"), None).await;
    lb.ok("POST", &format!("/iapi/rooms/{second}/game"), As::User("second"), body()).await;
}

async fn a_closed_room_still_answers_1007_after_its_room_actor_stopped(kind: StoreKind) {
    let lb = LiveBroker::start_with(kind, |c| c.room.idle_stop_ms = 200).await;
    let room_id = lb.live_room("owner").await;
    let channel = room_id.to_string();
    let mut viewer = lb.client("viewer-1").await;
    viewer.enter(&channel).await;
    lb.ok("POST", &format!("/iapi/rooms/{room_id}/close"), As::User("owner"), None).await;
    viewer.recv_action("room_status").await;
    viewer.send("exit_room_report", json!({"user_id": "viewer-1", "channel_name": channel})).await;
    assert_eq!(viewer.recv_action("ack").await["for"], "exit_room_report");
    eventually("the empty room stops", || async {
        lb.get_text("/metrics").await.1.lines().any(|l| l == "danmu_rooms 0")
    })
    .await;
    // The restarted room knows it is closed: entering it is a report into a closed room.
    viewer.send("enter_room_report", json!({"channel_name": channel})).await;
    let refused = viewer.recv_action("error").await;
    assert_eq!((refused["for"].clone(), refused["error_code"].clone()), (json!("enter_room_report"), json!(1007)));
}

async fn calls_without_a_valid_token_are_refused(kind: StoreKind) {
    let lb = LiveBroker::start(kind).await;
    let (status, answer) = lb.call("POST", "/iapi/rooms", As::Nobody, Some(json!({"title": "t"}))).await;
    assert_eq!((status, answer["error_code"].clone()), (401, json!(1003)), "{answer}");
    let (status, _) = lb.call("GET", "/iapi/rooms?token=not-a-jwt", As::Nobody, None).await;
    assert_eq!(status, 401);
    let token = lb.token("viewer");
    let (status, answer) = lb.call("GET", &format!("/iapi/rooms?token={token}"), As::Nobody, None).await;
    assert_eq!((status, answer["error_code"].clone()), (200, json!(0)), "token= works as well as the header");
    let (status, answer) = lb.call("POST", "/iapi/rooms", As::User("anchor"), Some(json!({"title": ""}))).await;
    assert_eq!((status, answer["error_code"].clone()), (400, json!(1001)), "{answer}");
}

// ---------------------------------------------------------------------------------------------
// Redis only

/// Rooms shared through Redis (`store.shared_rooms`, docs/protocol.md 7).
fn shared(c: &mut danmu_broker::config::Config) {
    c.store.shared_rooms = true;
}

#[actix_rt::test]
async fn a_redis_outage_gives_clear_errors_and_recovers_by_itself() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let lb = LiveBroker::start_on_redis(StoreKind::Redis, None, url, unique_prefix(), shared).await;
    lb.create_room("anchor").await;

    redis.stop();
    let (status, answer) = lb.call("POST", "/iapi/rooms", As::User("anchor"), Some(json!({"title": "t"}))).await;
    assert_eq!((status, answer["error_code"].clone()), (503, json!(2005)), "{answer}");
    let reason = answer["error_reason"].as_str().unwrap();
    assert!(reason.starts_with("store unavailable: redis"), "{reason}");
    let (status, _) = lb.call("GET", "/iapi/rooms", As::User("viewer"), None).await;
    assert_eq!(status, 503);
    // Clients stay connected; a room lives in Redis (several nodes share it), so entering one
    // answers 1011 until Redis is back (docs/protocol.md 7), and then works on the same connection.
    let mut viewer = lb.client("viewer").await;
    viewer.send("enter_room_report", json!({"channel_name": "lobby"})).await;
    let refused = viewer.recv_action("error").await;
    assert_eq!((refused["for"].as_str(), refused["error_code"].as_u64()), (Some("enter_room_report"), Some(1011)));

    redis.restart();
    eventually("rooms can be created again", || async {
        lb.call("POST", "/iapi/rooms", As::User("anchor"), Some(json!({"title": "t"}))).await.0 == 200
    })
    .await;
    viewer.enter("lobby").await;
}

/// The documented keys of one live room with a like, a game link and a viewer, and their
/// types, as `keys` finds them under the store's prefix.
async fn the_documented_keys_are_there(lb: &LiveBroker, keys: impl Fn(&str) -> HashMap<String, String>) -> u64 {
    let room_id = lb.live_room("owner").await;
    lb.ok("POST", &format!("/iapi/rooms/{room_id}/like"), As::User("fan"), None).await;
    let body = Some(json!({"game_id": "1", "game_sess": "gs-keys"}));
    lb.ok("POST", &format!("/iapi/rooms/{room_id}/game"), As::User("owner"), body).await;
    let mut viewer = lb.client("viewer").await;
    viewer.enter(&room_id.to_string()).await;
    lb.room_field_becomes(room_id, "viewers", json!(1)).await;

    let mut found = keys(&lb.config.store.key_prefix);
    // The node's presence (several nodes): its record and the node list, under one tag.
    let records: Vec<String> = found.keys().filter(|k| k.starts_with("{nodes}:node:")).cloned().collect();
    assert_eq!(records.len(), 1, "{found:?}");
    assert_eq!(found.remove(&records[0]).as_deref(), Some("hash"));
    assert_eq!(found.remove("{nodes}:live").as_deref(), Some("zset"));
    // The shared room's state and members are written by its first checkpoint, 5 s after its
    // last commit (until then they are in the commits' entries): there, or not yet.
    for (key, kind) in [("state", "hash"), ("members", "hash")] {
        let key = format!("room:{{{room_id}}}:{key}");
        assert!(found.remove(&key).is_none_or(|t| t == kind), "{key}");
    }
    let expected: HashMap<String, String> = [
        ("{rooms}:room_id_seq", "string"),
        ("{rooms}:live_seq", "string"),
        ("{rooms}:live", "zset"),
        ("{rooms}:game_links", "hash"),
        (&*format!("{{rooms}}:room:{room_id}"), "hash"),
        (&*format!("{{rooms}}:room:{room_id}:likes"), "string"),
        (&*format!("{{rooms}}:room:{room_id}:viewers"), "string"),
        // The room's channel, shared by the nodes (docs/protocol.md 7), under its own tag; no push
        // came, so it has no `:seen` set yet.
        (&*format!("room:{{{room_id}}}:lease"), "string"),
        (&*format!("room:{{{room_id}}}:term"), "string"),
        (&*format!("room:{{{room_id}}}:in"), "stream"),
        (&*format!("room:{{{room_id}}}:events"), "stream"),
        (&*format!("room:{{{room_id}}}:own"), "stream"),
        ("user:{viewer}", "hash"),
    ]
    .into_iter()
    .map(|(k, t)| (k.to_string(), t.to_string()))
    .collect();
    assert_eq!(found, expected);
    room_id
}

#[actix_rt::test]
async fn redis_keys_are_the_documented_ones_and_counters_are_integers() {
    let lb = LiveBroker::start_with(StoreKind::Redis, shared).await;
    let (url, prefix) = (lb.config.store.redis_url.clone(), lb.config.store.key_prefix.clone());
    let room_id = the_documented_keys_are_there(&lb, |p| redis_keys(&url, p)).await;
    assert_eq!(redis_get(&url, &format!("{prefix}{{rooms}}:room:{room_id}:likes")), Some("1".into()));
    assert_eq!(redis_get(&url, &format!("{prefix}{{rooms}}:room:{room_id}:viewers")), Some("1".into()));
}

#[actix_rt::test]
async fn on_a_cluster_the_live_list_sits_on_one_slot_and_the_counters_are_integers() {
    let cluster = RedisCluster::shared();
    let lb = LiveBroker::start_with(StoreKind::RedisCluster, shared).await;
    let room_id = the_documented_keys_are_there(&lb, |p| cluster.keys(p)).await;
    let prefix = &lb.config.store.key_prefix;
    let likes = format!("{prefix}{{rooms}}:room:{room_id}:likes");
    let port = cluster.port_of(&likes);
    assert_eq!(port, cluster.port_of(&format!("{prefix}{{rooms}}:live")), "one slot for the list");
    assert_eq!(redis_get(&format!("redis://127.0.0.1:{port}"), &likes), Some("1".into()));
}

#[actix_rt::test]
async fn a_restarted_broker_reloads_links_and_closed_rooms_from_redis() {
    let first = LiveBroker::start(StoreKind::Redis).await;
    let linked = first.live_room("owner").await;
    let game_sess = format!("gs-{}", actors::protocol::sign::random_token());
    let body = Some(json!({"game_id": "1", "game_sess": game_sess}));
    first.ok("POST", &format!("/iapi/rooms/{linked}/game"), As::User("owner"), body).await;
    let closed = first.live_room("owner").await;
    first.ok("POST", &format!("/iapi/rooms/{closed}/close"), As::User("owner"), None).await;
    first.shutdown.shutdown().await;

    let (url, prefix) = (first.config.store.redis_url.clone(), first.config.store.key_prefix.clone());
    let second = LiveBroker::start_on_redis(StoreKind::Redis, None, url, prefix, |_| {}).await;
    assert_eq!(second.listed(1, 20).await, vec![linked]);

    // The closed room's channel asks the store for its status as it starts: entering it
    // answers 1007 like any report into a closed room.
    let mut late = second.client("late").await;
    late.send("enter_room_report", json!({"channel_name": closed.to_string()})).await;
    let refused = late.recv_action("error").await;
    assert_eq!((refused["for"].as_str(), refused["error_code"].as_u64()), (Some("enter_room_report"), Some(1007)));

    // The link was reloaded: the game's danmu reach the room's channel.
    let mut viewer = second.client("viewer").await;
    viewer.enter(&linked.to_string()).await;
    let mut bigo = second.bigo_logged_in().await;
    let mut seqid = 0;
    let msg = loop {
        seqid += 1;
        assert!(seqid <= 20, "the game's danmu never reached the linked room");
        let item = msg_item(&seqid.to_string(), now_ms(), "after restart");
        assert_eq!(bigo.push(&push_data(&seqid.to_string(), &game_sess, 2, vec![item])).await["rescode"], 200);
        if let Ok(msg) = tokio::time::timeout(Duration::from_millis(500), viewer.recv_action("send_topic_msg")).await {
            break msg;
        }
    };
    assert_eq!(msg["channel_name"], linked.to_string());
}

/// Three brokers on one Redis (`kind`) with one prefix: a room made and taken live on one is
/// listed on all, likes from two add up, viewers joined on two count once each, a `/game`
/// link made on one routes the game's danmu pushed to another into the room, and a close on
/// the third (which has no members) reaches the members on the other two and empties the list.
async fn nodes_share_the_live_list_its_counters_links_and_statuses(kind: StoreKind) {
    let a = LiveBroker::start_with(kind, shared).await;
    let url = match kind {
        StoreKind::RedisCluster => a.config.store.cluster_nodes.join(","),
        _ => a.config.store.redis_url.clone(),
    };
    let prefix = a.config.store.key_prefix.clone();
    let b = LiveBroker::start_on_redis(kind, None, url.clone(), prefix.clone(), shared).await;
    let c = LiveBroker::start_on_redis(kind, None, url, prefix, shared).await;
    let room_id = a.live_room("owner").await;
    let channel = room_id.to_string();
    assert_eq!(b.listed(1, 20).await, vec![room_id]);
    for lb in [&a, &b, &a] {
        lb.ok("POST", &format!("/iapi/rooms/{room_id}/like"), As::User("fan"), None).await;
    }
    let (mut on_a, mut on_b) = (a.client("va").await, b.client("vb").await);
    on_a.enter(&channel).await;
    on_b.enter(&channel).await;
    for lb in [&a, &b] {
        lb.room_field_becomes(room_id, "viewers", json!(2)).await;
        lb.room_field_becomes(room_id, "likes", json!(3)).await;
    }

    let game_sess = format!("gs-{}", actors::protocol::sign::random_token());
    let body = Some(json!({"game_id": "1", "game_sess": game_sess}));
    a.ok("POST", &format!("/iapi/rooms/{room_id}/game"), As::User("owner"), body).await;
    let mut bigo = b.bigo_logged_in().await;
    let mut seqid = 0;
    let heard = loop {
        seqid += 1;
        assert!(seqid <= 20, "the game's danmu pushed to b never reached the linked room");
        let item = msg_item(&seqid.to_string(), now_ms(), "linked elsewhere");
        assert_eq!(bigo.push(&push_data(&seqid.to_string(), &game_sess, 2, vec![item])).await["rescode"], 200);
        if let Ok(msg) = tokio::time::timeout(Duration::from_millis(500), on_a.recv_action("send_topic_msg")).await {
            break msg;
        }
    };
    assert_eq!(heard["channel_name"], channel);

    c.ok("POST", &format!("/iapi/rooms/{room_id}/close"), As::User("owner"), None).await;
    for member in [&mut on_a, &mut on_b] {
        // (The game's own statuses come first: BIGO's status 2 is `game`.)
        while member.recv_action("room_status").await["status"] != "closed" {}
    }
    assert_eq!(a.listed(1, 20).await, Vec::<u64>::new());
    assert_eq!(b.room(room_id).await["status"], "closed");
}

#[actix_rt::test]
async fn nodes_on_one_redis_share_the_live_list_its_counters_links_and_statuses() {
    nodes_share_the_live_list_its_counters_links_and_statuses(StoreKind::Redis).await;
}

#[actix_rt::test]
async fn nodes_on_a_redis_cluster_share_the_live_list_its_counters_links_and_statuses() {
    nodes_share_the_live_list_its_counters_links_and_statuses(StoreKind::RedisCluster).await;
}
