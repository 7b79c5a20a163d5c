//! Properties of the room core (docs/protocol.md 2.3-2.6), over random interleavings of pushes
//! (shuffled `ts` within and beyond the window, retried seqids, repeated data_seqs, status
//! changes), joins, leaves and seat actions, with the clock driven by the test:
//!
//! - every item of an accepted push is delivered exactly once (by `data_seq`);
//! - no item leaves before an item with a smaller (`ts`, arrival) that was held with it;
//! - no item is held longer than the reorder window;
//! - `seq` starts at 1 (or where a stored state left it) and rises by one with every event;
//! - no two users hold one seat, and a user who left holds none.
//!
//! They hold for the numbers from outside at their extremes too (issue 26): item `ts` at and
//! past the ends of `i64` (as numbers, strings, floats and long digit strings, through the
//! wire's reading or set directly, as the store gives them back), clocks at the ends of `i64`,
//! `last_seq` up to `u64::MAX`, and stored states whose `next_seq` is anything at all.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::config::RoomConfig;
use actors::metrics::Metrics;
use actors::protocol::bigo::{BigoStatus, DanmuItem};
use actors::protocol::client::Profile;
use actors::protocol::clock::{plausible, LATEST_MS};
use actors::room::history::MAX_SEQ;
use actors::room::{Action, Effects, IngestOutcome, JoinRequest, LeaveReason, Now, Push, RoomCore, RoomState};
use proptest::prelude::*;
use serde_json::{json, Value};

const WINDOW_MS: u64 = 300;
const SEATS: u32 = 3;

#[derive(Debug, Clone)]
enum Op {
    /// A push of items (data_seq, ts) under a seqid from a small pool.
    Push {
        seqid: u8,
        items: Vec<(u8, Ts)>,
        status: Option<u8>,
    },
    /// A pulled batch (no seqid).
    Pull {
        items: Vec<(u8, Ts)>,
    },
    /// Time passes; the release timer fires when due.
    Wait {
        ms: u64,
    },
    Join {
        session: u8,
        last_seq: Option<u64>,
    },
    Leave {
        session: u8,
    },
    Up {
        session: u8,
        seat: Option<u32>,
    },
    Down {
        session: u8,
    },
    Say {
        session: u8,
    },
}

/// An item's `ts`.
#[derive(Debug, Clone)]
enum Ts {
    /// Offset from now in ms.
    Offset(i64),
    /// The JSON text of the item's `ts` field, read as the wire reads it.
    Wire(String),
    /// Set on the item directly: any value, as the store may give it back.
    Set(i64),
}

/// Values at and past the ends of what a clock tells, in every form the wire allows.
fn far_off_ts() -> impl Strategy<Value = Ts> {
    let ends = prop_oneof![
        Just(i64::MIN),
        Just(i64::MAX),
        Just(-1),
        Just(0),
        Just(LATEST_MS),
        Just(LATEST_MS + 1),
        any::<i64>()
    ];
    const TEXTS: &[&str] =
        &["-1e19", "1e19", "1.5", "-0.0", "1.7e12", "123456789012345678901234567890", "\"1e19\"", "\" 42 \""];
    prop_oneof![
        ends.clone().prop_map(Ts::Set),
        ends.clone().prop_map(|n| Ts::Wire(n.to_string())),
        ends.prop_map(|n| Ts::Wire(format!("\"{n}\""))),
        prop::sample::select(TEXTS).prop_map(|t| Ts::Wire(t.to_string())),
        "-?[1-9][0-9]{0,29}".prop_map(Ts::Wire),
        "-?[0-9]{1,30}".prop_map(|digits| Ts::Wire(format!("\"{digits}\""))),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let ts = prop_oneof![9 => (-600i64..600).prop_map(Ts::Offset), 1 => far_off_ts()];
    let items = prop::collection::vec((0u8..60, ts), 0..5);
    prop_oneof![
        4 => (0u8..30, items.clone(), prop::option::weighted(0.2, 1u8..=3))
            .prop_map(|(seqid, items, status)| Op::Push { seqid, items, status }),
        1 => items.prop_map(|items| Op::Pull { items }),
        4 => (0u64..400).prop_map(|ms| Op::Wait { ms }),
        2 => (0u8..6, prop::option::weighted(0.2, stored_seq()))
            .prop_map(|(session, last_seq)| Op::Join { session, last_seq }),
        1 => (0u8..6).prop_map(|session| Op::Leave { session }),
        2 => (0u8..6, prop::option::of(0u32..=SEATS + 1)).prop_map(|(session, seat)| Op::Up { session, seat }),
        1 => (0u8..6).prop_map(|session| Op::Down { session }),
        1 => (0u8..6).prop_map(|session| Op::Say { session }),
    ]
}

/// Session `s` belongs to user `s % 4`: some users are on two devices.
fn user_of(session: u8) -> String {
    format!("u{}", session % 4)
}

/// An item as the room saw it arrive.
struct Arrival {
    ts: i64,
    arrival_no: usize,
    /// The input step at which it arrived.
    step: usize,
    at: Instant,
}

/// An item as it left.
struct Release {
    data_seq: String,
    seq: u64,
    step: usize,
    at: Instant,
}

struct Driver {
    room: RoomCore,
    now: Now,
    step: usize,
    next_seq: u64,
    arrivals: HashMap<String, Arrival>,
    releases: Vec<Release>,
    /// data_seqs of every accepted push (first arrival only).
    accepted: HashSet<String>,
    seen_seqids: HashSet<u8>,
    members: HashSet<u8>,
}

impl Driver {
    fn new() -> Self {
        Self::starting(1_700_000_000_000, None)
    }

    /// A room whose clock reads `unix_ms`, restored from a stored state with `next_seq` when
    /// the state can be read (a new numbering when it cannot, as a shared room starts one).
    fn starting(unix_ms: i64, next_seq: Option<u64>) -> Self {
        let now = Now { at: Instant::now(), unix_ms };
        let config =
            RoomConfig { reorder_window_ms: WINDOW_MS, release_tick_ms: 50, seats: SEATS, ..Default::default() };
        let metrics = Arc::new(Metrics::new());
        let stored = next_seq.map(|next_seq| {
            let state = json!({"epoch":"e","next_seq":next_seq,"members":[],"seats":[],"status":null,
                               "bigo_status":null,"live_status":null});
            let read = serde_json::from_value::<RoomState>(state);
            assert_eq!(read.is_ok(), (1..=MAX_SEQ).contains(&next_seq), "stored next_seq {next_seq}");
            read
        });
        let room = match stored {
            Some(Ok(state)) => RoomCore::restore("g".into(), state, config, metrics, now),
            _ => RoomCore::new("g".into(), "e".into(), config, metrics, now),
        };
        Self {
            next_seq: room.state().next_seq,
            room,
            now,
            step: 0,
            arrivals: HashMap::new(),
            releases: Vec::new(),
            accepted: HashSet::new(),
            seen_seqids: HashSet::new(),
            members: HashSet::new(),
        }
    }

    /// The items of a push stamped now.
    fn items(&self, items: &[(u8, Ts)]) -> Vec<DanmuItem> {
        let stamp = self.now.unix_ms;
        items
            .iter()
            .map(|(data_seq, ts)| {
                let wire = match ts {
                    Ts::Offset(offset) => format!("\"{}\"", stamp.saturating_add(*offset)),
                    Ts::Wire(text) => text.clone(),
                    Ts::Set(_) => "null".into(),
                };
                let raw: Value = serde_json::from_str(&format!(
                    r#"{{"type":"msg","user":"v","ts":{wire},"data_seq":"{data_seq}","content":"{data_seq}"}}"#
                ))
                .expect("an item's JSON");
                let item = DanmuItem::from_value(raw, "anchor", stamp);
                assert!(item.ts == stamp || plausible(item.ts).is_some(), "ts {wire} read as {}", item.ts);
                match ts {
                    Ts::Set(ts) => DanmuItem { ts: *ts, ..item },
                    _ => item,
                }
            })
            .collect()
    }

    /// Checks and books what an input released.
    fn effects(&mut self, fx: Effects) {
        for event in fx.events {
            let seq = event.seq.expect("a published event has a seq");
            assert_eq!(seq, self.next_seq, "seq must rise by one");
            self.next_seq += 1;
            let v: Value = serde_json::from_str(&event.json).unwrap();
            assert_eq!(v["seq"].as_u64(), Some(seq));
            if v["action"] == "send_topic_msg" && v["user_id"] == "v" {
                let data_seq = v["content"].as_str().unwrap().to_string();
                self.releases.push(Release { data_seq, seq, step: self.step, at: self.now.at });
            }
        }
        for (session, _) in &fx.direct {
            assert!(self.members.contains(&(*session as u8)), "a direct frame to a non-member");
        }
    }

    fn ingest(&mut self, seqid: String, items: &[(u8, Ts)], status: Option<BigoStatus>) {
        let danmu = self.items(items);
        let push = Push { game_sess: "g".into(), seqid, timestamp: self.now.unix_ms, status, items: danmu.clone() };
        let (outcome, fx) = self.room.push(push, self.now);
        if let IngestOutcome::Accepted { .. } = outcome {
            for item in danmu {
                if self.accepted.insert(item.data_seq.clone()) {
                    let arrival =
                        Arrival { ts: item.ts, arrival_no: self.arrivals.len(), step: self.step, at: self.now.at };
                    self.arrivals.insert(item.data_seq, arrival);
                }
            }
        }
        self.effects(fx);
    }

    /// Lets `ms` pass, firing the release timer whenever it is due.
    fn wait(&mut self, ms: u64) {
        let until = self.now.at + Duration::from_millis(ms);
        while let Some(at) = self.room.next_release().filter(|at| *at <= until) {
            self.step += 1;
            let d = at.saturating_duration_since(self.now.at);
            self.now = self.now.after(d);
            let fx = self.room.tick(self.now);
            self.effects(fx);
        }
        let d = until.saturating_duration_since(self.now.at);
        self.now = self.now.after(d);
    }

    fn run(&mut self, op: Op) {
        self.step += 1;
        match op {
            Op::Push { seqid, items, status } => {
                let status = status.and_then(|s| BigoStatus::from_code(s.into()));
                let retry = !self.seen_seqids.insert(seqid);
                let before = self.next_seq;
                self.ingest(seqid.to_string(), &items, status);
                if retry {
                    assert_eq!(self.next_seq, before, "a retried seqid released something new");
                }
            }
            Op::Pull { items } => self.ingest(String::new(), &items, None),
            Op::Wait { ms } => self.wait(ms),
            Op::Join { session, last_seq } => {
                let profile = Profile { user_id: user_of(session), ..Default::default() };
                let request = JoinRequest { session: session.into(), profile, last_seq, epoch: None };
                let (answer, fx) = self.room.join(request, self.now);
                answer.expect("joining an open room");
                self.members.insert(session);
                self.effects(fx);
            }
            Op::Leave { session } => {
                let (answer, fx) = self.room.leave(session.into(), LeaveReason::Disconnect, self.now);
                assert_eq!(answer.is_ok(), self.members.remove(&session));
                self.effects(fx);
                let user = user_of(session);
                let still_here = self.members.iter().any(|s| user_of(*s) == user);
                if !still_here {
                    let seats = self.room.snapshot().seats;
                    assert!(seats.iter().all(|s| s.user_id != user), "{user} left but holds a seat");
                }
            }
            Op::Up { session, seat } => {
                let (answer, fx) = self.room.act(session.into(), Action::Up { seat_id: seat }, self.now);
                assert!(answer.is_err() || self.members.contains(&session));
                self.effects(fx);
            }
            Op::Down { session } => {
                let fx = self.room.act(session.into(), Action::Down, self.now).1;
                self.effects(fx);
            }
            Op::Say { session } => {
                let (answer, fx) = self.room.act(session.into(), Action::Say { content: "hi".into() }, self.now);
                assert_eq!(answer.is_ok(), self.members.contains(&session));
                self.effects(fx);
            }
        }
        let seats = self.room.snapshot().seats;
        let holders: Vec<&str> = seats.iter().map(|s| s.user_id.as_str()).filter(|u| !u.is_empty()).collect();
        let distinct: HashSet<&str> = holders.iter().copied().collect();
        assert_eq!(holders.len(), distinct.len(), "a user holds two seats: {holders:?}");
        assert!(seats.iter().all(|s| (s.status == 1) != s.user_id.is_empty()), "a seat is taken iff it has a user");
    }

    /// After the last input: everything due leaves, then the properties over the whole run.
    fn finish(mut self) {
        self.wait(WINDOW_MS * 2);
        assert_eq!(self.room.held(), 0, "items left in the buffer after the window");
        let delivered: Vec<&str> = self.releases.iter().map(|r| r.data_seq.as_str()).collect();
        let once: HashSet<&str> = delivered.iter().copied().collect();
        assert_eq!(delivered.len(), once.len(), "an item was delivered twice");
        let accepted: HashSet<&str> = self.accepted.iter().map(String::as_str).collect();
        assert_eq!(once, accepted, "delivered items differ from accepted ones");
        let window = Duration::from_millis(WINDOW_MS);
        for r in &self.releases {
            let a = &self.arrivals[&r.data_seq];
            assert!(r.at <= a.at + window, "item {} held longer than the window", r.data_seq);
        }
        for (i, earlier) in self.releases.iter().enumerate() {
            let e = &self.arrivals[&earlier.data_seq];
            for later in &self.releases[i + 1..] {
                let l = &self.arrivals[&later.data_seq];
                let held_together = l.step <= earlier.step;
                let overtaken = (l.ts, l.arrival_no) < (e.ts, e.arrival_no);
                assert!(
                    !(held_together && overtaken),
                    "item {} (ts {}) left at seq {} before item {} (ts {}) held with it",
                    earlier.data_seq,
                    e.ts,
                    earlier.seq,
                    later.data_seq,
                    l.ts
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_item_once_in_order_numbered_without_gaps_and_seats_held_once(ops in prop::collection::vec(op(), 1..120)) {
        let mut driver = Driver::new();
        for op in ops {
            driver.run(op);
        }
        driver.finish();
    }

    #[test]
    fn the_same_holds_on_clocks_and_stored_numbering_at_their_extremes(
        unix_ms in prop_oneof![Just(i64::MIN), Just(-1), Just(0), Just(LATEST_MS), Just(i64::MAX), any::<i64>()],
        next_seq in prop::option::of(stored_seq()),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let mut driver = Driver::starting(unix_ms, next_seq);
        for op in ops {
            driver.run(op);
        }
        driver.finish();
    }
}

/// A `seq` from outside (a stored `next_seq`, a client's `last_seq`): small, at the end of
/// what a JavaScript client holds, at the end of `u64`, or anything.
fn stored_seq() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        1u64..50,
        Just(MAX_SEQ),
        Just(MAX_SEQ + 1),
        Just(u64::MAX - 1),
        Just(u64::MAX),
        any::<u64>()
    ]
}

// ---------------------------------------------------------------------------------------------
// Numbers from outside at their extremes (issue 26). An item reaches the core with any `ts` the
// store gives back, so these set `ts` on the item directly, past the wire's checks.

const T0_MS: i64 = 1_700_000_000_000;
const WINDOW: Duration = Duration::from_millis(WINDOW_MS);

fn quiet_room(now: Now) -> RoomCore {
    quiet_room_counting(now, Arc::new(Metrics::new()))
}

fn quiet_room_counting(now: Now, metrics: Arc<Metrics>) -> RoomCore {
    let config = RoomConfig { reorder_window_ms: WINDOW_MS, release_tick_ms: 0, ..Default::default() };
    RoomCore::new("g".into(), "e".into(), config, metrics, now)
}

fn t0() -> Now {
    Now { at: Instant::now(), unix_ms: T0_MS }
}

fn chat(content: &str, ts: i64, at: Instant) -> (String, i64, Instant) {
    (content.to_string(), ts, at)
}

/// A push of one chat item per `(data_seq, ts)`, the `data_seq` also its content.
fn chat_push(seqid: &str, now: Now, items: &[(&str, i64)]) -> Push {
    let items = items
        .iter()
        .map(|(data_seq, ts)| {
            let raw = json!({"type":"msg","user":"v","data_seq":data_seq,"content":data_seq});
            DanmuItem { ts: *ts, ..DanmuItem::from_value(raw, "anchor", now.unix_ms) }
        })
        .collect();
    Push { game_sess: "g".into(), seqid: seqid.into(), timestamp: now.unix_ms, status: None, items }
}

/// `(content, ts)` of the chat events among `fx`, in `seq` order.
fn chats(fx: &Effects) -> Vec<(String, i64)> {
    fx.events
        .iter()
        .filter_map(|e| {
            let v: Value = serde_json::from_str(&e.json).ok()?;
            Some((v["content"].as_str()?.to_string(), v["ts"].as_i64()?))
        })
        .collect()
}

/// Lets `ms` pass from `now`, firing the release timer whenever it is due; answers the new
/// time and every chat released meanwhile with the time it left.
fn wait(room: &mut RoomCore, now: Now, ms: u64) -> (Now, Vec<(String, i64, Instant)>) {
    let (mut now, until) = (now, now.at + Duration::from_millis(ms));
    let mut out = Vec::new();
    while let Some(at) = room.next_release().filter(|at| *at <= until) {
        now = now.after(at.saturating_duration_since(now.at));
        out.extend(chats(&room.tick(now)).into_iter().map(|(c, ts)| (c, ts, now.at)));
    }
    (now.after(until.saturating_duration_since(now.at)), out)
}

#[test]
fn an_item_with_ts_i64_min_is_delivered_and_the_room_goes_on() {
    let t0 = t0();
    let mut room = quiet_room(t0);
    let (outcome, fx) = room.push(chat_push("1", t0, &[("a", i64::MIN)]), t0);
    assert_eq!(outcome, IngestOutcome::Accepted { new_items: 1 });
    assert!(chats(&fx).is_empty(), "held like any item");
    let (t1, released) = wait(&mut room, t0, WINDOW_MS);
    assert_eq!(released, vec![chat("a", i64::MIN, t0.at + WINDOW)]);
    room.push(chat_push("2", t1, &[("b", t1.unix_ms)]), t1);
    let (_, released) = wait(&mut room, t1, WINDOW_MS);
    assert_eq!(released, vec![chat("b", t1.unix_ms, t1.at + WINDOW)]);
}

/// docs/protocol.md 2.6, Far-off `ts`.
#[test]
fn an_item_from_far_in_the_past_is_simply_late_and_leaves_with_the_next_release() {
    let t0 = t0();
    let metrics = Arc::new(Metrics::new());
    let mut room = quiet_room_counting(t0, metrics.clone());
    room.push(chat_push("1", t0, &[("now", T0_MS)]), t0);
    let (t1, _) = wait(&mut room, t0, WINDOW_MS);
    // Alone, it waits out its own window and no more.
    room.push(chat_push("2", t1, &[("1970", 0)]), t1);
    let (t2, released) = wait(&mut room, t1, WINDOW_MS);
    assert_eq!(released, vec![chat("1970", 0, t1.at + WINDOW)]);
    // Behind a held item it sorts first, and leaves with that item, before its own window ends.
    room.push(chat_push("3", t2, &[("next", t2.unix_ms)]), t2);
    let t3 = t2.after(Duration::from_millis(200));
    room.push(chat_push("4", t3, &[("long ago", 1), ("even longer", i64::MIN)]), t3);
    let (_, released) = wait(&mut room, t3, WINDOW_MS);
    let left = t2.at + WINDOW;
    assert_eq!(
        released,
        vec![chat("even longer", i64::MIN, left), chat("long ago", 1, left), chat("next", t2.unix_ms, left)]
    );
    assert_eq!(metrics.late_items.get(), 3, "delivered, and counted late");
    assert_eq!(room.held(), 0);
}

/// docs/protocol.md 2.6, Far-off `ts`.
#[test]
fn an_item_from_far_in_the_future_holds_nothing_back_past_its_window() {
    for future in [LATEST_MS, i64::MAX] {
        let t0 = t0();
        let mut room = quiet_room(t0);
        room.push(chat_push("1", t0, &[("future", future)]), t0);
        let t1 = t0.after(Duration::from_millis(100));
        room.push(chat_push("2", t1, &[("a", t1.unix_ms)]), t1);
        let (t2, released) = wait(&mut room, t1, WINDOW_MS - 100);
        let left = t0.at + WINDOW;
        assert_eq!(released, vec![chat("a", t1.unix_ms, left), chat("future", future, left)], "ts {future}");
        // The items after it are held and ordered among themselves as usual.
        room.push(chat_push("3", t2, &[("c", t2.unix_ms + 10)]), t2);
        let t3 = t2.after(Duration::from_millis(100));
        room.push(chat_push("4", t3, &[("b", t2.unix_ms)]), t3);
        let (_, released) = wait(&mut room, t3, WINDOW_MS);
        let left = t2.at + WINDOW;
        assert_eq!(released, vec![chat("b", t2.unix_ms, left), chat("c", t2.unix_ms + 10, left)], "ts {future}");
        assert_eq!(room.held(), 0);
    }
}

#[test]
fn a_stored_state_whose_next_seq_leaves_no_room_to_number_is_refused() {
    let state = |next_seq: u64| {
        json!({"epoch":"e","next_seq":next_seq,"members":[],"seats":[],"status":null,"bigo_status":null,
               "live_status":null})
    };
    for next_seq in [u64::MAX, 0] {
        assert!(serde_json::from_value::<RoomState>(state(next_seq)).is_err(), "next_seq {next_seq}");
    }
    let state: RoomState = serde_json::from_value(state(42)).expect("a state to go on from");
    assert_eq!(state.next_seq, 42);
}
