//! The cloud's stream APIs (docs/protocol.md 3) and the actor that calls them.
//!
//! [`CloudClient`] is the small HTTP client: `GET {live.status_api}?stream_id=` (is this
//! stream pushing?) and `GET {live.forbid_api}?stream_id=&status=0` (cut a banned room's
//! push). It wraps an `awc::Client` with timeouts and a body limit; awc's client is not
//! `Send`, so it is built inside [`CloudAgent`], on the thread that runs the agent.
//!
//! [`CloudAgent`] does the two jobs that need it:
//! - the zombie poller: every `live.status_poll_s` it asks about every `live` room and closes
//!   a room offline in 3 polls in a row (bookkeeping in `live::zombies`). A poll that is still
//!   running when the next one is due makes that one skip, so a slow API never piles polls up.
//! - [`ForbidPush`] on ban: tried up to [`FORBID_ATTEMPTS`] times with doubling pauses; a
//!   failure is logged and the ban stands either way.
//!
//! Who talks to it: `live::LiveRooms` sends `ForbidPush`; the agent calls back into
//! `LiveRooms` to list live rooms and close zombies.

use std::collections::HashSet;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, WrapFuture};
use futures_util::StreamExt;
use log::{debug, info, warn};
use serde::Deserialize;

use crate::config::LiveConfig;
use crate::live::zombies::{PollAnswer, ZombieWatch};
use crate::live::{ForbidPush, LiveRooms};

/// Each cloud call gives up after this long.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Answers larger than this are not ours to read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Status queries in flight at once during a poll.
const POLL_CONCURRENCY: usize = 16;
/// Forbid-push attempts, the first retry after [`FORBID_FIRST_PAUSE`], then doubling.
pub const FORBID_ATTEMPTS: u32 = 5;
const FORBID_FIRST_PAUSE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("HTTP {0}")]
    Http(u16),
    #[error("unreadable answer: {0}")]
    BadAnswer(String),
    #[error("ret {ret}: {message}")]
    Refused { ret: i64, message: String },
}

/// `{"ret":0,"message":"","output":[{"status":N}]}`; the forbid call answers `{"ret":0}`.
#[derive(Debug, Deserialize)]
struct Answer {
    ret: i64,
    #[serde(default)]
    message: String,
    #[serde(default)]
    output: Vec<StreamOutput>,
}

#[derive(Debug, Deserialize)]
struct StreamOutput {
    status: i64,
}

/// The cloud's HTTP APIs. Cheap to clone (awc shares its connection pool); not `Send`.
#[derive(Clone)]
pub struct CloudClient {
    http: awc::Client,
    status_api: String,
    forbid_api: String,
}

/// `base` with `params` appended to its query (the configured URL may already carry one).
fn url_with(base: &str, params: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{params}")
}

impl CloudClient {
    pub fn new(live: &LiveConfig) -> Self {
        let http = awc::Client::builder().timeout(CALL_TIMEOUT).finish();
        Self { http, status_api: live.status_api.clone(), forbid_api: live.forbid_api.clone() }
    }

    async fn get(&self, url: &str) -> Result<Answer, CloudError> {
        let mut resp = self.http.get(url).send().await.map_err(|e| CloudError::Unreachable(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(CloudError::Http(resp.status().as_u16()));
        }
        let answer: Answer =
            resp.json().limit(MAX_ANSWER_BYTES).await.map_err(|e| CloudError::BadAnswer(e.to_string()))?;
        if answer.ret != 0 {
            return Err(CloudError::Refused { ret: answer.ret, message: answer.message });
        }
        Ok(answer)
    }

    /// The stream's status: 0 offline, 1 pushing, 3 forbidden.
    pub async fn stream_status(&self, stream_id: &str) -> Result<i64, CloudError> {
        let answer = self.get(&url_with(&self.status_api, &format!("stream_id={stream_id}"))).await?;
        answer.output.first().map(|o| o.status).ok_or_else(|| CloudError::BadAnswer("empty output".into()))
    }

    /// Cuts the stream's push. An empty `live.forbid_api` skips the call.
    pub async fn forbid_push(&self, stream_id: &str) -> Result<(), CloudError> {
        if self.forbid_api.is_empty() {
            return Ok(());
        }
        self.get(&url_with(&self.forbid_api, &format!("stream_id={stream_id}&status=0"))).await.map(|_| ())
    }
}

pub struct CloudAgent {
    client: CloudClient,
    live: LiveRooms,
    /// `None` when `live.status_api` is empty: no polling.
    poll_every: Option<Duration>,
    watch: ZombieWatch,
    polling: bool,
}

impl CloudAgent {
    /// Builds the awc client: call it on the thread that will run the agent.
    pub fn new(config: &LiveConfig, live: LiveRooms) -> Self {
        let poll_every =
            (!config.status_api.is_empty()).then(|| Duration::from_secs_f64(config.status_poll_s.max(0.01)));
        Self { client: CloudClient::new(config), live, poll_every, watch: ZombieWatch::default(), polling: false }
    }

    fn poll(&mut self, ctx: &mut Context<Self>) {
        if self.polling {
            debug!("zombie poll: the previous poll is still running, skipping this one");
            return;
        }
        self.polling = true;
        let (live, client) = (self.live.clone(), self.client.clone());
        let work = async move {
            let rooms = live.live_rooms().await?;
            let answers = futures_util::stream::iter(rooms)
                .map(|room| {
                    let client = client.clone();
                    async move {
                        let answer = match client.stream_status(&room.stream_id).await {
                            Ok(0) => PollAnswer::Offline,
                            Ok(_) => PollAnswer::NotOffline,
                            Err(e) => {
                                debug!(
                                    "zombie poll: stream {} of room {}: no answer: {e}",
                                    room.stream_id, room.room_id
                                );
                                PollAnswer::NoAnswer
                            }
                        };
                        (room.room_id, answer)
                    }
                })
                .buffer_unordered(POLL_CONCURRENCY)
                .collect::<Vec<_>>()
                .await;
            Ok::<_, crate::live::LiveError>(answers)
        };
        ctx.spawn(work.into_actor(self).map(|result, agent, _ctx| {
            agent.polling = false;
            let answers = match result {
                Ok(answers) => answers,
                Err(e) => return warn!("zombie poll: cannot list live rooms: {e}"),
            };
            let live_ids: HashSet<u64> = answers.iter().map(|(id, _)| *id).collect();
            agent.watch.retain(&live_ids);
            for (room_id, answer) in answers {
                if agent.watch.observe(room_id, answer) {
                    info!("zombie poll: room {room_id} offline in 3 polls in a row, closing it");
                    let live = agent.live.clone();
                    actix_rt::spawn(async move {
                        if let Err(e) = live.close_zombie(room_id).await {
                            warn!("zombie poll: closing room {room_id}: {e}");
                        }
                    });
                }
            }
        }));
    }
}

impl Actor for CloudAgent {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(every) = self.poll_every {
            info!("zombie poll: every {every:?}");
            ctx.run_interval(every, |agent, ctx| agent.poll(ctx));
        }
    }
}

impl Handler<ForbidPush> for CloudAgent {
    type Result = ();

    fn handle(&mut self, msg: ForbidPush, _ctx: &mut Self::Context) {
        let client = self.client.clone();
        // A local task, not tied to the actor's own future queue: retries may take a while and
        // must not hold up polls.
        actix_rt::spawn(async move {
            let mut pause = FORBID_FIRST_PAUSE;
            for attempt in 1..=FORBID_ATTEMPTS {
                match client.forbid_push(&msg.stream_id).await {
                    Ok(()) => return info!("forbid push: stream {} cut", msg.stream_id),
                    Err(e) if attempt < FORBID_ATTEMPTS => {
                        warn!(
                            "forbid push: stream {} attempt {attempt} failed: {e}; retrying in {pause:?}",
                            msg.stream_id
                        );
                        actix_rt::time::sleep(pause).await;
                        pause *= 2;
                    }
                    Err(e) => warn!("forbid push: stream {} failed {attempt} times, giving up: {e}", msg.stream_id),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_join_a_query_the_base_url_may_already_have() {
        assert_eq!(url_with("http://a/s", "stream_id=1"), "http://a/s?stream_id=1");
        assert_eq!(url_with("http://a/s?appid=9", "stream_id=1"), "http://a/s?appid=9&stream_id=1");
    }
}
