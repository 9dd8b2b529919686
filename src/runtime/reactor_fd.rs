//! Finding the epoll descriptor of tokio's reactor, so that the doorbell can watch it.
//!
//! A step of the core clears the doorbell and turns tokio's reactor: two epoll_waits when the
//! doorbell watches every socket itself. Watching tokio's own epoll instead (an epoll
//! descriptor is readable while it has events to report) makes the turn the only wait: once
//! tokio has taken its events, the doorbell is quiet again with nothing to clear. It also
//! makes the order of the two watchers moot (see Core::watch): the doorbell hears of an event
//! only once tokio's epoll holds it.
//!
//! tokio does not tell its descriptor. It is the one epoll instance that building the runtime
//! created, which /proc/self/fd shows; and it is only used once a socket registered with tokio
//! is seen to make it readable. Anything else (no /proc, another thread making an epoll
//! instance at the same time) leaves the doorbell watching the sockets itself.

use std::collections::HashSet;
use std::os::fd::RawFd;

use tokio::runtime::Runtime;

/// The epoll descriptors open in this process now (empty when /proc cannot tell).
pub fn epoll_descriptors() -> HashSet<RawFd> {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return HashSet::new();
    };
    entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            (target.as_os_str() == "anon_inode:[eventpoll]")
                .then(|| entry.file_name().to_str()?.parse().ok())
                .flatten()
        })
        .collect()
}

/// tokio's epoll descriptor in `runtime`, built after `before` was taken, if it can be told
/// for sure. (tokio keeps a duplicate of its descriptor: every one created must show
/// tokio's registrations.)
pub fn find(runtime: &Runtime, before: &HashSet<RawFd>) -> Option<RawFd> {
    let created: Vec<RawFd> = epoll_descriptors()
        .into_iter()
        .filter(|fd| !before.contains(fd))
        .collect();
    let first = *created.iter().min()?;
    created
        .iter()
        .all(|fd| reports_registrations(runtime, *fd))
        .then_some(first)
}

/// Whether `candidate` becomes readable when a socket is registered with tokio, and quiet
/// again once it is dropped.
fn reports_registrations(runtime: &Runtime, candidate: RawFd) -> bool {
    let Ok((_peer, socket)) = std::os::unix::net::UnixStream::pair() else {
        return false;
    };
    if socket.set_nonblocking(true).is_err() || readable(candidate) {
        return false;
    }
    let _runtime = runtime.enter();
    // Registered, a socket that can be written to is an event for tokio's epoll at once.
    let Ok(registered) = tokio::net::UnixStream::from_std(socket) else {
        return false;
    };
    let reported = readable(candidate);
    drop(registered);
    reported && !readable(candidate)
}

/// Whether `fd` has something to read now.
pub fn readable(fd: RawFd) -> bool {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, timeout 0.
    unsafe { libc::poll(&mut poll, 1, 0) == 1 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::runtime::Builder;

    #[test]
    fn finds_the_epoll_of_a_runtime_built_in_between() {
        // Other tests build runtimes on other threads meanwhile, which makes a look
        // inconclusive now and then: one of a few must find it.
        let found = (0..20).find_map(|_| {
            let before = epoll_descriptors();
            let runtime = Builder::new_current_thread().enable_all().build().unwrap();
            let found = find(&runtime, &before)?;
            assert!(!before.contains(&found));
            Some(found)
        });
        assert!(found.is_some());
    }

    #[test]
    fn finds_nothing_without_a_new_runtime() {
        let runtime = Builder::new_current_thread().enable_all().build().unwrap();
        let before = epoll_descriptors();
        assert_eq!(find(&runtime, &before), None);
    }
}
