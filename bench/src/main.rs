//! The `danmu-bench` command (and `danmu-bench serve-bare`, `bare.rs`): parses the options, runs the plan, exits non-zero when the run
//! could not start (nothing to measure) — not when a step missed a target: figures are
//! reported, not judged, by the exit code.

use std::process::ExitCode;

use clap::Parser;
use danmu_bench::Options;

fn main() -> ExitCode {
    // `danmu-bench serve-bare ...`: the bare server of W3's memory floor (bench/src/bare.rs).
    if std::env::args().nth(1).as_deref() == Some("serve-bare") {
        let opts = danmu_bench::bare::BareOptions::parse_from(std::env::args().skip(1));
        return match danmu_bench::bare::serve(opts) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("danmu-bench serve-bare: {e}");
                ExitCode::from(2)
            }
        };
    }
    let opts = Options::parse();
    match danmu_bench::run(&opts) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("danmu-bench: {e}");
            ExitCode::from(2)
        }
    }
}
