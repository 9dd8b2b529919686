//! The socket under a connection: TCP, or a unix domain socket (nginx in front of a server
//! on the same machine, with file permissions as access control). Everything above reads
//! and writes it the same way.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

pub enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// Longest path a unix socket address holds (sun_path, with its terminating zero).
pub const UNIX_PATH_MAX: usize = 107;

/// Why a unix socket path cannot be used, in words for the caller.
pub fn unix_path_problem(path: &Path) -> Option<String> {
    let length = path.as_os_str().len();
    if length == 0 {
        return Some("empty unix socket path".into());
    }
    if length > UNIX_PATH_MAX {
        return Some(format!(
            "unix socket path too long ({length} bytes, at most {UNIX_PATH_MAX})"
        ));
    }
    None
}

impl Socket {
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Socket::Tcp(tcp) => tcp.poll_read_ready(cx),
            Socket::Unix(unix) => unix.poll_read_ready(cx),
        }
    }

    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Socket::Tcp(tcp) => tcp.poll_write_ready(cx),
            Socket::Unix(unix) => unix.poll_write_ready(cx),
        }
    }

    /// Writes what the socket takes now, without waiting.
    pub fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(tcp) => tcp.try_write(bytes),
            Socket::Unix(unix) => unix.try_write(bytes),
        }
    }

    /// A pending error on the socket (SO_ERROR), taken.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Socket::Tcp(tcp) => tcp.take_error(),
            Socket::Unix(unix) => unix.take_error(),
        }
    }

    /// The same socket, registered with the current runtime again (after `watch` told the
    /// doorbell of it: see Core::watch_registered).
    pub fn reregister(self, before: impl FnOnce(RawFd) -> io::Result<()>) -> io::Result<Socket> {
        match self {
            Socket::Tcp(tcp) => {
                let tcp = tcp.into_std()?;
                before(tcp.as_raw_fd())?;
                TcpStream::from_std(tcp).map(Socket::Tcp)
            }
            Socket::Unix(unix) => {
                let unix = unix.into_std()?;
                before(unix.as_raw_fd())?;
                UnixStream::from_std(unix).map(Socket::Unix)
            }
        }
    }
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Socket::Tcp(tcp) => tcp.as_raw_fd(),
            Socket::Unix(unix) => unix.as_raw_fd(),
        }
    }
}

impl AsyncRead for Socket {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Socket::Unix(unix) => Pin::new(unix).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Tcp(tcp) => Pin::new(tcp).poll_write(cx, data),
            Socket::Unix(unix) => Pin::new(unix).poll_write(cx, data),
        }
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Tcp(tcp) => Pin::new(tcp).poll_write_vectored(cx, data),
            Socket::Unix(unix) => Pin::new(unix).poll_write_vectored(cx, data),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(tcp) => Pin::new(tcp).poll_flush(cx),
            Socket::Unix(unix) => Pin::new(unix).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Socket::Unix(unix) => Pin::new(unix).poll_shutdown(cx),
        }
    }
}

/// How long a connect to a unix socket whose listener's queue is full waits before it
/// tries again (such a connect fails at once instead of waiting, as TCP's would).
const UNIX_RETRY: std::time::Duration = std::time::Duration::from_millis(5);

/// Connects to the unix socket at `path` (checked by unix_path_problem) without blocking;
/// `on_socket` learns the socket before it connects.
pub async fn connect_unix(
    path: &Path,
    on_socket: Option<&dyn Fn(RawFd)>,
) -> io::Result<UnixStream> {
    let socket = UnixSocket::new()?;
    if let Some(on_socket) = on_socket {
        on_socket(socket.0.as_raw_fd());
    }
    loop {
        match socket.connect(path) {
            Ok(()) => break,
            Err(err) if err.raw_os_error() == Some(libc::EAGAIN) => {
                tokio::time::sleep(UNIX_RETRY).await;
            }
            Err(err) => return Err(err),
        }
    }
    UnixStream::from_std(std::os::unix::net::UnixStream::from(socket.0))
}

/// An unconnected unix stream socket that never blocks (std makes none without
/// connecting it, blocking).
struct UnixSocket(OwnedFd);

impl UnixSocket {
    fn new() -> io::Result<UnixSocket> {
        let flags = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: socket() returns a new descriptor or -1.
        let fd = unsafe { libc::socket(libc::AF_UNIX, flags, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is open and nothing else owns it.
        Ok(UnixSocket(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn connect(&self, path: &Path) -> io::Result<()> {
        let bytes = path.as_os_str().as_encoded_bytes();
        // SAFETY: sockaddr_un is plain data, all zeros a valid value.
        let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        if bytes.len() >= address.sun_path.len() {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        address.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (slot, byte) in address.sun_path.iter_mut().zip(bytes) {
            *slot = *byte as libc::c_char;
        }
        let length = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
        // SAFETY: `address` is a sockaddr_un whose first `length` bytes are the address.
        let status = unsafe {
            libc::connect(
                self.0.as_raw_fd(),
                (&address as *const libc::sockaddr_un).cast(),
                length as libc::socklen_t,
            )
        };
        if status == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}
