//! `end_point` (docs/protocol.md 2.1) names a URL the asking client can reach: with
//! `server.public_url` unset it is derived from the request (Host, X-Forwarded-Proto) or the
//! listening address, so a broker moved to another port answers that port. Runs the real
//! binary on the shipped `config.yaml`, the port overridden from the environment.

mod common;

use std::path::PathBuf;

use common::ops::{free_port, BrokerProcess, TempDir};
use common::AppClient;
use serde_json::Value;

/// The repository's own `config.yaml`, as `cargo run` would read it.
fn shipped_config() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config.yaml")
}

/// The query of a client upgrade signed with the shipped `auth.jwt_secret`.
fn query(user_id: &str) -> String {
    let config = danmu_broker::config::load(&shipped_config(), true).expect("the shipped config.yaml loads");
    common::client_query(&config.auth.jwt_secret, user_id, "sid-1")
}

async fn end_point(port: u16, headers: &[(&str, String)], query: &str) -> String {
    let mut request = awc::Client::new().get(format!("http://127.0.0.1:{port}/iapi/websocket/end_point?{query}"));
    for (name, value) in headers {
        request = request.insert_header((*name, value.as_str()));
    }
    let answer: Value = request.send().await.expect("GET end_point").json().await.expect("end_point JSON");
    assert_eq!(answer["error_code"], 0, "{answer}");
    answer["end_point"].as_str().expect("end_point").to_string()
}

async fn connect(end_point: &str, query: &str) -> AppClient {
    let (ws, _) = tokio_tungstenite::connect_async(format!("{end_point}?{query}")).await.expect("connect end_point");
    AppClient::connected(ws, "", "sid-1").await
}

#[actix_rt::test]
async fn with_public_url_unset_end_point_names_the_port_the_broker_runs_on_and_that_url_takes_clients() {
    let port = free_port();
    assert_ne!(port, 8080);
    let port_text = port.to_string();
    let env = [("DANMU__SERVER__PORT", port_text.as_str())];
    let broker = BrokerProcess::start_file(TempDir::new("end-point"), &shipped_config(), &env, port).await;
    let q = query("moved-port");

    let url = end_point(port, &[], &q).await;
    assert_eq!(url, format!("ws://127.0.0.1:{port}/iapi/websocket"), "log:\n{}", broker.log_text());
    connect(&url, &q).await;

    // The name the client used is the name it is sent back to.
    let url = end_point(port, &[("Host", format!("localhost:{port}"))], &q).await;
    assert_eq!(url, format!("ws://localhost:{port}/iapi/websocket"));
    connect(&url, &q).await;

    // Behind a TLS terminator: wss, the terminator's name.
    let headers = [("Host", "danmu.example.com".to_string()), ("X-Forwarded-Proto", "https".to_string())];
    assert_eq!(end_point(port, &headers, &q).await, "wss://danmu.example.com/iapi/websocket");

    let log = broker.log_text();
    assert!(log.contains(&format!("without a Host ws://127.0.0.1:{port}/iapi/websocket")), "{log}");
}
