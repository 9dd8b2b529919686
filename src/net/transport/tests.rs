//! The transport's unit tests: frames written around tungstenite, and when a read is
//! worth it.

use super::*;
use crate::net::batched_read::tests::runtime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A plain transport writing to a socket whose peer is returned to read what came.
async fn connected() -> (Transport, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let writer = TcpStream::connect(address).await.expect("connect");
    let (reader, _) = listener.accept().await.expect("accept");
    let transport = Transport::new(Inner::Plain(BatchedRead::new(Socket::Tcp(writer))));
    (transport, reader)
}

#[test]
fn frames_taken_in_part_end_before_anything_written_after_them() {
    runtime().block_on(async {
        let (mut transport, mut reader) = connected().await;
        // Offer frames until the socket, unread, takes one only in part.
        let frame: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut expected = Vec::new();
        loop {
            match transport.try_write_frame(&frame) {
                FrameWrite::Written => expected.extend_from_slice(&frame),
                FrameWrite::Partly => {
                    expected.extend_from_slice(&frame);
                    break;
                }
                other => panic!("{other:?} before a partial write"),
            }
        }
        // Nothing more goes around the writer until the rest is out.
        assert_eq!(transport.try_write_frame(b"x"), FrameWrite::Refused);
        let later = b"written after the frame";
        expected.extend_from_slice(later);
        let reading = tokio::spawn(async move {
            let mut received = vec![0u8; expected.len()];
            reader.read_exact(&mut received).await.expect("read");
            assert!(received == expected, "bytes out of order");
        });
        transport.write_all(later).await.expect("write");
        transport.flush().await.expect("flush");
        reading.await.expect("reader");
        assert_eq!(transport.try_write_frame(b"x"), FrameWrite::Written);
    });
}

#[test]
fn no_frame_goes_around_a_writer_whose_bytes_wait() {
    runtime().block_on(async {
        let (mut transport, mut reader) = connected().await;
        // Fill the socket through the writer until it refuses or takes a part: the
        // writer (tungstenite) then holds bytes.
        let chunk = vec![7u8; 65_536];
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut written = 0;
        loop {
            match Pin::new(&mut transport).poll_write(&mut cx, &chunk) {
                Poll::Ready(Ok(n)) if n == chunk.len() => written += n,
                Poll::Ready(Ok(n)) => {
                    written += n;
                    break;
                }
                _ => break,
            }
        }
        // The socket has room again, and the writer's bytes still come first.
        let mut drained = vec![0u8; written];
        reader.read_exact(&mut drained).await.expect("read");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(transport.try_write_frame(b"frame"), FrameWrite::Refused);
        // Once the writer's write is taken whole, frames may go around it again.
        transport.write_all(b"the rest").await.expect("write");
        assert_eq!(transport.try_write_frame(b"frame"), FrameWrite::Written);
    });
}

#[test]
fn a_read_is_worth_it_only_while_a_message_handed_out_is_not_returned_or_bytes_came() {
    runtime().block_on(async {
        // Here the transport reads what `peer` writes.
        let (mut transport, mut peer) = connected().await;
        let mut cx = Context::from_waker(std::task::Waker::noop());
        // Within the head nothing is known: worth reading.
        assert!(transport.poll_worth_reading(&mut cx, 0).is_ready());
        // The head and two unmasked TEXT frames ("a", "b"), read in one go.
        peer.write_all(b"HTTP/1.1 101 OK\r\n\r\n\x81\x01a\x81\x01b")
            .await
            .expect("write");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut taken = [0u8; 64];
        let count = transport.read(&mut taken).await.expect("read");
        assert_eq!(count, 25);
        assert!(transport.poll_worth_reading(&mut cx, 0).is_ready());
        assert!(transport.poll_worth_reading(&mut cx, 1).is_ready());
        // Both returned and the socket empty: not worth it.
        assert!(transport.poll_worth_reading(&mut cx, 2).is_pending());
        // New bytes on the socket: worth it again.
        peer.write_all(b"\x81").await.expect("write");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(transport.poll_worth_reading(&mut cx, 2).is_ready());
    });
}

#[test]
fn broadcast_frames_are_held_for_one_write_in_their_order() {
    use crate::net::data_frame::BroadcastFrames;
    use around::MAX_HELD;
    use tokio_tungstenite::tungstenite::Message;
    runtime().block_on(async {
        let (mut transport, mut reader) = connected().await;
        let small = Message::Text("held".into());
        let small = BroadcastFrames::new(&small);
        let small_frame = small.plain().expect("a frame").to_vec();
        let held = FrameWrite::Held(small_frame.len());
        assert_eq!(transport.try_write_broadcast(&small), held);
        assert_eq!(transport.try_write_broadcast(&small), held);
        assert_eq!(transport.unwritten(), 2 * small_frame.len());
        let mut probe = [0u8; 1];
        assert!(reader.try_read(&mut probe).is_err(), "held frames went out");
        // A frame too large to hold goes out at once, after the held ones.
        let large = Message::Binary(vec![9u8; MAX_HELD].into());
        let large = BroadcastFrames::new(&large);
        let large_frame = large.plain().expect("a frame").to_vec();
        assert_eq!(transport.try_write_broadcast(&large), FrameWrite::Written);
        // Held again, and written by a flush ahead of what tungstenite writes.
        assert_eq!(transport.try_write_broadcast(&small), held);
        transport.write_all(b"after").await.expect("write");
        transport.flush().await.expect("flush");
        assert_eq!(transport.unwritten(), 0);
        let expected = [
            &small_frame[..],
            &small_frame,
            &large_frame,
            &small_frame,
            b"after",
        ]
        .concat();
        let mut received = vec![0u8; expected.len()];
        reader.read_exact(&mut received).await.expect("read");
        assert!(received == expected, "bytes out of order");
    });
}

#[test]
fn nothing_is_held_behind_the_rest_of_a_frame_the_socket_refused() {
    use crate::net::data_frame::BroadcastFrames;
    use tokio_tungstenite::tungstenite::Message;
    runtime().block_on(async {
        let (mut transport, _reader) = connected().await;
        let frame = vec![3u8; 100_000];
        let mut written = FrameWrite::Written;
        while written == FrameWrite::Written {
            written = transport.try_write_frame(&frame);
        }
        assert_eq!(written, FrameWrite::Partly);
        let small = Message::Text("late".into());
        let small = BroadcastFrames::new(&small);
        assert_eq!(transport.try_write_broadcast(&small), FrameWrite::Refused);
    });
}
