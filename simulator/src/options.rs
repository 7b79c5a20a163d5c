//! The command-line options of `danmu-broker simulate` (docs/protocol.md 6) and their checks.

use crate::SimulateError;

/// The language the simulated viewers write in (`--lang`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Chinese, with emoji: needs CJK and emoji fonts to show.
    Zh,
    /// Plain ASCII English.
    En,
}

/// The command-line options of `danmu-broker simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Game session to push danmu for; they reach the channel of the same name.
    #[arg(long)]
    pub game_sess: String,
    /// BIGO ingress URL [default: ws://{server.host}:{server.port}{bigo.path} of the config].
    #[arg(long)]
    pub url: Option<String>,
    /// Pushes per second (the default fills the demo page's stage without crowding it).
    #[arg(long, default_value_t = 2.0)]
    pub rate: f64,
    /// Most danmu items in one push (each carries 1 to N).
    #[arg(long, default_value_t = 3)]
    pub items: usize,
    /// How many distinct viewers send the danmu.
    #[arg(long, default_value_t = 120)]
    pub viewers: u32,
    /// Language of the viewers' names, messages and gifts: zh (Chinese with emoji) or en
    /// (plain Latin text, for a machine without CJK and emoji fonts).
    #[arg(long, value_enum, default_value_t = Lang::Zh)]
    pub lang: Lang,
    /// `game_id` of every push.
    #[arg(long, default_value = "10000")]
    pub game_id: String,
    /// The anchor's openid (the `danmu_data` entry; receiver of the gifts).
    #[arg(long, default_value = "anchor1")]
    pub openid: String,
    /// Hold each push a random 0..MS before sending it, so pushes leave out of ts order within
    /// that window (the broker's room.reorder_window_ms puts them back in order).
    #[arg(long, default_value_t = 0)]
    pub shuffle_ms: u64,
    /// Percent of pushes sent a second time after their ack (same seqid, retry_cnt 1), as the
    /// platform does when an ack is lost; the broker must deliver them once.
    #[arg(long, default_value_t = 0.0)]
    pub retry_pct: f64,
    /// Percent of pushes lost on the way: made, never sent (pull compensation's job).
    #[arg(long, default_value_t = 0.0)]
    pub drop_pct: f64,
    /// Stop after this many seconds [default: run until Ctrl-C].
    #[arg(long)]
    pub duration: Option<f64>,
    /// Stop after this many pushes (dropped ones included).
    #[arg(long)]
    pub count: Option<u64>,
    /// End with a status 3 push: the live room closed.
    #[arg(long)]
    pub close: bool,
    /// No live progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

impl Options {
    /// Refuses values the run cannot work with, naming the option.
    pub(crate) fn check(&self) -> Result<(), SimulateError> {
        let bad = |m: &str| Err(SimulateError::BadOption(m.to_string()));
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return bad("--rate must be above 0");
        }
        if self.items == 0 {
            return bad("--items must be at least 1");
        }
        if self.viewers == 0 {
            return bad("--viewers must be at least 1");
        }
        if !(0.0..=100.0).contains(&self.retry_pct) || !(0.0..=100.0).contains(&self.drop_pct) {
            return bad("--retry-pct and --drop-pct are percentages, 0 to 100");
        }
        if self.duration.is_some_and(|d| !(d.is_finite() && d >= 0.0)) {
            return bad("--duration must be 0 or more seconds");
        }
        if self.game_sess.trim().is_empty() {
            return bad("--game-sess must not be empty");
        }
        Ok(())
    }
}

/// Options as the command line gives them (tests of this crate).
#[cfg(test)]
pub(crate) fn parse(args: &[&str]) -> Options {
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        opts: Options,
    }

    let mut argv = vec!["simulate"];
    argv.extend_from_slice(args);
    Cli::parse_from(argv).opts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_options_are_refused_with_the_option_named() {
        for args in [
            &["--game-sess", "g", "--rate", "0"][..],
            &["--game-sess", "g", "--items", "0"],
            &["--game-sess", "g", "--drop-pct", "101"],
            &["--game-sess", " "],
        ] {
            let err = parse(args).check().unwrap_err().to_string();
            assert!(err.starts_with("--"), "{err}");
        }
    }
}
