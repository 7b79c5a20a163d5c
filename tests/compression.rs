//! permessage-deflate (docs/protocol.md 2.8) on the client WebSocket: a client that offers it gets
//! `server_no_context_takeover` and compressed frames for large messages, which it inflates
//! into the same events under the same `seq` as a plain member of the room; a compression bomb
//! is refused as too large without being inflated. The BIGO ingress takes the extension on the
//! same terms: a platform that compresses logs in and pushes, and its bomb is refused too.
//!
//! tokio-tungstenite does not speak the extension, so the compressing client here is a few
//! lines of raw WebSocket over TCP (RFC 6455 framing) with flate2 for the deflate; the plain
//! member is the usual test client. The JS SDK's tests (Node's `ws`) and the Chromium demo
//! test run with the extension negotiated as well.

mod common;

use std::time::Duration;

use actors::protocol::bigo_client;
use common::*;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw WebSocket client that offered permessage-deflate.
struct DeflateClient {
    tcp: TcpStream,
    buf: Vec<u8>,
    extensions: String,
    online_token: String,
    sid: String,
}

/// One server frame: FIN, RSV1 (compressed), opcode and payload.
struct ServerFrame {
    rsv1: bool,
    opcode: u8,
    payload: Vec<u8>,
}

impl DeflateClient {
    /// An app client, past its `connected` frame.
    async fn connect(broker: &TestBroker, user_id: &str) -> Self {
        let query = common::ops::client_query(user_id, "sid-1");
        let mut client = Self::upgrade(broker, &format!("{}?{query}", broker.config.client.path)).await;
        let hello = client.json().await;
        assert_eq!(hello["action"], "connected");
        client.online_token = hello["online_token"].as_str().expect("online_token").to_string();
        client
    }

    /// The upgrade at `target` (path and query), offering permessage-deflate.
    async fn upgrade(broker: &TestBroker, target: &str) -> Self {
        let mut tcp = TcpStream::connect(broker.addr).await.expect("connect");
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
            broker.addr
        );
        tcp.write_all(request.as_bytes()).await.expect("upgrade request");
        let mut buf = Vec::new();
        let head_end = loop {
            let mut chunk = [0u8; 4096];
            let n = tcp.read(&mut chunk).await.expect("read");
            assert!(n > 0, "closed during the upgrade");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let extensions = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase().strip_prefix("sec-websocket-extensions:").map(|v| v.trim().to_string())
            })
            .unwrap_or_default();
        buf.drain(..head_end);
        Self { tcp, buf, extensions, online_token: String::new(), sid: "sid-1".into() }
    }

    async fn frame(&mut self) -> ServerFrame {
        loop {
            if let Some((frame, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return frame;
            }
            let mut chunk = [0u8; 65536];
            let n =
                tokio::time::timeout(WAIT, self.tcp.read(&mut chunk)).await.expect("a frame in time").expect("read");
            assert!(n > 0, "connection closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next text message as JSON, inflated when compressed.
    async fn json(&mut self) -> Value {
        loop {
            let frame = self.frame().await;
            if frame.opcode == 1 {
                let text = if frame.rsv1 { inflate(&frame.payload) } else { frame.payload };
                return serde_json::from_slice(&text).expect("JSON");
            }
        }
    }

    /// Sends a signed frame of `action`, compressed when `compress`.
    async fn send(&mut self, action: &str, fields: Value, compress: bool) {
        let ts = now_ms();
        let sign = md5(&format!("action={action}&online_token={}&sid={}&timestamp={ts}", self.online_token, self.sid));
        let mut frame = json!({"action": action, "online_token": self.online_token, "sid": self.sid,
                               "timestamp": ts, "sign": sign});
        if let (Some(obj), Value::Object(extra)) = (frame.as_object_mut(), fields) {
            obj.extend(extra);
        }
        let text = frame.to_string();
        self.send_raw(text.as_bytes(), compress, Compression::fast()).await;
    }

    async fn send_raw(&mut self, payload: &[u8], compress: bool, level: Compression) {
        let (first, body) = if compress { (0xC1, deflate(payload, level)) } else { (0x81, payload.to_vec()) };
        self.tcp.write_all(&masked(first, &body)).await.expect("send");
    }
}

/// One complete frame from the start of `buf`, and the bytes it took.
fn parse(buf: &[u8]) -> Option<(ServerFrame, usize)> {
    let (b0, b1) = (*buf.first()?, *buf.get(1)?);
    let (len, mut at) = match b1 & 0x7f {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize, 10),
        n => (n as usize, 2),
    };
    assert_eq!(b1 & 0x80, 0, "a server frame is not masked");
    let payload = buf.get(at..at + len)?.to_vec();
    at += len;
    Some((ServerFrame { rsv1: b0 & 0x40 != 0, opcode: b0 & 0x0f, payload }, at))
}

fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x11, 0x22, 0x33, 0x44];
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n < 65536 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// RFC 7692 7.2.1: raw deflate, sync flush, the trailing 00 00 ff ff left off.
fn deflate(payload: &[u8], level: Compression) -> Vec<u8> {
    let mut compress = Compress::new(level, false);
    let mut out = Vec::with_capacity(payload.len() + 1024);
    compress.compress_vec(payload, &mut out, FlushCompress::Sync).expect("deflate");
    assert_eq!(compress.total_in() as usize, payload.len());
    out.truncate(out.len() - 4);
    out
}

fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(payload.len() * 20 + 1024);
    Decompress::new(false).decompress_vec(&input, &mut out, FlushDecompress::Sync).expect("inflate");
    out
}

fn chat(i: usize) -> Value {
    // Long enough (with its profile) to pass client.compression_min_bytes.
    msg_item(&format!("d{i}"), now_ms(), &format!("{i}: {}", "弹幕 danmu ".repeat(12)))
}

#[actix_rt::test]
async fn a_client_offering_deflate_gets_compressed_room_frames_with_the_same_events_as_a_plain_member() {
    let broker = TestBroker::start().await;
    let mut zipped = DeflateClient::connect(&broker, "zipped").await;
    assert_eq!(
        zipped.extensions,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=15"
    );
    // Its own frames may be compressed too.
    zipped.send("enter_room_report", json!({"channel_name": "gs-zip"}), true).await;
    let ack = zipped.json().await;
    assert_eq!((ack["action"].as_str(), ack["error_code"].as_i64()), (Some("ack"), Some(0)), "{ack}");
    let mut plain = broker.member("plain", "gs-zip").await;
    let _ = zipped.json().await; // plain's enter_room

    let mut bigo = broker.bigo_logged_in().await;
    let items: Vec<Value> = (0..20).map(chat).collect();
    assert_eq!(bigo.push(&push_data("z1", "gs-zip", 2, items)).await["rescode"], 200);
    let plain_events = plain.events("send_topic_msg", 20).await;
    let (mut zipped_events, mut compressed) = (Vec::new(), 0);
    while zipped_events.len() < 20 {
        let frame = zipped.frame().await;
        if frame.opcode != 1 {
            continue;
        }
        compressed += usize::from(frame.rsv1);
        let text = if frame.rsv1 { inflate(&frame.payload) } else { frame.payload };
        let event: Value = serde_json::from_slice(&text).expect("JSON");
        if event["action"] == "send_topic_msg" {
            zipped_events.push(event);
        }
    }
    assert_eq!(compressed, 20, "every large event compressed (RSV1 set)");
    assert_eq!(zipped_events, plain_events, "the same events under the same seq");

    // Small messages go plain (client.compression_min_bytes).
    zipped.send("ping", json!({}), false).await;
    let pong = loop {
        let frame = zipped.frame().await;
        if frame.opcode == 1 {
            break frame;
        }
    };
    assert!(!pong.rsv1, "a pong is short");
    let metrics = broker.get_text("/metrics").await.1;
    let compressed_bytes = common::ops::sample(&metrics, "danmu_client_bytes_out_total", "compressed=\"true\"");
    assert!(compressed_bytes.is_some_and(|b| b > 0.0), "{metrics}");
}

#[actix_rt::test]
async fn a_compression_bomb_is_refused_as_too_large_without_being_inflated() {
    let _alone = MEMORY_MEASURED.lock().await;
    let broker = TestBroker::start().await;
    let mut zipped = DeflateClient::connect(&broker, "bomber").await;
    let rss_before = rss_kib();
    // 50 MB of one byte: about 50 KB compressed, under client.max_frame_bytes (64 KiB).
    let bomb = vec![b'a'; 50 << 20];
    zipped.send_raw(&bomb, true, Compression::best()).await;
    drop(bomb);
    let error = zipped.json().await;
    assert_eq!((error["action"].as_str(), error["error_code"].as_i64()), (Some("error"), Some(1008)), "{error}");
    let close = loop {
        let frame = zipped.frame().await;
        if frame.opcode == 8 {
            break frame;
        }
    };
    assert_eq!(u16::from_be_bytes([close.payload[0], close.payload[1]]), 1009);
    let grown = rss_kib().saturating_sub(rss_before);
    assert!(grown < 16 << 10, "the process grew by {grown} KiB");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// A BIGO connection that offered permessage-deflate and logged in with a compressed
/// `platformLogin`; answers it and its access token.
async fn compressing_bigo(broker: &TestBroker) -> (DeflateClient, String) {
    let mut bigo = DeflateClient::upgrade(broker, &broker.config.bigo.path).await;
    assert_eq!(
        bigo.extensions,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=15"
    );
    let login = bigo_client::login_request(ACCOUNT, PASSWORD, ABBR, now_ms());
    bigo.send_raw(login.as_bytes(), true, Compression::fast()).await;
    let answer = bigo.json().await;
    assert_eq!(answer["uri"], "platformLoginResp", "{answer}");
    let data = BigoClient::data_of(&answer);
    assert_eq!(data["code"], 200, "{data}");
    let token = data["access_token"].as_str().expect("access_token").to_string();
    (bigo, token)
}

#[actix_rt::test]
async fn bigo_offering_deflate_logs_in_and_pushes_compressed_frames() {
    let broker = TestBroker::start().await;
    let mut member = broker.member("viewer", "gs-bigo-zip").await;
    let (mut bigo, token) = compressing_bigo(&broker).await;
    for (seqid, first) in [("bz1", 0), ("bz2", 20)] {
        let items: Vec<Value> = (first..first + 20).map(chat).collect();
        let data = push_data(seqid, "gs-bigo-zip", 2, items).to_string();
        let frame = bigo_client::data_reception_request(&data, &token, ABBR, 0, now_ms());
        bigo.send_raw(frame.as_bytes(), true, Compression::fast()).await;
        let answer = bigo.json().await;
        assert_eq!(answer["uri"], "dataReceptionResp", "{answer}");
        assert_eq!(BigoClient::data_of(&answer)["rescode"], 200, "{answer}");
    }
    // A plain frame on the same connection is taken too.
    let data = push_data("bz3", "gs-bigo-zip", 2, vec![chat(40)]).to_string();
    let frame = bigo_client::data_reception_request(&data, &token, ABBR, 0, now_ms());
    bigo.send_raw(frame.as_bytes(), false, Compression::fast()).await;
    assert_eq!(BigoClient::data_of(&bigo.json().await)["rescode"], 200);
    let events = member.events("send_topic_msg", 41).await;
    let contents: Vec<&str> = events.iter().map(|e| e["content"].as_str().unwrap_or_default()).collect();
    let expected: Vec<String> = (0..41).map(|i| chat(i)["content"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(contents, expected, "every pushed danmu, in order");
}

#[actix_rt::test]
async fn a_bigo_compression_bomb_is_closed_with_1009_without_being_inflated() {
    let _alone = MEMORY_MEASURED.lock().await;
    let broker = TestBroker::start().await;
    let (mut bigo, _) = compressing_bigo(&broker).await;
    let rss_before = rss_kib();
    // 50 MB of one byte: about 50 KB compressed, under bigo.max_frame_bytes (1 MiB).
    let bomb = vec![b'a'; 50 << 20];
    bigo.send_raw(&bomb, true, Compression::best()).await;
    drop(bomb);
    let close = loop {
        let frame = bigo.frame().await;
        if frame.opcode == 8 {
            break frame;
        }
    };
    assert_eq!(u16::from_be_bytes([close.payload[0], close.payload[1]]), 1009);
    let grown = rss_kib().saturating_sub(rss_before);
    assert!(grown < 16 << 10, "the process grew by {grown} KiB");
}

/// Held by a test that measures this process's memory: the other bomb's 50 MB would count.
static MEMORY_MEASURED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// This process's resident memory (the broker runs inside the test).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
