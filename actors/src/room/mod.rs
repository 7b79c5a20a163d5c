//! `RoomActor`: one per channel (PROTOCOL.md 2.6). It owns everything about one room:
//! dedup of pushes and items, the reorder buffer, the `seq` numbering and history, the members
//! and their seats; and it fans every event out to the members' sessions.
//!
//! Fan-out is O(1) per event in the number of members: each released group of events is
//! serialised once into a [`Bundle`] and sent into a `tokio::sync::broadcast` ring that every
//! member's session reads. A member that falls more than the ring's capacity behind learns it
//! from the ring (`Lagged`) and disconnects itself with 1013; nobody waits for it.
//!
//! Who talks to it: `BigoSession` (and the puller) send [`Ingest`]; `ClientSession` sends
//! [`Join`], [`Leave`] and the member actions; the HTTP layer sends [`SetStatus`] and
//! [`Notice`] through the [`Registry`](crate::registry::Registry), which starts rooms and is
//! told when one stops. When the registry was given a membership hook, the room reports every
//! join and leave to it as [`MembershipChanged`] (the live-room list counts viewers from it).

pub mod dedup;
pub mod history;
pub mod reorder;
pub mod seats;
pub mod tick;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytestring::ByteString;
use log::{debug, info, warn};
use tokio::sync::{broadcast, oneshot};

use crate::config::RoomConfig;
use crate::metrics::Metrics;
use crate::protocol::bigo::{BigoStatus, DanmuItem};
use crate::protocol::client::ErrorCode;
use crate::protocol::client::{EventBody, Gift, GiftReport, NotifyType, Profile, RoomEventFrame, RoomSnapshot, Seat};
use crate::protocol::now_ms;
use crate::registry::{Registry, RoomStopped};
use dedup::{Dedup, DedupWindow};
use history::{EventLog, MemoryLog};
use reorder::ReorderBuffer;
use seats::{SeatError, Seats};

/// Identifies one client connection (random, unique per process).
pub type SessionId = u64;

/// One room event, serialised once. `exclude` names the member that must not get it (a
/// member's own `enter_room`).
#[derive(Debug, Clone)]
pub struct RoomEvent {
    pub seq: Option<u64>,
    pub exclude: Option<SessionId>,
    pub json: ByteString,
}

/// Events released together, as individual frames and as one JSON array (for `batch=1`).
#[derive(Debug)]
pub struct Bundle {
    pub events: Vec<RoomEvent>,
    pub array: ByteString,
}

impl Bundle {
    pub fn new(events: Vec<RoomEvent>) -> Self {
        let array = json_array(events.iter());
        Self { events, array }
    }
}

/// `[a,b,c]` from already-serialised events.
pub fn json_array<'a>(events: impl Iterator<Item = &'a RoomEvent> + Clone) -> ByteString {
    let len: usize = events.clone().map(|e| e.json.len() + 1).sum::<usize>() + 2;
    let mut out = String::with_capacity(len);
    out.push('[');
    for (i, e) in events.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&e.json);
    }
    out.push(']');
    ByteString::from(out)
}

pub type Fanout = Arc<Bundle>;

/// A direct message from a room to one member's session.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum ToMember {
    /// A frame for this member only (`ptp` gift, `hang_up`).
    Frame(ByteString),
}

// ---------------------------------------------------------------------------------------------
// Messages

/// A push (or pulled batch) from BIGO for this room. The answer comes on `reply` only after the
/// room has taken the items into its buffers: that is when BIGO may get its 200.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ingest {
    pub game_sess: String,
    pub seqid: String,
    pub timestamp: i64,
    pub status: Option<BigoStatus>,
    pub items: Vec<DanmuItem>,
    pub reply: oneshot::Sender<IngestOutcome>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Taken; `new_items` of them were not seen before.
    Accepted { new_items: usize },
    /// The seqid was taken before (a retry): nothing to do, answer 200 again.
    DuplicateSeqid,
    /// The room's queue is full: 503.
    Full,
}

/// Why the room refused a join or an action: the wire code and the `error_reason` sent back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub code: ErrorCode,
    pub reason: &'static str,
}

impl Refused {
    const fn new(code: ErrorCode, reason: &'static str) -> Self {
        Self { code, reason }
    }
}

const NOT_A_MEMBER: Refused = Refused::new(ErrorCode::NotInRoom, "not in that room");

/// A client joins (section 2.3 `enter_room_report`).
#[derive(Message)]
#[rtype(result = "Result<Joined, Refused>")]
pub struct Join {
    pub session: SessionId,
    pub profile: Profile,
    pub addr: Recipient<ToMember>,
    pub last_seq: Option<u64>,
}

pub struct Joined {
    pub events: broadcast::Receiver<Fanout>,
    pub snapshot: RoomSnapshot,
    /// The member's own `enter_room` seq (the ack's `last_seq`).
    pub own_seq: u64,
    /// Missed events from history, in order, when `last_seq` was given.
    pub replay: Vec<RoomEvent>,
    pub recovered: Option<bool>,
}

/// Why a member leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// `exit_room_report` for oneself.
    Exit,
    /// Joined another room.
    Switch,
    /// Connection closed, timed out or was replaced.
    Disconnect,
    /// The same user joined another room on another connection: a user is in one room at a
    /// time. The member also gets the `exit_room` about itself, since it did not ask to leave.
    Moved,
}

#[derive(Message)]
#[rtype(result = "Result<(), ErrorCode>")]
pub struct Leave {
    pub session: SessionId,
    pub reason: LeaveReason,
}

/// Member actions (section 2.3). Each answers the seq of the event it caused, when any.
#[derive(Message)]
#[rtype(result = "Result<ActionDone, Refused>")]
pub struct MemberAction {
    pub session: SessionId,
    pub action: Action,
}

pub enum Action {
    Say {
        content: String,
    },
    Gift {
        notify_type: NotifyType,
        gift: GiftReport,
    },
    /// `None`: the seat the user holds, or else the lowest free one.
    Up {
        seat_id: Option<u32>,
    },
    Down,
    /// An empty `receiver_id` means every other user in the room (the call peer).
    HangUp {
        receiver_id: String,
    },
}

#[derive(Debug, Default)]
pub struct ActionDone {
    pub seq: Option<u64>,
    pub room_seat: Option<Seat>,
}

/// The live-room status changed (section 3): broadcasts `room_status`; `closed`/`banned` make
/// member reports answer 1007.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetStatus {
    pub status: String,
}

/// An operator notice (section 3 admin `notice`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Notice {
    pub content: String,
    pub expire_time: i64,
    pub client_url: String,
}

/// A member joined (`delta` 1) or left (`delta` -1): sent to the registry's membership hook so
/// that viewers are counted from real joins and leaves (PROTOCOL.md 3), not from clients.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct MembershipChanged {
    pub channel_name: String,
    pub delta: i64,
}

/// Releases everything held in the reorder buffer now (shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

// ---------------------------------------------------------------------------------------------
// The actor

struct Member {
    profile: Profile,
    addr: Recipient<ToMember>,
}

/// What waits in the reorder buffer: danmu items and BIGO status changes, so that a status 3
/// reaches clients after the items pushed before it.
enum Pending {
    /// Boxed: the heap moves entries while sifting, and items are large.
    Item(Box<DanmuItem>),
    Status(BigoStatus),
}

pub struct RoomActor {
    channel_name: String,
    config: RoomConfig,
    metrics: Arc<Metrics>,
    registry: Addr<Registry>,
    // Behind the room-state interfaces so that a shared (Redis-backed) store can take over
    // with several nodes; the embedded versions are the default.
    seqids: Box<dyn Dedup>,
    data_seqs: Box<dyn Dedup>,
    reorder: ReorderBuffer<Pending>,
    flush_timer: Option<SpawnHandle>,
    /// When the flush timer last released (release ticks are spaced from it).
    last_release: Instant,
    log: Box<dyn EventLog<RoomEvent>>,
    fanout: broadcast::Sender<Fanout>,
    members: HashMap<SessionId, Member>,
    /// Sessions per user: a user on two devices is one member to everybody else (one
    /// `enter_room`, one `exit_room`, counted once in `members` and in viewers).
    sessions_of: HashMap<String, usize>,
    seats: Seats,
    /// Last `room_status` sent (BIGO or live-room).
    status: Option<String>,
    /// Last BIGO status taken in: only a change enters the reorder buffer.
    bigo_status: Option<BigoStatus>,
    /// Set when the live room is `closed` or `banned`: member reports answer 1007.
    closed: bool,
    last_activity: Instant,
    membership: Option<Recipient<MembershipChanged>>,
}

impl RoomActor {
    pub fn new(
        channel_name: String,
        config: RoomConfig,
        send_queue_len: usize,
        metrics: Arc<Metrics>,
        registry: Addr<Registry>,
    ) -> Self {
        let (fanout, _) = broadcast::channel(send_queue_len.max(1));
        Self {
            seqids: Box::new(DedupWindow::new(config.dedup_len)),
            data_seqs: Box::new(DedupWindow::new(config.dedup_len)),
            reorder: ReorderBuffer::new(Duration::from_millis(config.reorder_window_ms)),
            flush_timer: None,
            last_release: Instant::now(),
            log: Box::new(MemoryLog::new(config.history_len)),
            fanout,
            members: HashMap::new(),
            sessions_of: HashMap::new(),
            seats: Seats::new(&channel_name, config.seats),
            status: None,
            bigo_status: None,
            closed: false,
            last_activity: Instant::now(),
            membership: None,
            channel_name,
            config,
            metrics,
            registry,
        }
    }

    /// Reports joins and leaves to `hook` (see [`MembershipChanged`]).
    pub fn with_membership(mut self, hook: Option<Recipient<MembershipChanged>>) -> Self {
        self.membership = hook;
        self
    }

    /// Starts with a live-room status remembered by the registry (a `closed`/`banned` room that
    /// stopped and started again keeps answering 1007), without broadcasting it again.
    pub fn with_status(mut self, status: Option<String>) -> Self {
        self.closed = matches!(status.as_deref(), Some("closed" | "banned"));
        self.status = status;
        self
    }

    fn membership_changed(&self, delta: i64) {
        if let Some(hook) = &self.membership {
            // do_send, not try_send: a lost delta would leave the viewer count wrong for good.
            hook.do_send(MembershipChanged { channel_name: self.channel_name.clone(), delta });
        }
    }

    /// Numbers, serialises, logs and broadcasts events, in the order given.
    fn publish(&mut self, events: Vec<(EventBody, i64, Option<SessionId>)>) -> Option<u64> {
        if events.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(events.len());
        for (body, ts, exclude) in events {
            let seq = self.log.next_seq();
            let json = serialise(&body, Some(seq), ts);
            let event = RoomEvent { seq: Some(seq), exclude, json };
            self.log.append(event.clone());
            out.push(event);
        }
        let last = out.last().and_then(|e| e.seq);
        // An error only means nobody is listening right now; history still has the events.
        let _ = self.fanout.send(Arc::new(Bundle::new(out)));
        last
    }

    fn send_direct(&self, user_id: &str, body: &EventBody) -> bool {
        let json = serialise(body, None, now_ms());
        let mut reached = false;
        for member in self.members.values().filter(|m| m.profile.user_id == user_id) {
            if member.addr.try_send(ToMember::Frame(json.clone())).is_ok() {
                reached = true;
            }
        }
        reached
    }

    fn snapshot(&self) -> RoomSnapshot {
        RoomSnapshot {
            channel_name: self.channel_name.clone(),
            members: self.sessions_of.len(),
            seats: self.seats.snapshot(),
            last_seq: self.log.last_seq(),
            status: self.status.clone(),
        }
    }

    /// Sets the timer for the next release, in ticks sized to the room (see [`tick`]): a
    /// member gets at most one bundle per tick whatever the push rate, and no item is held
    /// longer than the window; an item may leave up to one tick early.
    fn schedule_flush(&mut self, ctx: &mut Context<Self>) {
        if self.flush_timer.is_some() {
            return;
        }
        if let Some(due) = self.reorder.next_due() {
            let c = &self.config;
            let every = tick::release_tick(self.members.len(), c.release_tick_ms, c.reorder_window_ms);
            let at = tick::release_at(due, self.last_release, every);
            let wait = at.saturating_duration_since(Instant::now());
            self.flush_timer = Some(ctx.run_later(wait, move |room, ctx| {
                room.flush_timer = None;
                let now = Instant::now();
                room.last_release = now;
                room.release(now + every, false);
                room.schedule_flush(ctx);
            }));
        }
    }

    /// Moves due items (or, with `all`, every item) from the reorder buffer to the members.
    fn release(&mut self, now: Instant, all: bool) {
        let released = if all { self.reorder.drain() } else { self.reorder.release_due(now) };
        if released.is_empty() {
            return;
        }
        let now_ms = now_ms();
        let mut events = Vec::with_capacity(released.len());
        for r in released {
            if r.late {
                self.metrics.late_items.inc();
            }
            match r.item {
                Pending::Item(item) => {
                    self.metrics.delivery_delay.observe((now_ms - r.ts).max(0) as f64 / 1000.0);
                    events.push((self.item_event(*item), r.ts, None));
                }
                Pending::Status(status) => {
                    let word = status.as_room_status();
                    if self.status.as_deref() != Some(word) {
                        self.status = Some(word.to_string());
                        let body =
                            EventBody::RoomStatus { channel_name: self.channel_name.clone(), status: word.to_string() };
                        events.push((body, r.ts, None));
                    }
                }
            }
        }
        self.publish(events);
    }

    /// The danmu mapping of section 2.4.
    fn item_event(&self, item: DanmuItem) -> EventBody {
        let channel_name = self.channel_name.clone();
        match item.kind.as_str() {
            "msg" => EventBody::SendTopicMsg {
                profile: Profile {
                    user_id: item.user,
                    nickname: item.nick_name,
                    sex: serde_json::Value::from(0),
                    avatar_url: item.user_img.clone(),
                    avatar_small_url: item.user_img,
                },
                content: item.content,
                channel_name,
            },
            "gift" => EventBody::SendGift {
                notify_type: NotifyType::Bc,
                channel_name,
                gift: Gift {
                    id: item.gift_id,
                    sender_id: item.user,
                    receiver_id: item.openid,
                    sender_nickname: item.nick_name,
                    name: item.gift_name,
                    image_url: item.gift_url,
                    num: item.gift_count,
                    ..Gift::default()
                },
            },
            "heart" => EventBody::Like {
                channel_name,
                user_id: item.user,
                nickname: item.nick_name,
                avatar_url: item.user_img,
                count: item.count,
            },
            _ => EventBody::Danmu { channel_name, item: item.raw },
        }
    }

    fn member(&self, session: SessionId) -> Result<&Member, Refused> {
        self.members.get(&session).ok_or(NOT_A_MEMBER)
    }

    /// True when `user_id` may not join because this is a call that already has two other
    /// users (another connection of a user already inside is welcome).
    fn call_is_full_for(&self, user_id: &str) -> bool {
        self.is_call() && !self.sessions_of.contains_key(user_id) && self.sessions_of.len() >= 2
    }

    fn is_call(&self) -> bool {
        self.channel_name.starts_with("call:")
    }

    /// Removes a member: frees its seat, tells the others (`exit_room`; a call peer also gets
    /// `hang_up` when the member dropped).
    fn remove_member(&mut self, session: SessionId, reason: LeaveReason) -> Option<Member> {
        let member = self.members.remove(&session)?;
        let user_id = member.profile.user_id.clone();
        self.last_activity = Instant::now();
        // The same user may still be here on another device; only their last session frees the
        // seat and tells the others.
        let still_here = match self.sessions_of.get_mut(&user_id) {
            Some(n) if *n > 1 => {
                *n -= 1;
                true
            }
            _ => {
                self.sessions_of.remove(&user_id);
                self.membership_changed(-1);
                false
            }
        };
        let room_seat = if still_here { None } else { self.seats.free_user(&user_id) };
        info!(
            "room {}: user_id {} left ({:?}), {} members",
            self.channel_name,
            user_id,
            reason,
            self.sessions_of.len()
        );
        let now = now_ms();
        let exit = EventBody::ExitRoom { user_id: user_id.clone(), channel_name: self.channel_name.clone(), room_seat };
        if reason == LeaveReason::Moved {
            // Serialised apart from the broadcast (a rare path): the member has left the ring.
            let seq = self.log.next_seq();
            let _ = member.addr.try_send(ToMember::Frame(serialise(&exit, (!still_here).then_some(seq), now)));
        }
        let mut events = vec![(exit, now, None)];
        if self.is_call() && reason == LeaveReason::Disconnect && !still_here {
            let peers: Vec<String> = self.members.values().map(|m| m.profile.user_id.clone()).collect();
            for peer in peers {
                let body = EventBody::HangUp {
                    user_id: user_id.clone(),
                    receiver_id: peer.clone(),
                    channel_name: self.channel_name.clone(),
                };
                self.send_direct(&peer, &body);
            }
        }
        if still_here {
            events.clear();
        }
        self.publish(events);
        Some(member)
    }

    fn check_idle(&mut self, ctx: &mut Context<Self>) {
        let idle = self.members.is_empty()
            && self.reorder.is_empty()
            && self.last_activity.elapsed() >= Duration::from_millis(self.config.idle_stop_ms);
        if idle {
            debug!("room {}: idle and empty, stopping", self.channel_name);
            ctx.stop();
        }
    }
}

fn serialise(body: &EventBody, seq: Option<u64>, ts: i64) -> ByteString {
    // Our event types hold only strings, numbers and JSON values: serialising cannot fail.
    ByteString::from(serde_json::to_string(&RoomEventFrame { body, seq, ts }).unwrap_or_default())
}

impl Actor for RoomActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.config.queue_len.max(16));
        self.metrics.rooms.inc();
        let check = Duration::from_millis((self.config.idle_stop_ms / 4).clamp(100, 30_000));
        ctx.run_interval(check, |room, ctx| room.check_idle(ctx));
        debug!("room {}: started", self.channel_name);
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        self.metrics.rooms.dec();
        self.registry.do_send(RoomStopped { channel_name: self.channel_name.clone(), addr: ctx.address() });
    }
}

impl Handler<Ingest> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: Ingest, ctx: &mut Self::Context) {
        self.last_activity = Instant::now();
        let seqid_key = format!("{}/{}", msg.game_sess, msg.seqid);
        if !msg.seqid.is_empty() && self.seqids.contains(&seqid_key) {
            self.metrics.duplicates.inc();
            debug!("room {}: game_sess {} seqid {} is a retry", self.channel_name, msg.game_sess, msg.seqid);
            let _ = msg.reply.send(IngestOutcome::DuplicateSeqid);
            return;
        }
        let status_change = msg.status.filter(|s| self.bigo_status != Some(*s));
        let incoming = msg.items.len() + usize::from(status_change.is_some());
        if self.reorder.len() + incoming > self.config.queue_len {
            warn!(
                "room {}: queue full ({} held), game_sess {} seqid {} refused with 503",
                self.channel_name,
                self.reorder.len(),
                msg.game_sess,
                msg.seqid
            );
            let _ = msg.reply.send(IngestOutcome::Full);
            return;
        }
        if !msg.seqid.is_empty() {
            self.seqids.first_time(&seqid_key);
        }
        let now = Instant::now();
        let mut new_items = 0;
        for item in msg.items {
            if !item.data_seq.is_empty() && !self.data_seqs.first_time(&format!("{}/{}", msg.game_sess, item.data_seq))
            {
                self.metrics.duplicates.inc();
                continue;
            }
            new_items += 1;
            self.reorder.push(item.ts, Pending::Item(Box::new(item)), now);
        }
        if let Some(status) = status_change {
            self.bigo_status = Some(status);
            self.reorder.push(msg.timestamp, Pending::Status(status), now);
        }
        self.metrics.observe_queue_depth(self.reorder.len());
        // Taken: from here on the items are in the room's hands.
        let _ = msg.reply.send(IngestOutcome::Accepted { new_items });
        self.release(now, false);
        self.schedule_flush(ctx);
    }
}

impl Handler<Join> for RoomActor {
    type Result = Result<Joined, Refused>;

    fn handle(&mut self, msg: Join, _ctx: &mut Self::Context) -> Self::Result {
        self.last_activity = Instant::now();
        if self.closed {
            return Err(Refused::new(ErrorCode::RoomClosed, "room closed"));
        }
        if self.call_is_full_for(&msg.profile.user_id) {
            // Error code choice: README "Client protocol by example", calls.
            return Err(Refused::new(ErrorCode::RoomClosed, "call already has two users"));
        }
        // Subscribe before anything is published so that no event falls between replay and live.
        let events = self.fanout.subscribe();
        let (replay, recovered) = match msg.last_seq {
            Some(last_seq) => {
                let r = self.log.since(last_seq);
                (r.events, Some(r.complete))
            }
            None => (Vec::new(), None),
        };
        let profile = msg.profile.clone();
        let user_id = profile.user_id.clone();
        if self.members.insert(msg.session, Member { profile: msg.profile, addr: msg.addr }).is_some() {
            // The same session joining again: nothing changes for the others.
            return Ok(Joined { events, snapshot: self.snapshot(), own_seq: self.log.last_seq(), replay, recovered });
        }
        let sessions = self.sessions_of.entry(user_id.clone()).or_insert(0);
        *sessions += 1;
        let own_seq = if *sessions == 1 {
            self.membership_changed(1);
            let enter = EventBody::EnterRoom {
                profile,
                channel_name: self.channel_name.clone(),
                i_segment: String::new(),
                i_segment_text: String::new(),
                user_car_gift: serde_json::Value::Null,
            };
            self.publish(vec![(enter, now_ms(), Some(msg.session))]).unwrap_or(0)
        } else {
            // Another device of a member: the others already know this user.
            self.log.last_seq()
        };
        info!("room {}: user_id {} joined, {} members", self.channel_name, user_id, self.sessions_of.len());
        Ok(Joined { events, snapshot: self.snapshot(), own_seq, replay, recovered })
    }
}

impl Handler<Leave> for RoomActor {
    type Result = Result<(), ErrorCode>;

    fn handle(&mut self, msg: Leave, _ctx: &mut Self::Context) -> Self::Result {
        self.remove_member(msg.session, msg.reason).map(|_| ()).ok_or(ErrorCode::NotInRoom)
    }
}

impl Handler<MemberAction> for RoomActor {
    type Result = Result<ActionDone, Refused>;

    fn handle(&mut self, msg: MemberAction, _ctx: &mut Self::Context) -> Self::Result {
        let profile = self.member(msg.session)?.profile.clone();
        if self.closed {
            return Err(Refused::new(ErrorCode::RoomClosed, "room closed"));
        }
        self.last_activity = Instant::now();
        let channel_name = self.channel_name.clone();
        let now = now_ms();
        match msg.action {
            Action::Say { content } => {
                let seq = self.publish(vec![(EventBody::SendTopicMsg { profile, content, channel_name }, now, None)]);
                Ok(ActionDone { seq, room_seat: None })
            }
            Action::Gift { notify_type, gift } => {
                let receiver = self.members.values().find(|m| m.profile.user_id == gift.receiver_id);
                let receiver_nickname = receiver.map(|m| m.profile.nickname.clone()).unwrap_or_default();
                let text =
                    |key: &str| gift.extra.get(key).and_then(crate::protocol::lenient::text_of).unwrap_or_default();
                let body = EventBody::SendGift {
                    notify_type,
                    channel_name,
                    gift: Gift {
                        id: gift.id.clone(),
                        sender_id: profile.user_id.clone(),
                        receiver_id: gift.receiver_id.clone(),
                        sender_nickname: profile.nickname.clone(),
                        receiver_nickname,
                        name: gift.name.clone(),
                        image_url: text("image_url"),
                        image_small_url: text("image_small_url"),
                        image_big_url: text("image_big_url"),
                        dynamic_image_url: text("dynamic_image_url"),
                        num: gift.num.unwrap_or(1),
                        sender_room_seat_id: self.seats.seat_of(&profile.user_id),
                        receiver_room_seat_id: self.seats.seat_of(&gift.receiver_id),
                    },
                };
                match notify_type {
                    NotifyType::Bc => Ok(ActionDone { seq: self.publish(vec![(body, now, None)]), room_seat: None }),
                    NotifyType::Ptp if gift.receiver_id.is_empty() => {
                        Err(Refused::new(ErrorCode::BadParameters, "a ptp gift needs gift.receiver_id"))
                    }
                    NotifyType::Ptp => {
                        if self.send_direct(&gift.receiver_id, &body) {
                            Ok(ActionDone::default())
                        } else {
                            Err(Refused::new(ErrorCode::NotInRoom, "receiver not in that room"))
                        }
                    }
                }
            }
            Action::Up { seat_id } => {
                let taken = match seat_id {
                    Some(seat_id) => self.seats.take(seat_id, &profile),
                    None => self.seats.take_any(&profile),
                };
                let taken = taken.map_err(|e| match e {
                    SeatError::Taken => Refused::new(ErrorCode::SeatTaken, "seat taken"),
                    SeatError::Full => Refused::new(ErrorCode::SeatTaken, "every seat is taken"),
                    SeatError::NoSuchSeat => Refused::new(ErrorCode::BadParameters, "no seat with that seat_id"),
                })?;
                let mut events = Vec::new();
                if let Some(left) = taken.left {
                    events.push((EventBody::Down { channel_name: channel_name.clone(), room_seat: left }, now, None));
                }
                events.push((EventBody::Up { channel_name, room_seat: taken.seat.clone() }, now, None));
                Ok(ActionDone { seq: self.publish(events), room_seat: Some(taken.seat) })
            }
            Action::Down => {
                let seat = self
                    .seats
                    .free_user(&profile.user_id)
                    .ok_or(Refused::new(ErrorCode::NotInRoom, "no seat held in that room"))?;
                let seq = self.publish(vec![(EventBody::Down { channel_name, room_seat: seat.clone() }, now, None)]);
                Ok(ActionDone { seq, room_seat: Some(seat) })
            }
            Action::HangUp { receiver_id } => {
                let mut receivers: Vec<String> = if receiver_id.is_empty() {
                    let others = self.members.values().filter(|m| m.profile.user_id != profile.user_id);
                    others.map(|m| m.profile.user_id.clone()).collect()
                } else {
                    vec![receiver_id]
                };
                receivers.sort_unstable();
                receivers.dedup();
                let mut reached = false;
                for receiver_id in receivers {
                    let body = EventBody::HangUp {
                        user_id: profile.user_id.clone(),
                        receiver_id: receiver_id.clone(),
                        channel_name: channel_name.clone(),
                    };
                    reached |= self.send_direct(&receiver_id, &body);
                }
                if reached {
                    Ok(ActionDone::default())
                } else {
                    Err(Refused::new(ErrorCode::NotInRoom, "receiver not in that room"))
                }
            }
        }
    }
}

impl Handler<SetStatus> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: SetStatus, _ctx: &mut Self::Context) {
        self.last_activity = Instant::now();
        self.closed = matches!(msg.status.as_str(), "closed" | "banned");
        if self.status.as_deref() == Some(msg.status.as_str()) {
            return;
        }
        self.status = Some(msg.status.clone());
        let body = EventBody::RoomStatus { channel_name: self.channel_name.clone(), status: msg.status };
        self.publish(vec![(body, now_ms(), None)]);
    }
}

impl Handler<Notice> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: Notice, _ctx: &mut Self::Context) {
        self.last_activity = Instant::now();
        let body = EventBody::RoomNotice {
            channel_name: self.channel_name.clone(),
            expire_time: msg.expire_time,
            content: msg.content,
            client_url: msg.client_url,
        };
        self.publish(vec![(body, now_ms(), None)]);
    }
}

impl Handler<Flush> for RoomActor {
    type Result = ();

    fn handle(&mut self, _: Flush, _ctx: &mut Self::Context) {
        self.release(Instant::now(), true);
    }
}
