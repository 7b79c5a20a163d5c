//! A rolling restart (docs/protocol.md 4, "Probes for orchestrators"): three broker processes on
//! one Redis, each stopped with SIGTERM and started again on its port in turn, while BIGO
//! pushes flow and app clients reconnect as the SDK does (they wait the `retry_after_ms` of
//! their `kicked` frame, ask `end_point`, and enter their room again with `last_seq` and
//! `epoch`). Nothing BIGO got a 200 for is lost, every client is back in its room with
//! `recovered: true`, `/readyz` turns 503 before any client of the stopping node is kicked, and
//! the stopping node's clients come back spread out (no 100 ms holds more than a quarter).

mod common;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

use actors::protocol::bigo_client;
use common::live::{unique_prefix, RedisServer};
use common::ops::{client_query, free_port, BrokerProcess};
use common::{BigoClient, ABBR, ACCOUNT, PASSWORD, SECRET};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

const TTL_MS: u64 = 2_000;
/// Behind a load balancer this is a few seconds; here it only has to show the order.
const DRAIN_DELAY_MS: u64 = 500;
/// With 25 or more clients of a stopping node drawn uniformly over 4 s, more than a quarter of
/// them fall within one 100 ms about once in 2,000 runs (simulated); 20 clients, once in 700.
const SPREAD_MS: u64 = 4_000;
const CHANNELS: [&str; 3] = ["roll-a", "roll-b", "roll-c"];
/// 30 a node at first: every stopping node has 20 or more.
const VIEWERS: usize = 90;

fn node_yaml(id: &str, port: u16, redis: &str, prefix: &str) -> String {
    format!(
        "server: {{ host: 127.0.0.1, port: {port}, public_url: \"ws://127.0.0.1:{port}\", workers: 1, \
         drain_delay_ms: {DRAIN_DELAY_MS}, reconnect_spread_ms: {SPREAD_MS} }}\n\
         store: {{ kind: redis, redis_url: \"{redis}\", shared_rooms: true, key_prefix: \"{prefix}\", \
         node_id: \"{id}\", node_ttl_ms: {TTL_MS} }}\n\
         auth: {{ jwt_secret: \"{SECRET}\" }}\n\
         bigo: {{ accounts: [ {{ account: \"{ACCOUNT}\", password: \"{PASSWORD}\" }} ], platform_abbr: \"{ABBR}\" }}\n\
         room: {{ reorder_window_ms: 100, history_len: 2000 }}\n\
         client: {{ idle_timeout_ms: 120000 }}\n"
    )
}

/// The status of `GET {path}` on `port`, None when nothing answers.
async fn status_of(port: u16, path: &str) -> Option<u16> {
    let client = awc::Client::builder().timeout(Duration::from_millis(500)).finish();
    client.get(format!("http://127.0.0.1:{port}{path}")).send().await.ok().map(|r| r.status().as_u16())
}

/// What one viewer went through.
#[derive(Default)]
struct ViewerLog {
    /// Contents of the `send_topic_msg` events received, replays included.
    contents: HashSet<String>,
    /// Every `kicked`: when, its `retry_after_ms`, the port of the node that kicked.
    kicks: Vec<(Instant, u64, u16)>,
    /// When each reconnection after a kick began (after the wait), and the kicking node's port.
    reconnects: Vec<(Instant, u16)>,
    /// The `recovered` of every entry made with a `last_seq`.
    recovered: Vec<Value>,
    /// In its room on the connection it has now.
    in_room: bool,
    /// When it last entered its room.
    entered_at: Option<Instant>,
}

/// `end_point` asked of the nodes in turn from `first` (the load balancer in front of them):
/// the URL of the first answer.
async fn end_point(ports: &[u16], first: usize, user: &str) -> Option<String> {
    let client = awc::Client::builder().timeout(Duration::from_secs(1)).finish();
    for i in 0..ports.len() {
        let port = ports[(first + i) % ports.len()];
        let url = format!("http://127.0.0.1:{port}/iapi/websocket/end_point?{}", client_query(user, "sid-1"));
        let Ok(mut resp) = client.get(url).send().await else { continue };
        if let Ok(body) = resp.json::<Value>().await {
            if let Some(end_point) = body["end_point"].as_str().filter(|_| body["error_code"] == 0) {
                return Some(end_point.to_string());
            }
        }
    }
    None
}

/// The port of a `ws://127.0.0.1:PORT/...` URL.
fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().and_then(|rest| rest.split('/').next()).and_then(|p| p.parse().ok()).expect("a port")
}

/// A client as the SDK behaves: connect, enter (with `last_seq` and `epoch` after the first
/// time), read events; on `kicked` wait `retry_after_ms`, then `end_point` and again.
async fn viewer(user: String, channel: String, first_port: u16, ports: Vec<u16>, log: Rc<RefCell<ViewerLog>>) {
    let (mut last_seq, mut epoch): (Option<u64>, Option<String>) = (None, None);
    let mut target = Some(format!("ws://127.0.0.1:{first_port}/iapi/websocket"));
    let mut asked = user.bytes().map(usize::from).sum::<usize>();
    loop {
        let url = match target.take() {
            Some(url) => url,
            None => match end_point(&ports, asked, &user).await {
                Some(url) => url,
                None => {
                    asked += 1;
                    actix_rt::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let port = port_of(&url);
        let connecting = tokio::time::timeout(
            Duration::from_secs(5),
            connect_async(format!("{url}?{}", client_query(&user, "sid-1"))),
        );
        let Ok(Ok((mut ws, _))) = connecting.await else {
            asked += 1;
            actix_rt::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let hello = match ws.next().await {
            Some(Ok(Message::Text(text))) => serde_json::from_str::<Value>(&text).unwrap_or_default(),
            _ => continue,
        };
        let Some(online_token) = hello["online_token"].as_str().map(str::to_string) else { continue };
        let client = common::AppClient { ws, user_id: user.clone(), sid: "sid-1".into(), online_token };
        let mut fields = json!({"channel_name": channel});
        if let Some(seq) = last_seq {
            fields["last_seq"] = json!(seq);
            fields["epoch"] = json!(epoch);
        }
        let asked_from = last_seq;
        let enter = client.frame("enter_room_report", fields).to_string();
        let mut ws = client.ws;
        if ws.send(Message::Text(enter.into())).await.is_err() {
            continue;
        }
        // The seq of this entry's own enter_room: numbered, never sent to this member.
        let mut own_enter = None;
        let mut retry_after = None;
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Text(text) = msg else { continue };
            let frame: Value = serde_json::from_str(&text).unwrap_or_default();
            match frame["action"].as_str().unwrap_or_default() {
                "ack" if frame["for"] == "enter_room_report" => {
                    let own = frame["last_seq"].as_u64().expect("the ack's last_seq");
                    let same_epoch = epoch.as_deref().is_none_or(|e| Some(e) == frame["epoch"].as_str());
                    last_seq = match last_seq {
                        Some(from) if same_epoch && from + 1 < own => Some(from),
                        _ => Some(own),
                    };
                    epoch = frame["epoch"].as_str().map(str::to_string);
                    own_enter = Some(own);
                    let mut log = log.borrow_mut();
                    if asked_from.is_some() {
                        log.recovered.push(frame["recovered"].clone());
                    }
                    log.in_room = true;
                    log.entered_at = Some(Instant::now());
                }
                "error" if frame["for"] == "enter_room_report" => break,
                "kicked" => {
                    let wait = frame["retry_after_ms"].as_u64().expect("kicked carries retry_after_ms");
                    let mut log = log.borrow_mut();
                    log.kicks.push((Instant::now(), wait, port));
                    log.in_room = false;
                    retry_after = Some(wait);
                    break;
                }
                _ => {
                    if let Some(seq) = frame["seq"].as_u64() {
                        let reached = if Some(seq + 1) == own_enter { seq + 1 } else { seq };
                        last_seq = Some(last_seq.map_or(reached, |at| at.max(reached)));
                    }
                    if frame["action"] == "send_topic_msg" {
                        let content = frame["content"].as_str().unwrap_or_default().to_string();
                        log.borrow_mut().contents.insert(content);
                    }
                }
            }
        }
        log.borrow_mut().in_room = false;
        drop(ws);
        match retry_after {
            Some(wait) => {
                actix_rt::time::sleep(Duration::from_millis(wait)).await;
                log.borrow_mut().reconnects.push((Instant::now(), port));
            }
            None => actix_rt::time::sleep(Duration::from_millis(200)).await,
        }
        asked += 1;
    }
}

/// A logged-in BIGO connection to the first node of `ports` from `first` that takes one.
async fn bigo_on_any(ports: &[u16], first: usize) -> Option<BigoClient> {
    for i in 0..ports.len() {
        let port = ports[(first + i) % ports.len()];
        let connecting =
            tokio::time::timeout(Duration::from_secs(2), connect_async(format!("ws://127.0.0.1:{port}/bigo/ws")));
        let Ok(Ok((mut ws, _))) = connecting.await else { continue };
        let login = bigo_client::login_request(ACCOUNT, PASSWORD, ABBR, common::now_ms());
        if ws.send(Message::Text(login.into())).await.is_err() {
            continue;
        }
        if let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
            let resp: Value = serde_json::from_str(&text).unwrap_or_default();
            let data = resp["data"].as_str().and_then(|d| serde_json::from_str::<Value>(d).ok()).unwrap_or_default();
            if let Some(token) = data["access_token"].as_str() {
                return Some(BigoClient { ws, token: token.to_string() });
            }
        }
    }
    None
}

/// BIGO: one item every 40 ms, round-robin over the channels, each push retried (same seqid)
/// on another node until it is answered 200, as the platform does. Answers what was
/// acknowledged, per channel, once `stop` is set.
async fn pusher(ports: Vec<u16>, stop: Rc<Cell<bool>>) -> HashMap<String, Vec<String>> {
    let mut acknowledged: HashMap<String, Vec<String>> = HashMap::new();
    let mut link: Option<BigoClient> = None;
    let mut first = 0;
    let mut i = 0usize;
    while !stop.get() {
        let channel = CHANNELS[i % CHANNELS.len()];
        let content = format!("m{i:05}");
        let data = common::push_data(
            &format!("p{i}"),
            channel,
            2,
            vec![common::msg_item(&content, common::now_ms(), &content)],
        );
        loop {
            let Some(bigo) = link.as_mut() else {
                link = bigo_on_any(&ports, first).await;
                if link.is_none() {
                    actix_rt::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            };
            match bigo.try_push(&data).await {
                Some(answer) if answer["rescode"] == 200 => {
                    acknowledged.entry(channel.to_string()).or_default().push(content);
                    break;
                }
                Some(_) => actix_rt::time::sleep(Duration::from_millis(100)).await,
                None => {
                    link = None;
                    first += 1;
                }
            }
        }
        i += 1;
        actix_rt::time::sleep(Duration::from_millis(40)).await;
    }
    acknowledged
}

/// Waits until `check` holds, up to `within`; panics with `what` and the last `detail`.
async fn until(what: &str, within: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(()) => return,
            Err(detail) => assert!(Instant::now() < deadline, "{what} within {within:?}: {detail}"),
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The most of `times` that fall within one `window`.
fn most_in_a_window(times: &[Instant], window: Duration) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    (0..sorted.len()).map(|i| sorted[i..].iter().take_while(|t| **t - sorted[i] < window).count()).max().unwrap_or(0)
}

#[actix_rt::test]
async fn a_rolling_restart_of_three_nodes_loses_nothing_acknowledged_and_every_client_recovers_in_its_room() {
    let started = Instant::now();
    let redis = RedisServer::start();
    let prefix = unique_prefix();
    let mut ports = Vec::new();
    while ports.len() < 3 {
        let port = free_port();
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    let yamls: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| node_yaml(&format!("node-{i}"), *port, &redis.url(), &prefix))
        .collect();
    let mut nodes = Vec::new();
    for (yaml, port) in yamls.iter().zip(&ports) {
        nodes.push(BrokerProcess::start(yaml, *port).await);
    }
    for port in &ports {
        let deadline = Instant::now() + Duration::from_secs(10);
        while status_of(*port, "/readyz").await != Some(200) {
            assert!(Instant::now() < deadline, "node on {port} never ready");
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Viewers spread over the nodes and the channels, all in their rooms before BIGO pushes.
    let logs: Vec<Rc<RefCell<ViewerLog>>> = (0..VIEWERS).map(|_| Rc::default()).collect();
    for (i, log) in logs.iter().enumerate() {
        let channel = CHANNELS[i % CHANNELS.len()].to_string();
        actix_rt::spawn(viewer(format!("v{i:02}"), channel, ports[i % ports.len()], ports.clone(), log.clone()));
    }
    until("every viewer in its room", Duration::from_secs(20), || {
        let out = logs.iter().filter(|l| !l.borrow().in_room).count();
        if out == 0 {
            Ok(())
        } else {
            Err(format!("{out} not in"))
        }
    })
    .await;
    let stop = Rc::new(Cell::new(false));
    let pushes = actix_rt::spawn(pusher(ports.clone(), stop.clone()));
    actix_rt::time::sleep(Duration::from_millis(800)).await;

    // Each node in turn: SIGTERM, /readyz 503, kicks, exit, start again on its port, ready,
    // and its clients back in their rooms elsewhere before the next one stops.
    struct Stop {
        port: u16,
        signalled: Instant,
        unready_at: Instant,
    }
    let mut stops = Vec::new();
    for k in 0..nodes.len() {
        let port = ports[k];
        nodes[k].terminate();
        let signalled = Instant::now();
        let unready_at = loop {
            if status_of(port, "/readyz").await == Some(503) {
                break Instant::now();
            }
            // It turns 503 at once (a few ms here); the bound is loose for a loaded machine, and
            // that it came before every kick is checked below.
            assert!(signalled.elapsed() < Duration::from_secs(5), "/readyz not 503 after SIGTERM");
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        };
        let status = nodes[k].wait_exit(Duration::from_secs(15)).await;
        assert!(status.is_some_and(|s| s.success()), "node on {port} exit {status:?}:\n{}", nodes[k].log_text());
        nodes[k] = BrokerProcess::start(&yamls[k], port).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while status_of(port, "/readyz").await != Some(200) {
            assert!(Instant::now() < deadline, "node on {port} not ready again");
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        until("the kicked viewers back in their rooms", Duration::from_secs(SPREAD_MS / 1000 + 10), || {
            let out: Vec<usize> = (0..logs.len())
                .filter(|i| {
                    let log = logs[*i].borrow();
                    let back =
                        log.entered_at.is_some_and(|at| log.kicks.last().is_none_or(|(kicked, _, _)| at > *kicked));
                    !(log.in_room && back)
                })
                .collect();
            if out.is_empty() {
                Ok(())
            } else {
                Err(format!("viewers {out:?} out"))
            }
        })
        .await;
        stops.push(Stop { port, signalled, unready_at });
        actix_rt::time::sleep(Duration::from_millis(300)).await;
    }
    stop.set(true);
    let acknowledged = pushes.await.expect("the pusher");

    // Nothing acknowledged is lost: every viewer has every item of its channel.
    let total: usize = acknowledged.values().map(Vec::len).sum();
    assert!(CHANNELS.iter().all(|c| acknowledged.get(*c).is_some_and(|a| a.len() > 20)), "{acknowledged:?}");
    until("every acknowledged item reached every viewer of its channel", Duration::from_secs(15), || {
        for (i, log) in logs.iter().enumerate() {
            let log = log.borrow();
            let channel = CHANNELS[i % CHANNELS.len()];
            let missing: Vec<&String> = acknowledged[channel].iter().filter(|c| !log.contents.contains(*c)).collect();
            if !missing.is_empty() {
                return Err(format!("v{i:02} ({channel}) misses {} of {}: {missing:?}", missing.len(), total));
            }
        }
        Ok(())
    })
    .await;

    // Every re-entry recovered; every viewer was kicked at least once and is in its room.
    for (i, log) in logs.iter().enumerate() {
        let log = log.borrow();
        assert!(!log.kicks.is_empty(), "v{i:02} was never kicked");
        assert!(
            log.recovered.len() >= log.kicks.len(),
            "v{i:02}: {} kicks, {} re-entries",
            log.kicks.len(),
            log.recovered.len()
        );
        assert!(log.recovered.iter().all(|r| *r == json!(true)), "v{i:02} recovered {:?}", log.recovered);
        assert!(log.in_room, "v{i:02} not in its room");
    }
    let client = awc::Client::new();
    for i in 0..VIEWERS {
        let url =
            format!("http://127.0.0.1:{}/iapi/user/info?{}", ports[i % 3], client_query(&format!("v{i:02}"), "sid-1"));
        let info: Value = client.get(url).send().await.expect("user/info").json().await.expect("JSON");
        assert_eq!(info["current_room_id"], CHANNELS[i % CHANNELS.len()], "v{i:02}: {info}");
    }

    // Per stopping node: /readyz was 503 before any of its clients was kicked, and their
    // reconnections were spread: no 100 ms holds more than a quarter of them.
    for stop in &stops {
        let mut kicked = Vec::new();
        let mut reconnects = Vec::new();
        for log in &logs {
            let log = log.borrow();
            kicked.extend(
                log.kicks.iter().filter(|(at, _, port)| *port == stop.port && *at > stop.signalled).map(|k| k.0),
            );
            reconnects.extend(
                log.reconnects.iter().filter(|(at, port)| *port == stop.port && *at > stop.signalled).map(|r| r.0),
            );
        }
        assert!(kicked.len() >= 20, "node on {}: only {} clients kicked", stop.port, kicked.len());
        assert!(
            kicked.iter().all(|at| *at > stop.unready_at),
            "node on {}: a client kicked before /readyz said 503",
            stop.port
        );
        let first_kick = kicked.iter().min().expect("kicks");
        assert!(*first_kick - stop.signalled >= Duration::from_millis(DRAIN_DELAY_MS), "kicked within the drain delay");
        let most = most_in_a_window(&reconnects, Duration::from_millis(100));
        assert!(
            most * 4 <= reconnects.len(),
            "node on {}: {most} of its {} clients reconnected within 100 ms",
            stop.port,
            reconnects.len()
        );
        println!(
            "node on {}: /readyz 503 {:?} after SIGTERM, first kick {:?} after, {} clients reconnected, at most {most} in 100 ms",
            stop.port,
            stop.unready_at - stop.signalled,
            *first_kick - stop.signalled,
            reconnects.len()
        );
    }
    println!("{total} pushes acknowledged, {VIEWERS} viewers, run {:?}", started.elapsed());
}
