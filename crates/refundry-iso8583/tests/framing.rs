//! Frames over a real (in-memory) connection, arriving in pieces.

mod common;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use proptest::collection::vec;
use proptest::prelude::*;
use refundry_iso8583::builders::{self, Terminal};
use refundry_iso8583::{Dialect, FrameCodec, FrameError, FramePrefix, Message, MessageCodec, Tpdu};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{Decoder, FramedRead, FramedWrite};

fn terminal() -> Terminal {
    Terminal { terminal_id: "12345678".into(), merchant_id: "898310048140001".into(), batch: 7 }
}

fn echo() -> Message {
    let mut m = builders::echo_test(&terminal()).unwrap();
    m.tpdu = Some(Tpdu::new([0x00, 0x03], [0x00, 0x00]));
    m.header = vec![0x60, 0x31, 0x00, 0x31, 0x00, 0x00];
    m
}

#[tokio::test]
async fn messages_cross_a_connection_that_carries_four_bytes_at_a_time() {
    let (client, server) = tokio::io::duplex(4);
    let sent: Vec<Message> = (1..=3)
        .map(|batch| {
            let mut m = echo();
            m.set_text(60, format!("00{batch:06}301"));
            m
        })
        .collect();
    let to_send = sent.clone();
    let writer = tokio::spawn(async move {
        let mut out = FramedWrite::new(client, MessageCodec::new(Dialect::china_unionpay_pos()));
        for m in to_send {
            out.send(m).await.unwrap();
        }
    });
    let mut input = FramedRead::new(server, MessageCodec::new(Dialect::china_unionpay_pos()));
    let mut got = Vec::new();
    while let Some(m) = input.next().await {
        got.push(m.unwrap());
    }
    writer.await.unwrap();
    assert_eq!(got, sent);
}

#[tokio::test]
async fn a_frame_cut_off_by_the_peer_is_an_error_not_a_message() {
    let (mut client, server) = tokio::io::duplex(64);
    client.write_all(&[0x00, 0x20, 0x60, 0x00]).await.unwrap();
    drop(client);
    let mut input = FramedRead::new(server, MessageCodec::new(Dialect::china_unionpay_pos()));
    let end = input.next().await.unwrap();
    assert!(matches!(end, Err(FrameError::Io(_))), "{end:?}");
}

#[tokio::test]
async fn garbage_inside_a_frame_is_a_codec_error() {
    let (mut client, server) = tokio::io::duplex(64);
    client.write_all(&[0x00, 0x03, 0xde, 0xad, 0x00]).await.unwrap();
    let mut input = FramedRead::new(server, MessageCodec::new(Dialect::china_unionpay_pos()));
    let first = input.next().await.unwrap();
    assert!(matches!(first, Err(FrameError::Codec(_))), "{first:?}");
}

#[test]
fn a_frame_announcing_more_than_the_maximum_is_refused_at_once() {
    let mut codec = MessageCodec::with_max_frame(Dialect::china_unionpay_pos(), 512);
    let mut buf = BytesMut::from(&[0x02, 0x01][..]);
    assert!(matches!(codec.decode(&mut buf), Err(FrameError::TooLarge { len: 513, max: 512 })));
}

proptest! {
    #[test]
    fn frames_come_out_whole_however_the_stream_is_split(
        frames in vec(vec(any::<u8>(), 0..300), 1..6),
        cuts in vec(1usize..50, 1..40),
    ) {
        let mut codec = FrameCodec::new(FramePrefix::BigEndian2, 1024);
        let mut stream = BytesMut::new();
        for f in &frames {
            tokio_util::codec::Encoder::encode(&mut codec, f, &mut stream).unwrap();
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut cuts = cuts.into_iter().cycle();
        while !stream.is_empty() {
            let n = cuts.next().unwrap().min(stream.len());
            buf.extend_from_slice(&stream.split_to(n));
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                got.push(frame.to_vec());
            }
        }
        prop_assert_eq!(got, frames);
        prop_assert!(buf.is_empty());
    }
}
