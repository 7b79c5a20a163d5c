//! The run loop: the one async task that owns the connection to the broker, the send queue
//! and the counters. It logs in (and logs in again after a lost connection or a 401), pings,
//! sends the pushes when due, reads every answer, and retries as section 1.4 asks of the
//! platform. The connection and its login are [`crate::link`]'s; frames are built and answers
//! read by `actors::protocol::bigo_client`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{IsTerminal, Write};
use std::time::Duration;

use actors::config::BigoConfig;
use actors::protocol::bigo::{URI_DATA_RESP, URI_ERROR};
use actors::protocol::bigo_client::{self, Answer, AnswerError};
use actors::protocol::now_ms;
use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;

use crate::link::{Link, Target};
use crate::{Generator, Options, Push, SimulateError, Summary};

/// docs/protocol.md 1.3: the platform pings every 5 s.
const PING_EVERY: Duration = Duration::from_secs(5);
/// After the end, how long to wait for outstanding acks before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// A push answered 503 is sent again after this long.
const RETRY_503_AFTER: Duration = Duration::from_millis(500);
/// ... at most this many times.
const MAX_503_RETRIES: u32 = 5;
/// A `--retry-pct` re-send follows the ack after this long.
const DUPLICATE_AFTER: Duration = Duration::from_millis(50);
/// Reconnect backoff bounds.
const RECONNECT_MIN: Duration = Duration::from_millis(500);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// A push waiting in the send queue or for its answer.
struct InFlight {
    push: Push,
    /// `retry_cnt` of its next send.
    next_retry_cnt: u32,
    sent_once: bool,
    /// Send it once more after a 200 (`--retry-pct`).
    duplicate: bool,
    retries_503: u32,
}

/// The loop's state: the queue of pushes due at an instant, the pushes waiting for an answer,
/// and the counters.
struct Run {
    opts: Options,
    target: Target,
    generator: Generator,
    summary: Summary,
    started: Instant,
    /// seqid -> push, for every push made and not yet finally answered.
    in_flight: HashMap<String, InFlight>,
    /// (due, order, seqid): pushes to send, earliest first.
    queue: BinaryHeap<Reverse<(Instant, u64, String)>>,
    queue_order: u64,
    /// seqids sent and not yet answered.
    awaiting: HashMap<String, Instant>,
    closing_seqid: Option<String>,
}

impl Run {
    fn enqueue(&mut self, seqid: String, due: Instant) {
        self.queue_order += 1;
        self.queue.push(Reverse((due, self.queue_order, seqid)));
    }

    fn next_due(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((due, _, _))| *due)
    }

    /// Makes the pushes due by now at `--rate` (several per tick at high rates).
    fn generate_due(&mut self, now: Instant) {
        let elapsed = now.duration_since(self.started).as_secs_f64();
        let mut due = (elapsed * self.opts.rate).floor() as u64 + 1;
        if let Some(count) = self.opts.count {
            due = due.min(count);
        }
        while self.summary.pushes < due {
            let push = self.generator.push(now_ms());
            self.summary.pushes += 1;
            if self.generator.chance(self.opts.drop_pct) {
                self.summary.dropped += 1;
                self.summary.items_dropped.add(push.items);
                continue;
            }
            let duplicate = self.generator.chance(self.opts.retry_pct);
            let delay = self.generator.delay(self.opts.shuffle_ms);
            let seqid = push.seqid.clone();
            self.in_flight.insert(
                seqid.clone(),
                InFlight { push, next_retry_cnt: 0, sent_once: false, duplicate, retries_503: 0 },
            );
            self.enqueue(seqid, now + delay);
        }
    }

    fn generation_done(&self, now: Instant) -> bool {
        let by_count = self.opts.count.is_some_and(|c| self.summary.pushes >= c);
        let by_time = self.opts.duration.is_some_and(|d| now.duration_since(self.started).as_secs_f64() >= d);
        by_count || by_time
    }

    /// Writes every push due by `now`; answers false when the connection failed.
    async fn send_due(&mut self, link: &mut Link, now: Instant) -> bool {
        let mut wrote = false;
        while let Some(Reverse((due, _, _))) = self.queue.peek() {
            if *due > now {
                break;
            }
            let Some(Reverse((_, _, seqid))) = self.queue.pop() else { break };
            let Some(entry) = self.in_flight.get_mut(&seqid) else { continue };
            let text = bigo_client::data_reception_request(
                &entry.push.data,
                &link.access_token,
                &self.target.platform_abbr,
                entry.next_retry_cnt,
                now_ms(),
            );
            if entry.next_retry_cnt > 0 {
                self.summary.retries += 1;
            }
            if !entry.sent_once {
                entry.sent_once = true;
                // The status 3 push is not one of the `pushes` made at `--rate`.
                if self.closing_seqid.as_deref() != Some(seqid.as_str()) {
                    self.summary.pushes_sent += 1;
                    self.summary.items.add(entry.push.items);
                }
            }
            entry.next_retry_cnt += 1;
            self.summary.frames_sent += 1;
            self.awaiting.insert(seqid, now);
            // Feed now, flush once for the whole batch.
            if link.sink.feed(Message::Text(text.into())).await.is_err() {
                return false;
            }
            wrote = true;
        }
        !wrote || link.sink.flush().await.is_ok()
    }

    /// Handles one text frame from the broker; answers true when it asks to log in again.
    fn on_text(&mut self, text: &str, now: Instant) -> bool {
        let answer = match bigo_client::parse_answer(text) {
            Ok(Answer::Data(answer)) => answer,
            Ok(Answer::Error(error)) => {
                *self.summary.rescodes.entry("errorResp".into()).or_default() += 1;
                eprintln!("\nsimulate: errorResp {}: {}", error.code, error.message);
                return false;
            }
            Err(AnswerError::BadData { uri }) if uri == URI_ERROR => {
                *self.summary.rescodes.entry("errorResp".into()).or_default() += 1;
                eprintln!("\nsimulate: errorResp 0: ");
                return false;
            }
            Ok(Answer::Login(_) | Answer::Other(_)) => return false,
            Err(AnswerError::NotAFrame) => {
                eprintln!("\nsimulate: a frame that is not JSON: {text}");
                return false;
            }
            Err(AnswerError::BadData { uri }) => {
                if uri == URI_DATA_RESP {
                    eprintln!("\nsimulate: unreadable dataReceptionResp: {text}");
                }
                return false;
            }
        };
        self.summary.acked += 1;
        *self.summary.rescodes.entry(answer.rescode.to_string()).or_default() += 1;
        self.awaiting.remove(&answer.seqid);
        let Some(entry) = self.in_flight.get_mut(&answer.seqid) else { return false };
        match answer.rescode {
            200 => {
                if entry.duplicate {
                    entry.duplicate = false;
                    let seqid = answer.seqid.clone();
                    self.enqueue(seqid, now + DUPLICATE_AFTER);
                } else {
                    if self.closing_seqid.as_deref() == Some(answer.seqid.as_str()) {
                        self.summary.closed = true;
                    }
                    self.in_flight.remove(&answer.seqid);
                }
            }
            503 if entry.retries_503 < MAX_503_RETRIES => {
                entry.retries_503 += 1;
                let seqid = answer.seqid.clone();
                self.enqueue(seqid, now + RETRY_503_AFTER);
            }
            401 => {
                // Section 1.4: "log in again": the link is re-opened with a new login, and this
                // push waits in the queue for it.
                eprintln!("\nsimulate: seqid {} answered 401 ({}): logging in again", answer.seqid, answer.message);
                self.enqueue(answer.seqid, now);
                return true;
            }
            code => {
                eprintln!("\nsimulate: seqid {} answered {code}: {}", answer.seqid, answer.message);
                self.in_flight.remove(&answer.seqid);
            }
        }
        false
    }

    /// After a lost connection: everything sent and unanswered goes out again (same seqid).
    fn requeue_unanswered(&mut self, now: Instant) {
        let seqids: Vec<String> = self.awaiting.drain().map(|(s, _)| s).collect();
        for seqid in seqids {
            if self.in_flight.contains_key(&seqid) {
                self.enqueue(seqid, now);
            }
        }
    }

    fn progress(&mut self, tty: bool) {
        self.summary.elapsed_s = self.started.elapsed().as_secs_f64();
        self.summary.unacked = self.in_flight.len() as u64;
        let line = self.summary.progress_line();
        let mut err = std::io::stderr().lock();
        // On a terminal the line rewrites itself; in a log it is one line per second.
        let _ = if tty { write!(err, "\r{line}\x1b[K") } else { writeln!(err, "{line}") };
        let _ = err.flush();
    }
}

/// Runs the simulator until `--duration`/`--count` or Ctrl-C, then waits for outstanding acks
/// (up to 5 s), and answers the summary. Fails when the first connection or a login fails.
///
/// It logs in with the first of `bigo.accounts` and signs with `bigo.platform_abbr`, and
/// connects to `--url`, else to `default_url` (the ingress the configuration names: the
/// binary builds it from `server` and `bigo.path`).
pub async fn run(bigo: &BigoConfig, default_url: &str, opts: Options) -> Result<Summary, SimulateError> {
    opts.check()?;
    let target = Target::from_config(bigo, opts.url.clone().unwrap_or_else(|| default_url.to_string()))?;
    let mut link = Some(target.open().await?);
    let tty = std::io::stderr().is_terminal();
    if !opts.quiet {
        eprintln!(
            "simulate: logged in to {} as {}; pushing game_sess {} at {}/s{}",
            target.url,
            target.account,
            opts.game_sess,
            opts.rate,
            if opts.duration.is_none() && opts.count.is_none() { " (Ctrl-C to stop)" } else { "" }
        );
    }
    let started = Instant::now();
    let mut run = Run {
        generator: Generator::new(&opts, rand::random()),
        summary: Summary { game_sess: opts.game_sess.clone(), url: target.url.clone(), ..Default::default() },
        opts,
        target,
        started,
        in_flight: HashMap::new(),
        queue: BinaryHeap::new(),
        queue_order: 0,
        awaiting: HashMap::new(),
        closing_seqid: None,
    };

    // Generate in ticks of at most 20 ms; at high rates one tick makes several pushes.
    let tick = Duration::from_secs_f64((1.0 / run.opts.rate).min(0.02));
    let mut gen_tick = tokio::time::interval(tick);
    gen_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut ping = tokio::time::interval_at(started + PING_EVERY, PING_EVERY);
    let mut progress = tokio::time::interval_at(started + Duration::from_secs(1), Duration::from_secs(1));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);

    let mut generating = true;
    let mut drain_deadline: Option<Instant> = None;
    let mut reconnect_at: Option<Instant> = None;
    let mut backoff = RECONNECT_MIN;
    let far = || Instant::now() + Duration::from_secs(3600);

    loop {
        let now = Instant::now();
        if generating && run.generation_done(now) {
            generating = false;
        }
        if !generating && drain_deadline.is_none() {
            drain_deadline = Some(now + DRAIN_TIMEOUT);
            if run.opts.close {
                let push = run.generator.closing_push(now_ms());
                let seqid = push.seqid.clone();
                run.closing_seqid = Some(seqid.clone());
                run.in_flight.insert(
                    seqid.clone(),
                    InFlight { push, next_retry_cnt: 0, sent_once: false, duplicate: false, retries_503: 0 },
                );
                // After every held push (`--shuffle-ms`): status 3 is the last word.
                let after = run.queue.iter().map(|Reverse((due, _, _))| *due).max().unwrap_or(now).max(now);
                run.enqueue(seqid, after);
            }
        }
        if !generating && run.in_flight.is_empty() {
            break;
        }
        if drain_deadline.is_some_and(|d| now >= d) {
            break;
        }

        let send_at = if link.is_some() { run.next_due().unwrap_or_else(far) } else { far() };
        let lost = tokio::select! {
            msg = async {
                match link.as_mut() {
                    Some(l) => l.stream.next().await,
                    None => std::future::pending().await,
                }
            } => match msg {
                Some(Ok(Message::Text(text))) => run.on_text(&text, Instant::now()),
                Some(Ok(Message::Close(close))) => {
                    eprintln!("\nsimulate: the broker closed the connection: {close:?}");
                    true
                }
                Some(Ok(_)) => false,
                Some(Err(e)) => {
                    eprintln!("\nsimulate: connection error: {e}");
                    true
                }
                None => true,
            },
            _ = gen_tick.tick(), if generating => {
                run.generate_due(Instant::now());
                false
            }
            _ = tokio::time::sleep_until(send_at), if link.is_some() && !run.queue.is_empty() => {
                match link.as_mut() {
                    Some(l) => !run.send_due(l, Instant::now()).await,
                    None => false,
                }
            }
            _ = ping.tick() => {
                match link.as_mut() {
                    Some(l) => l.sink.send(Message::Ping(now_ms().to_string().into_bytes().into())).await.is_err(),
                    None => false,
                }
            }
            _ = progress.tick(), if !run.opts.quiet => {
                run.progress(tty);
                false
            }
            _ = tokio::time::sleep_until(reconnect_at.unwrap_or_else(far)), if link.is_none() => {
                match run.target.open().await {
                    Ok(l) => {
                        run.summary.reconnects += 1;
                        eprintln!("\nsimulate: reconnected and logged in again");
                        link = Some(l);
                        reconnect_at = None;
                        backoff = RECONNECT_MIN;
                        run.requeue_unanswered(Instant::now());
                    }
                    Err(e @ SimulateError::LoginRefused(_)) => return Err(e),
                    Err(e) => {
                        eprintln!("\nsimulate: {e}; trying again in {} ms", backoff.as_millis());
                        reconnect_at = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(RECONNECT_MAX);
                    }
                }
                false
            }
            _ = &mut ctrl_c, if generating => {
                generating = false;
                false
            }
        };
        if lost && link.is_some() {
            // Dropping the link closes the socket; pushes sent on it and unanswered go again.
            link = None;
            run.requeue_unanswered(Instant::now());
            reconnect_at = Some(Instant::now() + backoff);
        }
    }

    if let Some(mut l) = link {
        let _ = l.sink.send(Message::Close(None)).await;
    }
    run.summary.elapsed_s = run.started.elapsed().as_secs_f64();
    run.summary.unacked = run.in_flight.len() as u64;
    if !run.opts.quiet {
        run.progress(tty);
        eprintln!();
    }
    Ok(run.summary)
}
