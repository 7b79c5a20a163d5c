//! Start-up (docs/operating.md, "Start-up"): what the real binary says when it starts (the config file,
//! every address, the demo URL, the store), how it refuses an address it cannot listen on,
//! `token --help`, and what `GET /` shows a visitor.

mod common;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::ops::{free_port, BrokerProcess, TempDir};
use common::{TestBroker, ABBR, ACCOUNT, PASSWORD, SECRET};

/// A config for the binary binding `host:port`, plus `extra` YAML.
fn config_yaml(host: &str, port: u16, extra: &str) -> String {
    format!(
        "server: {{ host: \"{host}\", port: {port}, workers: 1 }}\n\
         bigo: {{ platform_abbr: {ABBR}, accounts: [ {{ account: {ACCOUNT}, password: {PASSWORD} }} ] }}\n\
         auth: {{ jwt_secret: {SECRET} }}\n{extra}"
    )
}

/// Runs the binary on `yaml`, expecting it to stop by itself; answers (exit status, stderr).
async fn run_to_exit(yaml: &str, port: u16) -> (Option<std::process::ExitStatus>, String) {
    let dir = TempDir::new("startup");
    let config = dir.path("config.yaml");
    std::fs::write(&config, yaml).expect("write config");
    let mut broker = BrokerProcess::spawn(dir, &config, &[], port);
    let status = broker.wait_exit(Duration::from_secs(10)).await;
    (status, broker.log_text())
}

#[actix_rt::test]
async fn the_start_up_log_names_the_config_file_every_address_the_demo_and_the_store() {
    let port = free_port();
    let dir = TempDir::new("startup-log");
    let config = dir.path("danmu.yaml");
    std::fs::write(&config, config_yaml("127.0.0.1", port, "demo: { enabled: true }\n")).expect("write config");
    let mut broker = BrokerProcess::start_file(dir, &config, &[("DANMU__ROOM__SEATS", "6")], port).await;
    broker.terminate();
    assert!(broker.wait_exit(Duration::from_secs(10)).await.is_some_and(|s| s.success()));

    let log = broker.log_text();
    let config = std::fs::canonicalize(&config).unwrap_or(config);
    for needle in [
        format!("config file {}, overridden by DANMU__ROOM__SEATS", config.display()),
        format!("listening on 127.0.0.1:{port} (http/ws)"),
        format!("BIGO ingress: ws://127.0.0.1:{port}/bigo/ws"),
        format!(
            "clients: http://127.0.0.1:{port}/iapi/websocket/end_point, WebSocket ws://127.0.0.1:{port}/iapi/websocket"
        ),
        format!("live rooms: http://127.0.0.1:{port}/iapi/rooms"),
        format!("http://127.0.0.1:{port}/healthz, http://127.0.0.1:{port}/metrics"),
        format!("demo page: http://127.0.0.1:{port}/demo"),
        "store: memory".to_string(),
    ] {
        assert!(log.contains(&needle), "{needle:?} missing from the log:\n{log}");
    }
}

#[actix_rt::test]
async fn without_a_config_file_the_log_says_the_defaults_apply() {
    let port = free_port();
    let dir = TempDir::new("startup-none");
    let log_path = dir.path("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_danmu-broker"))
        .current_dir(&dir.0)
        .env("RUST_LOG", "info")
        .env("DANMU__SERVER__PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).expect("log file"))
        .spawn()
        .expect("spawn danmu-broker");
    let addr = ([127, 0, 0, 1], port).into();
    let mut up = false;
    for _ in 0..200 {
        if common::ops::healthz(addr).await == Some(200) {
            up = true;
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(up, "the broker did not come up on the defaults:\n{log}");
    assert!(
        log.contains("no config file (config.yaml not found): built-in defaults, overridden by DANMU__SERVER__PORT"),
        "{log}"
    );
}

#[actix_rt::test]
async fn a_port_in_use_stops_start_up_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let port = taken.local_addr().expect("port").port();
    let (status, log) = run_to_exit(&config_yaml("127.0.0.1", port, ""), port).await;
    assert!(status.is_some_and(|s| !s.success()), "exit status {status:?}:\n{log}");
    assert!(log.contains(&format!("cannot listen on 127.0.0.1:{port}: address already in use")), "{log}");
}

#[actix_rt::test]
async fn a_host_that_is_not_this_machines_stops_start_up_naming_the_address() {
    // 192.0.2.1 (TEST-NET-1) is on no interface here: bind fails at once, no packet is sent.
    let port = free_port();
    let (status, log) = run_to_exit(&config_yaml("192.0.2.1", port, ""), port).await;
    assert!(status.is_some_and(|s| !s.success()), "exit status {status:?}:\n{log}");
    assert!(log.contains(&format!("cannot listen on 192.0.2.1:{port}: address not available")), "{log}");
}

#[actix_rt::test]
async fn a_host_with_a_port_in_it_is_refused_naming_the_key() {
    let port = free_port();
    let (status, log) = run_to_exit(&config_yaml("127.0.0.1:8080", port, ""), port).await;
    assert!(status.is_some_and(|s| !s.success()), "exit status {status:?}:\n{log}");
    assert!(log.contains("config key server.host (in "), "the key and the file it came from: {log}");
    assert!(log.contains("must be an IP address or a host name"), "{log}");
}

#[test]
fn token_help_describes_every_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_danmu-broker")).args(["token", "--help"]).output().expect("run");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let flags: Vec<&str> = help.lines().map(str::trim_start).filter(|l| l.starts_with("--")).collect();
    for flag in ["--config", "--user-id", "--nickname", "--sex", "--avatar-url", "--ttl-s"] {
        let line = flags.iter().find(|l| l.starts_with(flag)).unwrap_or_else(|| panic!("{flag} missing:\n{help}"));
        // `--flag <VALUE>  Description`: something after the placeholder.
        let description = line.split_once('>').map_or("", |(_, rest)| rest.trim());
        assert!(description.len() > 10, "{flag} has no description: {line:?}");
    }
}

#[actix_rt::test]
async fn the_root_names_the_endpoints_or_sends_a_browser_to_the_demo() {
    let broker = TestBroker::start().await;
    let (status, page) = broker.get_text("/").await;
    assert_eq!(status, 200);
    for path in ["/iapi/websocket/end_point", "/iapi/websocket", "/bigo/ws", "/iapi/rooms", "/healthz", "/metrics"] {
        assert!(page.contains(path), "{path} missing from GET /:\n{page}");
    }
    assert!(!page.contains("/demo/token"), "{page}");

    let demo = TestBroker::start_with(|c| c.demo.enabled = true).await;
    let resp = awc::Client::builder().disable_redirects().finish().get(demo.http_url("/")).send().await.expect("GET /");
    assert_eq!(resp.status().as_u16(), 302);
    assert_eq!(resp.headers().get("location").and_then(|v| v.to_str().ok()), Some("/demo"));
}
