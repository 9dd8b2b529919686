//! A waker that only raises a flag, and the queue that tells Lua which flags went up.
//!
//! Futures of the copas flavour are not spawned as tasks: Lua polls them when it asks for
//! something. Their waker raises the flag of the handle they belong to. Lua reads one flag
//! through `ready()`, and learns which handles to look at from the raised queue, so that
//! waking the right coroutine costs the same with ten or ten thousand connections waiting.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Wake, Waker};

/// The flags raised since Lua last took them, each at most once: a handle nobody waits on
/// adds nothing more until Lua takes the queue.
#[derive(Clone, Default)]
pub struct RaisedQueue(Arc<Mutex<Vec<Arc<Flag>>>>);

impl RaisedQueue {
    fn flags(&self) -> MutexGuard<'_, Vec<Arc<Flag>>> {
        // Nothing can panic while holding the lock, but a poisoned queue is still usable.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn is_empty(&self) -> bool {
        self.flags().is_empty()
    }

    /// Appends the ids of the queued flags to `into`, oldest first, and empties the queue.
    pub fn take(&self, into: &mut Vec<u64>) {
        for flag in self.flags().drain(..) {
            flag.queued.store(false, Ordering::Release);
            into.push(flag.id);
        }
    }
}

struct Flag {
    raised: AtomicBool,
    queued: AtomicBool,
    id: u64,
    queue: RaisedQueue,
}

impl Flag {
    fn raise(self: &Arc<Self>) {
        // Queued when it goes up, unless it is in the queue already.
        if !self.raised.swap(true, Ordering::AcqRel) && !self.queued.swap(true, Ordering::AcqRel) {
            self.queue.flags().push(Arc::clone(self));
        }
    }
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.raise();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.raise();
    }
}

#[derive(Clone)]
pub struct Readiness {
    flag: Arc<Flag>,
    waker: Waker,
}

impl Readiness {
    /// A flag known to Lua as `id`, which reports its raisings to `queue`.
    pub fn new(id: u64, queue: RaisedQueue) -> Self {
        // Raised at first, so that the first look polls.
        let flag = Arc::new(Flag {
            raised: AtomicBool::new(true),
            queued: AtomicBool::new(false),
            id,
            queue,
        });
        let waker = Waker::from(Arc::clone(&flag));
        Readiness { flag, waker }
    }

    pub fn id(&self) -> u64 {
        self.flag.id
    }

    /// Whether something happened since the last poll.
    pub fn is_raised(&self) -> bool {
        self.flag.raised.load(Ordering::Acquire)
    }

    pub fn raise(&self) {
        self.flag.raise();
    }

    /// Lowers the flag and gives the context to poll with: the waker raises it again.
    pub fn poll_context(&self) -> Context<'_> {
        self.flag.raised.store(false, Ordering::Release);
        Context::from_waker(&self.waker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waker_raises_what_polling_lowered() {
        let readiness = Readiness::new(7, RaisedQueue::default());
        assert!(readiness.is_raised());
        let cx = readiness.poll_context();
        assert!(!readiness.is_raised());
        cx.waker().wake_by_ref();
        assert!(readiness.is_raised());
    }

    #[test]
    fn a_flag_is_queued_once_until_lua_takes_the_queue() {
        let queue = RaisedQueue::default();
        let first = Readiness::new(1, queue.clone());
        let second = Readiness::new(2, queue.clone());
        // Created raised: nothing queued until polled and raised again.
        first.raise();
        assert!(queue.is_empty());
        let _ = first.poll_context();
        let _ = second.poll_context();
        second.raise();
        first.raise();
        first.raise();
        // Polled and raised again before Lua took the queue: still queued once.
        let _ = first.poll_context();
        first.raise();
        let mut ids = Vec::new();
        queue.take(&mut ids);
        assert_eq!(ids, vec![2, 1]);
        assert!(queue.is_empty());
        let _ = first.poll_context();
        first.raise();
        queue.take(&mut ids);
        assert_eq!(ids, vec![2, 1, 1]);
    }
}
