//! `danmu-bench serve-bare`: a bare tokio-tungstenite WebSocket server that holds the
//! generator's connections and answers just enough of the protocol for a run to proceed, so
//! that W3's memory per idle connection can be set beside a floor measured in the same sitting
//! (issue 13), not quoted.
//!
//! What it answers: on the client path, `connected` and an `ack` for `enter_room_report` (no
//! rooms, no fan-out), `pong` for `ping`; on the BIGO path, a successful `platformLoginResp`
//! and a 200 `dataReceptionResp` for every push. Everything else is read and dropped. One
//! task per connection on a tokio runtime of `--threads` workers: the cost of a WebSocket held
//! by tokio and tungstenite and nothing else. tungstenite's default read buffer (128 KiB,
//! allocated per connection) would make that 135 KB per connection; `--read-buffer` (default
//! 4 KiB) and a write buffer of 0 (each frame written at once) are the lean settings.

use std::time::Duration;

use actors::protocol::client::{AckDetail, Direct};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone, Parser)]
#[command(name = "danmu-bench serve-bare", about = "A bare WebSocket server for the W3 memory floor")]
pub struct BareOptions {
    /// Loopback address to listen on.
    #[arg(long, default_value = "127.0.0.1:18099")]
    pub listen: String,
    /// Runtime worker threads (the broker runs one HTTP worker per core).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    #[arg(long, default_value = "/bigo/ws")]
    pub bigo_path: String,
    /// tungstenite's per-connection read buffer, bytes.
    #[arg(long, default_value_t = 4096)]
    pub read_buffer: usize,
}

/// Serves until killed.
pub fn serve(opts: BareOptions) -> Result<(), String> {
    let addr: std::net::SocketAddr = opts.listen.parse().map_err(|e| format!("--listen: {e}"))?;
    if !addr.ip().is_loopback() {
        return Err("--listen must be a loopback address".into());
    }
    crate::procfs::raise_nofile_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await.map_err(|e| e.to_string())?;
        eprintln!("danmu-bench serve-bare: listening on {addr}, pid {}", std::process::id());
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let (bigo_path, read_buffer) = (opts.bigo_path.clone(), opts.read_buffer);
                    tokio::spawn(async move {
                        let _ = connection(stream, bigo_path, read_buffer).await;
                    });
                }
                // Out of file descriptors: wait rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
}

// The handshake callback's error type is tungstenite's; the callback never fails.
#[allow(clippy::result_large_err)]
async fn connection(
    stream: TcpStream,
    bigo_path: String,
    read_buffer: usize,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let _ = stream.set_nodelay(true);
    let mut path = String::new();
    let config = WebSocketConfig::default().read_buffer_size(read_buffer).write_buffer_size(0);
    let callback = |req: &Request, res: Response| {
        path = req.uri().path().to_string();
        Ok(res)
    };
    let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await?;
    let bigo = path == bigo_path;
    let (mut tx, mut rx) = ws.split();
    if !bigo {
        let hello = Direct::Connected { online_token: &"0".repeat(32), ping_interval: 15, server_time: 0 };
        tx.send(Message::Text(hello.to_json().into())).await?;
    }
    while let Some(msg) = rx.next().await {
        let Message::Text(text) = msg? else { continue };
        if let Some(answer) = if bigo { bigo_answer(&text) } else { client_answer(&text) } {
            tx.send(Message::Text(answer.into())).await?;
        }
    }
    Ok(())
}

/// The broker's own frames (`actors::protocol::client::Direct`): a pong, or an ack.
fn client_answer(text: &str) -> Option<String> {
    let frame: Value = serde_json::from_str(text).ok()?;
    let answer = match frame["action"].as_str()? {
        "ping" => Direct::Pong { server_time: 0 },
        action => Direct::Ack {
            for_action: action,
            error_code: 0,
            error_reason: "",
            detail: AckDetail { last_seq: Some(0), epoch: Some("bare".into()), ..Default::default() },
        },
    };
    Some(answer.to_json())
}

fn bigo_answer(text: &str) -> Option<String> {
    let frame: Value = serde_json::from_str(text).ok()?;
    let (uri, data) = match frame["uri"].as_str()? {
        "platformLogin" => ("platformLoginResp", json!({"code":200,"access_token":"0".repeat(32),"message":""})),
        "dataReception" => {
            let data: Value = match &frame["data"] {
                Value::String(s) => serde_json::from_str(s).ok()?,
                other => other.clone(),
            };
            ("dataReceptionResp", json!({"seqid": data["seqid"], "rescode": 200, "message": ""}))
        }
        _ => return None,
    };
    let answer = json!({"uri": uri, "retry_cnt": frame["retry_cnt"], "send_time": frame["send_time"],
                        "resp_time": 0, "up_cost": 0, "data": data.to_string()});
    Some(answer.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actors::protocol::app_client::BrokerFrame;
    use actors::protocol::bigo_client::{self, Answer};

    #[test]
    fn the_bare_server_answers_what_the_generator_waits_for() {
        let login = bigo_client::login_request("a", "p", "inke", 1);
        let answer = bigo_answer(&login).unwrap();
        match bigo_client::parse_answer(&answer) {
            Ok(Answer::Login(login)) => assert!(login.accepted_token().is_some()),
            other => panic!("{other:?}"),
        }
        let push = bigo_client::data_reception_request(r#"{"seqid":"42"}"#, "t", "inke", 0, 1);
        match bigo_client::parse_answer(&bigo_answer(&push).unwrap()) {
            Ok(Answer::Data(data)) => assert_eq!((data.seqid.as_str(), data.rescode), ("42", 200)),
            other => panic!("{other:?}"),
        }
        let ack = BrokerFrame::parse(client_answer(r#"{"action":"enter_room_report"}"#).unwrap()).unwrap();
        let detail = ack.answer_to("enter_room_report").and_then(Result::ok).expect("an ack");
        assert_eq!((detail.last_seq, detail.epoch.as_deref()), (Some(0), Some("bare")));
        let greeting = Direct::Connected { online_token: "t", ping_interval: 15, server_time: 0 }.to_json();
        assert!(matches!(BrokerFrame::parse(greeting), Ok(BrokerFrame::Connected { .. })));
    }
}
