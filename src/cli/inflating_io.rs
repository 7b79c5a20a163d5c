//! The socket under `listen`'s WebSocket, so that it can take permessage-deflate
//! (docs/protocol.md 2.8) although tokio-tungstenite does not speak the extension: `listen`
//! offers it on the upgrade, and [`InflatingIo`], between the socket (TLS or plain) and the
//! library, hands the library each compressed message as the plain frame it holds
//! (`actors::protocol::deflate::ServerFrames`) once the broker's 101 said it agreed. What
//! `listen` writes passes unchanged: its own frames go plain, as the RFC allows.
//!
//! [`connect`] opens the socket itself (TCP, then TLS for `wss://` with the webpki roots, as
//! tokio-tungstenite's own connector does), because the wrapper must sit above TLS.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use actors::protocol::deflate::ServerFrames;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, handshake::client::Response};
use tokio_tungstenite::WebSocketStream;

/// The offer, as browsers make it.
const OFFER: &str = "permessage-deflate; client_max_window_bits";
/// Largest message taken, compressed or not (tungstenite's own frame limit).
const MAX_MESSAGE: usize = 16 << 20;
/// Longest upgrade answer head.
const MAX_HEAD: usize = 64 << 10;

/// A plain or TLS client socket.
pub trait Socket: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Socket for T {}

pub type Ws = WebSocketStream<InflatingIo<Box<dyn Socket>>>;

/// Connects to `url` (`ws://` or `wss://`) offering permessage-deflate; answers the WebSocket,
/// the upgrade's answer, and whether the broker agreed.
pub async fn connect(url: &str) -> Result<(Ws, Response, bool), tungstenite::Error> {
    let mut request = url.into_client_request()?;
    request.headers_mut().insert("sec-websocket-extensions", HeaderValue::from_static(OFFER));
    let uri = request.uri();
    let tls = uri.scheme_str() == Some("wss");
    let host = uri.host().unwrap_or_default().trim_matches(['[', ']']).to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port)).await?;
    tcp.set_nodelay(true)?;
    let socket: Box<dyn Socket> = if tls { Box::new(tls_over(tcp, host).await?) } else { Box::new(tcp) };
    let (ws, response) = tokio_tungstenite::client_async(request, InflatingIo::new(socket)).await?;
    let agreed = ws.get_ref().agreed;
    Ok((ws, response, agreed))
}

/// TLS over `tcp` to `host`, trusting the webpki roots (on ring, as the rest of the binary).
async fn tls_over(tcp: TcpStream, host: String) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host).map_err(io::Error::other)?;
    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await
}

/// A client socket whose compressed server messages are read as plain frames.
pub struct InflatingIo<S> {
    io: S,
    /// The upgrade answer's head while it is being read; `None` once it passed.
    head: Option<Vec<u8>>,
    /// The answer agreed permessage-deflate: frames after it are rewritten.
    agreed: bool,
    frames: ServerFrames,
    /// Bytes for the library to read.
    out: BytesMut,
}

impl<S> InflatingIo<S> {
    pub fn new(io: S) -> Self {
        Self { io, head: Some(Vec::new()), agreed: false, frames: ServerFrames::new(MAX_MESSAGE), out: BytesMut::new() }
    }

    /// Bytes read from the socket.
    fn take(&mut self, read: &[u8]) -> io::Result<()> {
        let Some(head) = &mut self.head else { return self.frames_of(read) };
        head.extend_from_slice(read);
        let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
            if head.len() > MAX_HEAD {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "upgrade answer head too long"));
            }
            return Ok(());
        };
        let head = self.head.take().unwrap_or_default();
        let (answer, rest) = head.split_at(end + 4);
        self.agreed = String::from_utf8_lossy(answer).lines().any(|line| {
            let line = line.to_ascii_lowercase();
            line.starts_with("sec-websocket-extensions:") && line.contains("permessage-deflate")
        });
        self.out.extend_from_slice(answer);
        self.frames_of(rest)
    }

    fn frames_of(&mut self, bytes: &[u8]) -> io::Result<()> {
        if !self.agreed {
            self.out.extend_from_slice(bytes);
            return Ok(());
        }
        self.frames.feed(bytes);
        // A frame or message over 16 MiB, or a compressed one that is not deflate, ends the read.
        while let Some(frame) =
            self.frames.next_frame().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?
        {
            self.out.extend_from_slice(&frame);
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for InflatingIo<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.out.is_empty() {
                let n = this.out.len().min(buf.remaining());
                buf.put_slice(&this.out[..n]);
                this.out.advance(n);
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 16 << 10];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // The end of the stream (a partial frame left over is the library's to notice).
                return Poll::Ready(Ok(()));
            }
            this.take(read.filled())?;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for InflatingIo<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actors::protocol::deflate;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn after_an_answer_that_agreed_compressed_frames_read_as_plain_ones() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let mut io = InflatingIo::new(ours);
        let json = r#"{"action":"send_topic_msg","content":"你好"}"#.repeat(20);
        let mut sent = b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Extensions: permessage-deflate; \
                         server_no_context_takeover\r\n\r\n"
            .to_vec();
        let head_len = sent.len();
        sent.extend_from_slice(&deflate::compressed_text_frame(&deflate::deflate(json.as_bytes())));
        theirs.write_all(&sent).await.unwrap();
        drop(theirs);
        let mut read = Vec::new();
        io.read_to_end(&mut read).await.unwrap();
        assert!(io.agreed);
        assert_eq!(&read[..head_len], &sent[..head_len], "the answer passes as it came");
        assert_eq!(&read[head_len..], &actors::room::text_frame(json.as_bytes())[..]);
    }

    #[tokio::test]
    async fn without_the_extension_every_byte_passes_unchanged() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let mut io = InflatingIo::new(ours);
        let mut sent = b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec();
        sent.extend_from_slice(&actors::room::text_frame(b"{\"action\":\"connected\"}"));
        theirs.write_all(&sent).await.unwrap();
        drop(theirs);
        let mut read = Vec::new();
        io.read_to_end(&mut read).await.unwrap();
        assert!(!io.agreed);
        assert_eq!(read, sent);
    }
}
