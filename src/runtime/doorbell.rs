//! The one descriptor a copas loop waits on: readable whenever the core may have work.
//!
//! It is an epoll instance of our own. It watches tokio's epoll (readable while tokio has
//! events to take; see reactor_fd.rs), or, when that cannot be found, every socket the core
//! owns, edge-triggered (so data left unread does not keep it readable); and a timerfd armed
//! for the core's earliest deadline, and an eventfd that other threads write to (the
//! cluster's Redis thread). It only tells the Lua thread when to step the core. Its number
//! is small, so select()'s 1024 limit never applies however many connections there are.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Doorbell {
    epoll: OwnedFd,
    timer: OwnedFd,
    /// Written by other threads to ring.
    remote: Arc<OwnedFd>,
    /// An epoll instance that watches nothing, so never becomes readable: copas 1.x selects
    /// on it for objects that are ready anyway (lua/websocket/pause.lua).
    silent: OwnedFd,
    /// The deadline the timer is armed for, if any.
    armed_for: Option<Instant>,
    /// It watches tokio's epoll rather than each socket.
    watches_reactor: bool,
    /// A RemoteRinger was handed out: another thread may ring.
    remote_in_use: bool,
}

/// What a drain found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rang {
    /// The timer had expired.
    pub timer: bool,
    /// How many sockets had events.
    pub sockets: usize,
}

/// epoll data values that mark the timer and the eventfd (socket events carry their fd).
const TIMER_TOKEN: u64 = u64::MAX;
const REMOTE_TOKEN: u64 = u64::MAX - 1;
const REACTOR_TOKEN: u64 = u64::MAX - 2;

/// Rings a doorbell from any thread.
#[derive(Clone)]
pub struct RemoteRinger(Arc<OwnedFd>);

impl RemoteRinger {
    pub fn ring(&self) {
        let one = 1u64;
        // SAFETY: writes 8 bytes from a u64 to our non-blocking eventfd; a full counter
        // (never in practice) only means it rings already.
        unsafe {
            libc::write(
                self.0.as_raw_fd(),
                &one as *const u64 as *const libc::c_void,
                8,
            )
        };
    }
}

impl Doorbell {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscalls; each returned descriptor is checked and owned at once.
        let epoll = unsafe { owned(libc::epoll_create1(libc::EPOLL_CLOEXEC))? };
        let timer = unsafe {
            owned(libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_CLOEXEC | libc::TFD_NONBLOCK,
            ))?
        };
        let silent = unsafe { owned(libc::epoll_create1(libc::EPOLL_CLOEXEC))? };
        let remote = unsafe { owned(libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK))? };
        let doorbell = Doorbell {
            epoll,
            timer,
            remote: Arc::new(remote),
            silent,
            armed_for: None,
            watches_reactor: false,
            remote_in_use: false,
        };
        doorbell.add(
            doorbell.timer.as_raw_fd(),
            libc::EPOLLIN as u32,
            TIMER_TOKEN,
        )?;
        doorbell.add(
            doorbell.remote.as_raw_fd(),
            libc::EPOLLIN as u32,
            REMOTE_TOKEN,
        )?;
        Ok(doorbell)
    }

    /// The descriptor to wait on.
    pub fn fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }

    /// What other threads ring it with.
    pub fn remote_ringer(&mut self) -> RemoteRinger {
        self.remote_in_use = true;
        RemoteRinger(Arc::clone(&self.remote))
    }

    /// Rings while tokio's epoll `reactor` has events to report, instead of for each socket:
    /// tokio's turn then takes what rang, and `drain` has nothing to clear.
    pub fn watch_reactor(&mut self, reactor: RawFd) -> io::Result<()> {
        // Level-triggered: an epoll descriptor is readable while it holds events.
        self.add(reactor, libc::EPOLLIN as u32, REACTOR_TOKEN)?;
        self.watches_reactor = true;
        Ok(())
    }

    /// Whether it watches tokio's epoll (`watch` is then not needed).
    pub fn watches_reactor(&self) -> bool {
        self.watches_reactor
    }

    /// A descriptor that is never readable.
    pub fn silent_fd(&self) -> RawFd {
        self.silent.as_raw_fd()
    }

    /// Rings whenever `socket` becomes readable, writable or hung up (through tokio's
    /// epoll when it watches that).
    pub fn watch(&self, socket: RawFd) -> io::Result<()> {
        if self.watches_reactor {
            return Ok(());
        }
        let events = libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET;
        self.add(socket, events as u32, socket as u64)
    }

    fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: both descriptors are open; the kernel copies the event.
        let status =
            unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        if status < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Clears what rang, so that the descriptor is readable again only for new events.
    pub fn drain(&mut self) -> Rang {
        let timer_due = self.armed_for.is_some_and(|at| at <= Instant::now());
        if self.watches_reactor && !self.remote_in_use && !timer_due {
            // Only tokio's epoll can have rung, and the turn that follows takes its events:
            // no system call here.
            return Rang {
                timer: false,
                sockets: 0,
            };
        }
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        let mut timer_rang = false;
        let mut remote_rang = false;
        let mut sockets = 0;
        loop {
            // SAFETY: `events` has room for the count we pass; timeout 0 never blocks.
            let count =
                unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), 64, 0) };
            if count <= 0 {
                break;
            }
            let rang = &events[..count as usize];
            for event in rang {
                match event.u64 {
                    TIMER_TOKEN => timer_rang = true,
                    REMOTE_TOKEN => remote_rang = true,
                    REACTOR_TOKEN => {}
                    _ => sockets += 1,
                }
            }
            if (count as usize) < events.len() {
                break;
            }
        }
        if remote_rang {
            let mut count = 0u64;
            // SAFETY: reads 8 bytes into a u64 from our non-blocking eventfd (level-triggered:
            // it stays readable until read).
            unsafe {
                libc::read(
                    self.remote.as_raw_fd(),
                    &mut count as *mut u64 as *mut libc::c_void,
                    8,
                )
            };
        }
        if timer_rang {
            let mut expirations = 0u64;
            // SAFETY: reads 8 bytes into a u64 from our non-blocking timerfd.
            unsafe {
                libc::read(
                    self.timer.as_raw_fd(),
                    &mut expirations as *mut u64 as *mut libc::c_void,
                    8,
                )
            };
            self.armed_for = None;
        }
        Rang {
            timer: timer_rang,
            sockets,
        }
    }

    /// Makes sure the doorbell rings at `deadline` (or earlier).
    pub fn ring_at(&mut self, deadline: Instant) {
        if self.armed_for.is_some_and(|armed| armed <= deadline) {
            return;
        }
        // A zero it_value disarms a timerfd, so a deadline already passed gets 1 ns.
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: our timerfd, a fully initialised itimerspec, no old value wanted.
        unsafe { libc::timerfd_settime(self.timer.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        self.armed_for = Some(deadline);
    }
}

/// Takes ownership of a descriptor a syscall returned, or its error.
unsafe fn owned(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(OwnedFd::from_raw_fd(fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::reactor_fd::readable;

    #[test]
    fn rings_for_socket_data_until_drained() {
        let mut bell = Doorbell::new().unwrap();
        let (mut writer, reader) = std::os::unix::net::UnixStream::pair().unwrap();
        bell.watch(reader.as_raw_fd()).unwrap();
        bell.drain(); // the first edge: the socket is writable
        assert!(!readable(bell.fd()));
        std::io::Write::write_all(&mut writer, b"x").unwrap();
        assert!(readable(bell.fd()));
        assert_eq!(
            bell.drain(),
            Rang {
                timer: false,
                sockets: 1
            }
        );
        // Edge-triggered: the unread byte does not keep it ringing.
        assert!(!readable(bell.fd()));
    }

    #[test]
    fn rings_from_another_thread() {
        let mut bell = Doorbell::new().unwrap();
        bell.drain();
        let ringer = bell.remote_ringer();
        std::thread::spawn(move || ringer.ring()).join().unwrap();
        assert!(readable(bell.fd()));
        bell.drain();
        assert!(!readable(bell.fd()));
    }

    #[test]
    fn rings_while_the_watched_reactor_holds_events_and_drains_without_a_wait() {
        let mut reactor = Doorbell::new().unwrap();
        let mut bell = Doorbell::new().unwrap();
        bell.watch_reactor(reactor.fd()).unwrap();
        let (mut writer, reader) = std::os::unix::net::UnixStream::pair().unwrap();
        // Sockets are the reactor's to watch now.
        bell.watch(reader.as_raw_fd()).unwrap();
        reactor.watch(reader.as_raw_fd()).unwrap();
        reactor.drain(); // the first edge: the socket is writable
        assert!(!readable(bell.fd()));
        std::io::Write::write_all(&mut writer, b"x").unwrap();
        assert!(readable(bell.fd()));
        // The bell's drain leaves the reactor's events to the reactor's own wait.
        bell.drain();
        assert!(readable(bell.fd()));
        assert_eq!(reactor.drain().sockets, 1);
        assert!(!readable(bell.fd()));
    }

    #[test]
    fn rings_at_a_deadline() {
        let mut bell = Doorbell::new().unwrap();
        bell.ring_at(Instant::now() + Duration::from_millis(20));
        assert!(!readable(bell.fd()));
        std::thread::sleep(Duration::from_millis(40));
        assert!(readable(bell.fd()));
        assert!(bell.drain().timer);
        assert!(!readable(bell.fd()));
    }
}
