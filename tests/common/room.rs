//! Helpers for the room protocol tests (tests/room_protocol.rs): answers to one action, reading
//! while staying alive under a short idle timeout, dropping a connection without a close
//! handshake, `user/info`, and `seq` bookkeeping.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::{AppClient, TestBroker, WAIT};

/// `error_code` of an `ack`/`error` frame.
pub fn error_code(frame: &Value) -> i64 {
    frame["error_code"].as_i64().unwrap_or(-1)
}

/// The `seq` of every event in `frames` (arrays flattened), in arrival order.
pub fn seqs(frames: &[Value]) -> Vec<u64> {
    flatten(frames).iter().filter_map(|f| f["seq"].as_u64()).collect()
}

/// Frames with batch arrays opened up into their events.
pub fn flatten(frames: &[Value]) -> Vec<Value> {
    frames
        .iter()
        .flat_map(|f| match f {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        })
        .collect()
}

/// `lo..=hi` as a vector, for comparing with [`seqs`].
pub fn range(lo: u64, hi: u64) -> Vec<u64> {
    (lo..=hi).collect()
}

impl TestBroker {
    /// `GET /iapi/user/info` for `user_id` with a valid token.
    pub async fn user_info(&self, user_id: &str) -> Value {
        let (status, body) =
            self.get_json(&format!("/iapi/user/info?user_id={user_id}&token={}", self.token(user_id))).await;
        assert_eq!(status, 200, "user/info: {body}");
        body
    }

    /// A client already inside `channel` (its enter ack consumed).
    pub async fn member(&self, user_id: &str, channel: &str) -> AppClient {
        let mut client = self.client(user_id).await;
        client.enter(channel).await;
        client
    }
}

impl AppClient {
    /// The `ack` or `error` answering `action` (skipping room events before it).
    pub async fn answer(&mut self, action: &str) -> Value {
        loop {
            let frame = self.recv().await;
            if (frame["action"] == "ack" || frame["action"] == "error") && frame["for"] == action {
                return frame;
            }
        }
    }

    /// Sends `action` and answers its `ack`/`error`.
    pub async fn request(&mut self, action: &str, fields: Value) -> Value {
        self.send(action, fields).await;
        self.answer(action).await
    }

    /// `enter_room_report` with `last_seq`, answering the ack (or error).
    pub async fn enter_after(&mut self, channel: &str, last_seq: u64) -> Value {
        self.request("enter_room_report", json!({"channel_name": channel, "last_seq": last_seq})).await
    }

    /// Every frame until (and with) the first event whose `action` is `until`, pinging the
    /// server meanwhile so that a short `client.idle_timeout_ms` does not close this client.
    pub async fn collect_until(&mut self, until: &str) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        let mut frames = Vec::new();
        let mut next_ping = Instant::now();
        loop {
            assert!(Instant::now() < deadline, "no {until} within {WAIT:?}; got {frames:?}");
            if Instant::now() >= next_ping {
                self.send("ping", json!({})).await;
                next_ping = Instant::now() + Duration::from_millis(200);
            }
            let Ok(msg) = tokio::time::timeout(Duration::from_millis(100), self.ws.next()).await else {
                continue;
            };
            let text = match msg {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => panic!("closed while waiting for {until}: {frame:?}"),
                Some(Ok(_)) => continue,
                other => panic!("connection ended while waiting for {until}: {other:?}"),
            };
            let frame: Value = serde_json::from_str(&text).expect("frame is JSON");
            if frame["action"] == "pong" {
                continue;
            }
            let done = flatten(std::slice::from_ref(&frame)).iter().any(|f| f["action"] == until);
            frames.push(frame);
            if done {
                return frames;
            }
        }
    }

    /// The first event with `action`, staying alive meanwhile (see [`Self::collect_until`]).
    pub async fn await_event(&mut self, action: &str) -> Value {
        let frames = self.collect_until(action).await;
        flatten(&frames).into_iter().find(|f| f["action"] == action).expect("collected")
    }

    /// Every frame that arrives within `quiet` of the previous one (answers to our pings
    /// dropped): for checking what did, and did not, reach this client.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<Value> {
        let mut frames = Vec::new();
        while let Ok(Some(Ok(msg))) = tokio::time::timeout(quiet, self.ws.next()).await {
            if let Message::Text(text) = msg {
                let frame: Value = serde_json::from_str(&text).expect("frame is JSON");
                if frame["action"] != "pong" {
                    frames.push(frame);
                }
            }
        }
        frames
    }

    /// Drops the TCP connection with no WebSocket close handshake, as a killed app does.
    pub fn drop_without_close(self) {
        drop(self.ws);
    }

    /// Sends one raw frame, bypassing signing (for size tests).
    pub async fn send_raw(&mut self, text: String) {
        // The server may already have closed: a failed send is part of what is tested.
        let _ = self.ws.send(Message::Text(text.into())).await;
    }
}

/// A `send_topic_msg_report` frame's fields.
pub fn chat(channel: &str, content: &str) -> Value {
    json!({"channel_name": channel, "content": content})
}
