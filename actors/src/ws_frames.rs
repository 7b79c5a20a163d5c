//! WebSocket frame intake shared by both session kinds: joins continuation frames under a size
//! cap (actix-web-actors hands them over unjoined and uncapped) and sorts what arrives into the
//! few cases a session acts on.

use actix_http::ws::Item;
use actix_web_actors::ws::{CloseReason, Message};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

#[derive(Debug)]
pub enum Frame {
    Text(ByteString),
    Ping(Bytes),
    Close(Option<CloseReason>),
}

#[derive(Debug, PartialEq)]
pub enum FrameError {
    /// A (joined) frame over the cap: close 1009.
    TooBig,
    /// A binary frame, or text that is not UTF-8: close 1003.
    Binary,
}

pub struct Reassembler {
    cap: usize,
    partial: Option<BytesMut>,
}

impl Reassembler {
    pub fn new(cap: usize) -> Self {
        Self { cap, partial: None }
    }

    /// Takes one protocol message; answers a complete frame when there is one.
    pub fn push(&mut self, msg: Message) -> Result<Option<Frame>, FrameError> {
        match msg {
            Message::Text(text) => {
                if text.len() > self.cap {
                    return Err(FrameError::TooBig);
                }
                Ok(Some(Frame::Text(text)))
            }
            Message::Binary(_) => Err(FrameError::Binary),
            Message::Ping(payload) => Ok(Some(Frame::Ping(payload))),
            Message::Pong(_) | Message::Nop => Ok(None),
            Message::Close(reason) => Ok(Some(Frame::Close(reason))),
            Message::Continuation(Item::FirstBinary(_)) => Err(FrameError::Binary),
            Message::Continuation(Item::FirstText(bytes)) => {
                self.partial = Some(BytesMut::from(&bytes[..]));
                self.check_cap().map(|_| None)
            }
            Message::Continuation(Item::Continue(bytes)) => {
                if let Some(buf) = self.partial.as_mut() {
                    buf.extend_from_slice(&bytes);
                }
                self.check_cap().map(|_| None)
            }
            Message::Continuation(Item::Last(bytes)) => {
                let Some(mut buf) = self.partial.take() else {
                    return Ok(None);
                };
                buf.extend_from_slice(&bytes);
                if buf.len() > self.cap {
                    return Err(FrameError::TooBig);
                }
                ByteString::try_from(buf.freeze()).map(|t| Some(Frame::Text(t))).map_err(|_| FrameError::Binary)
            }
        }
    }

    fn check_cap(&mut self) -> Result<(), FrameError> {
        if self.partial.as_ref().is_some_and(|b| b.len() > self.cap) {
            self.partial = None;
            return Err(FrameError::TooBig);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_frames_are_joined() {
        let mut r = Reassembler::new(10);
        assert!(r.push(Message::Continuation(Item::FirstText(Bytes::from_static(b"ab")))).unwrap().is_none());
        assert!(r.push(Message::Continuation(Item::Continue(Bytes::from_static(b"cd")))).unwrap().is_none());
        match r.push(Message::Continuation(Item::Last(Bytes::from_static(b"e")))).unwrap() {
            Some(Frame::Text(t)) => assert_eq!(&*t, "abcde"),
            other => panic!("expected text, got {other:?}"),
        }
    }

    #[test]
    fn joined_frames_over_the_cap_are_refused() {
        let mut r = Reassembler::new(3);
        let _ = r.push(Message::Continuation(Item::FirstText(Bytes::from_static(b"ab"))));
        assert_eq!(
            r.push(Message::Continuation(Item::Continue(Bytes::from_static(b"cd")))).err(),
            Some(FrameError::TooBig)
        );
    }
}
