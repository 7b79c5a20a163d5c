//! The `danmu-broker` command: serves by default; `token` prints a client JWT for trying the
//! server by hand (docs/protocol.md 5); `simulate` stands in for the BIGO platform and pushes danmu
//! into a broker (docs/protocol.md 6, logic in the `danmu-simulator` crate, `simulator/`). The
//! by-hand tools `listen` (an app client printing a channel's events), `push` (one danmu, as
//! BIGO sends it) and `check-config` live in [`cli`].

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use danmu_broker::{auth, config, logging};

/// The process allocator. The hot paths allocate and free small buffers on one thread that
/// another thread allocated (bundles built by a room, dropped by sessions; pushes parsed by a
/// session, consumed by a room): glibc's malloc spent ~30% of the ingest benchmark (W4) in
/// malloc/free/consolidate. mimalloc's thread-local free lists make these cheap. The one
/// static of the program: an allocator can only be installed this way.
/// `--features system-alloc` leaves it out, for heap profilers that see only malloc/free
/// (valgrind's massif: BENCHMARKS.md, issue 13).
#[cfg(not(feature = "system-alloc"))]
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
    ///
    /// With --live-room TITLE it also makes a live room for them (rooms API, as the user
    /// simulator): the demo page's live-room list shows it. --lang en writes plain Latin text
    /// (no CJK, no emoji) for a machine without those fonts.
    Simulate(cli::simulate::SimulateArgs),
    /// Be an app client: enter a channel and print its room events, one JSON line each.
    ///
    /// Mints its JWT with auth.jwt_secret, asks end_point, connects, pings every ping_interval,
    /// enters the channel and prints each room event on stdout as the broker sent it (status
    /// lines go to stderr). A dropped connection is opened again with a jittered back-off (after
    /// a kicked frame's retry_after_ms when it has one) and the channel entered again with the
    /// last seq and epoch seen; stderr says whether the ack said recovered. Runs until Ctrl-C.
    Listen(cli::listen::ListenOptions),
    /// Push one danmu item as BIGO does and print the answer.
    ///
    /// Logs in to the BIGO ingress as the config's first bigo.accounts entry, sends one signed
    /// dataReception (a fresh seqid and data_seq each run unless given) and prints its answer,
    /// {"seqid","rescode","message"}, on stdout. Exit status 1 unless rescode is 200.
    Push(cli::push::PushOptions),
    /// Check the configuration and print it as YAML, secrets masked.
    ///
    /// Loads the configuration as serving does (the file, then DANMU__SECTION__KEY variables),
    /// makes start-up's checks (values, TLS files, and off loopback: shipped or short secrets, the
    /// demo) and prints the effective configuration as YAML, with auth.jwt_secret, admin.key, the bigo passwords,
    /// bigo.api_token, live.push_key, live.play_key, live.callback_key and the passwords in store.redis_url
    /// and store.cluster_nodes shown as ***. Exit status 0 when valid; 2, with a message naming the key, when
    /// not.
    CheckConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (path, required) = match &cli.config {
        Some(path) => (path.clone(), true),
        None => (PathBuf::from("config.yaml"), false),
    };
    let command = cli.command.unwrap_or(Command::Serve);
    let config = match config::load(&path, required) {
        Ok(config) => config,
        Err(e) => {
            let who =
                if matches!(command, Command::CheckConfig) { "danmu-broker check-config" } else { "danmu-broker" };
            eprintln!("{who}: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.log.format);
    match command {
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
        Command::Simulate(args) => run_client(cli::simulate::run(config, args)),
        Command::Listen(opts) => run_client(cli::listen::run(&config, opts)),
        Command::Push(opts) => run_client(cli::push::run(&config, opts)),
        Command::CheckConfig => cli::check_config::run(&config, &path),
    }
}

/// Runs a by-hand client tool to its exit status, on the actix runtime (its HTTP client needs
/// it), with rustls on ring for `wss://` and `https://`.
fn run_client(tool: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    // An error means a provider is already installed: fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    actix_rt::System::new().block_on(tool)
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
            // One line per refusal when start-up refuses for several reasons (`exposure`).
            for line in e.to_string().lines() {
                eprintln!("danmu-broker: {line}");
            }
            ExitCode::FAILURE
        }
    }
}
