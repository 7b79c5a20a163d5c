//! One logged-in BIGO connection (docs/protocol.md 1.1-1.2): connect to a broker's ingress, send
//! `platformLogin`, keep the `access_token` it answers. The simulator's run loop owns one at a
//! time (and opens another after a lost connection); `danmu-broker push` opens one, sends a
//! single `dataReception` and reads its answer. Frames and answers go through
//! `actors::protocol::bigo_client`.

use std::time::Duration;

use actors::config::BigoConfig;
use actors::protocol::bigo::URI_LOGIN_RESP;
use actors::protocol::bigo_client::{self, Answer, AnswerError};
use actors::protocol::now_ms;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

use crate::SimulateError;

/// How long to wait for the login answer.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(5);

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A logged-in connection.
pub struct Link {
    pub sink: SplitSink<Ws, Message>,
    pub stream: SplitStream<Ws>,
    pub access_token: String,
}

/// Where to connect and as whom.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub account: String,
    pub password: String,
    pub platform_abbr: String,
}

impl Target {
    /// The ingress at `url`, logging in as the first of `bigo.accounts` and signing with
    /// `bigo.platform_abbr`, as the configuration of the broker names them.
    pub fn from_config(bigo: &BigoConfig, url: String) -> Result<Self, SimulateError> {
        let account = bigo.accounts.first().ok_or(SimulateError::NoAccount)?;
        Ok(Self {
            url,
            account: account.account.clone(),
            password: account.password.clone(),
            platform_abbr: bigo.platform_abbr.clone(),
        })
    }

    /// Connects and logs in; a refused login is [`SimulateError::LoginRefused`].
    pub async fn open(&self) -> Result<Link, SimulateError> {
        let connect_err = |reason: String| SimulateError::Connect { url: self.url.clone(), reason };
        let (ws, _) = connect_async(self.url.as_str()).await.map_err(|e| connect_err(e.to_string()))?;
        if let MaybeTlsStream::Plain(tcp) = ws.get_ref() {
            // Small frames at a steady pace: do not let Nagle hold them back.
            let _ = tcp.set_nodelay(true);
        }
        let (mut sink, mut stream) = ws.split();
        let frame = bigo_client::login_request(&self.account, &self.password, &self.platform_abbr, now_ms());
        sink.send(Message::Text(frame.into())).await.map_err(|e| connect_err(e.to_string()))?;
        let answer = tokio::time::timeout(LOGIN_TIMEOUT, async {
            while let Some(msg) = stream.next().await {
                let msg = msg.map_err(|e| SimulateError::LoginFailed(e.to_string()))?;
                match msg {
                    Message::Text(text) => match bigo_client::parse_answer(&text) {
                        Ok(Answer::Login(answer)) => return Ok(answer),
                        Ok(_) => {}
                        Err(AnswerError::NotAFrame) => {
                            return Err(SimulateError::LoginFailed(format!("not JSON: {text}")));
                        }
                        Err(AnswerError::BadData { uri }) if uri == URI_LOGIN_RESP => {
                            return Err(SimulateError::LoginFailed(format!("unreadable answer: {text}")));
                        }
                        Err(AnswerError::BadData { .. }) => {}
                    },
                    Message::Close(close) => {
                        return Err(SimulateError::LoginFailed(format!("connection closed: {close:?}")));
                    }
                    _ => {}
                }
            }
            Err(SimulateError::LoginFailed("connection closed".into()))
        })
        .await
        .map_err(|_| SimulateError::LoginFailed("no answer within 5 s".into()))??;
        match answer.accepted_token() {
            Some(access_token) => Ok(Link { sink, stream, access_token: access_token.to_string() }),
            None => Err(SimulateError::LoginRefused(answer.refusal(&self.account))),
        }
    }
}
