//! `danmu-broker simulate` (docs/protocol.md 6): the real binary, run against a real broker, pushes
//! danmu that a real client receives; its summary counts what the broker answered.

mod common;

use std::process::Command;

use common::*;
use danmu_simulator::Summary;
use serde_json::Value;

/// A config file naming the test broker's BIGO account (the simulator logs in with it) and
/// its JWT secret (`--live-room` calls the rooms API).
fn config_file(name: &str) -> std::path::PathBuf {
    let path =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("simulate-{name}-{}.yaml", std::process::id()));
    let yaml = format!(
        "bigo:\n  platform_abbr: {ABBR}\n  accounts:\n    - {{ account: {ACCOUNT}, password: \"{PASSWORD}\" }}\n\
         auth:\n  jwt_secret: \"{SECRET}\"\n"
    );
    std::fs::write(&path, yaml).expect("write the simulator's config");
    path
}

/// Starts the simulator binary in the background; its output is awaited later, so that the
/// broker (on this thread) keeps serving meanwhile.
fn spawn_simulator(broker: &TestBroker, name: &str, args: &[&str]) -> tokio::task::JoinHandle<std::process::Output> {
    let config = config_file(name);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_danmu-broker"));
    cmd.arg("--config").arg(&config).arg("simulate").arg("--url").arg(broker.ws_url(&broker.config.bigo.path));
    cmd.args(args).args(["--json", "--quiet"]).env("RUST_LOG", "warn");
    tokio::task::spawn_blocking(move || {
        let out = cmd.output().expect("run danmu-broker simulate");
        let _ = std::fs::remove_file(config);
        out
    })
}

fn summary_of(out: &std::process::Output) -> Summary {
    assert!(out.status.success(), "simulate failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("summary is not JSON ({e}): {stdout}"))
}

/// Room events until `room_status: closed` (the simulator's status 3), that one excluded.
async fn events_until_closed(client: &mut AppClient) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let frame = client.recv().await;
        if frame["action"] == "room_status" && frame["status"] == "closed" {
            return events;
        }
        events.push(frame);
    }
}

fn count(events: &[Value], action: &str) -> u64 {
    events.iter().filter(|e| e["action"] == action).count() as u64
}

#[actix_rt::test]
async fn simulated_danmu_reach_a_client_and_every_push_is_acknowledged() {
    let broker = TestBroker::start().await;
    let mut client = broker.client("watcher").await;
    client.enter("sim-flow").await;

    let sim =
        spawn_simulator(&broker, "flow", &["--game-sess", "sim-flow", "--rate", "20", "--duration", "1", "--close"]);
    let events = events_until_closed(&mut client).await;
    let summary = summary_of(&sim.await.expect("simulator task"));

    assert!(summary.pushes >= 15, "about 20 pushes in a second: {summary:?}");
    assert_eq!((summary.pushes_sent, summary.dropped, summary.retries), (summary.pushes, 0, 0));
    // Every frame written was answered 200, the status 3 push included.
    assert_eq!(summary.acked, summary.frames_sent);
    assert_eq!(summary.frames_sent, summary.pushes + 1);
    assert_eq!(summary.rescodes.get("200"), Some(&summary.acked), "{summary:?}");
    assert_eq!(summary.unacked, 0);
    assert!(summary.closed);

    // The client saw each item once, mapped per docs/protocol.md 2.4, numbered in order.
    assert_eq!(count(&events, "send_topic_msg"), summary.items.msg);
    assert_eq!(count(&events, "like"), summary.items.heart);
    assert_eq!(count(&events, "send_gift"), summary.items.gift);
    assert!(summary.items.msg > 0, "{summary:?}");
    let seqs: Vec<i64> = events.iter().filter_map(|e| e["seq"].as_i64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq strictly increasing: {seqs:?}");
    let texts: Vec<&str> = events.iter().filter_map(|e| e["content"].as_str()).collect();
    assert!(texts.iter().all(|t| !t.is_empty()));
}

#[actix_rt::test]
async fn retried_shuffled_and_dropped_pushes_reach_the_client_once_each() {
    let broker = TestBroker::start().await;
    let mut client = broker.client("watcher").await;
    client.enter("sim-rough").await;

    let args = [
        "--game-sess",
        "sim-rough",
        "--rate",
        "100",
        "--count",
        "40",
        "--items",
        "4",
        "--retry-pct",
        "50",
        "--drop-pct",
        "25",
        "--shuffle-ms",
        "100",
        "--close",
    ];
    let sim = spawn_simulator(&broker, "rough", &args);
    let events = events_until_closed(&mut client).await;
    let summary = summary_of(&sim.await.expect("simulator task"));

    assert_eq!(summary.pushes, 40);
    assert_eq!(summary.pushes_sent + summary.dropped, 40);
    assert!(summary.dropped > 0 && summary.retries > 0, "{summary:?}");
    // A retry is answered 200 like the first send (docs/protocol.md 1.4: retries are idempotent).
    assert_eq!(summary.rescodes.get("200"), Some(&summary.frames_sent), "{summary:?}");
    assert_eq!(summary.frames_sent, summary.pushes_sent + summary.retries + 1);
    // ... and delivers nothing twice: one event per item of the pushes that were sent.
    let danmu = count(&events, "send_topic_msg") + count(&events, "like") + count(&events, "send_gift");
    assert_eq!(danmu, summary.items.total(), "{summary:?}");
}

#[actix_rt::test]
async fn simulator_with_a_wrong_password_fails_and_says_login_was_refused() {
    let broker = TestBroker::start_with(|c| c.bigo.accounts[0].password = "another-password".into()).await;
    let out = spawn_simulator(&broker, "refused", &["--game-sess", "x", "--count", "1"]).await.expect("task");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("platformLogin refused: code 400: sign is error."), "{stderr}");
    // ... and which check failed, naming the account.
    assert!(stderr.contains("password/sign check failed: the password of account \"bigoUser1\""), "{stderr}");
}

#[actix_rt::test]
async fn simulate_with_a_live_room_makes_one_that_is_listed_carries_the_danmu_and_closes_after() {
    let broker = TestBroker::start().await;
    let api = broker.http_url("");
    let args = [
        "--game-sess",
        "sim-live",
        "--rate",
        "10",
        "--duration",
        "4",
        "--lang",
        "en",
        "--live-room",
        "Sim room",
        "--api-url",
        &api,
    ];
    let sim = spawn_simulator(&broker, "live-room", &args);

    // The room shows in the live list, its game_sess linked, owned by the simulator.
    let token = broker.token("watcher");
    let client = awc::Client::new();
    let deadline = std::time::Instant::now() + WAIT;
    let room = loop {
        let mut resp = client.get(broker.http_url("/iapi/rooms")).bearer_auth(&token).send().await.expect("list");
        let list: Value = resp.json().await.expect("JSON");
        if let Some(room) = list["rooms"].as_array().and_then(|rooms| rooms.iter().find(|r| r["title"] == "Sim room")) {
            break room.clone();
        }
        assert!(std::time::Instant::now() < deadline, "the simulated room was never listed: {list}");
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        (room["status"].as_str(), room["game_sess"].as_str(), room["owner_id"].as_str()),
        (Some("live"), Some("sim-live"), Some("simulator")),
        "{room}"
    );

    // Its channel (the room_id) gets the danmu, in plain Latin text with --lang en.
    let channel = room["channel_name"].as_str().expect("channel_name").to_string();
    let mut viewer = broker.client("viewer").await;
    viewer.enter(&channel).await;
    let messages = viewer.events("send_topic_msg", 3).await;
    for m in &messages {
        let text =
            format!("{}{}", m["nickname"].as_str().unwrap_or_default(), m["content"].as_str().unwrap_or_default());
        assert!(!text.is_empty() && text.is_ascii(), "{m}");
        assert_eq!(m["channel_name"], channel.as_str());
    }

    // When the run ends, the room is closed.
    let out = sim.await.expect("simulator task");
    let summary = summary_of(&out);
    assert!(summary.pushes > 0, "{summary:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("live room {channel} \"Sim room\" is live"))
            && stderr.contains(&format!("live room {channel} closed")),
        "{stderr}"
    );
    let mut resp =
        client.get(broker.http_url(&format!("/iapi/rooms/{channel}"))).bearer_auth(&token).send().await.expect("room");
    let after: Value = resp.json().await.expect("JSON");
    assert_eq!(after["status"], "closed", "{after}");
}
