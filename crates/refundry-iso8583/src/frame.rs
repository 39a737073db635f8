//! Framing on the TCP connection: each message travels behind its length.
//! [`FrameCodec`] cuts the byte stream into frames; [`MessageCodec`] also
//! encodes and decodes the messages inside them.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::codec::{self, CodecError};
use crate::dialect::{Dialect, FramePrefix};
use crate::message::Message;

/// Frames larger than this are refused unless the caller chooses another
/// bound: POS messages are a few hundred bytes, and a peer announcing more
/// is broken or hostile.
pub const DEFAULT_MAX_FRAME: usize = 8 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is larger than the maximum of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("the frame's length prefix is not four ASCII digits")]
    BadPrefix,
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Length-prefixed frames. After any decoding error the stream is out of
/// step and the connection must be closed, as `Framed` does by ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCodec {
    prefix: FramePrefix,
    max_frame: usize,
}

impl FrameCodec {
    /// `max_frame` is capped at what the prefix can announce.
    pub fn new(prefix: FramePrefix, max_frame: usize) -> FrameCodec {
        FrameCodec { prefix, max_frame: max_frame.min(prefix.max_frame()) }
    }

    pub fn for_dialect(dialect: &Dialect) -> FrameCodec {
        FrameCodec::new(dialect.layout().frame_prefix, DEFAULT_MAX_FRAME)
    }

    pub fn max_frame(&self) -> usize {
        self.max_frame
    }
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let head = self.prefix.width();
        let Some(prefix) = src.get(..head) else {
            src.reserve(head - src.len());
            return Ok(None);
        };
        let len = match self.prefix {
            FramePrefix::BigEndian2 => u16::from_be_bytes([prefix[0], prefix[1]]) as usize,
            FramePrefix::Ascii4 => {
                if !prefix.iter().all(u8::is_ascii_digit) {
                    return Err(FrameError::BadPrefix);
                }
                prefix.iter().fold(0, |n, &d| n * 10 + (d - b'0') as usize)
            }
        };
        if len > self.max_frame {
            return Err(FrameError::TooLarge { len, max: self.max_frame });
        }
        if src.len() < head + len {
            src.reserve(head + len - src.len());
            return Ok(None);
        }
        src.advance(head);
        Ok(Some(src.split_to(len).freeze()))
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: T, dst: &mut BytesMut) -> Result<(), FrameError> {
        let frame = frame.as_ref();
        let len = frame.len();
        if len > self.max_frame {
            return Err(FrameError::TooLarge { len, max: self.max_frame });
        }
        dst.reserve(self.prefix.width() + len);
        match self.prefix {
            // max_frame is capped at the prefix's own limit, so these fit.
            FramePrefix::BigEndian2 => dst.put_u16(len as u16),
            FramePrefix::Ascii4 => dst.put_slice(format!("{len:04}").as_bytes()),
        }
        dst.put_slice(frame);
        Ok(())
    }
}

/// Frames carrying messages of one dialect.
#[derive(Debug, Clone)]
pub struct MessageCodec {
    dialect: Dialect,
    frames: FrameCodec,
}

impl MessageCodec {
    pub fn new(dialect: Dialect) -> MessageCodec {
        let frames = FrameCodec::for_dialect(&dialect);
        MessageCodec { dialect, frames }
    }

    pub fn with_max_frame(dialect: Dialect, max_frame: usize) -> MessageCodec {
        let frames = FrameCodec::new(dialect.layout().frame_prefix, max_frame);
        MessageCodec { dialect, frames }
    }
}

impl Decoder for MessageCodec {
    type Item = Message;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, FrameError> {
        match self.frames.decode(src)? {
            Some(frame) => Ok(Some(codec::decode(&self.dialect, &frame)?)),
            None => Ok(None),
        }
    }
}

impl Encoder<&Message> for MessageCodec {
    type Error = FrameError;

    fn encode(&mut self, message: &Message, dst: &mut BytesMut) -> Result<(), FrameError> {
        let bytes = codec::encode(&self.dialect, message)?;
        self.frames.encode(bytes, dst)
    }
}

impl Encoder<Message> for MessageCodec {
    type Error = FrameError;

    fn encode(&mut self, message: Message, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode(&message, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_waits_for_its_prefix_and_its_body() {
        let mut codec = FrameCodec::new(FramePrefix::BigEndian2, 100);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0x00]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&[0x03, b'a', b'b']);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&[b'c', 0x00, 0x01]);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), &b"abc"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"z");
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), &b"z"[..]);
        assert!(buf.is_empty());
    }

    #[test]
    fn two_frames_in_one_read_come_out_one_by_one() {
        let mut codec = FrameCodec::new(FramePrefix::BigEndian2, 100);
        let mut buf = BytesMut::from(&[0, 1, b'x', 0, 2, b'y', b'z'][..]);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), &b"x"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), &b"yz"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn an_oversized_frame_is_refused_before_it_is_buffered() {
        let mut codec = FrameCodec::new(FramePrefix::BigEndian2, 10);
        let mut buf = BytesMut::from(&[0x00, 0x0b][..]);
        assert!(matches!(codec.decode(&mut buf), Err(FrameError::TooLarge { len: 11, max: 10 })));
        let mut out = BytesMut::new();
        assert!(matches!(codec.encode([0u8; 11], &mut out), Err(FrameError::TooLarge { len: 11, max: 10 })));
    }

    #[test]
    fn encoding_writes_a_big_endian_length() {
        let mut codec = FrameCodec::new(FramePrefix::BigEndian2, 1000);
        let mut out = BytesMut::new();
        codec.encode(vec![7u8; 300], &mut out).unwrap();
        assert_eq!(&out[..3], [0x01, 0x2c, 7]);
        assert_eq!(out.len(), 302);
    }

    #[test]
    fn ascii_prefixes_are_four_digits() {
        let mut codec = FrameCodec::new(FramePrefix::Ascii4, 100_000);
        assert_eq!(codec.max_frame(), 9999);
        let mut out = BytesMut::new();
        codec.encode(b"hi", &mut out).unwrap();
        assert_eq!(&out[..], b"0002hi");
        assert_eq!(codec.decode(&mut out).unwrap().unwrap(), &b"hi"[..]);
        let mut bad = BytesMut::from(&b"00x2hi"[..]);
        assert!(matches!(codec.decode(&mut bad), Err(FrameError::BadPrefix)));
    }

    #[test]
    fn an_empty_frame_is_a_frame() {
        let mut codec = FrameCodec::new(FramePrefix::BigEndian2, 10);
        let mut buf = BytesMut::from(&[0, 0][..]);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), Bytes::new());
    }
}
