//! Smoke runs of danmu-bench against a real broker started in-process on an ephemeral port
//! (`danmu_broker::start_on` inside its own actix system thread). They keep the generator
//! working in CI: a few seconds, a handful of clients, a trivial rate, and the assertion that
//! every pushed event reached every client once and in order. No timing assertions.

use std::net::{SocketAddr, TcpListener};

use clap::Parser;
use danmu_bench::Options;

const SECRET: &str = "smoke-jwt-secret";
const PASSWORD: &str = "smoke-password";
const REORDER_WINDOW_MS: u64 = 50;

/// Starts a broker on 127.0.0.1:0 in a background thread; answers its address.
fn start_broker() -> SocketAddr {
    start_broker_with(|_| {})
}

fn start_broker_with(adjust: impl FnOnce(&mut danmu_broker::config::Config)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let addr = listener.local_addr().expect("local addr");
    let mut config = danmu_broker::config::Config::default();
    config.server.public_url = String::new();
    config.server.workers = 1;
    config.bigo.accounts = vec![actors::config::BigoAccount { account: "bigoUser1".into(), password: PASSWORD.into() }];
    config.auth.jwt_secret = SECRET.into();
    config.room.reorder_window_ms = REORDER_WINDOW_MS;
    adjust(&mut config);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let broker = danmu_broker::start_on(config, listener).expect("start the broker");
            ready_tx.send(()).expect("signal ready");
            let _ = broker.server.await;
        });
    });
    ready_rx.recv().expect("broker started");
    addr
}

fn options(addr: SocketAddr, extra: &[&str]) -> Options {
    let url = format!("ws://{addr}");
    let window = REORDER_WINDOW_MS.to_string();
    let pid = std::process::id().to_string();
    let mut args = vec![
        "danmu-bench",
        "--url",
        &url,
        "--jwt-secret",
        SECRET,
        "--password",
        PASSWORD,
        "--reorder-window-ms",
        &window,
        "--broker-pid",
        &pid,
        "--duration-s",
        "2",
        "--warmup-s",
        "0.5",
        "--drain-ms",
        "2000",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    Options::parse_from(args)
}

#[test]
fn every_client_gets_every_pushed_event_once_and_in_order() {
    let addr = start_broker();
    let outcome =
        danmu_bench::run(&options(addr, &["--clients", "20", "--rooms", "2", "--rate", "40"])).expect("bench runs");
    let step = &outcome.steps[0];
    assert_eq!(step.clients_joined, 20);
    assert!(step.expected > 0, "some pushes were acknowledged: {step:?}");
    assert_eq!(step.delivered, step.expected, "{step:?}");
    assert_eq!((step.lost, step.duplicated, step.out_of_order, step.disconnected), (0, 0, 0, 0), "{step:?}");
    assert_eq!(outcome.tail_lost, 0);
    assert!(step.broker_cpu_s > 0.0, "broker CPU is read from /proc: {step:?}");
}

#[test]
fn batch_clients_and_two_pushers_lose_nothing() {
    let addr = start_broker();
    let args =
        ["--clients", "12", "--rooms", "3", "--rate", "30", "--batch", "--pushers", "2", "--items-per-push", "2"];
    let outcome = danmu_bench::run(&options(addr, &args)).expect("bench runs");
    let step = &outcome.steps[0];
    assert!(step.expected > 0, "{step:?}");
    assert_eq!(step.delivered, step.expected, "{step:?}");
    assert_eq!((step.lost, step.duplicated, step.out_of_order), (0, 0, 0), "{step:?}");
    assert_eq!(outcome.tail_lost, 0);
}

#[test]
fn closed_loop_ingest_gets_every_push_acknowledged() {
    let addr = start_broker();
    let args = ["--clients", "0", "--rooms", "2", "--rate", "0", "--items-per-push", "5", "--window", "4"];
    let outcome = danmu_bench::run(&options(addr, &args)).expect("bench runs");
    let step = &outcome.steps[0];
    assert!(step.pushes_per_s > 0.0, "{step:?}");
    assert_eq!(step.refused, 0, "{step:?}");
}

#[test]
fn a_burst_reaches_every_reader_in_order_and_closes_the_members_that_read_nothing() {
    let addr = start_broker_with(|c| c.client.write_timeout_ms = 500);
    // 3.3 MB: more than a stalled loopback socket's kernel buffers take (about 1.3 MB).
    let args = ["--burst-items", "3000", "--clients", "6", "--stalled", "2", "--items-per-push", "50"];
    let mut opts = options(addr, &args);
    opts.write_timeout_ms = 500;
    let outcome = danmu_bench::run(&opts).expect("bench runs");
    let r = outcome.burst.expect("a burst report");
    assert!(outcome.steps.is_empty());
    assert_eq!((r.readers, r.stalled, r.pushes, r.acked, r.refused), (4, 2, 60, 60, 0), "{r:?}");
    assert_eq!((r.readers_complete, r.readers_cut, r.lost, r.misordered), (4, 0, 0, 0), "{r:?}");
    assert!(r.burst_bytes_measured && r.burst_bytes > 3_000_000, "{r:?}");
    assert_eq!(r.slow_closed, 2, "{r:?}");
    assert!(r.slow_closed_ms > 0.0 && r.stalled_gone_ms > 0.0, "{r:?}");
    assert_eq!(r.stalled_saw_1013 + r.stalled_saw_end, 2, "{r:?}");
    assert!(r.rss_before_kb > 0 && r.rss_peak_kb >= r.rss_before_kb, "{r:?}");
}

#[test]
fn deflating_clients_under_the_simulators_mix_get_every_item_once_and_in_order() {
    let addr = start_broker();
    let args = [
        "--clients",
        "10",
        "--rooms",
        "1",
        "--rate",
        "50",
        "--batch",
        "--realistic",
        "--items-per-push",
        "3",
        "--deflate",
    ];
    let outcome = danmu_bench::run(&options(addr, &args)).expect("bench runs");
    let step = &outcome.steps[0];
    assert!(step.deflate && step.expected > 0, "{step:?}");
    assert_eq!(step.delivered, step.expected, "likes and gifts count too: {step:?}");
    assert_eq!((step.lost, step.duplicated, step.out_of_order, step.disconnected), (0, 0, 0, 0), "{step:?}");
    assert!(step.wire_bytes_per_event > 0.0 && step.inflate_ns_per_event > 0.0, "measured: {step:?}");
    assert_eq!(outcome.tail_lost, 0);
}
