//! What a run did ([`Summary`]): counted by the run loop, printed at the end as text or, with
//! `--json`, as one JSON object (which tests/simulate.rs reads back).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ItemCounts;

/// What a run did; printed at the end (text, or JSON with `--json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub game_sess: String,
    pub url: String,
    pub elapsed_s: f64,
    /// Pushes made (dropped ones included; the status 3 push not).
    pub pushes: u64,
    /// Pushes sent at least once.
    pub pushes_sent: u64,
    /// Pushes lost on purpose (`--drop-pct`): never sent.
    pub dropped: u64,
    /// `dataReception` frames written (first sends and retries).
    pub frames_sent: u64,
    /// Frames that were a re-send of a seqid (`--retry-pct`, 503, reconnect).
    pub retries: u64,
    /// `dataReceptionResp` frames read.
    pub acked: u64,
    /// Pushes still without a final answer at the end.
    pub unacked: u64,
    /// Answers per rescode (`errorResp` frames count under "errorResp").
    pub rescodes: BTreeMap<String, u64>,
    /// Items of the pushes sent.
    pub items: ItemCounts,
    /// Items of the dropped pushes.
    pub items_dropped: ItemCounts,
    pub reconnects: u64,
    /// The status 3 push was answered 200.
    pub closed: bool,
}

impl Summary {
    fn rescodes_text(&self) -> String {
        if self.rescodes.is_empty() {
            return "none".into();
        }
        self.rescodes.iter().map(|(code, n)| format!("{code}:{n}")).collect::<Vec<_>>().join(" ")
    }

    /// One progress line (no newline).
    pub fn progress_line(&self) -> String {
        format!(
            "simulate {}: {:>6.1}s  pushes {}  sent {}  acked {}  retries {}  dropped {}  pending {}  rescodes {}",
            self.game_sess,
            self.elapsed_s,
            self.pushes,
            self.frames_sent,
            self.acked,
            self.retries,
            self.dropped,
            self.unacked,
            self.rescodes_text()
        )
    }

    /// The human-readable summary.
    pub fn text(&self) -> String {
        let mut out = format!("simulate: game_sess {} on {}, {:.1} s\n", self.game_sess, self.url, self.elapsed_s);
        out += &format!(
            "  pushes  {} made: {} sent, {} dropped (never sent); {} frames written, {} of them retries\n",
            self.pushes, self.pushes_sent, self.dropped, self.frames_sent, self.retries
        );
        out += &format!(
            "  acks    {} read, {} pushes unanswered; rescodes {}\n",
            self.acked,
            self.unacked,
            self.rescodes_text()
        );
        out += &format!(
            "  items   {} sent: {} msg, {} heart, {} gift ({} more in dropped pushes)\n",
            self.items.total(),
            self.items.msg,
            self.items.heart,
            self.items.gift,
            self.items_dropped.total()
        );
        if self.reconnects > 0 {
            out += &format!("  reconnects {}\n", self.reconnects);
        }
        if self.closed {
            out += "  closed  status 3 sent and acknowledged\n";
        }
        out
    }
}
