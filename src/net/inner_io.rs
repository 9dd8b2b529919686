//! Reading and writing the stream under a transport: plain TCP, or TLS as a client or a
//! server, all over batched reads.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::net::transport::Inner;

impl AsyncRead for Inner {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Inner::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Inner::ClientTls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
            Inner::ServerTls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Inner {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Inner::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Inner::ClientTls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
            Inner::ServerTls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Inner::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Inner::ClientTls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
            Inner::ServerTls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Inner::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Inner::ClientTls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
            Inner::ServerTls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}
