//! `RoomCore`: everything one room decides, as plain Rust (no actix). Its inputs are method
//! calls (a push, a join, a leave, a member action, a status, a notice, a tick) that each take
//! the time as a value ([`Now`]); its outputs are the call's answer plus [`Effects`]: the
//! numbered events to publish to every member, the frames for single sessions, and the change
//! in membership. An engine ([`LocalEngine`](super::LocalEngine), or the Redis engine's owner)
//! feeds it and carries the effects out; tests drive it directly, with a clock of their own.
//!
//! What it owns (docs/protocol.md 2.3-2.6): dedup of seqids and data_seqs, the reorder buffer and
//! its release ticks, `seq` numbering and history under one `epoch`, members, seats and
//! calls, the danmu mapping, and the room's status.

use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::dedup::DedupWindow;
use super::events::{serialise, RoomEvent, SessionId};
use super::history::MemoryLog;
use super::inputs::{
    Action, ActionDone, Effects, IngestOutcome, JoinAnswer, JoinRequest, LeaveReason, MemberChange, Now, Push, Refused,
    RoomState,
};
use super::mapping::{gift_event, item_event, GiftParties};
use super::members::{Joining, Members};
use super::reorder::ReorderBuffer;
use super::seats::{SeatError, Seats};
use super::tick;
use crate::config::RoomConfig;
use crate::metrics::Metrics;
use crate::protocol::bigo::{BigoStatus, DanmuItem};
use crate::protocol::channel::ChannelKind;
use crate::protocol::client::ErrorCode;
use crate::protocol::client::{EventBody, GiftReport, NotifyType, Profile, RoomSnapshot};
use crate::protocol::status::{ChannelStatus, LiveStatus};

const NOT_A_MEMBER: Refused = Refused::new(ErrorCode::NotInRoom, "not in that room");
const ROOM_CLOSED: Refused = Refused::new(ErrorCode::RoomClosed, "room closed");
const NO_RECEIVER: Refused = Refused::new(ErrorCode::NotInRoom, "receiver not in that room");

/// What waits in the reorder buffer: danmu items and BIGO status changes, so that a status 3
/// reaches clients after the items pushed before it.
#[derive(Debug)]
enum Pending {
    /// Boxed: the heap moves entries while sifting, and items are large. With its dedup key
    /// (`game_sess/data_seq`), when it has a data_seq.
    Item(Box<DanmuItem>, Option<String>),
    Status(BigoStatus),
}

pub struct RoomCore {
    channel_name: String,
    /// What the name says this channel is (a call has rules of its own).
    kind: ChannelKind,
    epoch: String,
    config: RoomConfig,
    metrics: Arc<Metrics>,
    seqids: DedupWindow,
    data_seqs: DedupWindow,
    reorder: ReorderBuffer<Pending>,
    /// When the last timed release happened (release ticks are spaced from it).
    last_release: Instant,
    log: MemoryLog<RoomEvent>,
    members: Members,
    seats: Seats,
    /// The last `room_status` said (BIGO's or the live room's).
    status: Option<ChannelStatus>,
    /// The last BIGO status taken in: only a change enters the reorder buffer.
    bigo_status: Option<BigoStatus>,
    /// The live room's status, when the channel is a live room's: an ended one refuses reports.
    live_status: Option<LiveStatus>,
    last_activity: Instant,
    effects: Effects,
}

impl RoomCore {
    /// A room with nothing in it yet. `epoch` names this numbering: a fresh one each time a
    /// room's state starts from nothing (docs/protocol.md 2.6, Epochs).
    pub fn new(channel_name: String, epoch: String, config: RoomConfig, metrics: Arc<Metrics>, now: Now) -> Self {
        Self {
            seqids: DedupWindow::new(config.dedup_len),
            data_seqs: DedupWindow::new(config.dedup_len),
            reorder: ReorderBuffer::new(Duration::from_millis(config.reorder_window_ms)),
            last_release: now.at,
            log: MemoryLog::new(config.history_len),
            members: Members::default(),
            seats: Seats::new(&channel_name, config.seats),
            status: None,
            bigo_status: None,
            live_status: None,
            last_activity: now.at,
            effects: Effects::default(),
            kind: ChannelKind::of(&channel_name),
            channel_name,
            epoch,
            config,
            metrics,
        }
    }

    /// The room as it stands, to be carried over ([`RoomState`]).
    pub fn state(&self) -> RoomState {
        let mut members = self.members.sessions_and_profiles();
        members.sort_by_key(|(session, _)| *session);
        RoomState {
            epoch: self.epoch.clone(),
            next_seq: self.log.next_seq(),
            members,
            seats: self.seats.holders(),
            status: self.status,
            bigo_status: self.bigo_status,
            live_status: self.live_status,
        }
    }

    /// [`state`](Self::state) without the member list, for a room that keeps its members
    /// apart (changed one by one, from [`Effects::members`]): the rest is small.
    pub fn state_without_members(&self) -> RoomState {
        RoomState {
            epoch: self.epoch.clone(),
            next_seq: self.log.next_seq(),
            members: Vec::new(),
            seats: self.seats.holders(),
            status: self.status,
            bigo_status: self.bigo_status,
            live_status: self.live_status,
        }
    }

    /// A room going on from `state`: same epoch, numbering from where it stopped, the same
    /// members and seats. Its history starts empty (replay then comes from the shared store).
    pub fn restore(
        channel_name: String,
        state: RoomState,
        config: RoomConfig,
        metrics: Arc<Metrics>,
        now: Now,
    ) -> Self {
        let mut core = Self::new(channel_name, state.epoch, config, metrics, now);
        core.log = MemoryLog::starting_at(core.config.history_len, state.next_seq);
        for (session, profile) in state.members {
            core.members.join(session, profile);
        }
        core.seats = Seats::restore(&core.channel_name, core.config.seats, state.seats);
        core.status = state.status;
        core.bigo_status = state.bigo_status;
        core.live_status = state.live_status;
        core
    }

    /// Remembers data_seqs (as `game_sess/data_seq`) whose items left this room before: a
    /// room taken over reads its unfinished pushes again, and must not deliver twice.
    pub fn seen_before(&mut self, keys: impl IntoIterator<Item = String>) {
        for key in keys {
            self.data_seqs.first_time(&key);
        }
    }

    /// Remembers pushes (as `game_sess/seqid`) this room took before: a re-send that reaches
    /// a room taken over is still a re-send.
    pub fn seqids_seen_before(&mut self, keys: impl IntoIterator<Item = String>) {
        for key in keys {
            self.seqids.first_time(&key);
        }
    }

    /// What the store says the live room's status is, learnt as the room starts: taken
    /// without telling anyone (nobody is here yet), and shown in the snapshot.
    pub fn restore_live_status(&mut self, status: LiveStatus) {
        self.live_status = Some(status);
        self.status = status.channel_status();
    }

    pub fn channel_name(&self) -> &str {
        &self.channel_name
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Users in the room.
    pub fn member_count(&self) -> usize {
        self.members.users()
    }

    /// Items and status changes held in the reorder buffer.
    pub fn held(&self) -> usize {
        self.reorder.len()
    }

    /// Items taken into the reorder buffer so far: a push whose items all arrived before
    /// [`Self::oldest_held`] holds none of them any more.
    pub fn arrivals(&self) -> u64 {
        self.reorder.arrivals()
    }

    /// The arrival number of the oldest item still in the reorder buffer.
    pub fn oldest_held(&self) -> Option<u64> {
        self.reorder.oldest_held()
    }

    fn is_ended(&self) -> bool {
        self.live_status.is_some_and(LiveStatus::is_ended)
    }

    /// The effects of the inputs since the last call.
    fn take_effects(&mut self) -> Effects {
        std::mem::take(&mut self.effects)
    }

    // -----------------------------------------------------------------------------------------
    // Inputs

    /// A push: dedup, then into the reorder buffer (docs/protocol.md 1.4, 2.6). `Accepted` means the
    /// room holds the items now: that is when BIGO may get its 200.
    pub fn push(&mut self, push: Push, now: Now) -> (IngestOutcome, Effects) {
        let outcome = self.take_push(push, now);
        if matches!(outcome, IngestOutcome::Accepted { .. }) {
            self.release(now, now.at);
        }
        (outcome, self.take_effects())
    }

    fn take_push(&mut self, push: Push, now: Now) -> IngestOutcome {
        self.last_activity = now.at;
        let seqid_key = format!("{}/{}", push.game_sess, push.seqid);
        if !push.seqid.is_empty() && self.seqids.contains(&seqid_key) {
            self.metrics.duplicates.inc();
            debug!("room {}: game_sess {} seqid {} is a retry", self.channel_name, push.game_sess, push.seqid);
            return IngestOutcome::DuplicateSeqid;
        }
        let status_change = push.status.filter(|s| self.bigo_status != Some(*s));
        let incoming = push.items.len() + usize::from(status_change.is_some());
        if self.reorder.len() + incoming > self.config.queue_len {
            warn!(
                "room {}: queue full ({} held), game_sess {} seqid {} refused with 503",
                self.channel_name,
                self.reorder.len(),
                push.game_sess,
                push.seqid
            );
            return IngestOutcome::Full;
        }
        if !push.seqid.is_empty() {
            self.seqids.first_time(&seqid_key);
        }
        let mut new_items = 0;
        for item in push.items {
            let key = (!item.data_seq.is_empty()).then(|| format!("{}/{}", push.game_sess, item.data_seq));
            if key.as_ref().is_some_and(|key| !self.data_seqs.first_time(key)) {
                self.metrics.duplicates.inc();
                continue;
            }
            new_items += 1;
            self.reorder.push(item.ts, Pending::Item(Box::new(item), key), now.at);
        }
        if let Some(status) = status_change {
            self.bigo_status = Some(status);
            self.reorder.push(push.timestamp, Pending::Status(status), now.at);
        }
        self.metrics.observe_queue_depth(self.reorder.len());
        IngestOutcome::Accepted { new_items }
    }

    /// A client enters (docs/protocol.md 2.3 `enter_room_report`). The caller must start reading
    /// the room's events before applying the effects, so that none falls between the replay
    /// and the live ones.
    pub fn join(&mut self, req: JoinRequest, now: Now) -> (Result<JoinAnswer, Refused>, Effects) {
        let answer = self.take_join(req, now);
        (answer, self.take_effects())
    }

    fn take_join(&mut self, req: JoinRequest, now: Now) -> Result<JoinAnswer, Refused> {
        self.last_activity = now.at;
        if self.is_ended() {
            return Err(ROOM_CLOSED);
        }
        if self.call_is_full_for(&req.profile.user_id) {
            // Error code choice: docs/decisions.md, "Room protocol": full call.
            return Err(Refused::new(ErrorCode::RoomClosed, "call already has two users"));
        }
        let newest = self.log.last_seq();
        let user_id = req.profile.user_id.clone();
        let joining = self.members.join(req.session, req.profile.clone());
        if !matches!(joining, Joining::AlreadyIn) {
            self.effects.members.push(MemberChange::In(req.session, req.profile.clone()));
        }
        let own_seq = match joining {
            Joining::AlreadyIn | Joining::NewDevice => self.log.last_seq(),
            Joining::NewUser => {
                self.effects.membership.push(1);
                let enter = EventBody::EnterRoom {
                    profile: req.profile,
                    channel_name: self.channel_name.clone(),
                    i_segment: String::new(),
                    i_segment_text: String::new(),
                    user_car_gift: serde_json::Value::Null,
                };
                info!("room {}: user_id {} joined, {} members", self.channel_name, user_id, self.members.users());
                self.publish(enter, now.unix_ms, Some(req.session))
            }
        };
        Ok(JoinAnswer { snapshot: self.snapshot(), own_seq, newest })
    }

    /// A member leaves: its seat is freed and the others told (`exit_room`; a call peer also
    /// gets `hang_up` when the member dropped). `NotInRoom` when the session was not a member.
    pub fn leave(&mut self, session: SessionId, reason: LeaveReason, now: Now) -> (Result<(), ErrorCode>, Effects) {
        let answer = self.take_leave(session, reason, now);
        (answer, self.take_effects())
    }

    fn take_leave(&mut self, session: SessionId, reason: LeaveReason, now: Now) -> Result<(), ErrorCode> {
        let left = self.members.leave(session).ok_or(ErrorCode::NotInRoom)?;
        self.effects.members.push(MemberChange::Out(session));
        self.last_activity = now.at;
        let user_id = left.profile.user_id;
        info!("room {}: user_id {} left ({:?}), {} members", self.channel_name, user_id, reason, self.members.users());
        // The same user may still be here on another device: only their last session frees
        // the seat and tells the others.
        if left.still_here {
            if reason == LeaveReason::Moved {
                let exit = EventBody::ExitRoom { user_id, channel_name: self.channel_name.clone(), room_seat: None };
                self.effects.direct.push((session, serialise(&exit, None, now.unix_ms)));
            }
            return Ok(());
        }
        self.effects.membership.push(-1);
        let room_seat = self.seats.free_user(&user_id);
        let exit = EventBody::ExitRoom { user_id: user_id.clone(), channel_name: self.channel_name.clone(), room_seat };
        let seq = self.publish(exit.clone(), now.unix_ms, None);
        if reason == LeaveReason::Moved {
            // It has left the room's events already, but did not ask to go: it hears it too.
            self.effects.direct.push((session, serialise(&exit, Some(seq), now.unix_ms)));
        }
        if self.is_call() && reason == LeaveReason::Disconnect {
            let peers: Vec<String> = self.members.user_ids().map(str::to_string).collect();
            for peer in peers {
                let body = EventBody::HangUp {
                    user_id: user_id.clone(),
                    receiver_id: peer.clone(),
                    channel_name: self.channel_name.clone(),
                };
                self.send_direct(&peer, &body, now);
            }
        }
        Ok(())
    }

    /// A member's report (docs/protocol.md 2.3): answers the seq of the event it caused.
    pub fn act(&mut self, session: SessionId, action: Action, now: Now) -> (Result<ActionDone, Refused>, Effects) {
        let answer = self.take_action(session, action, now);
        (answer, self.take_effects())
    }

    fn take_action(&mut self, session: SessionId, action: Action, now: Now) -> Result<ActionDone, Refused> {
        let profile = self.members.profile(session).ok_or(NOT_A_MEMBER)?.clone();
        if self.is_ended() {
            return Err(ROOM_CLOSED);
        }
        self.last_activity = now.at;
        let channel_name = self.channel_name.clone();
        match action {
            Action::Say { content } => {
                let seq = self.publish(EventBody::SendTopicMsg { profile, content, channel_name }, now.unix_ms, None);
                Ok(ActionDone { seq: Some(seq), room_seat: None })
            }
            Action::Gift { notify_type, gift } => self.gift(&profile, notify_type, &gift, now),
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
                if let Some(left) = taken.left {
                    self.publish(
                        EventBody::Down { channel_name: channel_name.clone(), room_seat: left },
                        now.unix_ms,
                        None,
                    );
                }
                let seq =
                    self.publish(EventBody::Up { channel_name, room_seat: taken.seat.clone() }, now.unix_ms, None);
                Ok(ActionDone { seq: Some(seq), room_seat: Some(taken.seat) })
            }
            Action::Down => {
                let seat = self
                    .seats
                    .free_user(&profile.user_id)
                    .ok_or(Refused::new(ErrorCode::NotInRoom, "no seat held in that room"))?;
                let seq = self.publish(EventBody::Down { channel_name, room_seat: seat.clone() }, now.unix_ms, None);
                Ok(ActionDone { seq: Some(seq), room_seat: Some(seat) })
            }
            Action::HangUp { receiver_id } => {
                let mut receivers: Vec<String> = if receiver_id.is_empty() {
                    self.members.user_ids().filter(|u| *u != profile.user_id).map(str::to_string).collect()
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
                    reached |= self.send_direct(&receiver_id, &body, now);
                }
                reached.then(ActionDone::default).ok_or(NO_RECEIVER)
            }
        }
    }

    fn gift(
        &mut self,
        sender: &Profile,
        notify_type: NotifyType,
        gift: &GiftReport,
        now: Now,
    ) -> Result<ActionDone, Refused> {
        if notify_type == NotifyType::Ptp && gift.receiver_id.is_empty() {
            return Err(Refused::new(ErrorCode::BadParameters, "a ptp gift needs gift.receiver_id"));
        }
        let who = GiftParties {
            sender,
            receiver_nickname: self
                .members
                .profile_of_user(&gift.receiver_id)
                .map(|p| p.nickname.clone())
                .unwrap_or_default(),
            sender_seat: self.seats.seat_of(&sender.user_id),
            receiver_seat: self.seats.seat_of(&gift.receiver_id),
        };
        let body = gift_event(&self.channel_name, notify_type, gift, who);
        match notify_type {
            NotifyType::Bc => Ok(ActionDone { seq: Some(self.publish(body, now.unix_ms, None)), room_seat: None }),
            NotifyType::Ptp => {
                self.send_direct(&gift.receiver_id, &body, now).then(ActionDone::default).ok_or(NO_RECEIVER)
            }
        }
    }

    /// The live room's status changed (docs/protocol.md 3): members get `room_status`; an ended
    /// room refuses their reports with 1007 from now on.
    pub fn set_live_status(&mut self, status: LiveStatus, now: Now) -> Effects {
        self.last_activity = now.at;
        self.live_status = Some(status);
        if let Some(word) = status.channel_status() {
            self.say_status(word, now.unix_ms);
        }
        self.take_effects()
    }

    /// An operator notice (docs/protocol.md 3 admin `notice`).
    pub fn notice(&mut self, content: String, expire_time: i64, client_url: String, now: Now) -> Effects {
        self.last_activity = now.at;
        let body = EventBody::RoomNotice { channel_name: self.channel_name.clone(), expire_time, content, client_url };
        self.publish(body, now.unix_ms, None);
        self.take_effects()
    }

    /// The release timer fired: releases what falls due within the coming tick.
    pub fn tick(&mut self, now: Now) -> Effects {
        self.last_release = now.at;
        let until = now.at + self.release_tick();
        self.release(now, until);
        self.take_effects()
    }

    /// Releases everything held now (shutdown).
    pub fn flush(&mut self, now: Now) -> Effects {
        let released = self.reorder.drain();
        self.publish_released(released, now);
        self.take_effects()
    }

    // -----------------------------------------------------------------------------------------
    // Questions from the shell

    /// When the release timer should fire next, if anything is held: a tick before the next
    /// item falls due, ticks sized to the room (see [`tick`]).
    pub fn next_release(&self) -> Option<Instant> {
        let due = self.reorder.next_due()?;
        Some(tick::release_at(due, self.last_release, self.release_tick()))
    }

    /// True when the room has had no members and nothing to do for `room.idle_stop_ms`.
    pub fn is_idle(&self, now: Now) -> bool {
        self.members.is_empty()
            && self.reorder.is_empty()
            && now.at.saturating_duration_since(self.last_activity) >= Duration::from_millis(self.config.idle_stop_ms)
    }

    /// The events `from..=to` that history still holds, in order.
    pub fn history(&self, from: u64, to: u64) -> Vec<RoomEvent> {
        self.log.range(from, to)
    }

    pub fn snapshot(&self) -> RoomSnapshot {
        RoomSnapshot {
            channel_name: self.channel_name.clone(),
            members: self.members.users(),
            seats: self.seats.snapshot(),
            last_seq: self.log.last_seq(),
            epoch: self.epoch.clone(),
            status: self.status,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Rules

    fn release_tick(&self) -> Duration {
        let c = &self.config;
        tick::release_tick(self.members.sessions(), c.release_tick_ms, c.reorder_window_ms)
    }

    /// Moves the items due by `until` from the reorder buffer to the members.
    fn release(&mut self, now: Now, until: Instant) {
        let released = self.reorder.release_due(until);
        self.publish_released(released, now);
    }

    fn publish_released(&mut self, released: Vec<super::reorder::Released<Pending>>, now: Now) {
        for r in released {
            if r.late {
                self.metrics.late_items.inc();
            }
            match r.item {
                Pending::Item(item, key) => {
                    // `ts` is BIGO's (or the store's): saturate, a far-past one lands in +Inf.
                    let delay_ms = now.unix_ms.saturating_sub(r.ts).max(0);
                    self.metrics.delivery_delay.observe(delay_ms as f64 / 1000.0);
                    self.effects.released.extend(key);
                    let body = item_event(&self.channel_name, *item);
                    self.publish(body, r.ts, None);
                }
                Pending::Status(status) => self.say_status(ChannelStatus::from(status), r.ts),
            }
        }
    }

    /// Publishes `room_status` when it says something new.
    fn say_status(&mut self, word: ChannelStatus, ts: i64) {
        if self.status != Some(word) {
            self.status = Some(word);
            let body = EventBody::RoomStatus { channel_name: self.channel_name.clone(), status: word };
            self.publish(body, ts, None);
        }
    }

    /// Numbers, serialises and logs one event for every member (but `exclude`); answers its seq.
    fn publish(&mut self, body: EventBody, ts: i64, exclude: Option<SessionId>) -> u64 {
        let seq = self.log.next_seq();
        let event = RoomEvent::new(&body, Some(seq), ts, exclude);
        self.log.append(event.clone());
        self.effects.events.push(event);
        seq
    }

    /// A frame for every session of `user_id`; false when the user is not here.
    fn send_direct(&mut self, user_id: &str, body: &EventBody, now: Now) -> bool {
        let json = serialise(body, None, now.unix_ms);
        let before = self.effects.direct.len();
        let sessions: Vec<SessionId> = self.members.sessions_of_user(user_id).collect();
        self.effects.direct.extend(sessions.into_iter().map(|s| (s, json.clone())));
        self.effects.direct.len() > before
    }

    fn is_call(&self) -> bool {
        self.kind.is_call()
    }

    /// True when `user_id` may not join because this is a call that already has two other
    /// users (another connection of a user already inside is welcome).
    fn call_is_full_for(&self, user_id: &str) -> bool {
        self.is_call() && !self.members.has_user(user_id) && self.members.users() >= 2
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    const WINDOW: Duration = Duration::from_millis(300);

    fn config() -> RoomConfig {
        RoomConfig { reorder_window_ms: 300, release_tick_ms: 0, seats: 2, ..RoomConfig::default() }
    }

    fn room(channel_name: &str, t0: Now) -> RoomCore {
        RoomCore::new(channel_name.into(), "e1".into(), config(), Arc::new(Metrics::new()), t0)
    }

    fn t0() -> Now {
        Now { at: Instant::now(), unix_ms: 1_700_000_000_000 }
    }

    fn user(id: &str) -> Profile {
        Profile { user_id: id.into(), nickname: format!("n-{id}"), ..Default::default() }
    }

    fn msg(data_seq: &str, ts: i64) -> DanmuItem {
        let raw = json!({"type":"msg","user":"v","ts":ts,"data_seq":data_seq,"content":data_seq});
        DanmuItem::from_value(raw, "anchor", ts)
    }

    fn push(seqid: &str, items: Vec<DanmuItem>) -> Push {
        Push { game_sess: "g".into(), seqid: seqid.into(), timestamp: 0, status: None, items }
    }

    fn join(session: SessionId, user_id: &str) -> JoinRequest {
        JoinRequest { session, profile: user(user_id), last_seq: None, epoch: None }
    }

    fn wire(events: &[RoomEvent]) -> Vec<Value> {
        events.iter().map(|e| serde_json::from_str(&e.json).unwrap()).collect()
    }

    fn contents(events: &[RoomEvent]) -> Vec<String> {
        wire(events).iter().map(|e| e["content"].as_str().unwrap_or_default().to_string()).collect()
    }

    #[test]
    fn member_changes_name_each_session_that_came_or_went() {
        let now = t0();
        let mut r = room("g", now);
        assert_eq!(r.join(join(1, "ann"), now).1.members, [MemberChange::In(1, user("ann"))]);
        assert_eq!(r.join(join(2, "ann"), now).1.members, [MemberChange::In(2, user("ann"))], "a second device");
        assert!(r.join(join(2, "ann"), now).1.members.is_empty(), "already in: no change");
        assert_eq!(r.leave(1, LeaveReason::Exit, now).1.members, [MemberChange::Out(1)]);
        assert!(r.leave(1, LeaveReason::Exit, now).1.members.is_empty(), "not a member: no change");
        let state = r.state_without_members();
        assert!(state.members.is_empty());
        assert_eq!((state.epoch, r.state().members.len()), (r.epoch().to_string(), 1));
    }

    #[test]
    fn items_wait_out_the_window_and_leave_in_ts_order() {
        let now = t0();
        let mut r = room("g", now);
        let (outcome, fx) = r.push(push("1", vec![msg("b", 20), msg("a", 10)]), now);
        assert_eq!(outcome, IngestOutcome::Accepted { new_items: 2 });
        assert!(fx.events.is_empty(), "nothing leaves before the window");
        assert_eq!(r.next_release(), Some(now.at + WINDOW));
        let later = r.push(push("2", vec![msg("c", 5)]), now.after(Duration::from_millis(100))).1;
        assert!(later.events.is_empty());
        let fx = r.tick(now.after(WINDOW));
        assert_eq!(contents(&fx.events), ["c", "a", "b"], "an earlier item that came within the window passes");
        assert_eq!(fx.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [Some(1), Some(2), Some(3)]);
        assert_eq!(r.next_release(), None);
    }

    #[test]
    fn equal_ts_keep_the_order_of_arrival_across_pushes() {
        let now = t0();
        let mut r = room("g", now);
        for i in 0..50 {
            r.push(push(&format!("s{i}"), vec![msg(&format!("{i:02}"), 7)]), now);
        }
        let fx = r.tick(now.after(WINDOW));
        let expected: Vec<String> = (0..50).map(|i| format!("{i:02}")).collect();
        assert_eq!(contents(&fx.events), expected);
    }

    #[test]
    fn a_retried_seqid_and_a_repeated_data_seq_are_taken_once() {
        let now = t0();
        let mut r = room("g", now);
        assert_eq!(r.push(push("1", vec![msg("a", 1)]), now).0, IngestOutcome::Accepted { new_items: 1 });
        assert_eq!(r.push(push("1", vec![msg("a", 1)]), now).0, IngestOutcome::DuplicateSeqid);
        assert_eq!(r.push(push("2", vec![msg("a", 1), msg("b", 2)]), now).0, IngestOutcome::Accepted { new_items: 1 });
        assert_eq!(contents(&r.flush(now).events), ["a", "b"]);
    }

    #[test]
    fn a_full_queue_refuses_the_push_whole() {
        let now = t0();
        let mut r = RoomCore::new(
            "g".into(),
            "e".into(),
            RoomConfig { queue_len: 2, ..config() },
            Arc::new(Metrics::new()),
            now,
        );
        assert_eq!(r.push(push("1", vec![msg("a", 1), msg("b", 1)]), now).0, IngestOutcome::Accepted { new_items: 2 });
        assert_eq!(r.push(push("2", vec![msg("c", 1)]), now).0, IngestOutcome::Full);
        // Refused, so not remembered: the retry is taken once there is room.
        r.flush(now);
        assert_eq!(r.push(push("2", vec![msg("c", 1)]), now).0, IngestOutcome::Accepted { new_items: 1 });
    }

    #[test]
    fn a_status_change_follows_the_items_pushed_before_it() {
        let now = t0();
        let mut r = room("g", now);
        r.push(push("1", vec![msg("a", 100)]), now);
        let closing = Push { status: Some(BigoStatus::Closed), timestamp: 200, ..push("2", vec![]) };
        r.push(closing.clone(), now);
        let events = wire(&r.tick(now.after(WINDOW)).events);
        assert_eq!(events[0]["action"], "send_topic_msg");
        assert_eq!((events[1]["action"].as_str(), events[1]["status"].as_str()), (Some("room_status"), Some("closed")));
        let again = Push { seqid: "3".into(), ..closing };
        r.push(again, now);
        assert!(r.tick(now.after(WINDOW * 2)).events.is_empty(), "an unchanged status is said once");
    }

    #[test]
    fn a_joiner_gets_a_snapshot_and_the_others_an_enter_room_it_does_not_see() {
        let now = t0();
        let mut r = room("c", now);
        let (ann, fx) = r.join(join(1, "ann"), now);
        let ann = ann.unwrap();
        assert_eq!((ann.own_seq, ann.snapshot.members, ann.snapshot.epoch.as_str()), (1, 1, "e1"));
        assert_eq!((fx.events[0].exclude, fx.membership.as_slice()), (Some(1), &[1][..]));
        let (again, fx) = r.join(join(2, "ann"), now);
        assert_eq!(again.unwrap().snapshot.members, 1, "a second device is the same member");
        assert!(fx.events.is_empty() && fx.membership.is_empty());
    }

    #[test]
    fn a_join_says_the_newest_seq_before_its_own_and_history_holds_the_rest() {
        let now = t0();
        let mut r = room("c", now);
        r.join(join(1, "ann"), now).0.unwrap();
        r.act(1, Action::Say { content: "x".into() }, now).0.unwrap();
        r.act(1, Action::Say { content: "y".into() }, now).0.unwrap();
        let bob = r.join(join(2, "bob"), now).0.unwrap();
        assert_eq!((bob.newest, bob.own_seq), (3, 4));
        assert_eq!(contents(&r.history(3, 3)), ["y"]);
        let again = r.join(join(3, "bob"), now).0.unwrap();
        assert_eq!((again.newest, again.own_seq), (4, 4), "a second device adds no event");
    }

    #[test]
    fn leaving_frees_the_seat_and_tells_the_others() {
        let now = t0();
        let mut r = room("c", now);
        r.join(join(1, "ann"), now).0.unwrap();
        r.join(join(2, "bob"), now).0.unwrap();
        let up = r.act(1, Action::Up { seat_id: Some(2) }, now).0.unwrap();
        assert_eq!(up.room_seat.map(|s| (s.id, s.user_id)), Some((2, "ann".to_string())));
        assert_eq!(r.act(2, Action::Up { seat_id: Some(2) }, now).0.unwrap_err().code, ErrorCode::SeatTaken);
        let (left, fx) = r.leave(1, LeaveReason::Disconnect, now);
        left.unwrap();
        let exit = &wire(&fx.events)[0];
        assert_eq!((exit["action"].as_str(), exit["room_seat"]["id"].as_u64()), (Some("exit_room"), Some(2)));
        assert_eq!(exit["room_seat"]["status"], 0);
        assert_eq!(fx.membership, [-1]);
        assert_eq!(r.leave(1, LeaveReason::Exit, now).0, Err(ErrorCode::NotInRoom));
        assert!(r.act(2, Action::Up { seat_id: Some(2) }, now).0.is_ok(), "the seat is free again");
    }

    #[test]
    fn a_moved_member_hears_its_own_exit_room() {
        let now = t0();
        let mut r = room("c", now);
        r.join(join(1, "ann"), now).0.unwrap();
        let fx = r.leave(1, LeaveReason::Moved, now).1;
        assert_eq!(fx.direct.len(), 1);
        assert_eq!(fx.direct[0].0, 1);
        assert_eq!(fx.events[0].seq, serde_json::from_str::<Value>(&fx.direct[0].1).unwrap()["seq"].as_u64());
    }

    #[test]
    fn an_ended_room_refuses_joins_and_reports_with_1007() {
        let now = t0();
        let mut r = room("17", now);
        r.join(join(1, "ann"), now).0.unwrap();
        let fx = r.set_live_status(LiveStatus::Banned, now);
        assert_eq!(wire(&fx.events)[0]["status"], "banned");
        assert_eq!(r.act(1, Action::Say { content: "x".into() }, now).0.unwrap_err().code, ErrorCode::RoomClosed);
        assert_eq!(r.join(join(2, "bob"), now).0.unwrap_err().code, ErrorCode::RoomClosed);

        let mut restarted = room("17", now);
        restarted.restore_live_status(LiveStatus::Closed);
        assert_eq!(restarted.join(join(2, "bob"), now).0.unwrap_err().code, ErrorCode::RoomClosed);
        assert_eq!(restarted.snapshot().status, Some(ChannelStatus::Closed));
    }

    #[test]
    fn a_call_takes_two_users_and_a_drop_hangs_up_on_the_peer() {
        let now = t0();
        let mut r = room("call:ann:bob", now);
        r.join(join(1, "ann"), now).0.unwrap();
        r.join(join(2, "bob"), now).0.unwrap();
        assert_eq!(r.join(join(3, "eve"), now).0.unwrap_err().code, ErrorCode::RoomClosed);
        let fx = r.leave(1, LeaveReason::Disconnect, now).1;
        let hang_up: Value = serde_json::from_str(&fx.direct[0].1).unwrap();
        assert_eq!((fx.direct[0].0, hang_up["action"].as_str()), (2, Some("hang_up")));
        assert_eq!((hang_up["user_id"].as_str(), hang_up["receiver_id"].as_str()), (Some("ann"), Some("bob")));
    }

    #[test]
    fn a_ptp_gift_reaches_only_the_receiver_and_needs_one() {
        let now = t0();
        let mut r = room("c", now);
        r.join(join(1, "ann"), now).0.unwrap();
        r.join(join(2, "bob"), now).0.unwrap();
        r.join(join(3, "bob"), now).0.unwrap();
        let gift = |receiver: &str| GiftReport {
            id: "g".into(),
            name: "Rose".into(),
            num: Some(1),
            receiver_id: receiver.into(),
            extra: Default::default(),
        };
        let (done, fx) = r.act(1, Action::Gift { notify_type: NotifyType::Ptp, gift: gift("bob") }, now);
        assert_eq!(done.unwrap().seq, None, "ptp events are not numbered");
        let mut to: Vec<_> = fx.direct.iter().map(|(s, _)| *s).collect();
        to.sort_unstable();
        assert_eq!((to, fx.events.len()), (vec![2, 3], 0));
        let missing = r.act(1, Action::Gift { notify_type: NotifyType::Ptp, gift: gift("zed") }, now).0;
        assert_eq!(missing.unwrap_err().code, ErrorCode::NotInRoom);
        let unnamed = r.act(1, Action::Gift { notify_type: NotifyType::Ptp, gift: gift("") }, now).0;
        assert_eq!(unnamed.unwrap_err().code, ErrorCode::BadParameters);
    }

    #[test]
    fn a_big_room_releases_in_ticks_never_after_an_item_is_due() {
        let now = t0();
        let mut r = RoomCore::new(
            "g".into(),
            "e".into(),
            RoomConfig { release_tick_ms: 50, ..config() },
            Arc::new(Metrics::new()),
            now,
        );
        for s in 0..2000 {
            r.join(join(s, &format!("u{s}")), now).0.unwrap();
        }
        r.push(push("1", vec![msg("a", 1)]), now);
        let at = r.next_release().unwrap();
        assert_eq!(at, now.at + WINDOW - Duration::from_millis(50), "a tick before it is due");
        assert_eq!(contents(&r.tick(Now { at, ..now }).events), ["a"]);
    }

    #[test]
    fn a_restored_room_goes_on_numbering_with_its_members_seats_and_status() {
        let now = t0();
        let mut a = room("17", now);
        a.join(join(1, "ann"), now).0.unwrap();
        a.join(join(2, "bob"), now).0.unwrap();
        a.join(join(3, "bob"), now).0.unwrap();
        a.act(2, Action::Up { seat_id: Some(2) }, now).0.unwrap();
        a.set_live_status(LiveStatus::Live, now);
        let state = a.state();
        let json = serde_json::to_string(&state).unwrap();
        let mut b = RoomCore::restore(
            "17".into(),
            serde_json::from_str(&json).unwrap(),
            config(),
            Arc::new(Metrics::new()),
            now,
        );
        assert_eq!(b.state(), state, "nothing lost in the round trip");
        assert_eq!(b.snapshot().members, 2);
        // Both go on alike: the same seqs, the same seats, the same refusals.
        for core in [&mut a, &mut b] {
            let said = core.act(1, Action::Say { content: "x".into() }, now).0.unwrap();
            assert_eq!(said.seq, Some(state.next_seq));
            let taken = core.act(1, Action::Up { seat_id: Some(2) }, now).0.unwrap_err();
            assert_eq!(taken.code, ErrorCode::SeatTaken);
            let (_, fx) = core.leave(3, LeaveReason::Exit, now);
            assert!(fx.events.is_empty(), "bob is still here on session 2");
        }
        assert_eq!(a.state(), b.state());
    }

    #[test]
    fn a_restored_room_does_not_deliver_an_item_seen_before() {
        let now = t0();
        let mut r = room("g", now);
        r.seen_before(["g/a".to_string()]);
        let (outcome, _) = r.push(push("1", vec![msg("a", 1), msg("b", 2)]), now);
        assert_eq!(outcome, IngestOutcome::Accepted { new_items: 1 });
        assert_eq!(contents(&r.flush(now).events), ["b"]);
    }

    #[test]
    fn every_reason_the_room_gives_is_known_by_text() {
        let source = include_str!("core.rs");
        let code = &source[..source.find("#[cfg(test)]").unwrap_or(source.len())];
        for part in code.split("Refused::new(ErrorCode::").skip(1) {
            let Some(reason) = part.split('"').nth(1) else { continue };
            assert_eq!(Refused::reason_of(reason), reason, "{reason} missing from REASONS");
        }
    }

    #[test]
    fn an_empty_room_is_idle_after_idle_stop_ms() {
        let now = t0();
        let mut r = room("c", now);
        let idle = Duration::from_millis(config().idle_stop_ms);
        assert!(r.is_idle(now.after(idle)));
        r.join(join(1, "ann"), now).0.unwrap();
        assert!(!r.is_idle(now.after(idle)));
        r.leave(1, LeaveReason::Exit, now).0.unwrap();
        assert!(!r.is_idle(now.after(idle / 2)) && r.is_idle(now.after(idle)));
    }
}
