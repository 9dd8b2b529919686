//! Where a server listens: a TCP port on an interface, or a unix socket path (nginx in front
//! on the same machine: no port to allocate, file permissions as access control). Binding,
//! accepting, and removing the socket file when the server closes.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::net::{TcpListener, TcpSocket, UnixListener};

use crate::connection::request::Peer;
use crate::net::socket::{unix_path_problem, Socket};
use crate::net::socket_error::describe_io;
use crate::runtime::core::Core;

/// How many connections the kernel queues before they are accepted: enough for a burst of
/// clients while the Lua thread is busy (std's default of 128 drops the rest's SYNs).
const ACCEPT_BACKLOG: u32 = 1024;

/// A listening socket that a core's doorbell watches.
pub(super) enum Bound {
    Tcp(TcpListener),
    Unix {
        listener: UnixListener,
        /// The socket file, removed at close if it is still the one bound here.
        path: Arc<Path>,
        file: (u64, u64),
    },
}

impl Bound {
    /// Binds `interface` ('*' for every address, IPv6 and IPv4) on `port`.
    pub(super) fn tcp(
        interface: &str,
        port: u16,
        reuse_port: bool,
        core: &Core,
    ) -> Result<Bound, String> {
        let addresses: Vec<SocketAddr> = if interface == "*" {
            // [::] takes IPv4 too on Linux; a host without IPv6 falls back to 0.0.0.0.
            vec![
                SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
            ]
        } else {
            crate::net::resolve::resolve(interface, port)?
        };
        let mut last_error = String::from("no address to listen on");
        for address in addresses {
            match listen_on(address, reuse_port, core) {
                Ok(listener) => return Ok(Bound::Tcp(listener)),
                Err(err) => last_error = describe_io(&err),
            }
        }
        Err(last_error)
    }

    /// Binds the unix socket `path`, replacing a stale socket file (one nothing listens
    /// on any more) but no other file.
    pub(super) fn unix(path: &Path, core: &Core) -> Result<Bound, String> {
        if let Some(problem) = unix_path_problem(path) {
            return Err(problem);
        }
        if let Ok(existing) = std::fs::symlink_metadata(path) {
            if !existing.file_type().is_socket() {
                return Err("the path exists and is not a socket".into());
            }
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => return Err("address already in use".into()),
                // Nothing listens there: a server that ended without removing it.
                Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(path).map_err(|err| describe_io(&err))?;
                }
                Err(_) => {}
            }
        }
        let listener =
            std::os::unix::net::UnixListener::bind(path).map_err(|err| describe_io(&err))?;
        let metadata = std::fs::metadata(path).map_err(|err| describe_io(&err))?;
        let bound = (|| {
            listener.set_nonblocking(true)?;
            // Before tokio registers it (see Core::watch).
            core.watch(listener.as_raw_fd())?;
            UnixListener::from_std(listener)
        })();
        match bound {
            Ok(listener) => Ok(Bound::Unix {
                listener,
                path: Arc::from(path),
                file: (metadata.dev(), metadata.ino()),
            }),
            Err(err) => {
                let _ = std::fs::remove_file(path);
                Err(describe_io(&err))
            }
        }
    }

    /// The next connection, if one is waiting.
    pub(super) fn poll_accept(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<(Socket, Peer)>> {
        match self {
            Bound::Tcp(listener) => listener.poll_accept(cx).map_ok(|(tcp, address)| {
                // Small messages must not wait for Nagle's algorithm.
                let _ = tcp.set_nodelay(true);
                (Socket::Tcp(tcp), Peer::Inet(address))
            }),
            Bound::Unix { listener, path, .. } => listener
                .poll_accept(cx)
                .map_ok(|(unix, _)| (Socket::Unix(unix), Peer::Unix(Arc::clone(path)))),
        }
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        if let Bound::Unix { path, file, .. } = self {
            // Only the file bound here: another server may have replaced it meanwhile.
            let same =
                std::fs::symlink_metadata(&**path).is_ok_and(|now| (now.dev(), now.ino()) == *file);
            if same {
                let _ = std::fs::remove_file(&**path);
            }
        }
    }
}

fn listen_on(address: SocketAddr, reuse_port: bool, core: &Core) -> std::io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // The port is free again as soon as the server closes, despite connections in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(address)?;
    // Before tokio registers it in listen (see Core::watch).
    core.watch(socket.as_raw_fd())?;
    socket.listen(ACCEPT_BACKLOG)
}
