//! The client connection's transport (`actors::clients::ws_conn`, `src/listener.rs`): a client that
//! stops reading is closed within `client.write_timeout_ms` while the room goes on, a frame
//! trickling in one byte per TCP segment is served, a silent connection meets the idle timeout,
//! and TLS goes the same way.

mod common;

use std::time::{Duration, Instant};

use common::ops::{app_client_at, bigo_at, sample, self_signed, TempDir};
use common::room::flatten;
use common::*;
use danmu_broker::config::TlsConfig;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

/// A masked client text frame (the test writes the bytes itself to control their segments).
fn masked_frame(opcode_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![opcode_byte];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Writes `bytes` one per TCP segment (no Nagle, a pause between bytes).
async fn trickle(client: &mut AppClient, bytes: &[u8]) {
    let MaybeTlsStream::Plain(tcp) = client.ws.get_mut() else { panic!("plain TCP expected") };
    tcp.set_nodelay(true).expect("nodelay");
    for b in bytes {
        tcp.write_all(&[*b]).await.expect("write one byte");
        tcp.flush().await.expect("flush");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn metrics(broker: &TestBroker) -> String {
    broker.get_text("/metrics").await.1
}

#[actix_rt::test]
async fn a_client_that_stops_reading_is_closed_within_the_write_timeout_while_the_room_gets_every_event() {
    let write_timeout_ms = 1000;
    let broker = TestBroker::start_with(|c| c.client.write_timeout_ms = write_timeout_ms).await;
    let channel = "gs-stall";
    let mut reader = broker.member("reader", channel).await;
    let mut stalled = broker.client_with_small_window("stalled").await;
    stalled.enter(channel).await;
    let _ = reader.events("enter_room", 1).await;

    // About 8 MB of events: more than the socket buffers on both sides take (the sending
    // side grows to net.ipv4.tcp_wmem, 4 MB by default). The reader reads all along.
    let (pushes, items) = (200, 100);
    let reading = actix_rt::spawn(async move {
        // Every event reaches the reader, and so does the stalled member's exit_room.
        let (mut chat, mut numbers, mut exit_at, mut delivered_at) = (0, Vec::new(), None, None);
        while exit_at.is_none() || chat < pushes * items {
            for event in flatten(&[reader.recv().await]) {
                numbers.extend(event["seq"].as_u64());
                if event["action"] == "send_topic_msg" {
                    chat += 1;
                    if chat == pushes * items {
                        delivered_at = Some(Instant::now());
                    }
                }
                if event["action"] == "exit_room" {
                    assert_eq!(event["user_id"], "stalled", "{event}");
                    exit_at = Some(Instant::now());
                }
            }
        }
        (reader, numbers, delivered_at, exit_at)
    });
    let mut bigo = broker.bigo_logged_in().await;
    let content = "x".repeat(400);
    for p in 0..pushes {
        let batch = (0..items).map(|i| msg_item(&format!("{p}-{i}"), now_ms(), &content)).collect();
        let data = bigo.push(&push_data(&format!("s{p}"), channel, 2, batch)).await;
        assert_eq!(data["rescode"], 200, "{data}");
    }
    let (mut reader, numbers, delivered_at, exit_at) = reading.await.expect("the reader's task");
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "every event once, in order: {numbers:?}");
    // Closed within the write timeout (plus the check's tick) of the last bytes it took, which
    // was before the reader had everything.
    let (delivered_at, exit_at) = (delivered_at.unwrap(), exit_at.unwrap());
    let waited = exit_at.saturating_duration_since(delivered_at);
    assert!(waited < Duration::from_millis(write_timeout_ms + 1500), "closed after {waited:?}");
    assert_eq!(broker.user_info("stalled").await["current_room_id"], "");
    let exposition = metrics(&broker).await;
    assert_eq!(sample(&exposition, "danmu_slow_clients_disconnected_total", ""), Some(1.0), "{exposition}");

    // The reader goes on receiving.
    let data = bigo.push(&push_data("after", channel, 2, vec![msg_item("after-1", now_ms(), "still here")])).await;
    assert_eq!(data["rescode"], 200);
    assert_eq!(reader.events("send_topic_msg", 1).await[0]["content"], "still here");
    drop(stalled);
}

#[actix_rt::test]
async fn a_frame_sent_one_byte_per_segment_is_served() {
    let broker = TestBroker::start().await;
    let mut client = broker.client("trickler").await;
    let ping = client.frame("ping", json!({})).to_string();
    trickle(&mut client, &masked_frame(0x81, ping.as_bytes())).await;
    assert_eq!(client.recv().await["action"], "pong");

    // The same, as two continuation fragments, each byte in its own segment.
    let enter = client.frame("enter_room_report", json!({"channel_name": "gs-trickle"})).to_string();
    let (first, last) = enter.as_bytes().split_at(enter.len() / 2);
    let mut bytes = masked_frame(0x01, first);
    bytes.extend(masked_frame(0x80, last));
    trickle(&mut client, &bytes).await;
    let ack = client.recv_action("ack").await;
    assert_eq!(ack["for"], "enter_room_report", "{ack}");
    assert_eq!(ack["error_code"], 0, "{ack}");
}

#[actix_rt::test]
async fn a_connection_that_never_sends_a_byte_is_closed_by_the_idle_timeout() {
    let idle_ms = 800;
    let broker = TestBroker::start_with(|c| c.client.idle_timeout_ms = idle_ms).await;
    let mut client = broker.client("silent").await;
    let start = Instant::now();
    assert_eq!(closed_with(&mut client.ws).await, Some(1000));
    let after = start.elapsed();
    assert!(
        after >= Duration::from_millis(idle_ms - 100) && after < Duration::from_millis(idle_ms + 1500),
        "{after:?}"
    );

    // A TCP connection that never sends its request is closed by the HTTP layer's request
    // timeout (5 s), not held.
    let mut tcp = tokio::net::TcpStream::connect(broker.addr).await.expect("connect");
    let mut buf = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(8), tcp.read_to_end(&mut buf)).await;
    assert!(ended.is_ok(), "the connection is closed");
}

#[actix_rt::test]
async fn tls_clients_take_the_same_path_limits_included() {
    let dir = TempDir::new("transport-tls");
    let (cert, key, der) = self_signed(&dir.0);
    let tls = TlsConfig { cert: cert.display().to_string(), key: key.display().to_string() };
    let broker = TestBroker::start_with(move |c| c.server.tls = Some(tls)).await;
    let base = format!("wss://127.0.0.1:{}", broker.addr.port());
    let connector = || Some(tokio_tungstenite::Connector::Rustls(common::ops::trusting(&der)));

    let mut client = app_client_at(&base, "tls-member", connector()).await;
    client.send("ping", json!({})).await;
    assert_eq!(client.recv().await["action"], "pong");
    client.enter("gs-tls-path").await;
    let mut bigo = bigo_at(&base, connector()).await;
    assert_eq!(bigo.login(ACCOUNT, PASSWORD, now_ms()).await["code"], 200);
    // Events with a 16-bit frame length, 200 of them in one push.
    let long = "y".repeat(450);
    let items = (0..200).map(|i| msg_item(&format!("t{i}"), now_ms(), &long)).collect();
    assert_eq!(bigo.push(&push_data("t", "gs-tls-path", 2, items)).await["rescode"], 200);
    let events = client.events("send_topic_msg", 200).await;
    assert!(events.iter().all(|e| e["content"] == long.as_str()));

    // Over the cap: error 1008, then close 1009, over TLS too.
    let too_big = "z".repeat(broker.config.client.max_frame_bytes + 1);
    client.send_text(too_big).await;
    let error: Value = client.recv_action("error").await;
    assert_eq!(error["error_code"], 1008, "{error}");
    assert_eq!(closed_with(&mut client.ws).await, Some(1009));
    // The socket ends after the close.
    let rest = tokio::time::timeout(WAIT, async {
        while let Some(Ok(msg)) = client.ws.next().await {
            assert!(!matches!(msg, Message::Text(_)), "nothing after the close");
        }
    })
    .await;
    assert!(rest.is_ok(), "the connection ends");
}
