//! The `danmu-broker` command: serves by default; `token` prints a client JWT for trying the
//! server by hand (PROTOCOL.md 5); `simulate` stands in for the BIGO platform and pushes danmu
//! into a broker (PROTOCOL.md 6, logic in the `danmu-simulator` crate, `simulator/`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use danmu_broker::{auth, config, logging};

/// The process allocator. The hot paths allocate and free small buffers on one thread that
/// another thread allocated (bundles built by a room, dropped by sessions; pushes parsed by a
/// session, consumed by a room): glibc's malloc spent ~30% of the ingest benchmark (W4) in
/// malloc/free/consolidate. mimalloc's thread-local free lists make these cheap. The one
/// static of the program: an allocator can only be installed this way.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "danmu-broker", version, about = "Real-time danmu broker for live-streaming apps")]
struct Cli {
    /// Configuration file (YAML); defaults to ./config.yaml, or the built-in defaults without it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker (the default).
    Serve,
    /// Print a client JWT signed with the configured auth.jwt_secret.
    Token {
        /// The user the token is for (claim `sub`; the `user_id` the client sends).
        #[arg(long)]
        user_id: String,
        /// Name shown to the room in enter_room and message events (claim `nickname`).
        #[arg(long)]
        nickname: Option<String>,
        /// Sex shown in the profile, as the app codes it, e.g. 0, 1, 2 (claim `sex`).
        #[arg(long)]
        sex: Option<i64>,
        /// Avatar image URL (claims `avatar_url` and `avatar_small_url`).
        #[arg(long)]
        avatar_url: Option<String>,
        /// Lifetime of the token in seconds (claim `exp` = now + this).
        #[arg(long, default_value_t = 86_400)]
        ttl_s: u64,
    },
    /// Stand in for BIGO: log in to a broker's BIGO ingress and push danmu for a game session.
    Simulate(danmu_simulator::Options),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (path, required) = match &cli.config {
        Some(path) => (path.clone(), true),
        None => (PathBuf::from("config.yaml"), false),
    };
    let config = match config::load(&path, required) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("danmu-broker: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.log.format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            log::info!("{}", config::describe_source(&path));
            serve(config)
        }
        Command::Token { user_id, nickname, sex, avatar_url, ttl_s } => {
            let mut claims = auth::claims_for(&user_id, nickname, ttl_s);
            claims.sex = sex.map(serde_json::Value::from);
            claims.avatar_url = avatar_url.clone();
            claims.avatar_small_url = avatar_url;
            println!("{}", auth::issue(&config.auth.jwt_secret, &claims));
            ExitCode::SUCCESS
        }
        Command::Simulate(opts) => run_simulator(config, opts),
    }
}

fn run_simulator(config: config::Config, opts: danmu_simulator::Options) -> ExitCode {
    let json = opts.json;
    let default_url = config.bigo_ingress_url();
    let run = async move { danmu_simulator::run(&config.bigo, &default_url, opts).await };
    match actix_rt::System::new().block_on(run) {
        Ok(summary) => {
            if json {
                println!("{}", serde_json::to_string(&summary).unwrap_or_default());
            } else {
                print!("{}", summary.text());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("danmu-broker simulate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: config::Config) -> ExitCode {
    let result = actix_rt::System::new().block_on(async move {
        let broker = danmu_broker::start(config)?;
        danmu_broker::shutdown_on_signals(broker.shutdown.clone());
        broker.server.await
    });
    match result {
        Ok(()) => {
            log::info!("danmu-broker stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("danmu-broker: {e}");
            ExitCode::FAILURE
        }
    }
}
