//! In-process TLS (`server.tls`): BIGO and app clients over `wss://` with a certificate made
//! in the test; a bad certificate or key path stops start-up naming the key.

mod common;

use std::sync::Arc;

use common::ops::{app_client_at, bigo_at, free_port, self_signed, trusting, TempDir};
use common::*;
use danmu_broker::config::TlsConfig;
use tokio_tungstenite::Connector;

async fn tls_broker(dir: &TempDir) -> (TestBroker, Arc<rustls::ClientConfig>) {
    let (cert, key, der) = self_signed(&dir.0);
    let tls = TlsConfig { cert: cert.display().to_string(), key: key.display().to_string() };
    let broker = TestBroker::start_with(move |c| c.server.tls = Some(tls)).await;
    (broker, trusting(&der))
}

#[actix_rt::test]
async fn bigo_logs_in_and_pushes_over_wss_and_a_wss_client_gets_the_danmu() {
    let dir = TempDir::new("tls");
    let (broker, client_tls) = tls_broker(&dir).await;
    let base = format!("wss://127.0.0.1:{}", broker.addr.port());

    // end_point, over https, names the wss:// URL.
    let https = awc::Client::builder().connector(awc::Connector::new().rustls_0_23(client_tls.clone())).finish();
    let url = format!(
        "https://127.0.0.1:{}/iapi/websocket/end_point?{}",
        broker.addr.port(),
        common::ops::client_query("tls-viewer", "sid-1")
    );
    let mut resp = https.get(url).send().await.expect("GET end_point over https");
    let answer: serde_json::Value = resp.json().await.expect("end_point JSON");
    assert_eq!(answer["end_point"], format!("{base}/iapi/websocket"), "{answer}");

    let mut client = app_client_at(&base, "tls-viewer", Some(Connector::Rustls(client_tls.clone()))).await;
    client.enter("gs-tls").await;
    let mut bigo = bigo_at(&base, Some(Connector::Rustls(client_tls))).await;
    let login = bigo.login(ACCOUNT, PASSWORD, now_ms()).await;
    assert_eq!(login["code"], 200, "{login}");
    let data = bigo.push(&push_data("s1", "gs-tls", 2, vec![msg_item("1", now_ms(), "over tls")])).await;
    assert_eq!(data["rescode"], 200);
    let events = client.events("send_topic_msg", 1).await;
    assert_eq!(events[0]["content"], "over tls");
}

#[actix_rt::test]
async fn plain_ws_to_the_tls_port_is_not_served() {
    let dir = TempDir::new("tls-plain");
    let (broker, _) = tls_broker(&dir).await;
    let url = format!("ws://127.0.0.1:{}{}", broker.addr.port(), broker.config.bigo.path);
    let attempt = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url)).await;
    assert!(attempt.expect("the attempt ends").is_err());
}

#[actix_rt::test]
async fn a_missing_certificate_or_key_file_stops_start_up_naming_the_key() {
    let dir = TempDir::new("tls-bad");
    let (cert, key, _) = self_signed(&dir.0);
    let start = |tls: TlsConfig| {
        let mut config = test_config();
        config.server.tls = Some(tls);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        danmu_broker::start_on(config, listener).err().map(|e| e.to_string())
    };
    let missing = dir.path("missing.pem").display().to_string();
    let err = start(TlsConfig { cert: missing.clone(), key: key.display().to_string() }).expect("start-up fails");
    assert!(err.contains("server.tls.cert") && err.contains(&missing), "{err}");
    let err = start(TlsConfig { cert: cert.display().to_string(), key: missing.clone() }).expect("start-up fails");
    assert!(err.contains("server.tls.key") && err.contains(&missing), "{err}");
    // A certificate where the key should be: no private key in the file.
    let err = start(TlsConfig { cert: cert.display().to_string(), key: cert.display().to_string() }).expect("fails");
    assert!(err.contains("server.tls.key"), "{err}");

    // The binary says so and exits non-zero.
    let config = dir.path("config.yaml");
    let yaml = format!("server: {{ port: {}, tls: {{ cert: {missing}, key: {} }} }}\n", free_port(), key.display());
    std::fs::write(&config, yaml).expect("write config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_danmu-broker"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run danmu-broker");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("config key server.tls.cert"), "{stderr}");
}
