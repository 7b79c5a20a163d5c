//! `RedisEngine`: the [`Engine`] of a room whose inputs, state and history live in Redis, so
//! that several nodes serve it in one order (docs/protocol.md 7). Every node that uses the room runs
//! one, under the room's [`RoomFront`].
//!
//! For its own callers, every node:
//! - puts each input (a push, a join, a leave, a report, a status, a notice) into the room's
//!   input stream `room:{C}:in`, in the order its front took them, all that wait in one
//!   [`INGEST`](super::scripts::INGEST) call: a push is answered 200 once it is there (stored:
//!   a node dying now loses nothing), 503 when Redis cannot take it or the stream is full; the
//!   owner's node stores its own in `room:{C}:own` instead (`send_own`), and applies them at
//!   once;
//! - asks the owner for the room once it has been its only pusher for a while
//!   ([`super::handoff`]);
//! - while it has members here, subscribes to the room's channel and hands what the owner
//!   publishes (numbered events, join answers, acks, direct frames) to its front in order,
//!   filling any gap in `seq` from the events stream.
//!
//! One node at a time, the owner (it holds the room's [`Lease`]), also runs the room's core on
//! the inputs in stream order and commits the effects, fenced by the lease's term
//! ([`super::owner`]).

use std::time::{Duration, Instant};

use actix::fut::wrap_future;
use actix::{ActorFutureExt, AsyncContext, Handler};
use actors::room::front::{BoxFuture, UNAVAILABLE};
use actors::room::{Engine, IngestOutcome, Input, Output, Push, RoomEvent, SessionId};
use bytestring::ByteString;
use log::{info, warn};
use tokio::sync::oneshot;

use super::lease::Claimed;
use super::state::{Answer, Ctx, Front, Outgoing, Owner, RedisEngine, Stream};
use super::wire::{AckWire, Entry, Input as WireInput, JoinAnswerWire, Published, WireEvent};
use crate::cluster::bus::{BusMessage, Subscribe, Unsubscribe};

/// How often a node reads the length of a room's input stream with its inputs (the queue cap,
/// docs/protocol.md 1.4) while it is far from the cap.
pub const QUEUE_CHECK_EVERY: Duration = Duration::from_secs(60);

/// How often a room looks at what its node's presence last saw (no Redis call unless a
/// renewal brought news: see `owner::watch`).
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// History entries (commits) read per round trip.
const HISTORY_PAGE: usize = 100;

/// How long an owner waits before subscribing to its wake-ups again after a failure.
const WAKE_RETRY: Duration = Duration::from_millis(500);

impl RedisEngine {
    /// Queues an input for the room's stream, after every input queued before it.
    pub(super) fn send_input(&mut self, input: &WireInput, answer: Answer, ctx: &mut Ctx) {
        self.last_activity = Instant::now();
        let body = serde_json::to_string(input).unwrap_or_default();
        self.outbox.push(Outgoing { kind: input.kind(), body, answer });
        self.send_outbox(ctx);
    }

    /// Whether this call reads the input stream's length (the queue cap): every
    /// [`QUEUE_CHECK_EVERY`], and sooner once the length last read and the inputs this node
    /// stored since reach a quarter of the cap (so the stream may pass the cap by up to a
    /// quarter of it per node).
    fn queue_check_due(&self, now: Instant) -> bool {
        let cap = self.shared.config.queue_len as u64;
        self.queue_checked.is_none_or(|(at, len)| {
            len.saturating_add(self.stored_since_check) >= cap / 4 || now.duration_since(at) >= QUEUE_CHECK_EVERY
        })
    }

    /// Sends every input waiting in the outbox with one script call, unless a call (or the
    /// room's subscription) is on its way: inputs reach the stream in the order the front
    /// took them.
    fn send_outbox(&mut self, ctx: &mut Ctx) {
        if self.outbox_busy || self.subscribing || self.outbox.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.outbox);
        self.outbox_busy = true;
        // The owner stores its own inputs for itself, once its takeover's backlog is read (until
        // then they go with the others', after it).
        if self.owner.as_ref().is_some_and(|owner| owner.taken_before.is_none()) {
            return self.send_own(batch, ctx);
        }
        let now = Instant::now();
        let check_queue = self.queue_check_due(now);
        let conn = self.shared.conn.clone();
        let scripts = self.scripts.clone();
        let keys = [self.key("in"), self.key("lease")];
        let mut args = vec![
            self.shared.node_id.clone(),
            self.key("wake"),
            self.shared.conn.publish_command().to_string(),
            if check_queue { self.shared.config.queue_len.max(1).to_string() } else { "0".to_string() },
            if self.holder.is_none() { "1" } else { "0" }.to_string(),
            batch.len().to_string(),
        ];
        let mut answers = Vec::with_capacity(batch.len());
        for out in batch {
            args.extend([out.kind.to_string(), out.body]);
            answers.push(out.answer);
        }
        let run =
            async move { super::scripts::run::<(String, Vec<i64>, u64)>(&scripts.ingest, &keys, &args, conn).await };
        ctx.spawn(wrap_future::<_, Front>(run).map(move |result, front, ctx| {
            let engine = front.engine_mut();
            engine.outbox_busy = false;
            let stored = match result {
                Ok((holder, stored, len)) => {
                    if check_queue {
                        engine.queue_checked = Some((now, len));
                        engine.stored_since_check = 0;
                    } else {
                        engine.stored_since_check += stored.iter().filter(|fate| **fate == 0).count() as u64;
                    }
                    if holder != "?" {
                        engine.claim_if_vacant(&holder, ctx);
                    }
                    Some(stored)
                }
                Err(e) => {
                    warn!("room {}: inputs not stored ({e})", engine.channel_name);
                    None
                }
            };
            let mut outputs = Vec::new();
            for (i, answer) in answers.into_iter().enumerate() {
                // 0 stored, 2 refused: the stream is full.
                let fate = stored.as_ref().map(|stored| stored.get(i).copied().unwrap_or(0));
                match (answer, fate) {
                    (Answer::Push { reply, items }, fate) => {
                        let outcome = match fate {
                            Some(0) => IngestOutcome::Accepted { new_items: items },
                            Some(_) => {
                                warn!(
                                    "room {}: its input stream is full, a push refused with 503",
                                    engine.channel_name
                                );
                                IngestOutcome::Full
                            }
                            None => IngestOutcome::Full,
                        };
                        let _ = reply.send(outcome);
                    }
                    (Answer::Join(session), None) => outputs.push(Output::Joined { session, answer: Err(UNAVAILABLE) }),
                    (Answer::Act(rid), None) => outputs.push(Output::Acted { rid, answer: Err(UNAVAILABLE) }),
                    _ => {}
                }
            }
            front.engine_mut().send_outbox(ctx);
            front.apply(outputs, ctx);
        }));
    }

    /// The owner's own inputs: stored in the room's `own` stream, one `XADD` each (in one round
    /// trip), with ids of the owner's term, so that Redis refuses them once another node claimed
    /// the room; then applied at once, with no wake-up and no script. A push is answered 200
    /// once stored, as any.
    fn send_own(&mut self, batch: Vec<Outgoing>, ctx: &mut Ctx) {
        let (stream, node) = (self.key("own"), self.shared.node_id.clone());
        let Some(owner) = self.owner.as_mut() else { return };
        let term = owner.term;
        let mut pipe = redis::pipe();
        let mut stored = Vec::with_capacity(batch.len());
        let mut answers = Vec::with_capacity(batch.len());
        for out in batch {
            owner.own.stored += 1;
            let id = format!("{term}-{}", owner.own.stored);
            pipe.cmd("XADD").arg(&stream).arg(&id).arg("k").arg(out.kind).arg("n").arg(&node).arg("b").arg(&out.body);
            stored.push((id, out.body));
            answers.push(out.answer);
        }
        let mut conn = self.shared.conn.clone();
        let run = async move { pipe.query_async::<Vec<String>>(&mut conn).await };
        ctx.spawn(wrap_future::<_, Front>(run).map(move |result, front, ctx| {
            let engine = front.engine_mut();
            engine.outbox_busy = false;
            let ok = match &result {
                Ok(_) => true,
                Err(e) => {
                    warn!("room {}: own inputs not stored ({e}), giving the room up", engine.channel_name);
                    false
                }
            };
            let still_owner = engine.owner.as_ref().is_some_and(|owner| owner.term == term);
            if !ok && still_owner {
                engine.give_up(ctx);
            }
            let mut outputs = Vec::new();
            for answer in answers {
                match (answer, ok) {
                    (Answer::Push { reply, items }, true) => {
                        let _ = reply.send(IngestOutcome::Accepted { new_items: items });
                    }
                    (Answer::Push { reply, .. }, false) => {
                        let _ = reply.send(IngestOutcome::Full);
                    }
                    (Answer::Join(session), false) => {
                        outputs.push(Output::Joined { session, answer: Err(UNAVAILABLE) })
                    }
                    (Answer::Act(rid), false) => outputs.push(Output::Acted { rid, answer: Err(UNAVAILABLE) }),
                    _ => {}
                }
            }
            // Stored in this term and still owned: applied now. (Owned again in a later term,
            // the takeover read them.)
            if ok && still_owner {
                engine.apply_inputs(stored, Stream::Own, ctx);
            }
            front.engine_mut().send_outbox(ctx);
            front.apply(outputs, ctx);
        }));
    }

    /// A room without an owner is claimed by a node that uses it.
    /// The lease is vacant when nobody holds it, when it names this node, or when its holder
    /// is gone (its presence record was missing at this node's last renewal); a node claims
    /// only while its own presence is fresh.
    pub(super) fn claim_if_vacant(&mut self, holder: &str, ctx: &mut Ctx) {
        let now = Instant::now();
        let learnt = match &self.holder {
            Some((known, at)) if known == holder => *at,
            _ => now,
        };
        self.holder = Some((holder.to_string(), learnt));
        let liveness = &self.shared.liveness;
        // Gone only on a renewal sent after this node learnt the holder: the holder's record was
        // there when it claimed, so missing then means expired (not yet written, at best).
        let gone = !holder.is_empty() && holder != self.shared.node_id && liveness.is_gone(holder, learnt, now);
        let vacant = holder.is_empty() || holder == self.shared.node_id || gone;
        if !liveness.is_fresh(now) {
            // This node's presence is not written yet (it is starting) or went stale: it claims
            // once a renewal succeeds (`owner::watch`).
            self.claim_pending = vacant;
            return;
        }
        self.claim_pending = false;
        if !self.lease.should_claim(vacant, self.step_busy) {
            return;
        }
        if gone {
            info!("room {}: its owner {holder} is gone (no presence record), taking it over", self.channel_name);
        }
        self.lease.claim();
        let mut conn = self.shared.conn.clone();
        let keys = [self.key("lease"), self.key("term"), self.key("events"), self.key("own")];
        let node = self.shared.node_id.clone();
        let gone = if gone { holder.to_string() } else { String::new() };
        let scripts = self.scripts.clone();
        let claim = async move {
            let term: redis::RedisResult<u64> =
                scripts.claim.key(&keys[..]).arg(node).arg(gone).invoke_async(&mut conn).await;
            term.ok().filter(|term| *term > 0)
        };
        ctx.spawn(wrap_future::<_, Front>(claim).map(|term, front, ctx| {
            let engine = front.engine_mut();
            match (engine.lease.claimed(term.is_some()), term) {
                (Claimed::TakeOver, Some(term)) => {
                    engine.holder = Some((engine.shared.node_id.clone(), Instant::now()));
                    engine.take_over(term, ctx);
                }
                (Claimed::GiveBack, _) => {
                    ctx.spawn(wrap_future(engine.release_lease()));
                }
                // Somebody else's now: asked again with the next inputs.
                _ => engine.holder = None,
            }
        }));
    }

    /// Subscribes to the room's channel (this node's members start here) or leaves it.
    fn set_subscribed(&mut self, attended: bool, ctx: &mut Ctx) {
        if attended == self.subscribed {
            return;
        }
        self.subscribed = attended;
        if !attended {
            self.delivered = None;
            self.shared.bus.do_send(Unsubscribe { channel: self.key("ch") });
            return;
        }
        self.subscribing = true;
        let subscribe = Subscribe { channel: self.key("ch"), to: ctx.address().recipient(), lossless: false };
        let ask = self.shared.bus.send(subscribe);
        ctx.spawn(wrap_future::<_, Front>(ask).map(|answer, front, ctx| {
            let engine = front.engine_mut();
            engine.subscribing = false;
            if matches!(answer, Ok(Ok(()))) {
                return engine.send_outbox(ctx);
            }
            warn!("room {}: could not subscribe to its channel", engine.channel_name);
            // The joins waiting would miss their answers: refused (1011), the rest goes on.
            let (joins, rest): (Vec<_>, Vec<_>) =
                std::mem::take(&mut engine.outbox).into_iter().partition(|o| matches!(o.answer, Answer::Join(_)));
            engine.outbox = rest;
            engine.send_outbox(ctx);
            let outputs = joins
                .into_iter()
                .filter_map(|o| match o.answer {
                    Answer::Join(session) => Some(Output::Joined { session, answer: Err(UNAVAILABLE) }),
                    _ => None,
                })
                .collect();
            front.apply(outputs, ctx);
        }));
    }

    /// Subscribes to the owner's wake-ups, in the background. They carry the inputs, so none
    /// is dropped for a full mailbox; the subscription's confirmation (and any after a
    /// reconnection) makes the owner read the stream for what it may have missed.
    pub(super) fn subscribe_wake(&self, ctx: &mut Ctx) {
        let subscribe = Subscribe { channel: self.key("wake"), to: ctx.address().recipient(), lossless: true };
        let ask = self.shared.bus.send(subscribe);
        ctx.spawn(wrap_future::<_, Front>(ask).map(|answer, front, ctx| {
            if matches!(answer, Ok(Ok(()))) {
                return;
            }
            // Not subscribed, the owner would hear of no input: it tries again while it owns
            // the room (Redis may be coming back).
            let engine = front.engine_mut();
            warn!("room {}: could not subscribe to its wake-ups, trying again", engine.channel_name);
            ctx.run_later(WAKE_RETRY, |front, ctx| {
                let engine = front.engine_mut();
                if engine.owner.is_some() {
                    engine.subscribe_wake(ctx);
                }
            });
        }));
    }

    /// A message on the room's channel: events, join answers, acks and direct frames for the
    /// front, filling a gap in `seq` from the events stream first.
    fn on_published(&mut self, published: Published, ctx: &mut Ctx) -> Vec<Output> {
        let Published { mut events, joins, acks, direct } = published;
        let first = events.first().map(|e| e.seq);
        if let (Some(delivered), Some(first)) = (self.delivered, first) {
            // Seqs come through Redis: no `+ 1` that a stored u64::MAX could overflow.
            if first > delivered.saturating_add(1) {
                let fetch = self.fetch_events(delivered.saturating_add(1), first - 1);
                let node = self.shared.node_id.clone();
                // Waited for: nothing else reaches the front before the missing events.
                ctx.wait(wrap_future::<_, Front>(fetch).map(move |missing, front, ctx| {
                    let mut all = missing.unwrap_or_default();
                    all.append(&mut events);
                    let mut outputs = front.engine_mut().deliver(all, joins);
                    outputs.extend(answers_of(acks, direct, &node));
                    front.apply(outputs, ctx);
                }));
                return Vec::new();
            }
        }
        let mut outputs = self.deliver(events, joins);
        outputs.extend(answers_of(acks, direct, &self.shared.node_id));
        outputs
    }

    /// The room's channel was subscribed again (a new or reconnected pub/sub connection): what
    /// was published meanwhile is read from the events stream.
    fn catch_up(&mut self, ctx: &mut Ctx) {
        let Some(delivered) = self.delivered else { return };
        let fetch = self.fetch_events(delivered.saturating_add(1), u64::MAX);
        ctx.wait(wrap_future::<_, Front>(fetch).map(|missed, front, ctx| {
            let missed = missed.unwrap_or_default();
            if !missed.is_empty() {
                let channel = &front.engine_mut().channel_name;
                info!("room {channel}: {} event(s) published while its channel was away, read again", missed.len());
            }
            let outputs = front.engine_mut().deliver(missed, Vec::new());
            front.apply(outputs, ctx);
        }));
    }

    /// Events and join answers in the room's order: a join answered at or before an event's seq
    /// comes before it (the member reads every event after its own).
    fn deliver(&mut self, events: Vec<WireEvent>, mut joins: Vec<JoinAnswerWire>) -> Vec<Output> {
        joins.sort_by_key(|j| j.a.as_ref().map_or(0, |a| a.own_seq));
        let mut outputs = Vec::new();
        let mut batch: Vec<RoomEvent> = Vec::new();
        let mut joins = joins.into_iter().peekable();
        for e in events {
            if self.delivered.is_some_and(|d| e.seq <= d) {
                continue;
            }
            while let Some(join) = joins.next_if(|j| j.a.as_ref().ok().is_none_or(|a| a.own_seq < e.seq)) {
                if !batch.is_empty() {
                    outputs.push(Output::Events(std::mem::take(&mut batch)));
                }
                outputs.push(self.joined(join));
            }
            self.delivered = Some(e.seq);
            batch.push(RoomEvent::from_json(Some(e.seq), e.x, ByteString::from(e.j)));
        }
        if !batch.is_empty() {
            outputs.push(Output::Events(batch));
        }
        for join in joins {
            outputs.push(self.joined(join));
        }
        outputs
    }

    fn joined(&mut self, join: JoinAnswerWire) -> Output {
        if let Ok(answer) = &join.a {
            if self.delivered.is_none_or(|d| d < answer.own_seq) {
                self.delivered = Some(answer.own_seq);
            }
        }
        Output::Joined { session: join.s, answer: join.a }
    }

    /// Events `from..=to` from the room's history stream, where each commit is one entry (its
    /// events as one JSON array, and the last seq numbered: see [`Entry`]), read page by page
    /// back from the newest.
    fn fetch_events(&self, from: u64, to: u64) -> impl std::future::Future<Output = Option<Vec<WireEvent>>> + 'static {
        let mut conn = self.shared.conn.clone();
        let stream = self.key("events");
        async move {
            // Entries are in seq order, but their ids carry their owner's term, not a seq: the
            // stream is read from its newest entry back to the first one before `from`.
            let mut pages: Vec<Vec<WireEvent>> = Vec::new();
            let mut end = "+".to_string();
            'pages: loop {
                let reply: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
                    .arg(&stream)
                    .arg(&end)
                    .arg("-")
                    .arg("COUNT")
                    .arg(HISTORY_PAGE)
                    .query_async(&mut conn)
                    .await
                    .ok()?;
                let page = reply.ids.len();
                for stored in &reply.ids {
                    end = format!("({}", stored.id);
                    let Some(entry) = Entry::read(stored) else { continue };
                    if entry.last_seq < from {
                        break 'pages;
                    }
                    let mut events = entry.wire_events();
                    events.retain(|e| (from..=to).contains(&e.seq));
                    pages.push(events);
                }
                if page < HISTORY_PAGE {
                    break;
                }
            }
            Some(pages.into_iter().rev().flatten().collect())
        }
    }
}

/// The acks meant for this node's reports, and the direct frames.
fn answers_of(acks: Vec<AckWire>, direct: Vec<(SessionId, String)>, node: &str) -> Vec<Output> {
    let mut outputs: Vec<Output> =
        acks.into_iter().filter(|a| a.n == node).map(|ack| Output::Acted { rid: ack.r, answer: ack.a }).collect();
    if !direct.is_empty() {
        outputs.push(Output::Direct(direct.into_iter().map(|(s, f)| (s, ByteString::from(f))).collect()));
    }
    outputs
}

impl Engine for RedisEngine {
    fn started(&mut self, ctx: &mut Ctx) {
        ctx.run_interval(WATCH_EVERY, |front, ctx| front.engine_mut().watch(ctx));
    }

    fn stopped(&mut self, ctx: &mut Ctx) {
        if self.owner.is_some() {
            // Hand the room on at once rather than after the lease's time: whoever uses it
            // next (here or elsewhere) restores it from Redis.
            actix::spawn(self.release_lease());
        }
        self.give_up(ctx);
        if self.subscribed {
            self.shared.bus.do_send(Unsubscribe { channel: self.key("ch") });
        }
    }

    fn ingest(&mut self, push: Push, reply: oneshot::Sender<IngestOutcome>, ctx: &mut Ctx) -> Vec<Output> {
        let items = push.items.len();
        let input = WireInput::Push {
            items: push.items.into_iter().map(|i| (i.openid, i.raw)).collect(),
            gs: push.game_sess,
            sq: push.seqid,
            t: push.timestamp,
            st: push.status,
        };
        self.send_input(&input, Answer::Push { reply, items }, ctx);
        self.pushed_here(ctx);
        Vec::new()
    }

    fn submit(&mut self, input: Input, ctx: &mut Ctx) -> Vec<Output> {
        let node = self.shared.node_id.clone();
        let (input, answer) = match input {
            Input::Join(request) => {
                let session = request.session;
                (WireInput::Join { s: session, n: node, p: request.profile }, Answer::Join(session))
            }
            Input::Leave { session, reason } => (WireInput::Leave { s: session, why: reason }, Answer::None),
            Input::Act { session, rid, action } => {
                (WireInput::Act { s: session, n: node, r: rid, a: action }, Answer::Act(rid))
            }
            Input::Status(status) => (WireInput::Status { st: status }, Answer::None),
            Input::Notice { content, expire_time, client_url } => {
                (WireInput::Notice { c: content, e: expire_time, u: client_url }, Answer::None)
            }
        };
        self.send_input(&input, answer, ctx);
        Vec::new()
    }

    /// The history the room keeps is its newest `room.history_len` events, as on one node (the
    /// newest being the joiner's own `enter_room`, `to + 1`); the stream keeps whole commits, so
    /// it may hold a few older ones, which are not replayed.
    fn history(&self, from: u64, to: u64) -> BoxFuture<Vec<RoomEvent>> {
        let fetch = self.fetch_events(from, to);
        let kept = self.shared.config.history_len.max(1) as u64;
        Box::pin(async move {
            let mut found = fetch.await.unwrap_or_default();
            found.retain(|e| e.seq.saturating_add(kept) > to.saturating_add(1));
            found.into_iter().map(|e| RoomEvent::from_json(Some(e.seq), e.x, ByteString::from(e.j))).collect()
        })
    }

    /// The node shuts down: the owner hands the room on instead of flushing it. What its reorder
    /// window holds is still in the input stream, so the next owner (restoring the state, as
    /// after a death) releases it in order; giving the lease up now spares the room the lease's
    /// time.
    fn flush(&mut self, ctx: &mut Ctx) -> (Vec<Output>, BoxFuture<()>) {
        let owned = self.owner.is_some();
        self.lease.hand_on();
        if !owned {
            return (Vec::new(), Box::pin(async {}));
        }
        self.give_up(ctx);
        info!("room {}: node {} hands it on (shutdown)", self.channel_name, self.shared.node_id);
        (Vec::new(), Box::pin(self.release_lease()))
    }

    fn attended(&mut self, attended: bool, ctx: &mut Ctx) {
        self.set_subscribed(attended, ctx);
    }

    fn is_idle(&self) -> bool {
        let idle = Duration::from_millis(self.shared.config.idle_stop_ms);
        let quiet = self.last_activity.elapsed() >= idle && self.outbox.is_empty() && !self.outbox_busy;
        // An owner stops only once everything it applied is committed: what it released is in
        // the history and the dedup keys, so the next owner does not release it again.
        quiet && !self.step_busy && self.owner.as_ref().is_none_or(Owner::is_idle)
    }
}

impl Handler<BusMessage> for Front {
    type Result = ();

    fn handle(&mut self, msg: BusMessage, ctx: &mut Self::Context) {
        let engine = self.engine_mut();
        if msg.channel == engine.key("wake") {
            if msg.resubscribed {
                return engine.want_read(ctx);
            }
            return engine.woken(&msg.payload, ctx);
        }
        if msg.resubscribed {
            return engine.catch_up(ctx);
        }
        match serde_json::from_str::<Published>(&msg.payload) {
            Ok(published) => {
                let outputs = engine.on_published(published, ctx);
                self.apply(outputs, ctx);
            }
            Err(e) => warn!("room {}: unreadable message on its channel: {e}", engine.channel_name),
        }
    }
}
