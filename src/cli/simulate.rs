//! `danmu-broker simulate`: the BIGO stand-in of the `danmu-simulator` crate (docs/protocol.md 6),
//! and with `--live-room TITLE` a live room for what it feeds, so that the demo page's
//! live-room list shows it.
//!
//! The room is made through the broker's own rooms API (docs/protocol.md 3), as an app would, by
//! the user `simulator` with a JWT minted from the configured `auth.jwt_secret`: created, the
//! simulated `game_sess` linked to it (its danmu then reach the room's channel, its `room_id`),
//! and taken live; closed again when the run ends (Ctrl-C included).

use std::process::ExitCode;
use std::time::Duration;

use danmu_broker::auth;
use danmu_broker::config::Config;
use serde_json::{json, Value};

/// The options of `danmu-broker simulate`: the simulator's, and the live room.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub opts: danmu_simulator::Options,
    /// Also make a live room with this title, link --game-sess to it and take it live (as the
    /// user `simulator`, through the rooms API): the demo page's live-room list shows it and its
    /// danmu. It is closed when the run ends.
    #[arg(long, value_name = "TITLE")]
    pub live_room: Option<String>,
    /// The broker's HTTP address for --live-room, e.g. http://127.0.0.1:8080 [default:
    /// server.host and server.port of the config].
    #[arg(long, requires = "live_room")]
    pub api_url: Option<String>,
}

/// The user that owns the simulated live room.
const OWNER: &str = "simulator";

/// Runs the simulator, inside a live room when asked; prints the summary.
pub async fn run(config: Config, args: SimulateArgs) -> ExitCode {
    let SimulateArgs { opts, live_room, api_url } = args;
    let json_summary = opts.json;
    let rooms = live_room.map(|title| {
        let base = super::http_base(api_url.as_deref().unwrap_or(&config.http_base_url()));
        let token = auth::issue(&config.auth.jwt_secret, &auth::claims_for(OWNER, Some("Simulator".into()), 86_400));
        (RoomsApi { base, token }, title)
    });
    let room = match &rooms {
        Some((api, title)) => match api.open_room(title, &opts.game_id, &opts.game_sess).await {
            Ok(room_id) => {
                eprintln!(
                    "simulate: live room {room_id} \"{title}\" is live, game_sess {} linked to it: its danmu reach \
                     channel {room_id}; watch it at {}/demo?user_id=viewer&channel={room_id}",
                    opts.game_sess, api.base
                );
                Some(room_id)
            }
            Err(e) => {
                eprintln!("danmu-broker simulate: --live-room: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let default_url = config.bigo_ingress_url();
    let outcome = danmu_simulator::run(&config.bigo, &default_url, opts).await;
    if let (Some((api, _)), Some(room_id)) = (&rooms, room) {
        match api.call("POST", &format!("/iapi/rooms/{room_id}/close"), None).await {
            Ok(_) => eprintln!("simulate: live room {room_id} closed"),
            Err(e) => eprintln!("simulate: live room {room_id} not closed: {e}"),
        }
    }
    match outcome {
        Ok(summary) => {
            if json_summary {
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

/// The rooms API of one broker, as the user [`OWNER`].
struct RoomsApi {
    base: String,
    token: String,
}

impl RoomsApi {
    /// Creates the room, links `game_sess` to it and takes it live; answers its `room_id`.
    async fn open_room(&self, title: &str, game_id: &str, game_sess: &str) -> Result<u64, String> {
        let room = self.call("POST", "/iapi/rooms", Some(json!({ "title": title }))).await?;
        let room_id = room["room_id"].as_u64().ok_or_else(|| format!("no room_id in {room}"))?;
        let link = json!({ "game_id": game_id, "game_sess": game_sess });
        self.call("POST", &format!("/iapi/rooms/{room_id}/game"), Some(link)).await?;
        self.call("POST", &format!("/iapi/rooms/{room_id}/live"), None).await?;
        Ok(room_id)
    }

    /// One call; an answer other than `error_code` 0 is an error naming the call.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let client = awc::Client::builder().timeout(Duration::from_secs(5)).finish();
        let url = format!("{}{path}", self.base);
        let method = method.parse().map_err(|e| format!("{method}: {e}"))?;
        let request = client.request(method, &url).insert_header(("Authorization", format!("Bearer {}", self.token)));
        let sent = match body {
            Some(body) => request.send_json(&body).await,
            None => request.send().await,
        };
        let mut answer = sent.map_err(|e| format!("{url}: {e} (is the broker running? see --api-url)"))?;
        let status = answer.status();
        let body: Value = answer.json().limit(1 << 20).await.map_err(|e| format!("{url}: HTTP {status}: {e}"))?;
        if body["error_code"] != 0 {
            let hint = if status.as_u16() == 401 { " (is auth.jwt_secret of this config the broker's?)" } else { "" };
            return Err(format!(
                "{url}: HTTP {status}, error_code {}: {}{hint}",
                body["error_code"], body["error_reason"]
            ));
        }
        Ok(body)
    }
}
