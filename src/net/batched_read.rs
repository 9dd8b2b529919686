//! Reading a socket in large batches under tungstenite's small reads.
//!
//! tungstenite asks for at most its read buffer size per read (4 KiB here: it zero-fills
//! that much before every read, so a larger buffer costs every small message and every
//! idle connection). Left to itself, a 1 MiB message took 256 recv calls, each also making
//! the kernel send the peer a window update. This wrapper reads up to `BATCH` bytes at once
//! and hands them out as tungstenite asks. Only a connection with bytes left over holds a
//! batch buffer; the buffers come from a small pool of the thread, so idle connections cost
//! nothing and busy ones do not allocate per read.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read from the socket at once.
const BATCH: usize = 256 * 1024;
/// Free buffers a thread keeps for the next batch.
const POOL_LIMIT: usize = 4;

thread_local! {
    static POOL: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

fn take_buffer() -> Box<[u8]> {
    POOL.with(|pool| pool.borrow_mut().pop())
        .unwrap_or_else(|| vec![0; BATCH].into_boxed_slice())
}

fn return_buffer(buffer: Box<[u8]>) {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOL_LIMIT && buffer.len() == BATCH {
            pool.push(buffer);
        }
    });
}

/// Bytes read from the socket that the reader has not taken yet.
struct Leftover {
    buffer: Box<[u8]>,
    start: usize,
    end: usize,
}

pub struct BatchedRead<S> {
    inner: S,
    leftover: Option<Leftover>,
    /// The most the next read from the socket may bring (the memory budget's room).
    limit: usize,
}

impl<S> BatchedRead<S> {
    pub fn new(inner: S) -> Self {
        BatchedRead {
            inner,
            leftover: None,
            limit: usize::MAX,
        }
    }

    /// Bounds the bytes the next reads from the socket may bring.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Bytes read from the socket that wait to be taken.
    pub fn leftover_len(&self) -> usize {
        self.leftover
            .as_ref()
            .map_or(0, |leftover| leftover.end - leftover.start)
    }

    /// Moves bytes left over into a buffer of their own size, so that a connection that
    /// stops reading for a while does not hold a whole batch buffer.
    pub fn compact(&mut self) {
        let Some(leftover) = self.leftover.as_mut() else {
            return;
        };
        if leftover.buffer.len() != BATCH {
            return;
        }
        let rest: Box<[u8]> = leftover.buffer[leftover.start..leftover.end].into();
        let end = rest.len();
        let batch = std::mem::replace(&mut leftover.buffer, rest);
        leftover.start = 0;
        leftover.end = end;
        return_buffer(batch);
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Whether bytes read from the socket wait to be taken.
    pub fn has_leftover(&self) -> bool {
        self.leftover.is_some()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for BatchedRead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        into: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.leftover.is_none() {
            let want = BATCH.min(this.limit);
            // A reader asking for a whole batch or more (or for all the limit allows) gets
            // it without the extra copy.
            if into.remaining() >= want {
                let part = into.initialize_unfilled_to(want);
                let mut direct = ReadBuf::new(part);
                let read = Pin::new(&mut this.inner).poll_read(cx, &mut direct);
                let count = direct.filled().len();
                into.advance(count);
                return read;
            }
            let mut buffer = take_buffer();
            let mut batch = ReadBuf::new(&mut buffer[..want]);
            match Pin::new(&mut this.inner).poll_read(cx, &mut batch) {
                Poll::Ready(Ok(())) => {
                    let end = batch.filled().len();
                    this.leftover = Some(Leftover {
                        buffer,
                        start: 0,
                        end,
                    });
                }
                other => {
                    return_buffer(buffer);
                    return other;
                }
            }
        }
        if let Some(leftover) = &mut this.leftover {
            let count = (leftover.end - leftover.start).min(into.remaining());
            into.put_slice(&leftover.buffer[leftover.start..leftover.start + count]);
            leftover.start += count;
            if leftover.start == leftover.end {
                if let Some(done) = this.leftover.take() {
                    return_buffer(done.buffer);
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for BatchedRead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, data)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The runtime the I/O unit tests run in (the transport's tests too).
    pub(crate) fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn small_reads_get_every_byte_in_order_and_then_the_end() {
        runtime().block_on(async {
            let (mut writer, reader) = tokio::io::duplex(4 * BATCH);
            let sent: Vec<u8> = (0..(BATCH + BATCH / 2 + 7))
                .map(|i| (i % 251) as u8)
                .collect();
            writer.write_all(&sent).await.expect("write");
            drop(writer);
            let mut reader = BatchedRead::new(reader);
            let mut received = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let count = reader.read(&mut chunk).await.expect("read");
                if count == 0 {
                    break;
                }
                received.extend_from_slice(&chunk[..count]);
            }
            assert_eq!(received, sent);
        });
    }

    #[test]
    fn a_read_of_a_batch_or_more_goes_straight_to_the_socket() {
        runtime().block_on(async {
            let (mut writer, reader) = tokio::io::duplex(4 * BATCH);
            writer.write_all(b"abc").await.expect("write");
            let mut reader = BatchedRead::new(reader);
            let mut big = vec![0u8; BATCH];
            assert_eq!(reader.read(&mut big).await.expect("read"), 3);
            assert!(reader.leftover.is_none());
            assert_eq!(&big[..3], b"abc");
        });
    }

    #[test]
    fn a_limit_bounds_what_one_read_takes_from_the_socket() {
        runtime().block_on(async {
            let (mut writer, reader) = tokio::io::duplex(4 * BATCH);
            writer.write_all(&[5u8; 10_000]).await.expect("write");
            let mut reader = BatchedRead::new(reader);
            reader.set_limit(3000);
            let mut chunk = [0u8; 4096];
            // Straight into the reader's buffer, at most the limit.
            assert_eq!(reader.read(&mut chunk).await.expect("read"), 3000);
            assert_eq!(reader.leftover_len(), 0);
            reader.set_limit(6000);
            // A batch of the limit: what the reader does not take waits.
            assert_eq!(reader.read(&mut chunk[..1000]).await.expect("read"), 1000);
            assert_eq!(reader.leftover_len(), 5000);
        });
    }

    #[test]
    fn compacting_keeps_the_bytes_left_over_in_a_buffer_of_their_size() {
        runtime().block_on(async {
            let (mut writer, reader) = tokio::io::duplex(4 * BATCH);
            let sent: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
            writer.write_all(&sent).await.expect("write");
            let mut reader = BatchedRead::new(reader);
            let mut first = [0u8; 100];
            reader.read_exact(&mut first).await.expect("read");
            reader.compact();
            let leftover = reader.leftover.as_ref().expect("leftover");
            assert_eq!(leftover.buffer.len(), 19_900);
            let mut rest = vec![0u8; 19_900];
            reader.read_exact(&mut rest).await.expect("read");
            assert_eq!(&first[..], &sent[..100]);
            assert_eq!(rest, sent[100..]);
            assert!(reader.leftover.is_none());
        });
    }
}
