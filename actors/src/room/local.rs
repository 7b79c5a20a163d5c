//! `LocalEngine`: the in-process [`Engine`]: the room's [`RoomCore`] on this node. Every input
//! is applied at once, so every answer comes back with the call that caused it; the release
//! timer of the reorder window is the only thing it does by itself.
//!
//! Used with the memory store, and with a Redis store when `store.shared_rooms` is off (each
//! node then has rooms of its own).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use log::{debug, warn};
use tokio::sync::oneshot;

use super::core::RoomCore;
use super::events::RoomEvent;
use super::front::{BoxFuture, Engine, FrontConfig, Input, Output, RoomFront};
use super::handle::{MembershipChanged, RoomHandle, RoomLinks, StatusOf};
use super::inputs::{Effects, IngestOutcome, Now, Push};
use crate::config::RoomConfig;
use crate::metrics::Metrics;

/// How long a starting room waits for the live-room layer to say its status.
const STATUS_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

pub struct LocalEngine {
    core: RoomCore,
    links: RoomLinks,
    release_timer: Option<SpawnHandle>,
}

impl LocalEngine {
    pub fn new(channel_name: String, config: RoomConfig, metrics: Arc<Metrics>, links: RoomLinks) -> Self {
        let core = RoomCore::new(channel_name, new_epoch(), config, metrics, Now::real());
        Self { core, links, release_timer: None }
    }

    /// Starts the room of `channel_name` on this node, on `arbiter` (else the current one).
    pub fn start(
        channel_name: String,
        config: RoomConfig,
        send_queue_len: usize,
        metrics: Arc<Metrics>,
        links: RoomLinks,
        arbiter: Option<ArbiterHandle>,
    ) -> RoomHandle {
        let make = move |_: &mut Context<RoomFront<LocalEngine>>| {
            let front = FrontConfig {
                channel_name: channel_name.clone(),
                metrics: metrics.clone(),
                stopped: links.stopped.clone(),
                queue_len: config.queue_len,
                idle_stop: Duration::from_millis(config.idle_stop_ms),
                send_queue_len,
            };
            RoomFront::new(front, LocalEngine::new(channel_name, config, metrics, links))
        };
        let addr = match arbiter {
            None => RoomFront::create(make),
            Some(arbiter) => RoomFront::start_in_arbiter(&arbiter, make),
        };
        RoomHandle::of(&addr)
    }

    /// The core's effects as outputs; membership deltas go to the viewer hook.
    fn outputs(&self, effects: Effects) -> Vec<Output> {
        // `released` and `members` matter only where the room's state is stored elsewhere.
        let Effects { events, direct, membership, released: _, members: _ } = effects;
        if let Some(hook) = &self.links.membership {
            for delta in membership {
                // do_send, not try_send: a lost delta would leave the viewer count wrong for good.
                hook.do_send(MembershipChanged { channel_name: self.core.channel_name().to_string(), delta });
            }
        }
        vec![Output::Events(events), Output::Direct(direct)]
    }

    /// Sets the release timer for the core's next release, unless one is set (releases only
    /// fall due later than the ones already waited for).
    fn schedule_release(&mut self, ctx: &mut Context<RoomFront<Self>>) {
        if self.release_timer.is_some() {
            return;
        }
        if let Some(at) = self.core.next_release() {
            let wait = at.saturating_duration_since(std::time::Instant::now());
            self.release_timer = Some(ctx.run_later(wait, |front, ctx| {
                let engine = front.engine_mut();
                engine.release_timer = None;
                let effects = engine.core.tick(Now::real());
                let outputs = engine.outputs(effects);
                front.apply(outputs, ctx);
                front.engine_mut().schedule_release(ctx);
            }));
        }
    }
}

/// A fresh epoch: 8 hex digits, new each time a room's numbering starts from nothing.
fn new_epoch() -> String {
    format!("{:08x}", rand::random::<u32>())
}

impl Engine for LocalEngine {
    /// Asks the live-room layer for this channel's status before serving anyone.
    fn started(&mut self, ctx: &mut Context<RoomFront<Self>>) {
        debug!("room {}: started, epoch {}", self.core.channel_name(), self.core.epoch());
        let Some(status_of) = self.links.status_of.clone() else { return };
        let ask = status_of.send(StatusOf { channel_name: self.core.channel_name().to_string() });
        let ask = actix::fut::wrap_future::<_, RoomFront<Self>>(ask.timeout(STATUS_LOOKUP_TIMEOUT));
        ctx.wait(ask.map(|answer, front, _ctx| {
            let core = &mut front.engine_mut().core;
            match answer {
                Ok(Some(status)) => core.restore_live_status(status),
                Ok(None) => {}
                Err(e) => warn!("room {}: live-room status unknown ({e}), serving it as open", core.channel_name()),
            }
        }));
    }

    fn stopped(&mut self, _ctx: &mut Context<RoomFront<Self>>) {}

    fn ingest(
        &mut self,
        push: Push,
        reply: oneshot::Sender<IngestOutcome>,
        ctx: &mut Context<RoomFront<Self>>,
    ) -> Vec<Output> {
        let (outcome, effects) = self.core.push(push, Now::real());
        // Taken (or refused): answered before the effects go out, so BIGO's 200 waits for nothing.
        let _ = reply.send(outcome);
        self.schedule_release(ctx);
        self.outputs(effects)
    }

    fn submit(&mut self, input: Input, _ctx: &mut Context<RoomFront<Self>>) -> Vec<Output> {
        let now = Now::real();
        match input {
            Input::Join(request) => {
                let session = request.session;
                let (answer, effects) = self.core.join(request, now);
                // The answer first: the member reads every event numbered after it.
                let mut outputs = vec![Output::Joined { session, answer }];
                outputs.extend(self.outputs(effects));
                outputs
            }
            Input::Leave { session, reason } => {
                let (_, effects) = self.core.leave(session, reason, now);
                self.outputs(effects)
            }
            Input::Act { session, rid, action } => {
                let (answer, effects) = self.core.act(session, action, now);
                let mut outputs = self.outputs(effects);
                outputs.push(Output::Acted { rid, answer });
                outputs
            }
            Input::Status(status) => {
                let effects = self.core.set_live_status(status, now);
                self.outputs(effects)
            }
            Input::Notice { content, expire_time, client_url } => {
                let effects = self.core.notice(content, expire_time, client_url, now);
                self.outputs(effects)
            }
        }
    }

    fn history(&self, from: u64, to: u64) -> BoxFuture<Vec<RoomEvent>> {
        Box::pin(std::future::ready(self.core.history(from, to)))
    }

    /// Shutdown: releases everything held in the reorder window now.
    fn flush(&mut self, _ctx: &mut Context<RoomFront<Self>>) -> (Vec<Output>, BoxFuture<()>) {
        let effects = self.core.flush(Now::real());
        (self.outputs(effects), Box::pin(std::future::ready(())))
    }

    fn attended(&mut self, _attended: bool, _ctx: &mut Context<RoomFront<Self>>) {}

    fn is_idle(&self) -> bool {
        self.core.is_idle(Now::real())
    }
}
