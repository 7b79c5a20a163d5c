//! The messages of a BIGO WebSocket that agreed permessage-deflate (docs/protocol.md 2.8): what
//! actix-web-actors' own reader makes of the request's byte stream, decoded here with
//! [`InflatingCodec`] instead, so that compressed frames reach [`super::bigo_session`]
//! inflated and a compression bomb reaches it as a frame over `bigo.max_frame_bytes` (close
//! 1009), as on the client WebSocket.
//!
//! The upgrade (`src/http/bigo.rs`) adds this stream to the session's context in place of the
//! context's own reader; a connection without the extension keeps the plain path.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_http::error::PayloadError;
use actix_http::ws::{Message, ProtocolError};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio_util::codec::Decoder;

use crate::protocol::deflate::InflatingCodec;

/// The request's bytes in, whole messages out (continuation frames are joined by the session).
pub struct InflatingFrames<S> {
    payload: Pin<Box<S>>,
    buf: BytesMut,
    codec: InflatingCodec,
    /// The payload ended: decode what is left, then end.
    ended: bool,
}

impl<S> InflatingFrames<S> {
    pub fn new(payload: S, max_frame_bytes: usize) -> Self {
        Self {
            payload: Box::pin(payload),
            buf: BytesMut::new(),
            codec: InflatingCodec::server(max_frame_bytes, true),
            ended: false,
        }
    }
}

impl<S: Stream<Item = Result<Bytes, PayloadError>>> Stream for InflatingFrames<S> {
    type Item = Result<Message, ProtocolError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        while !this.ended {
            match this.payload.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => this.buf.extend_from_slice(&chunk),
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Some(Err(ProtocolError::Io(std::io::Error::other(e.to_string())))))
                }
                Poll::Ready(None) => this.ended = true,
                Poll::Pending => break,
            }
        }
        match this.codec.decode(&mut this.buf) {
            Ok(Some(message)) => Poll::Ready(Some(Ok(message))),
            Ok(None) if this.ended => Poll::Ready(None),
            Ok(None) => Poll::Pending,
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::deflate;
    use std::task::Waker;

    fn masked(first: u8, payload: &[u8]) -> Bytes {
        let mut out = vec![first, 0x80 | payload.len() as u8, 0, 0, 0, 0];
        out.extend_from_slice(payload);
        Bytes::from(out)
    }

    #[test]
    fn compressed_and_plain_messages_come_out_whole_and_in_order() {
        let chunks = vec![
            Ok(masked(0xC1, &deflate::deflate(b"platformLogin, compressed"))),
            Ok(masked(0x81, b"a plain one")),
            Ok(masked(0x89, b"")),
        ];
        let mut frames = InflatingFrames::new(futures_util::stream::iter(chunks), 1024);
        let mut cx = Context::from_waker(Waker::noop());
        let messages: Vec<Message> = std::iter::from_fn(|| match Pin::new(&mut frames).poll_next(&mut cx) {
            Poll::Ready(Some(message)) => Some(message.unwrap()),
            _ => None,
        })
        .collect();
        assert_eq!(messages.len(), 3);
        assert!(matches!(&messages[0], Message::Text(t) if t == "platformLogin, compressed"));
        assert!(matches!(&messages[1], Message::Text(t) if t == "a plain one"));
        assert!(matches!(&messages[2], Message::Ping(_)));
    }
}
