//! The per-Lua-state core: one current_thread tokio runtime that runs on the Lua thread.
//!
//! Lua calls run inside this runtime instead of handing work to an I/O thread: every
//! cross-thread hand-off costs a wake-up per message (see shared/design/hot-path.md).
//!
//! - The sync client blocks in the runtime (`block_on`).
//! - The copas flavour never blocks: Lua polls its futures directly, and copas waits on the
//!   core's doorbell, a descriptor that is readable whenever the core may have work. When it
//!   rings, Lua calls `step`, which turns tokio's reactor once without waiting (so that the
//!   futures' wakers fire), raises the flags of expired deadlines and advances background
//!   work (connections closing on their own).
//!
//! The core is shared by `Rc` with everything made in the same Lua state, so it lives exactly
//! as long as the last of them.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mlua::Lua;
use tokio::runtime::{Builder, EnterGuard, Runtime};

use crate::doorbell::Doorbell;
use crate::ready::{RaisedQueue, Readiness};

/// Work the core advances on every step until it is finished.
pub trait BackgroundWork {
    /// Makes what progress it can without waiting; true once finished.
    fn advance(&mut self) -> bool;
}

/// tokio rounds timer deadlines up to the next millisecond and fires them only when its
/// reactor turns: the doorbell rings this much later, so that the step it causes finds
/// tokio's timers at the same deadline expired too.
const TOKIO_TIMER_SLACK: Duration = Duration::from_millis(2);

/// A deadline registered with `raise_at`, for cancelling it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeadlineId(Instant, u64);

pub struct Core {
    runtime: Runtime,
    /// Zero of the clock Lua sees through `websocket_native.now()`.
    epoch: Instant,
    doorbell: RefCell<Doorbell>,
    /// Flags to raise at a deadline (timeouts of waiting Lua calls, handshakes), earliest
    /// first.
    deadlines: RefCell<BTreeMap<DeadlineId, Readiness>>,
    next_deadline_id: Cell<u64>,
    background: RefCell<Vec<Rc<RefCell<dyn BackgroundWork>>>>,
    /// Which handles' flags went up since Lua last asked (see ready.rs).
    raised: RaisedQueue,
    next_readiness_id: Cell<u64>,
}

impl Core {
    /// The core of this Lua state, created on first use.
    pub fn of(lua: &Lua) -> mlua::Result<Rc<Core>> {
        if let Some(core) = lua.app_data_ref::<Rc<Core>>() {
            return Ok(Rc::clone(&core));
        }
        let failed =
            |err: std::io::Error| mlua::Error::runtime(format!("cannot start the I/O core: {err}"));
        let runtime = Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(failed)?;
        let core = Rc::new(Core {
            runtime,
            epoch: Instant::now(),
            doorbell: RefCell::new(Doorbell::new().map_err(failed)?),
            deadlines: RefCell::new(BTreeMap::new()),
            next_deadline_id: Cell::new(0),
            background: RefCell::new(Vec::new()),
            raised: RaisedQueue::default(),
            next_readiness_id: Cell::new(1),
        });
        lua.set_app_data(Rc::clone(&core));
        Ok(core)
    }

    /// Runs `work` to completion on the Lua thread.
    pub fn block_on<F: Future>(&self, work: F) -> F::Output {
        self.runtime.block_on(work)
    }

    /// Runs `work` on the Lua thread for at most `limit`; `None` when the limit expired.
    pub fn block_on_for<F: Future>(&self, limit: Option<Duration>, work: F) -> Option<F::Output> {
        match limit {
            None => Some(self.runtime.block_on(work)),
            // The timer must be made inside the runtime, which owns the clock.
            Some(limit) => self
                .runtime
                .block_on(async move { tokio::time::timeout(limit, work).await.ok() }),
        }
    }

    /// Zero of the clock Lua sees.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Seconds since the epoch, for deadlines computed in Lua.
    pub fn now(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    /// Enters the runtime, for polling futures and making timers outside `block_on`.
    pub fn enter(&self) -> EnterGuard<'_> {
        self.runtime.enter()
    }

    /// The descriptor copas waits on.
    pub fn doorbell_fd(&self) -> i32 {
        self.doorbell.borrow().fd()
    }

    /// A descriptor that is never readable (see Doorbell::silent_fd).
    pub fn silent_fd(&self) -> i32 {
        self.doorbell.borrow().silent_fd()
    }

    /// Makes the doorbell ring for `socket`'s events.
    pub fn watch(&self, socket: i32) -> std::io::Result<()> {
        self.doorbell.borrow().watch(socket)
    }

    /// A new handle's flag, with an id of its own, reporting to the raised queue.
    pub fn readiness(&self) -> Readiness {
        let id = self.next_readiness_id.get();
        self.next_readiness_id.set(id.wrapping_add(1));
        Readiness::new(id, self.raised.clone())
    }

    /// Whether some handle's flag went up since the last `take_raised`.
    pub fn any_raised(&self) -> bool {
        !self.raised.is_empty()
    }

    /// The ids of the flags that went up since the last call, oldest first.
    pub fn take_raised(&self, into: &mut Vec<u64>) {
        self.raised.take(into);
    }

    /// Raises `readiness` at `deadline`, ringing the doorbell then, unless cancelled first.
    pub fn raise_at(&self, deadline: Instant, readiness: &Readiness) -> DeadlineId {
        let id = DeadlineId(deadline, self.next_deadline_id.get());
        self.next_deadline_id.set(id.1.wrapping_add(1));
        self.deadlines.borrow_mut().insert(id, readiness.clone());
        self.doorbell
            .borrow_mut()
            .ring_at(deadline + TOKIO_TIMER_SLACK);
        id
    }

    /// Forgets a deadline that is no longer needed, so that it wakes nobody. (The doorbell
    /// may still ring once at that time; the step then finds nothing due.)
    pub fn cancel_deadline(&self, id: DeadlineId) {
        self.deadlines.borrow_mut().remove(&id);
    }

    /// Advances `work` on every step until it is finished.
    pub fn run_in_background(&self, work: Rc<RefCell<dyn BackgroundWork>>) {
        self.background.borrow_mut().push(work);
    }

    /// Whether background work is still going on.
    pub fn has_background_work(&self) -> bool {
        !self.background.borrow().is_empty()
    }

    /// Does whatever is ready, without waiting (see the module comment).
    ///
    /// The doorbell is cleared only when the turn raised nothing, that is when Lua is about
    /// to wait on it: a busy connection then costs one epoll_wait per step, not two. Clearing
    /// is followed by another turn, so that nothing that arrived before it is missed.
    pub fn step(&self) {
        self.turn();
        if self.raised.is_empty() {
            self.doorbell.borrow_mut().drain();
            self.turn();
        }
    }

    /// One turn of tokio's reactor (so that the futures' wakers fire), expired deadlines and
    /// background work.
    fn turn(&self) {
        // Yielding once makes the scheduler poll the reactor with a zero timeout.
        self.runtime.block_on(tokio::task::yield_now());
        self.raise_expired_deadlines();
        let _runtime = self.enter();
        let mut background = self.background.take();
        background.retain(|work| !work.borrow_mut().advance());
        // Work added while advancing comes after what was there.
        background.append(&mut self.background.borrow_mut());
        *self.background.borrow_mut() = background;
    }

    /// Blocks until the doorbell rings or `limit` passes, then steps: how the copas flavour
    /// waits when it is called outside any coroutine.
    pub fn park(&self, limit: Option<Duration>) {
        let timeout_ms = limit.map_or(-1, |limit| limit.as_millis().min(i32::MAX as u128) as i32);
        let mut poll = libc::pollfd {
            fd: self.doorbell_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for our own descriptor.
        unsafe { libc::poll(&mut poll, 1, timeout_ms) };
        self.step();
    }

    fn raise_expired_deadlines(&self) {
        let now = Instant::now();
        let mut deadlines = self.deadlines.borrow_mut();
        while let Some(entry) = deadlines.first_entry() {
            if entry.key().0 > now {
                self.doorbell
                    .borrow_mut()
                    .ring_at(entry.key().0 + TOKIO_TIMER_SLACK);
                break;
            }
            entry.remove().raise();
        }
    }
}
