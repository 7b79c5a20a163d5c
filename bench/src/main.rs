//! The `danmu-bench` command: parses the options, runs the plan, exits non-zero when the run
//! could not start (nothing to measure) — not when a step missed a target: figures are
//! reported, not judged, by the exit code.

use std::process::ExitCode;

use clap::Parser;
use danmu_bench::Options;

fn main() -> ExitCode {
    let opts = Options::parse();
    match danmu_bench::run(&opts) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("danmu-bench: {e}");
            ExitCode::from(2)
        }
    }
}
