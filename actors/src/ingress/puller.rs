//! `Puller`: pull compensation for one game session (docs/protocol.md 1.5).
//!
//! BIGO's pushes can be lost, so while a `game_sess` is active its puller also polls
//! `POST {bigo.api_base}/broom/pull_data` and hands what it finds to the session's room through
//! the same path as a push (`crate::ingress::ingest`, with an empty seqid): the room drops every item it
//! has seen (by `data_seq`), so an item both pushed and pulled reaches clients once.
//!
//! Who talks to it: the registry starts one per `game_sess` the first time a push for it is
//! read (when `bigo.pull.enabled`), and forwards every later push's anchors and status as
//! [`GameSessSeen`], and route changes as [`RouteChanged`]. The puller tells whoever started
//! it when it stops ([`PullerStopped`], through [`PullerLinks`]).
//!
//! Its life: a pull every `bigo.pull.interval_ms`; a full batch for some anchor means more are
//! waiting, so the next pull follows after [`MIN_SPACING`] only. Calls are never closer than
//! that, which keeps within BIGO's 10 calls/s per anchor. A failed call (HTTP error, timeout,
//! non-200 status, unreadable answer, `rescode` other than 200) is logged, counted in
//! `danmu_pull_failures_total` and retried after a doubling back-off capped at
//! [`MAX_BACKOFF_STEPS`] doublings of the interval. After status 3 it pulls once more right away
//! (retrying that final pull up to [`FINAL_ATTEMPTS`] times) and stops; without status 3 it
//! stops when no push came for [`idle_stop`]. Pushes never wait for it: it runs on its own
//! arbiter slot and talks to rooms only by messages.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use log::{debug, info, warn};

use crate::config::BigoConfig;
use crate::ingress::ingest::{deliver, RouteChanged, RouteGameSess};
use crate::metrics::Metrics;
use crate::protocol::bigo::DanmuItem;
use crate::protocol::pull::{PullRequest, PullResponse, PULL_PATH};
use crate::protocol::{clock, now_ms, sign};
use crate::room::{IngestOutcome, Push, RoomHandle};

/// The closest two calls of one puller may be: BIGO allows 10 calls/s per anchor.
pub const MIN_SPACING: Duration = Duration::from_millis(100);
/// A failing API is retried after interval x 2^failures, at most interval x 2^this.
pub const MAX_BACKOFF_STEPS: u32 = 4;
/// Attempts at the final pull after status 3 before giving up.
pub const FINAL_ATTEMPTS: u32 = 3;
/// The largest answer body read.
const MAX_BODY: usize = 8 << 20;

/// A puller with no push for this long stops: the session is over, or gone quiet (a new push
/// starts a new puller). At least ten minutes, or sixty intervals.
pub fn idle_stop(interval: Duration) -> Duration {
    (interval * 60).max(Duration::from_secs(600))
}

/// The request `timestamp` of a puller whose first push was stamped `push_ms`: one interval
/// before it. A stamp later than now, or no time at all, would ask BIGO for items after a time
/// that never comes, and pull compensation would find nothing for the rest of the session:
/// the puller then counts from now.
pub fn pull_since(push_ms: i64, now_ms: i64, interval_ms: u64) -> i64 {
    let stamped = clock::plausible(push_ms).unwrap_or(now_ms).min(now_ms);
    stamped.saturating_sub(i64::try_from(interval_ms).unwrap_or(i64::MAX))
}

/// A push for the puller's `game_sess` was read: its anchors, its time, and whether it carried
/// status 3 (the live room closed).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct GameSessSeen {
    pub game_sess: String,
    pub game_id: String,
    pub openids: Vec<String>,
    pub timestamp: i64,
    pub closed: bool,
}

/// A puller stopped; whoever started it forgets it unless a newer one already took its place.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PullerStopped {
    pub game_sess: String,
    pub addr: Addr<Puller>,
}

/// Where a puller's outside world is: who routes its batches, and who hears that it stopped.
pub struct PullerLinks {
    pub route: Recipient<RouteGameSess>,
    pub stopped: Recipient<PullerStopped>,
}

/// When the next call is due, from how the last one went. Plain logic, unit-tested below.
#[derive(Debug, Clone)]
pub struct PullSchedule {
    interval: Duration,
    failures: u32,
}

impl PullSchedule {
    pub fn new(interval: Duration) -> Self {
        Self { interval: interval.max(MIN_SPACING), failures: 0 }
    }

    /// The wait after a successful call; `more_waiting` when an anchor's batch came back full.
    pub fn after_success(&mut self, more_waiting: bool) -> Duration {
        self.failures = 0;
        if more_waiting {
            MIN_SPACING
        } else {
            self.interval
        }
    }

    /// The wait after a failed call: the interval doubled per failure in a row, capped.
    pub fn after_failure(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.interval * 2u32.pow(self.failures.min(MAX_BACKOFF_STEPS))
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// Why a call failed, for the log line.
#[derive(Debug, thiserror::Error)]
enum PullError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Request(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("answer unreadable: {0}")]
    Body(String),
    #[error("rescode {rescode}: {messge}")]
    Rescode { rescode: i64, messge: String },
}

/// What one turn of the loop did.
enum Turn {
    /// Pulled (and the room took what was new).
    Pulled { new_items: usize, more_waiting: bool, context: String },
    /// The call failed.
    Failed(PullError),
    /// The call worked but the room could not take the items now; they are kept for next time.
    RoomBusy { items: Vec<DanmuItem>, context: String },
    /// Kept items were delivered.
    Delivered { new_items: usize },
}

pub struct Puller {
    game_sess: String,
    game_id: String,
    config: Arc<BigoConfig>,
    links: PullerLinks,
    /// The room the batches went to last (dropped when the route changes).
    room: Option<RoomHandle>,
    metrics: Arc<Metrics>,
    /// Built in `started`: awc's client is not `Send` and must live on this actor's thread.
    client: Option<awc::Client>,
    /// The anchors seen in this session's pushes (`game_users`), sorted for stable bodies.
    game_users: BTreeSet<String>,
    /// The request `timestamp`: one interval before the first push this puller saw, so that a
    /// puller started again after an idle stop does not fetch the whole session anew.
    since: i64,
    context: String,
    schedule: PullSchedule,
    /// Pulled items a full room could not take yet; delivered before the next call.
    kept: Option<Vec<DanmuItem>>,
    /// Status 3 seen: one final pull, then stop.
    closed: bool,
    /// How many calls had started when status 3 came: only a call started after it is final.
    calls_at_close: u64,
    final_attempts: u32,
    last_push: Instant,
    last_call: Option<Instant>,
    timer: Option<SpawnHandle>,
    busy: bool,
    calls: u64,
}

impl Puller {
    pub fn new(seen: &GameSessSeen, config: Arc<BigoConfig>, links: PullerLinks, metrics: Arc<Metrics>) -> Self {
        let interval = Duration::from_millis(config.pull.interval_ms);
        Self {
            game_sess: seen.game_sess.clone(),
            game_id: seen.game_id.clone(),
            since: pull_since(seen.timestamp, now_ms(), config.pull.interval_ms),
            config,
            links,
            room: None,
            metrics,
            client: None,
            game_users: seen.openids.iter().cloned().collect(),
            context: String::new(),
            schedule: PullSchedule::new(interval),
            kept: None,
            closed: seen.closed,
            calls_at_close: 0,
            final_attempts: 0,
            last_push: Instant::now(),
            last_call: None,
            timer: None,
            busy: false,
            calls: 0,
        }
    }

    /// Runs the next turn after `wait` (and never sooner than [`MIN_SPACING`] after the last
    /// call), replacing any turn already scheduled.
    fn schedule(&mut self, wait: Duration, ctx: &mut Context<Self>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        let spacing = self.last_call.map_or(Duration::ZERO, |t| MIN_SPACING.saturating_sub(t.elapsed()));
        self.timer = Some(ctx.run_later(wait.max(spacing), |act, ctx| {
            act.timer = None;
            act.turn(ctx);
        }));
    }

    fn turn(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        if !self.closed && self.last_push.elapsed() >= idle_stop(self.schedule.interval) {
            info!("pull game_sess {}: no push for {:?}, stopping", self.game_sess, self.last_push.elapsed());
            return ctx.stop();
        }
        let Some(client) = self.client.clone() else { return ctx.stop() };
        self.busy = true;
        let (route, room, game_sess) = (self.links.route.clone(), self.room.clone(), self.game_sess.clone());
        if let Some(items) = self.kept.take() {
            let fut = async move {
                let (room, outcome) = deliver(route, room, pulled(&game_sess, items.clone())).await;
                let turn = match outcome {
                    Some(IngestOutcome::Accepted { new_items }) => Turn::Delivered { new_items },
                    _ => Turn::RoomBusy { items, context: String::new() },
                };
                (room, turn)
            };
            ctx.spawn(fut.into_actor(self).map(|(room, turn), act, ctx| {
                act.room = room;
                act.after(turn, ctx)
            }));
            return;
        }
        self.calls += 1;
        self.last_call = Some(Instant::now());
        let seqid = format!("{}-{}", sign::random_token(), self.calls);
        let game_users: Vec<String> = self.game_users.iter().cloned().collect();
        let body = serde_json::to_vec(&PullRequest {
            seqid: &seqid,
            game_id: &self.game_id,
            game_sess: &self.game_sess,
            game_users: &game_users,
            timestamp: self.since,
            batch: self.config.pull.batch,
            context: &self.context,
        })
        .unwrap_or_default();
        let url = format!("{}{PULL_PATH}", self.config.api_base.trim_end_matches('/'));
        let token = self.config.api_token.clone();
        let timeout = Duration::from_millis(self.config.pull.timeout_ms);
        let batch = self.config.pull.batch as usize;
        debug!("pull game_sess {} seqid {seqid}: calling with context {:?}", self.game_sess, self.context);
        let fut = async move {
            let answer = match tokio::time::timeout(timeout, call(&client, &url, &token, body)).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(e)) => return (seqid, room, Turn::Failed(e)),
                Err(_) => return (seqid, room, Turn::Failed(PullError::Timeout(timeout))),
            };
            let more_waiting = answer.fullest_anchor() >= batch;
            let items = answer.items(now_ms());
            if items.is_empty() {
                return (seqid, room, Turn::Pulled { new_items: 0, more_waiting, context: answer.context });
            }
            let (room, outcome) = deliver(route, room, pulled(&game_sess, items.clone())).await;
            let turn = match outcome {
                Some(IngestOutcome::Accepted { new_items }) => {
                    Turn::Pulled { new_items, more_waiting, context: answer.context }
                }
                _ => Turn::RoomBusy { items, context: answer.context },
            };
            (seqid, room, turn)
        };
        ctx.spawn(fut.into_actor(self).map(|(seqid, room, turn), act, ctx| {
            act.room = room;
            if let Turn::Failed(e) = &turn {
                act.metrics.pull_failures.inc();
                warn!(
                    "pull game_sess {} seqid {seqid}: failed ({} in a row): {e}",
                    act.game_sess,
                    act.schedule.failures() + 1
                );
            }
            act.after(turn, ctx)
        }));
    }

    /// Books the outcome of a turn and schedules the next one (or stops).
    fn after(&mut self, turn: Turn, ctx: &mut Context<Self>) {
        self.busy = false;
        let wait = match turn {
            Turn::Pulled { new_items, more_waiting, context } => {
                self.count_new(new_items);
                self.carry(context);
                if self.closed && self.calls > self.calls_at_close && !more_waiting {
                    info!("pull game_sess {}: final pull after status 3 done, stopping", self.game_sess);
                    return ctx.stop();
                }
                self.schedule.after_success(more_waiting)
            }
            Turn::Delivered { new_items } => {
                self.count_new(new_items);
                Duration::ZERO
            }
            Turn::RoomBusy { items, context } => {
                self.carry(context);
                warn!(
                    "pull game_sess {}: the room cannot take {} pulled items now, keeping them",
                    self.game_sess,
                    items.len()
                );
                self.kept = Some(items);
                self.schedule.after_failure()
            }
            Turn::Failed(_) => {
                let wait = self.schedule.after_failure();
                if self.closed && self.calls > self.calls_at_close {
                    self.final_attempts += 1;
                    if self.final_attempts >= FINAL_ATTEMPTS {
                        warn!(
                            "pull game_sess {}: final pull failed {} times, stopping without it",
                            self.game_sess, self.final_attempts
                        );
                        return ctx.stop();
                    }
                }
                wait
            }
        };
        // After status 3 the final pull does not wait out the interval.
        let wait = if self.closed && self.kept.is_none() { wait.min(MIN_SPACING) } else { wait };
        self.schedule(wait, ctx);
    }

    fn count_new(&mut self, new_items: usize) {
        if new_items > 0 {
            self.metrics.pulled_items.inc_by(new_items as u64);
            info!("pull game_sess {}: {new_items} items the pushes had missed", self.game_sess);
        }
    }

    /// BIGO omits an empty `context`; keep the last one then.
    fn carry(&mut self, context: String) {
        if !context.is_empty() {
            self.context = context;
        }
    }
}

/// A pulled batch as the room takes it: like a push without seqid (dedup is by `data_seq`).
fn pulled(game_sess: &str, items: Vec<DanmuItem>) -> Push {
    Push { game_sess: game_sess.to_string(), seqid: String::new(), timestamp: now_ms(), status: None, items }
}

/// One `pull_data` call: the answer when HTTP and `rescode` both say 200.
async fn call(client: &awc::Client, url: &str, token: &str, body: Vec<u8>) -> Result<PullResponse, PullError> {
    let mut response = client
        .post(url)
        .bearer_auth(token)
        .insert_header(("Content-Type", "application/json"))
        .send_body(body)
        .await
        .map_err(|e| PullError::Request(e.to_string()))?;
    if !response.status().is_success() {
        return Err(PullError::Status(response.status().as_u16()));
    }
    let bytes = response.body().limit(MAX_BODY).await.map_err(|e| PullError::Body(e.to_string()))?;
    let answer: PullResponse = serde_json::from_slice(&bytes).map_err(|e| PullError::Body(e.to_string()))?;
    match answer.rescode {
        Some(200) => Ok(answer),
        other => Err(PullError::Rescode { rescode: other.unwrap_or(0), messge: answer.messge }),
    }
}

impl Actor for Puller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let timeout = Duration::from_millis(self.config.pull.timeout_ms);
        let connector = awc::Connector::new().timeout(timeout);
        self.client = Some(awc::Client::builder().connector(connector).timeout(timeout).finish());
        info!("pull game_sess {}: started, every {} ms", self.game_sess, self.config.pull.interval_ms);
        let first = if self.closed { Duration::ZERO } else { self.schedule.interval };
        self.schedule(first, ctx);
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        debug!("pull game_sess {}: stopped after {} calls", self.game_sess, self.calls);
        self.links.stopped.do_send(PullerStopped { game_sess: self.game_sess.clone(), addr: ctx.address() });
    }
}

impl Handler<GameSessSeen> for Puller {
    type Result = ();

    fn handle(&mut self, msg: GameSessSeen, ctx: &mut Self::Context) {
        self.last_push = Instant::now();
        if self.game_id.is_empty() {
            self.game_id = msg.game_id;
        }
        self.game_users.extend(msg.openids);
        if msg.closed && !self.closed {
            self.closed = true;
            self.calls_at_close = self.calls;
            debug!("pull game_sess {}: status 3, final pull", self.game_sess);
            if !self.busy && self.kept.is_none() {
                self.schedule(Duration::ZERO, ctx);
            }
        }
    }
}

impl Handler<RouteChanged> for Puller {
    type Result = ();

    fn handle(&mut self, _: RouteChanged, _ctx: &mut Self::Context) {
        self.room = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_waits_the_interval_or_only_the_spacing_when_more_are_waiting() {
        let mut s = PullSchedule::new(Duration::from_secs(10));
        assert_eq!(s.after_success(false), Duration::from_secs(10));
        assert_eq!(s.after_success(true), MIN_SPACING);
    }

    #[test]
    fn failures_double_the_wait_up_to_the_cap_and_a_success_resets_it() {
        let mut s = PullSchedule::new(Duration::from_secs(1));
        let waits: Vec<u64> = (0..6).map(|_| s.after_failure().as_secs()).collect();
        assert_eq!(waits, vec![2, 4, 8, 16, 16, 16]);
        s.after_success(false);
        assert_eq!(s.failures(), 0);
        assert_eq!(s.after_failure(), Duration::from_secs(2));
    }

    #[test]
    fn an_interval_below_the_spacing_is_raised_to_it() {
        let mut s = PullSchedule::new(Duration::from_millis(5));
        assert_eq!(s.after_success(false), MIN_SPACING);
    }

    #[test]
    fn a_first_push_stamped_beyond_any_clock_pulls_from_one_interval_before_now() {
        let now = 1_700_000_000_000;
        assert_eq!(pull_since(now - 5, now, 10_000), now - 10_005);
        for absurd in [i64::MIN, i64::MAX] {
            assert_eq!(pull_since(absurd, now, 10_000), now - 10_000, "a push stamped {absurd}");
        }
        assert_eq!(pull_since(now + 86_400_000, now, 10_000), now - 10_000, "a push stamped tomorrow");
    }

    #[test]
    fn idle_stop_is_at_least_ten_minutes() {
        assert_eq!(idle_stop(Duration::from_millis(50)), Duration::from_secs(600));
        assert_eq!(idle_stop(Duration::from_secs(20)), Duration::from_secs(1200));
    }
}
