//! Pull compensation (docs/protocol.md 1.5) against a fake BIGO HTTP API: pulled items enter the
//! room like pushed ones, once; `context` is carried; a failing API is retried with back-off
//! while live pushes go on; status 3 ends the session with one final pull.

mod common;

use std::time::Duration;

use actors::protocol::clock::LATEST_MS;
use common::ops::{anchor_items, sample, Answer, FakeBigoApi};
use common::*;
use serde_json::{json, Value};

const API_TOKEN: &str = "pull-api-token";

async fn broker_pulling_from(api: &FakeBigoApi, interval_ms: u64) -> TestBroker {
    let base = api.base();
    TestBroker::start_with(move |c| {
        c.bigo.api_base = base;
        c.bigo.api_token = API_TOKEN.into();
        c.bigo.pull.enabled = true;
        c.bigo.pull.interval_ms = interval_ms;
        c.bigo.pull.timeout_ms = 300;
    })
    .await
}

/// The contents of the next `n` `send_topic_msg` events.
async fn contents(client: &mut AppClient, n: usize) -> Vec<String> {
    let events = client.events("send_topic_msg", n).await;
    events.iter().map(|e| e["content"].as_str().unwrap_or_default().to_string()).collect()
}

async fn metric(broker: &TestBroker, name: &str) -> f64 {
    let (_, text) = broker.get_text("/metrics").await;
    sample(&text, name, "").unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
}

#[actix_rt::test]
async fn an_item_only_in_the_pull_reaches_clients() {
    let api = FakeBigoApi::start().await;
    let broker = broker_pulling_from(&api, 100).await;
    let mut client = broker.client("viewer").await;
    client.enter("gs-pull-only").await;
    let mut bigo = broker.bigo_logged_in().await;
    let ts = now_ms();
    api.answer([Answer::Items {
        danmu_data: anchor_items("anchor-1", vec![msg_item("2", ts + 1, "only pulled")]),
        context: "ctx-1".into(),
    }]);
    let data = bigo.push(&push_data("s1", "gs-pull-only", 2, vec![msg_item("1", ts, "pushed")])).await;
    assert_eq!(data["rescode"], 200);

    assert_eq!(contents(&mut client, 2).await, vec!["pushed", "only pulled"]);
    let call = &api.wait_calls(1, WAIT).await[0];
    assert_eq!(call.authorization, format!("Bearer {API_TOKEN}"));
    let body = &call.body;
    assert_eq!(body["game_sess"], "gs-pull-only");
    assert_eq!(body["game_id"], "10000");
    assert_eq!(body["game_users"], json!(["anchor-1"]));
    assert_eq!(body["batch"], 100);
    assert_eq!(body["context"], "");
    assert!(body["seqid"].as_str().is_some_and(|s| !s.is_empty()), "{body}");
    assert!(body["timestamp"].as_i64().is_some_and(|t| t <= ts), "pulls from before the first push: {body}");
    assert_eq!(metric(&broker, "danmu_pulled_items_total").await, 1.0);
}

/// Issue 26: a puller asked BIGO for the items after its first push's `timestamp` less an
/// interval; `i64::MIN` overflowed there (in release it wrapped to a time that never comes), and
/// a push stamped in the future asked for nothing as well.
#[actix_rt::test]
async fn pull_compensation_keeps_working_after_a_push_with_an_absurd_timestamp() {
    let absurd = [json!(i64::MIN), json!("9223372036854775807"), json!(-1e19), json!(LATEST_MS)];
    for (n, timestamp) in absurd.into_iter().enumerate() {
        let api = FakeBigoApi::start().await;
        let broker = broker_pulling_from(&api, 100).await;
        let game_sess = format!("gs-absurd-{n}");
        let mut client = broker.client("viewer").await;
        client.enter(&game_sess).await;
        let mut bigo = broker.bigo_logged_in().await;
        let before = now_ms();
        api.answer([Answer::Items {
            danmu_data: anchor_items("anchor-1", vec![msg_item("2", before + 1, "only pulled")]),
            context: "c1".into(),
        }]);
        let mut data = push_data("s1", &game_sess, 2, vec![msg_item("1", before, "pushed")]);
        data["timestamp"] = timestamp.clone();
        assert_eq!(bigo.push(&data).await["rescode"], 200, "timestamp {timestamp}");

        assert_eq!(contents(&mut client, 2).await, vec!["pushed", "only pulled"], "timestamp {timestamp}");
        let since = api.wait_calls(1, WAIT).await[0].body["timestamp"].as_i64().expect("a timestamp");
        assert!((before - 100..=now_ms() - 100).contains(&since), "timestamp {timestamp}: pulled from {since}");
    }
}

#[actix_rt::test]
async fn an_item_both_pushed_and_pulled_reaches_clients_once() {
    let api = FakeBigoApi::start().await;
    let broker = broker_pulling_from(&api, 100).await;
    let mut client = broker.client("viewer").await;
    client.enter("gs-both").await;
    let mut bigo = broker.bigo_logged_in().await;
    let ts = now_ms();
    let pushed = vec![msg_item("1", ts, "one"), msg_item("2", ts + 1, "two")];
    api.answer([Answer::Items {
        danmu_data: anchor_items(
            "anchor-1",
            vec![msg_item("1", ts, "one"), msg_item("2", ts + 1, "two"), msg_item("3", ts + 2, "three")],
        ),
        context: "c1".into(),
    }]);
    assert_eq!(bigo.push(&push_data("s1", "gs-both", 2, pushed)).await["rescode"], 200);
    // The answer with the overlap has been handled once a second call comes in.
    api.wait_calls(2, WAIT).await;
    let marker = msg_item("4", now_ms(), "four");
    assert_eq!(bigo.push(&push_data("s2", "gs-both", 2, vec![marker])).await["rescode"], 200);

    let mut got = contents(&mut client, 4).await;
    got.sort();
    assert_eq!(got, vec!["four", "one", "three", "two"]);
    assert_eq!(metric(&broker, "danmu_pulled_items_total").await, 1.0);
    assert!(metric(&broker, "danmu_duplicates_total").await >= 2.0);
}

#[actix_rt::test]
async fn context_is_carried_from_each_answer_to_the_next_call() {
    let api = FakeBigoApi::start().await;
    let base = api.base();
    let broker = TestBroker::start_with(move |c| {
        c.bigo.api_base = base;
        c.bigo.pull.enabled = true;
        c.bigo.pull.interval_ms = 100;
        c.bigo.pull.batch = 2;
    })
    .await;
    let mut bigo = broker.bigo_logged_in().await;
    let ts = now_ms();
    // A full batch (2 for one anchor) means more are waiting: the next call follows quickly.
    api.answer([
        Answer::Items {
            danmu_data: anchor_items("anchor-1", vec![msg_item("1", ts, "a"), msg_item("2", ts, "b")]),
            context: "c1".into(),
        },
        Answer::Items { danmu_data: json!([]), context: "c2".into() },
        // BIGO leaves out an empty context: the last one stays.
        Answer::Json(json!({"seqid": "x", "rescode": 200})),
    ]);
    assert_eq!(bigo.push(&push_data("s1", "gs-context", 2, vec![])).await["rescode"], 200);

    let calls = api.wait_calls(4, WAIT).await;
    let contexts: Vec<&Value> = calls.iter().take(4).map(|c| &c.body["context"]).collect();
    assert_eq!(contexts, vec![&json!(""), &json!("c1"), &json!("c2"), &json!("c2")]);
    assert_eq!(calls[0].body["batch"], 2);
    for pair in calls.windows(2) {
        let gap = pair[1].at - pair[0].at;
        // 10 calls/s per anchor at most; a little slack for when the calls reached the fake.
        assert!(gap >= Duration::from_millis(80), "calls {gap:?} apart");
    }
}

#[actix_rt::test]
async fn a_failing_api_is_retried_with_growing_waits_and_live_pushes_go_on() {
    let api = FakeBigoApi::start().await;
    let broker = broker_pulling_from(&api, 100).await;
    let mut client = broker.client("viewer").await;
    client.enter("gs-failing").await;
    let mut bigo = broker.bigo_logged_in().await;
    let ts = now_ms();
    api.answer([
        Answer::Status(500),
        Answer::Json(json!({"seqid": "x", "rescode": 500, "messge": "platform busy"})),
        Answer::Garbage,
        Answer::Hang(Duration::from_secs(2)),
        Answer::Json(json!({"seqid": "x", "rescode": 401, "messge": "rate limited"})),
        Answer::Items {
            danmu_data: anchor_items("anchor-1", vec![msg_item("missed", ts + 5, "recovered")]),
            context: "c1".into(),
        },
    ]);
    assert_eq!(bigo.push(&push_data("s1", "gs-failing", 2, vec![msg_item("1", ts, "live 1")])).await["rescode"], 200);
    assert_eq!(contents(&mut client, 1).await, vec!["live 1"]);

    // While the API fails, pushes are still taken and fanned out.
    api.wait_calls(2, WAIT).await;
    let live = msg_item("2", now_ms(), "live 2");
    assert_eq!(bigo.push(&push_data("s2", "gs-failing", 2, vec![live])).await["rescode"], 200);
    assert_eq!(contents(&mut client, 1).await, vec!["live 2"]);

    // Five failures wait 200, 400, 800, 1600, 1600 ms (the interval doubled, capped at 16x).
    let calls = api.wait_calls(6, Duration::from_secs(15)).await;
    let min_waits = [200, 400, 800, 1600, 1600];
    for (i, min) in min_waits.iter().enumerate() {
        let gap = calls[i + 1].at - calls[i].at;
        assert!(gap >= Duration::from_millis(min - 20), "wait {i} after a failure was {gap:?}, expected {min} ms");
    }
    assert_eq!(contents(&mut client, 1).await, vec!["recovered"]);
    assert_eq!(metric(&broker, "danmu_pull_failures_total").await, 5.0);
    assert_eq!(metric(&broker, "danmu_pulled_items_total").await, 1.0);
}

#[actix_rt::test]
async fn status_3_brings_one_final_pull_and_then_pulling_stops() {
    let api = FakeBigoApi::start().await;
    let broker = broker_pulling_from(&api, 1000).await;
    let mut client = broker.client("viewer").await;
    client.enter("gs-closing").await;
    let mut bigo = broker.bigo_logged_in().await;
    let ts = now_ms();
    api.answer([Answer::Items {
        danmu_data: anchor_items("anchor-1", vec![msg_item("late", ts, "said just before the end")]),
        context: "c1".into(),
    }]);
    assert_eq!(bigo.push(&push_data("s1", "gs-closing", 2, vec![])).await["rescode"], 200);
    assert_eq!(bigo.push(&push_data("s2", "gs-closing", 3, vec![])).await["rescode"], 200);

    assert_eq!(contents(&mut client, 1).await, vec!["said just before the end"]);
    assert_eq!(api.wait_calls(1, WAIT).await.len(), 1);
    // Well past the interval: no further call, the session is over.
    actix_rt::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(api.calls().len(), 1, "pulled again after the final pull");
    // A retried status-3 push does not start pulling again.
    assert_eq!(bigo.push(&push_data("s2", "gs-closing", 3, vec![])).await["rescode"], 200);
    assert_eq!(bigo.push(&push_data("s3", "gs-closing", 3, vec![])).await["rescode"], 200);
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(api.calls().len(), 1);
}

#[actix_rt::test]
async fn with_pull_disabled_nothing_calls_the_api() {
    let api = FakeBigoApi::start().await;
    let base = api.base();
    let broker = TestBroker::start_with(move |c| {
        c.bigo.api_base = base;
        c.bigo.pull.interval_ms = 100;
    })
    .await;
    let mut bigo = broker.bigo_logged_in().await;
    assert_eq!(bigo.push(&push_data("s1", "gs-no-pull", 2, vec![msg_item("1", now_ms(), "x")])).await["rescode"], 200);
    actix_rt::time::sleep(Duration::from_millis(600)).await;
    assert!(api.calls().is_empty());
}
