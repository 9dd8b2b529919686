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
        if pool.len() < POOL_LIMIT {
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
}

impl<S> BatchedRead<S> {
    pub fn new(inner: S) -> Self {
        BatchedRead {
            inner,
            leftover: None,
        }
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
            // A reader asking for a whole batch or more gets it without the extra copy.
            if into.remaining() >= BATCH {
                return Pin::new(&mut this.inner).poll_read(cx, into);
            }
            let mut buffer = take_buffer();
            let mut batch = ReadBuf::new(&mut buffer);
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
}
