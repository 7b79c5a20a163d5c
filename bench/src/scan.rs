//! A tiny scanner for the few fields the generator reads from every room event, instead of
//! full JSON parsing: `action`, `seq` and `ts`. (What comes once per connection, the greeting
//! and the acks, is read by `actors::protocol::app_client`, BIGO answers by
//! `actors::protocol::bigo_client`.)
//!
//! It relies on how the broker serialises (serde, no whitespace): a room event starts with
//! `{"action":"` and ends with its top-level `"seq":N,"ts":N`, so the *last* `"seq":` and
//! `"ts":` of an event are its own even when a pass-through `item` carries keys of the same
//! name. A quote inside a JSON string is escaped (`\"`), so `"seq":` cannot match inside text.

use memchr::memmem;

/// One room event found in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// The whole event (in a `batch=1` array, up to the next event's start).
    pub raw: &'a [u8],
    pub action: &'a [u8],
    pub seq: Option<u64>,
    pub ts: Option<i64>,
}

const EVENT_START: &[u8] = b"{\"action\":\"";

/// Finds room events in frames. Holds its substring searcher, built once per connection
/// rather than once per frame.
pub struct EventScanner {
    start: memmem::Finder<'static>,
}

impl Default for EventScanner {
    fn default() -> Self {
        Self { start: memmem::Finder::new(EVENT_START).into_owned() }
    }
}

impl EventScanner {
    /// Calls `f` for every event in `payload`: a single event object, or (`batch=1`) a JSON
    /// array of them.
    pub fn for_each<'a>(&self, payload: &'a [u8], mut f: impl FnMut(EventRef<'a>)) {
        if payload.first() == Some(&b'{') {
            // One event per frame: no need to search for boundaries.
            if payload.starts_with(EVENT_START) {
                f(event_ref(payload));
            }
            return;
        }
        let mut starts = self.start.find_iter(payload).peekable();
        while let Some(start) = starts.next() {
            let end = starts.peek().copied().unwrap_or(payload.len());
            f(event_ref(&payload[start..end]));
        }
    }
}

fn event_ref(event: &[u8]) -> EventRef<'_> {
    let name_start = EVENT_START.len();
    let name_len = memchr::memchr(b'"', &event[name_start..]).unwrap_or(0);
    // The top-level `seq` and `ts` close the event: search backwards, a few bytes at most.
    let ts_at = rfind_near_end(event, b"\"ts\":");
    let before_ts = ts_at.map_or(event, |at| &event[..at]);
    EventRef {
        raw: event,
        action: &event[name_start..name_start + name_len],
        seq: rfind_near_end(before_ts, b"\"seq\":")
            .and_then(|at| parse_int(&before_ts[at + 6..]))
            .and_then(|n| u64::try_from(n).ok()),
        ts: ts_at.and_then(|at| parse_int(&event[at + 5..])),
    }
}

/// The last occurrence of `key`, searched byte by byte from the end: cheaper than a general
/// searcher when the key sits in the last few dozen bytes, as `seq` and `ts` do.
fn rfind_near_end(hay: &[u8], key: &[u8]) -> Option<usize> {
    let last = hay.len().checked_sub(key.len())?;
    (0..=last).rev().find(|&i| hay[i] == key[0] && &hay[i..i + key.len()] == key)
}

/// Whether a room event of this `action` is a danmu item's (docs/protocol.md 2.4, the danmu
/// mapping): `msg`, `heart`, `gift` or any other type, and a client's own chat.
pub fn is_danmu(action: &[u8]) -> bool {
    matches!(action, b"send_topic_msg" | b"like" | b"send_gift" | b"danmu")
}

/// The integer after the first occurrence of `key` in `hay` (W7 reads an item's number from
/// its content this way, without parsing the event).
pub fn first_number(hay: &[u8], key: &[u8]) -> Option<i64> {
    let at = memmem::find(hay, key)?;
    parse_int(&hay[at + key.len()..])
}

/// A decimal integer at the start of `b`, optionally quoted or negative.
pub fn parse_int(b: &[u8]) -> Option<i64> {
    let b = b.strip_prefix(b"\\\"").or_else(|| b.strip_prefix(b"\"")).unwrap_or(b);
    let (neg, b) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    let mut n: i64 = 0;
    let mut digits = 0;
    for &c in b.iter().take(19) {
        if !c.is_ascii_digit() {
            break;
        }
        n = n * 10 + i64::from(c - b'0');
        digits += 1;
    }
    (digits > 0).then_some(if neg { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_event_yields_its_action_seq_and_ts() {
        let frame = br#"{"action":"send_topic_msg","user_id":"v","content":"say \"seq\":9","channel_name":"c","seq":42,"ts":1700000000123}"#;
        let mut seen = Vec::new();
        EventScanner::default().for_each(frame, |e| seen.push(e));
        assert_eq!(
            seen,
            vec![EventRef { raw: frame, action: b"send_topic_msg", seq: Some(42), ts: Some(1_700_000_000_123) }]
        );
    }

    #[test]
    fn a_batch_array_yields_every_event_in_order() {
        let frame = br#"[{"action":"danmu","channel_name":"c","item":{"ts":"5","seq":1},"seq":7,"ts":10},{"action":"like","count":1,"seq":8,"ts":11}]"#;
        let mut seen = Vec::new();
        EventScanner::default().for_each(frame, |e| seen.push((e.action.to_vec(), e.seq, e.ts)));
        assert_eq!(seen, vec![(b"danmu".to_vec(), Some(7), Some(10)), (b"like".to_vec(), Some(8), Some(11))]);
    }
}
