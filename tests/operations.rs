//! Operations (docs/protocol.md 4): every metric on `/metrics` after a short run, the log lines an
//! operator follows, graceful shutdown of the real binary on SIGTERM (the probes `/livez` and
//! `/readyz`, `server.drain_delay_ms`, `kicked` with `retry_after_ms`), and the operator
//! endpoints on their own listener (`server.internal`).

mod common;

use std::time::{Duration, Instant};

use common::ops::{app_client_at, bigo_at, client_query, free_port, healthz, sample, BrokerProcess};
use common::*;
use serde_json::json;

#[actix_rt::test]
async fn metrics_after_a_short_run_name_every_metric_of_the_protocol() {
    let broker = TestBroker::start().await;
    let (_, before) = broker.get_text("/metrics").await;
    for kind in ["bigo", "client"] {
        assert_eq!(sample(&before, "danmu_connections", &format!("kind=\"{kind}\"")), Some(0.0), "{before}");
    }

    let mut client = broker.client("viewer").await;
    client.enter("gs-metrics").await;
    let mut bigo = broker.bigo_logged_in().await;
    let ts = now_ms();
    let items = vec![msg_item("1", ts, "hello"), gift_item("2", ts + 1), heart_item("3", ts + 2)];
    assert_eq!(bigo.push(&push_data("s1", "gs-metrics", 2, items)).await["rescode"], 200);
    // A retry (duplicate seqid) and a pulled-style copy (duplicate data_seq).
    assert_eq!(bigo.push(&push_data("s1", "gs-metrics", 2, vec![])).await["rescode"], 200);
    assert_eq!(bigo.push(&push_data("s2", "gs-metrics", 2, vec![msg_item("1", ts, "hello")])).await["rescode"], 200);
    client.events("like", 1).await;
    // An item older than one already sent: late, still delivered.
    assert_eq!(
        bigo.push(&push_data("s3", "gs-metrics", 2, vec![msg_item("4", ts - 10_000, "late")])).await["rescode"],
        200
    );
    client.events("send_topic_msg", 1).await;
    // Rejections on both kinds of connection.
    bigo.token = "f".repeat(32);
    assert_eq!(bigo.push(&push_data("s4", "gs-metrics", 2, vec![])).await["rescode"], 401);
    let mut bad = client.frame("ping", json!({}));
    bad["sign"] = json!("0".repeat(32));
    client.send_text(bad.to_string()).await;
    assert_eq!(client.recv_action("error").await["error_code"], 1002);

    let (status, text) = broker.get_text("/metrics").await;
    assert_eq!(status, 200);
    let value = |name: &str, labels: &str| sample(&text, name, labels);
    assert_eq!(value("danmu_connections", "kind=\"bigo\""), Some(1.0), "{text}");
    assert_eq!(value("danmu_connections", "kind=\"client\""), Some(1.0), "{text}");
    for kind in ["bigo", "client"] {
        let labels = format!("kind=\"{kind}\"");
        assert!(value("danmu_frames_in_total", &labels).is_some_and(|v| v >= 2.0), "{text}");
        assert!(value("danmu_frames_out_total", &labels).is_some_and(|v| v >= 2.0), "{text}");
    }
    assert_eq!(value("danmu_rejected_frames_total", "kind=\"bigo\",reason=\"bad_token\""), Some(1.0), "{text}");
    assert_eq!(value("danmu_rejected_frames_total", "kind=\"client\",reason=\"bad_sign\""), Some(1.0), "{text}");
    assert_eq!(value("danmu_duplicates_total", ""), Some(2.0), "{text}");
    assert_eq!(value("danmu_late_items_total", ""), Some(1.0), "{text}");
    assert_eq!(value("danmu_pulled_items_total", ""), Some(0.0), "{text}");
    assert_eq!(value("danmu_pull_failures_total", ""), Some(0.0), "{text}");
    assert_eq!(value("danmu_rooms", ""), Some(1.0), "{text}");
    assert!(value("danmu_room_queue_depth_max", "").is_some_and(|v| v >= 1.0), "{text}");
    assert_eq!(value("danmu_slow_clients_disconnected_total", ""), Some(0.0), "{text}");
    assert_eq!(value("danmu_delivery_delay_seconds_count", ""), Some(4.0), "{text}");
    assert!(value("danmu_delivery_delay_seconds_bucket", "le=\"+Inf\"").is_some(), "{text}");
    assert!(value("danmu_delivery_delay_seconds_sum", "").is_some_and(|v| v >= 10.0), "{text}");
    assert!(text.contains("# TYPE danmu_delivery_delay_seconds histogram"), "{text}");
    println!("--- /metrics after a short run ---\n{text}");
}

/// A config for the binary on `port`, with the test accounts and secret, plus `extra` YAML.
fn process_config(port: u16, extra: &str) -> String {
    process_config_with(port, "", extra)
}

/// [`process_config`] with `server_keys` (e.g. `drain_delay_ms: 600, `) in its `server` section.
fn process_config_with(port: u16, server_keys: &str, extra: &str) -> String {
    format!(
        "server: {{ {server_keys}host: 127.0.0.1, port: {port}, public_url: \"\", workers: 1 }}\n\
         bigo: {{ platform_abbr: {ABBR}, accounts: [ {{ account: {ACCOUNT}, password: {PASSWORD} }} ] }}\n\
         auth: {{ jwt_secret: {SECRET} }}\n{extra}"
    )
}

#[actix_rt::test]
async fn sigterm_flushes_rooms_kicks_clients_refuses_newcomers_and_exits_0() {
    let port = free_port();
    // A long reorder window: the pushed item is still held when SIGTERM comes.
    let mut broker = BrokerProcess::start(&process_config(port, "room: { reorder_window_ms: 5000 }"), port).await;
    let base = format!("ws://{}", broker.addr);
    let mut client = app_client_at(&base, "viewer", None).await;
    client.enter("gs-shutdown").await;
    let mut bigo = bigo_at(&base, None).await;
    assert_eq!(bigo.login(ACCOUNT, PASSWORD, now_ms()).await["code"], 200);
    let held = msg_item("1", now_ms(), "taken before the signal");
    assert_eq!(bigo.push(&push_data("s1", "gs-shutdown", 2, vec![held])).await["rescode"], 200);

    let addr = broker.addr;
    let watcher = actix_rt::spawn(async move {
        let mut seen = Vec::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(12) {
            let status = healthz(addr).await;
            seen.push(status);
            if status.is_none() {
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
        seen
    });
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    let signalled = Instant::now();
    broker.terminate();

    // BIGO is told to go elsewhere; the item it was given a 200 for still reaches the client.
    assert_eq!(closed_with(&mut bigo.ws).await, Some(1012));
    let item = client.recv_action("send_topic_msg").await;
    assert_eq!(item["content"], "taken before the signal");
    let kicked = client.recv_action("kicked").await;
    assert_eq!(kicked["reason"], "shutdown", "{kicked}");
    // server.reconnect_spread_ms defaults to 5000.
    assert!(kicked["retry_after_ms"].as_u64().is_some_and(|ms| ms <= 5_000), "{kicked}");
    assert_eq!(closed_with(&mut client.ws).await, Some(1012));

    let url = format!("{base}/iapi/websocket?{}", client_query("latecomer", "sid-9"));
    assert!(tokio_tungstenite::connect_async(url).await.is_err(), "a new connection was accepted while draining");

    let status = broker.wait_exit(Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s.success()), "exit status {status:?}, log:\n{}", broker.log_text());
    assert!(signalled.elapsed() < Duration::from_secs(10));
    let seen = watcher.await.expect("healthz watcher");
    let first_503 = seen.iter().position(|s| *s == Some(503));
    assert!(first_503.is_some(), "/healthz never answered 503 while draining: {seen:?}");
    assert!(!seen[first_503.unwrap_or(0)..].contains(&Some(200)), "/healthz went back to 200: {seen:?}");
    assert_eq!(seen.last(), Some(&None), "the server still answered at the end: {seen:?}");
}

#[actix_rt::test]
async fn the_log_has_a_line_per_connection_login_and_rejected_frame_and_none_per_message() {
    let port = free_port();
    let mut broker = BrokerProcess::start(&process_config(port, "room: { reorder_window_ms: 50 }"), port).await;
    let base = format!("ws://{}", broker.addr);
    let mut client = app_client_at(&base, "log-viewer", None).await;
    client.enter("gs-log").await;
    let mut failing = bigo_at(&base, None).await;
    assert_eq!(failing.login(ACCOUNT, "wrong", now_ms()).await["code"], 400);
    let mut bigo = bigo_at(&base, None).await;
    assert_eq!(bigo.login(ACCOUNT, PASSWORD, now_ms()).await["code"], 200);
    let items: Vec<_> = (0..20).map(|i| msg_item(&i.to_string(), now_ms(), "quiet please")).collect();
    assert_eq!(bigo.push(&push_data("s-ok", "gs-log", 2, items)).await["rescode"], 200);
    client.events("send_topic_msg", 20).await;
    let data = push_data("s-bad-sign", "gs-log", 2, vec![]).to_string();
    let frame = json!({"uri":"dataReception","retry_cnt":0,"send_time":now_ms(),"data":data,
                       "access_token":bigo.token,"sign":"0".repeat(32)});
    bigo.send_text(frame.to_string()).await;
    assert_eq!(BigoClient::data_of(&bigo.recv().await)["rescode"], 403);
    let mut bad = client.frame("send_topic_msg_report", json!({"channel_name": "gs-log", "content": "hi"}));
    bad["timestamp"] = json!(1);
    client.send_text(bad.to_string()).await;
    assert_eq!(client.recv_action("error").await["error_code"], 1010);
    failing.ws.close(None).await.expect("close");
    assert_eq!(closed_with(&mut failing.ws).await, None, "the server answers the close and hangs up");
    broker.terminate();
    let _ = closed_with(&mut client.ws).await;
    assert!(broker.wait_exit(Duration::from_secs(10)).await.is_some_and(|s| s.success()));

    let log = broker.log_text();
    let has = |needles: &[&str]| log.lines().any(|line| needles.iter().all(|n| line.contains(n)));
    assert!(has(&["client", "user_id log-viewer", "connected"]), "{log}");
    assert!(has(&["client", "user_id log-viewer", "disconnected (shutdown)"]), "{log}");
    assert!(has(&["bigo", "login failed (sign is error.) for account \"bigoUser1\"", "wrong password"]), "{log}");
    assert!(has(&["bigo", "account bigoUser1 logged in"]), "{log}");
    assert!(has(&["bigo", "disconnected (shutdown)"]), "{log}");
    assert!(has(&["bigo", "disconnected (closed by BIGO)"]), "{log}");
    assert!(has(&["game_sess \"gs-log\"", "seqid \"s-bad-sign\"", "403"]), "{log}");
    assert!(has(&["user_id log-viewer", "send_topic_msg_report refused with 1010"]), "{log}");
    assert!(!log.contains("quiet please") && !log.contains("s-ok"), "a line per message at info:\n{log}");
}

#[actix_rt::test]
async fn with_log_format_json_every_line_is_a_json_object_naming_the_fields_an_operator_follows() {
    let port = free_port();
    let extra = "log: { format: json }\nroom: { reorder_window_ms: 50 }";
    let mut broker = BrokerProcess::start(&process_config(port, extra), port).await;
    let base = format!("ws://{}", broker.addr);
    let mut client = app_client_at(&base, "json-viewer", None).await;
    client.enter("gs-json").await;
    let mut bigo = bigo_at(&base, None).await;
    assert_eq!(bigo.login(ACCOUNT, PASSWORD, now_ms()).await["code"], 200);
    let data = push_data("s-json-bad", "gs-json", 2, vec![]).to_string();
    let frame = json!({"uri":"dataReception","retry_cnt":0,"send_time":now_ms(),"data":data,
                       "access_token":bigo.token,"sign":"0".repeat(32)});
    bigo.send_text(frame.to_string()).await;
    assert_eq!(BigoClient::data_of(&bigo.recv().await)["rescode"], 403);
    broker.terminate();
    let _ = closed_with(&mut client.ws).await;
    assert!(broker.wait_exit(Duration::from_secs(10)).await.is_some_and(|s| s.success()));

    let log = broker.log_text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}")))
        .collect();
    assert!(lines.len() > 5, "{log}");
    for line in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(line[key].is_string(), "{key} missing: {line}");
        }
    }
    let has = |pairs: &[(&str, &str)]| lines.iter().any(|l| pairs.iter().all(|(k, v)| l[*k] == *v));
    assert!(has(&[("level", "WARN"), ("game_sess", "gs-json"), ("seqid", "s-json-bad")]), "{log}");
    assert!(has(&[("target", "actors::clients::client_session"), ("user_id", "json-viewer")]), "{log}");
    assert!(has(&[("channel_name", "gs-json"), ("user_id", "json-viewer")]), "{log}");
    assert!(has(&[("level", "INFO"), ("target", "danmu_broker")]), "{log}");
}

/// `GET`s `url`: (status, body).
async fn get(url: &str) -> (u16, String) {
    let mut resp = awc::Client::new().get(url).send().await.expect("GET");
    let body = resp.body().limit(8 << 20).await.expect("body");
    (resp.status().as_u16(), String::from_utf8_lossy(&body).into_owned())
}

/// `POST`s a notice to room 1 at `base` with the admin key: (status, body).
async fn notice(base: &str, admin_key: &str) -> (u16, String) {
    let mut resp = awc::Client::new()
        .post(format!("{base}/iapi/admin/rooms/1/notice"))
        .insert_header(("X-Admin-Key", admin_key))
        .send_json(&json!({"content": "hello"}))
        .await
        .expect("POST notice");
    let body = resp.body().await.expect("body");
    (resp.status().as_u16(), String::from_utf8_lossy(&body).into_owned())
}

#[actix_rt::test]
async fn with_server_internal_the_operator_endpoints_answer_there_and_404_on_the_public_listener() {
    let (port, internal_port) = (free_port(), free_port());
    let yaml = format!(
        "server: {{ host: 127.0.0.1, port: {port}, workers: 1, internal: {{ host: 127.0.0.1, port: {internal_port} }} }}\n\
         auth: {{ jwt_secret: {SECRET} }}\n\
         admin: {{ key: test-admin-key }}\n"
    );
    // The harness waits for /healthz: on the internal port now.
    let mut broker = BrokerProcess::start(&yaml, internal_port).await;
    let (public, internal) = (format!("http://127.0.0.1:{port}"), format!("http://127.0.0.1:{internal_port}"));

    let (status, body) = get(&format!("{internal}/healthz")).await;
    assert_eq!((status, body.lines().next()), (200, Some("ok")), "{body}");
    let (status, metrics) = get(&format!("{internal}/metrics")).await;
    assert_eq!(status, 200);
    assert_eq!(sample(&metrics, "danmu_connections", "kind=\"client\""), Some(0.0), "{metrics}");
    let (status, document) = get(&format!("{internal}/iapi/openapi.json")).await;
    assert_eq!(status, 200);
    assert!(document.contains("internal listener (server.internal)"), "{document}");
    // The admin API: its own answers (no such room, a wrong key), not the router's empty 404.
    let (status, body) = notice(&internal, "test-admin-key").await;
    assert_eq!(status, 404);
    assert!(body.contains("2001"), "{body}");
    let (status, body) = notice(&internal, "wrong").await;
    assert_eq!(status, 403);
    assert!(body.contains("2006"), "{body}");

    for path in ["/healthz", "/metrics", "/iapi/openapi.json"] {
        assert_eq!(get(&format!("{public}{path}")).await, (404, String::new()), "public {path}");
    }
    // The probes are on both: orchestrators and load balancers probe the traffic's port.
    for base in [&public, &internal] {
        assert_eq!(get(&format!("{base}/livez")).await, (200, "ok\n".into()), "{base}/livez");
        assert_eq!(get(&format!("{base}/readyz")).await, (200, "ready\n".into()), "{base}/readyz");
    }
    assert_eq!(notice(&public, "test-admin-key").await, (404, String::new()), "public admin API");
    // The public listener serves clients as before; the internal one does not.
    let mut client = app_client_at(&format!("ws://127.0.0.1:{port}"), "viewer", None).await;
    client.enter("gs-internal").await;
    let (status, page) = get(&format!("{public}/")).await;
    assert_eq!(status, 200);
    assert!(page.contains("/iapi/rooms") && !page.contains("/metrics"), "{page}");
    assert_eq!(get(&format!("{internal}/iapi/rooms")).await.0, 404);
    let (_, metrics) = get(&format!("{internal}/metrics")).await;
    assert_eq!(sample(&metrics, "danmu_connections", "kind=\"client\""), Some(1.0), "{metrics}");

    // Draining shows on the internal listener's /healthz.
    broker.terminate();
    let mut seen = Vec::new();
    while seen.last() != Some(&None) && seen.len() < 500 {
        seen.push(healthz(broker.addr).await);
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen.contains(&Some(503)), "the internal /healthz never answered 503 while draining: {seen:?}");
    assert!(broker.wait_exit(Duration::from_secs(10)).await.is_some_and(|s| s.success()));
    let log = broker.log_text();
    for needle in [
        format!("listening on 127.0.0.1:{port} (http/ws)"),
        format!("operator endpoints on the internal listener 127.0.0.1:{internal_port}"),
        format!("http://127.0.0.1:{internal_port}/metrics"),
    ] {
        assert!(log.contains(&needle), "{needle:?} missing from the log:\n{log}");
    }
}

#[actix_rt::test]
async fn an_internal_port_in_use_stops_start_up_naming_the_key() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let internal_port = taken.local_addr().expect("port").port();
    let port = free_port();
    let yaml = format!(
        "server: {{ host: 127.0.0.1, port: {port}, workers: 1, internal: {{ port: {internal_port} }} }}\n\
         auth: {{ jwt_secret: {SECRET} }}\n"
    );
    let dir = common::ops::TempDir::new("internal-in-use");
    let config = dir.path("config.yaml");
    std::fs::write(&config, yaml).expect("write config");
    let mut broker = BrokerProcess::spawn(dir, &config, &[], port);
    let status = broker.wait_exit(Duration::from_secs(10)).await;
    let log = broker.log_text();
    assert!(status.is_some_and(|s| !s.success()), "exit status {status:?}:\n{log}");
    assert!(
        log.contains(&format!("cannot listen on 127.0.0.1:{internal_port}: address already in use"))
            && log.contains("see server.internal.port"),
        "{log}"
    );
}

/// `GET /readyz` at `addr`: its status, None when nothing answers.
async fn readyz(addr: std::net::SocketAddr) -> Option<u16> {
    let client = awc::Client::builder().timeout(Duration::from_millis(500)).finish();
    client.get(format!("http://{addr}/readyz")).send().await.ok().map(|r| r.status().as_u16())
}

#[actix_rt::test]
async fn on_sigterm_readyz_turns_503_at_once_and_clients_are_kicked_after_the_drain_delay_with_spread_retry_times() {
    const DELAY_MS: u64 = 600;
    const SPREAD_MS: u64 = 2_000;
    const CLIENTS: usize = 40;
    let port = free_port();
    let server_keys = format!("drain_delay_ms: {DELAY_MS}, reconnect_spread_ms: {SPREAD_MS}, ");
    let yaml = process_config_with(port, &server_keys, "");
    let mut broker = BrokerProcess::start(&yaml, port).await;
    let base = format!("ws://{}", broker.addr);
    assert_eq!(get(&format!("http://{}/livez", broker.addr)).await, (200, "ok\n".into()));
    assert_eq!(get(&format!("http://{}/readyz", broker.addr)).await, (200, "ready\n".into()));
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        clients.push(app_client_at(&base, &format!("viewer-{i}"), None).await);
    }

    broker.terminate();
    let signalled = Instant::now();
    // /readyz turns 503 at once, /livez stays 200: the process still serves.
    let mut became_unready = None;
    while signalled.elapsed() < Duration::from_millis(DELAY_MS) {
        if readyz(broker.addr).await == Some(503) {
            became_unready = Some(signalled.elapsed());
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    let became_unready = became_unready.expect("/readyz did not turn 503 within the drain delay");
    let (status, body) = get(&format!("http://{}/readyz", broker.addr)).await;
    assert_eq!((status, body.as_str()), (503, "not ready: draining\n"));
    assert_eq!(get(&format!("http://{}/livez", broker.addr)).await.0, 200, "/livez fails for a drain");
    // During the delay the node goes on serving: a newcomer still gets in (and is kicked with the rest).
    clients.push(app_client_at(&base, "late-viewer", None).await);

    let mut waits = Vec::new();
    for client in &mut clients {
        let kicked = client.recv_action("kicked").await;
        let kicked_at = signalled.elapsed();
        assert!(
            kicked_at >= Duration::from_millis(DELAY_MS),
            "kicked {kicked_at:?} after SIGTERM, before the drain delay"
        );
        assert!(became_unready < kicked_at);
        assert_eq!(kicked["reason"], "shutdown", "{kicked}");
        waits.push(kicked["retry_after_ms"].as_u64().expect("retry_after_ms"));
        assert_eq!(closed_with(&mut client.ws).await, Some(1012));
    }
    // Drawn uniformly from 0..=SPREAD_MS for each client: all within it, and spread over it
    // (41 draws: every quarter of the spread holds some, none holds most).
    assert!(waits.iter().all(|w| *w <= SPREAD_MS), "{waits:?}");
    for quarter in 0..4 {
        let (lo, hi) = (quarter * SPREAD_MS / 4, (quarter + 1) * SPREAD_MS / 4);
        let n = waits.iter().filter(|w| (lo..=hi).contains(*w)).count();
        assert!((1..=25).contains(&n), "{n} of {} waits in {lo}..={hi} ms: {waits:?}", waits.len());
    }
    let status = broker.wait_exit(Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s.success()), "exit status {status:?}, log:\n{}", broker.log_text());
}
