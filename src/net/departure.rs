//! Whether the peer of a connection that nothing reads is still there.
//!
//! A connection stops reading while its messages wait for Lua or the memory budget has no
//! room. tokio's readiness cannot tell then that the peer reset: it stays up while unread
//! bytes wait, and clearing it would hide those bytes from the next read. The kernel can:
//! a reset leaves an error on the socket and closes it, a FIN leaves it in CLOSE_WAIT.
//! (A unix socket has no such state: only its error is looked at.)

use tokio::net::TcpStream;

use crate::net::socket::Socket;

/// What a peer did while nothing read its connection.
#[derive(Debug, PartialEq, Eq)]
pub enum PeerGone {
    /// It reset the connection: everything it sent is void.
    Reset,
    /// It closed its side (what it sent before still counts).
    HungUp,
}

/// What became of the peer of `socket`, as far as the kernel tells without reading.
pub fn peer_gone(socket: &Socket) -> Option<PeerGone> {
    if let Ok(Some(_)) | Err(_) = socket.take_error() {
        return Some(PeerGone::Reset);
    }
    let Socket::Tcp(tcp) = socket else {
        return None;
    };
    match tcp_state(tcp) {
        Some(TCP_CLOSE) => Some(PeerGone::Reset),
        Some(TCP_CLOSE_WAIT) => Some(PeerGone::HungUp),
        _ => None,
    }
}

/// Linux's TCP states (include/net/tcp_states.h) that say the peer is gone: a reset closes
/// the socket, a FIN leaves it waiting for our close.
const TCP_CLOSE: i32 = 7;
const TCP_CLOSE_WAIT: i32 = 8;

/// The socket's TCP state (TCP_INFO), if the kernel tells it.
fn tcp_state(tcp: &TcpStream) -> Option<i32> {
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is plain data; getsockopt writes at most `length` bytes into it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut length = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let status = unsafe {
        libc::getsockopt(
            tcp.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut length,
        )
    };
    (status == 0).then_some(i32::from(info.tcpi_state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::batched_read::tests::runtime;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn pair() -> (Socket, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let ours = TcpStream::connect(address).await.expect("connect");
        let (theirs, _) = listener.accept().await.expect("accept");
        (Socket::Tcp(ours), theirs)
    }

    async fn settle() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    #[test]
    fn a_peer_that_hangs_up_or_resets_is_told_apart_with_bytes_unread() {
        runtime().block_on(async {
            let (ours, mut theirs) = pair().await;
            theirs.write_all(b"unread").await.expect("write");
            settle().await;
            assert_eq!(peer_gone(&ours), None);
            drop(theirs);
            settle().await;
            assert_eq!(peer_gone(&ours), Some(PeerGone::HungUp));

            let (ours, theirs) = pair().await;
            let mut theirs = theirs.into_std().expect("std");
            std::io::Write::write_all(&mut theirs, b"unread").expect("write");
            let theirs = socket_with_linger_zero(theirs);
            drop(theirs);
            settle().await;
            assert_eq!(peer_gone(&ours), Some(PeerGone::Reset));
        });
    }

    /// `tcp`, set to reset the connection when closed.
    fn socket_with_linger_zero(tcp: std::net::TcpStream) -> std::net::TcpStream {
        use std::os::fd::AsRawFd;
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt reads a linger struct of the size given.
        let status = unsafe {
            libc::setsockopt(
                tcp.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(status, 0);
        tcp
    }
}
