//! A waker that only raises a flag, and the queues that say which flags went up.
//!
//! Futures of the copas flavour are not spawned as tasks. A waker firing queues its handle
//! for the core (`woken`); on its next step the core drives that handle (a connection reads
//! ahead, answers pings, keeps its keepalive) and then raises the flag Lua sees, queueing the
//! handle for Lua (`raised`). Lua reads one flag through `ready()` and learns which handles
//! to look at from the raised queue, so that waking the right coroutine costs the same with
//! ten or ten thousand connections waiting.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Wake, Waker};

type FlagList = Arc<Mutex<Vec<Arc<Flag>>>>;

fn locked(list: &FlagList) -> MutexGuard<'_, Vec<Arc<Flag>>> {
    // Nothing can panic while holding the lock, but a poisoned list is still usable.
    list.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The handles woken for the core, and those raised for Lua, each listed at most once.
#[derive(Clone, Default)]
pub struct RaisedQueue {
    woken: FlagList,
    raised: FlagList,
}

impl RaisedQueue {
    /// Whether neither the core nor Lua has anything to look at.
    pub fn is_empty(&self) -> bool {
        locked(&self.raised).is_empty() && locked(&self.woken).is_empty()
    }

    /// Appends the ids of the handles raised for Lua to `into`, oldest first, and empties
    /// that queue.
    pub fn take(&self, into: &mut Vec<u64>) {
        self.take_up_to(usize::MAX, into);
    }

    /// `take` of the oldest `limit` at most; the others stay queued.
    pub fn take_up_to(&self, limit: usize, into: &mut Vec<u64>) {
        let mut raised = locked(&self.raised);
        let count = raised.len().min(limit);
        for flag in raised.drain(..count) {
            flag.queued.store(false, Ordering::Release);
            into.push(flag.id);
        }
    }

    /// The handles woken since the last call; each may be woken again from now on.
    #[cfg(test)]
    pub fn take_woken(&self) -> Vec<Readiness> {
        let mut woken = Vec::new();
        self.take_woken_into(&mut woken);
        woken
    }

    /// `take_woken` appending to `into` (a buffer the core keeps, so a step allocates none).
    pub fn take_woken_into(&self, into: &mut Vec<Readiness>) {
        into.extend(locked(&self.woken).drain(..).map(|flag| {
            flag.woken.store(false, Ordering::Release);
            Readiness::from_flag(flag)
        }));
    }
}

struct Flag {
    /// Queued for the core.
    woken: AtomicBool,
    /// Up for Lua: something happened since Lua last looked.
    raised: AtomicBool,
    /// Queued for Lua.
    queued: AtomicBool,
    /// How often the waker fired (wrapping): a poll that found nothing need not be repeated
    /// until this moves.
    wakes: AtomicU32,
    id: u64,
    queue: RaisedQueue,
}

impl Flag {
    fn wake(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::AcqRel);
        if !self.woken.swap(true, Ordering::AcqRel) {
            locked(&self.queue.woken).push(Arc::clone(self));
        }
    }

    fn raise(self: &Arc<Self>) {
        // Queued when it goes up, unless it is in the queue already.
        if !self.raised.swap(true, Ordering::AcqRel) && !self.queued.swap(true, Ordering::AcqRel) {
            locked(&self.queue.raised).push(Arc::clone(self));
        }
    }
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        Flag::wake(&self);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        Flag::wake(self);
    }
}

#[derive(Clone)]
pub struct Readiness {
    flag: Arc<Flag>,
    waker: Waker,
}

impl Readiness {
    /// A flag known to Lua as `id`, which reports to `queue`.
    pub fn new(id: u64, queue: RaisedQueue) -> Self {
        // Raised at first, so that the first look polls.
        Readiness::from_flag(Arc::new(Flag {
            woken: AtomicBool::new(false),
            raised: AtomicBool::new(true),
            queued: AtomicBool::new(false),
            wakes: AtomicU32::new(0),
            id,
            queue,
        }))
    }

    fn from_flag(flag: Arc<Flag>) -> Self {
        let waker = Waker::from(Arc::clone(&flag));
        Readiness { flag, waker }
    }

    pub fn id(&self) -> u64 {
        self.flag.id
    }

    /// How often the waker fired so far (wrapping).
    pub fn wakes(&self) -> u32 {
        self.flag.wakes.load(Ordering::Acquire)
    }

    /// Whether something happened since Lua last looked.
    pub fn is_raised(&self) -> bool {
        self.flag.raised.load(Ordering::Acquire)
    }

    /// Tells Lua to look (queues the handle for Lua).
    pub fn raise(&self) {
        self.flag.raise();
    }

    /// Asks the core to drive this handle on its next step (what the waker does).
    pub fn wake(&self) {
        Flag::wake(&self.flag);
    }

    /// Lowers Lua's flag: Lua is looking now.
    pub fn lower(&self) {
        self.flag.raised.store(false, Ordering::Release);
    }

    /// Lowers Lua's flag and gives the context to poll with: the waker wakes the handle
    /// again.
    pub fn poll_context(&self) -> Context<'_> {
        self.flag.raised.store(false, Ordering::Release);
        self.waker_context()
    }

    /// The context to poll with, leaving Lua's flag as it is (the core's own polling).
    pub fn waker_context(&self) -> Context<'_> {
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
        // Woken for the core; Lua sees it once the core delivered it.
        assert!(!readiness.is_raised());
    }

    #[test]
    fn a_handle_is_woken_once_until_the_core_takes_it() {
        let queue = RaisedQueue::default();
        let readiness = Readiness::new(3, queue.clone());
        readiness.wake();
        readiness.wake();
        assert!(!queue.is_empty());
        let mut raised = Vec::new();
        queue.take(&mut raised);
        assert!(raised.is_empty());
        let woken = queue.take_woken();
        assert_eq!(woken.len(), 1);
        assert_eq!(woken[0].id(), 3);
        assert!(queue.take_woken().is_empty());
        readiness.wake();
        assert_eq!(queue.take_woken().len(), 1);
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

    #[test]
    fn a_limited_take_leaves_the_newer_flags_queued() {
        let queue = RaisedQueue::default();
        let flags: Vec<Readiness> = (1..=5)
            .map(|id| Readiness::new(id, queue.clone()))
            .collect();
        for flag in &flags {
            let _ = flag.poll_context();
            flag.raise();
        }
        let mut ids = Vec::new();
        queue.take_up_to(2, &mut ids);
        assert_eq!(ids, vec![1, 2]);
        assert!(!queue.is_empty());
        // A flag still queued is not queued twice when raised again.
        let _ = flags[2].poll_context();
        flags[2].raise();
        queue.take_up_to(10, &mut ids);
        assert_eq!(ids, vec![1, 2, 3, 4, 5]);
        assert!(queue.is_empty());
    }
}
