//! The per-Lua-state core: one current_thread tokio runtime that runs on the Lua thread.
//!
//! Lua calls run inside this runtime instead of handing work to an I/O thread: every
//! cross-thread hand-off costs a wake-up per message (see docs/design.md).
//!
//! - The sync client blocks in the runtime (`block_on`).
//! - The copas flavour never blocks: Lua polls its futures directly, and copas waits on the
//!   core's doorbell, a descriptor that is readable whenever the core may have work. When it
//!   rings, Lua calls `step`, which turns tokio's reactor once without waiting (so that the
//!   futures' wakers fire), raises the flags of expired deadlines and drives the handles
//!   whose wakers fired: a connection reads ahead, answers pings, sends its keepalive pings
//!   and finishes closing handshakes whether or not a Lua call waits on it.
//!
//! The core is shared by `Rc` with everything made in the same Lua state, so it lives exactly
//! as long as the last of them.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, EnterGuard, Runtime};

use crate::net::socket::Socket;
use crate::runtime::corked::Corked;
use crate::runtime::doorbell::Doorbell;
use crate::runtime::first_steps::FirstSteps;
use crate::runtime::reactor_fd;
use crate::runtime::ready::{RaisedQueue, Readiness};

/// Hashes the handle ids the core's maps are keyed by: ids are ours (a counter), not a
/// peer's, so a multiplication that spreads them over the hash's bits will do, at a
/// fraction of the default hasher's cost (the map is looked up on every message).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, id: u64) {
        // Fibonacci hashing: the golden ratio's multiple moves the id into the high bits.
        self.0 = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type ById = BuildHasherDefault<IdHasher>;

/// The pumps by handle id.
type Pumps = HashMap<u64, Weak<RefCell<dyn Pump>>, ById>;

/// A handle the core drives on its own when its waker fires (see the module comment).
pub trait Pump {
    /// Makes what progress it can without waiting; true when Lua should look (a message
    /// arrived, the connection ended, a Lua call waits for the socket). A keepalive ping
    /// and its pong alone wake no coroutine.
    fn drive(&mut self, core: &Core) -> bool;
    /// Whether a close handshake is under way.
    fn is_closing(&self) -> bool;
    /// The pump as what it is (for the C functions that reach a connection by its id).
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
    /// Writes the broadcast frames it holds (corked.rs).
    fn write_held(&mut self, _core: &Core) {}
}

/// tokio rounds timer deadlines up to the next millisecond and fires them only when its
/// reactor turns: the doorbell rings this much later, so that the step it causes finds
/// tokio's timers at the same deadline expired too.
const TOKIO_TIMER_SLACK: Duration = Duration::from_millis(2);

/// How soon the doorbell rings again after sockets rang but tokio woke nobody (see `step`).
const LATE_EVENT_RECHECK: Duration = Duration::from_millis(2);

/// How many sockets' events one turn of tokio's reactor takes at most.
const EVENTS_PER_TURN: usize = 1024;

/// Who a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Audience {
    Lua,
    Core,
}

/// A deadline registered with `raise_at`, for cancelling it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeadlineId(Instant, u64);

/// The deadline of a Lua wait on one handle (`handle:wake_at(seconds)`), replacing any
/// earlier one.
#[derive(Default)]
pub struct WaitAlarm(Option<DeadlineId>);

impl WaitAlarm {
    /// Raises `readiness` at `seconds` on `now()`'s clock; nil cancels.
    pub fn set(&mut self, core: &Core, seconds: Option<f64>, readiness: &Readiness) {
        if let Some(previous) = self.0.take() {
            core.cancel_deadline(previous);
        }
        if let Some(seconds) = seconds {
            let offset = Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX);
            let at = core
                .epoch
                .checked_add(offset)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(86400 * 365));
            self.0 = Some(core.raise_at(at.max(Instant::now()), readiness));
        }
    }
}

pub struct Core {
    runtime: Runtime,
    /// Zero of the clock Lua sees through `websocket_native.now()`.
    epoch: Instant,
    doorbell: RefCell<Doorbell>,
    /// Handles to wake at a deadline, earliest first, and whether Lua must look then
    /// (timeouts of waiting Lua calls, handshakes) or only the core (keepalive).
    deadlines: RefCell<BTreeMap<DeadlineId, (Readiness, Audience)>>,
    next_deadline_id: Cell<u64>,
    /// What to drive when a handle's waker fires, by the handle's id.
    pumps: RefCell<Pumps>,
    /// The pumps that need the core stepped even when no Lua call waits on them (server
    /// connections, clients with keepalive), until they end.
    served: RefCell<HashSet<u64>>,
    /// Which handles' flags went up since Lua last asked (see ready.rs).
    raised: RaisedQueue,
    next_readiness_id: Cell<u64>,
    /// Sockets that rang but that tokio's turns may not have taken yet (more than one turn
    /// takes): while there are any, Lua steps again without waiting.
    backlog: Cell<usize>,
    pub first_steps: FirstSteps,
    /// The connections holding broadcast frames for this step (corked.rs).
    corked: Corked,
    /// Buffers kept from step to step (the handles woken, the ids handed to Lua), so that a
    /// step allocates nothing.
    woken_buffer: Cell<Vec<Readiness>>,
    ids_buffer: Cell<Vec<u64>>,
}

impl Core {
    /// A new core: its runtime, and the doorbell that watches the runtime's reactor.
    pub fn start() -> std::io::Result<Core> {
        let epolls_before = reactor_fd::epoll_descriptors();
        let runtime = Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .max_io_events_per_tick(EVENTS_PER_TURN)
            .build()?;
        // Before the doorbell makes epoll instances of its own.
        let reactor = reactor_fd::find(&runtime, &epolls_before);
        let mut doorbell = Doorbell::new()?;
        if let Some(reactor) = reactor {
            // Failing, the doorbell watches each socket instead.
            let _ = doorbell.watch_reactor(reactor);
        }
        Ok(Core {
            runtime,
            epoch: Instant::now(),
            doorbell: RefCell::new(doorbell),
            deadlines: RefCell::new(BTreeMap::new()),
            next_deadline_id: Cell::new(0),
            pumps: RefCell::new(HashMap::default()),
            served: RefCell::new(HashSet::new()),
            raised: RaisedQueue::default(),
            next_readiness_id: Cell::new(1),
            backlog: Cell::new(0),
            first_steps: FirstSteps::default(),
            corked: Corked::default(),
            woken_buffer: Cell::new(Vec::new()),
            ids_buffer: Cell::new(Vec::new()),
        })
    }

    /// Runs `work` to completion on the Lua thread.
    pub fn block_on<F: Future>(&self, work: F) -> F::Output {
        self.runtime.block_on(work)
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

    /// What another thread rings the doorbell with.
    pub fn remote_ringer(&self) -> crate::runtime::doorbell::RemoteRinger {
        self.doorbell.borrow_mut().remote_ringer()
    }

    /// A descriptor that is never readable (see Doorbell::silent_fd).
    pub fn silent_fd(&self) -> i32 {
        self.doorbell.borrow().silent_fd()
    }

    /// Makes the doorbell ring for `socket`'s events. Call it before tokio registers the
    /// socket (before `connect` or `listen`), or use `watch_registered`. (Nothing to do when
    /// the doorbell watches tokio's epoll, which hears of every socket tokio registers.)
    ///
    /// The kernel tells a socket's watchers of an event newest registration first. The
    /// doorbell must be told last: the step that its ring causes then finds the event in
    /// tokio's reactor already. Told first, the Lua thread could turn the reactor before
    /// tokio's watcher was told (the other CPU, or a preempted one, is still telling it),
    /// and the connection would wait for the next event with its data unread.
    pub fn watch(&self, socket: i32) -> std::io::Result<()> {
        self.doorbell.borrow().watch(socket)
    }

    /// `watch` for a socket that tokio has registered already (an accepted one): tokio
    /// registers it again after the doorbell.
    pub fn watch_registered(&self, socket: Socket) -> std::io::Result<Socket> {
        if self.doorbell.borrow().watches_reactor() {
            return Ok(socket);
        }
        let _runtime = self.enter();
        socket.reregister(|fd| self.watch(fd))
    }

    /// A new handle's flag, with an id of its own, reporting to the raised queue.
    pub fn readiness(&self) -> Readiness {
        let id = self.next_readiness_id.get();
        self.next_readiness_id.set(id.wrapping_add(1));
        Readiness::new(id, self.raised.clone())
    }

    /// Whether a step has work without waiting: some handle's flag went up since the last
    /// `take_raised`, a waker fired, or sockets rang that no turn has taken yet.
    pub fn any_raised(&self) -> bool {
        !self.raised.is_empty() || self.backlog.get() > 0
    }

    /// The ids of the flags that went up since the last call, oldest first.
    pub fn take_raised(&self, into: &mut Vec<u64>) {
        self.raised.take(into);
    }

    /// Lends `use_ids` the ids of the oldest `limit` handles raised at most (as
    /// `take_raised` would take them); the others wait for the next call.
    pub fn with_raised_up_to<T>(&self, limit: usize, use_ids: impl FnOnce(&[u64]) -> T) -> T {
        let mut ids = self.ids_buffer.take();
        ids.clear();
        self.raised.take_up_to(limit, &mut ids);
        let result = use_ids(&ids);
        self.ids_buffer.set(ids);
        result
    }

    /// Raises `readiness` at `deadline`, ringing the doorbell then, unless cancelled first.
    pub fn raise_at(&self, deadline: Instant, readiness: &Readiness) -> DeadlineId {
        self.alarm_at(deadline, readiness, Audience::Lua)
    }

    /// Drives `readiness`'s handle at `deadline` (ringing the doorbell then), unless
    /// cancelled first; Lua hears of it only if the drive says so.
    pub fn wake_at(&self, deadline: Instant, readiness: &Readiness) -> DeadlineId {
        self.alarm_at(deadline, readiness, Audience::Core)
    }

    fn alarm_at(&self, deadline: Instant, readiness: &Readiness, audience: Audience) -> DeadlineId {
        let id = DeadlineId(deadline, self.next_deadline_id.get());
        self.next_deadline_id.set(id.1.wrapping_add(1));
        self.deadlines
            .borrow_mut()
            .insert(id, (readiness.clone(), audience));
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

    /// The pump of handle `id`, while its handle lives.
    pub fn pump(&self, id: u64) -> Option<Rc<RefCell<dyn Pump>>> {
        self.pumps.borrow().get(&id).and_then(Weak::upgrade)
    }

    /// Drives `pump` whenever the waker of handle `id` fires.
    pub fn add_pump(&self, id: u64, pump: Weak<RefCell<dyn Pump>>) {
        self.pumps.borrow_mut().insert(id, pump);
    }

    /// Handle `id` needs the core stepped even when no Lua call waits on it (see
    /// `is_serving`), until `end_service`.
    pub fn start_service(&self, id: u64) {
        self.served.borrow_mut().insert(id);
    }

    /// Forgets the pump of handle `id` (its handle is gone).
    pub fn remove_pump(&self, id: u64) {
        self.pumps.borrow_mut().remove(&id);
        self.served.borrow_mut().remove(&id);
    }

    /// Handle `id` ended: it needs no more stepping of its own.
    pub fn end_service(&self, id: u64) {
        self.served.borrow_mut().remove(&id);
    }

    /// Whether some handle needs the core stepped although no Lua call waits on it.
    pub fn is_serving(&self) -> bool {
        !self.served.borrow().is_empty()
    }

    /// Whether a close handshake is still under way somewhere.
    pub fn has_background_work(&self) -> bool {
        let pumps: Vec<_> = self
            .pumps
            .borrow()
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        pumps
            .iter()
            .any(|pump| pump.try_borrow().is_ok_and(|pump| pump.is_closing()))
    }

    /// Does whatever is ready, without waiting (see the module comment).
    ///
    /// The doorbell is cleared first and tokio's reactor turned after: whatever rang before
    /// the clearing is in the reactor for this turn, and whatever comes later rings again.
    /// So a coroutine about to wait needs no step of its own first: copas' select on the
    /// doorbell tells it whether anything came. A step costs one epoll_wait (tokio's) when
    /// the doorbell watches tokio's epoll, two when it watches each socket.
    pub fn step(&self) {
        let rang = self.doorbell.borrow_mut().drain();
        let backlog = self.backlog.get() + rang.sockets;
        self.backlog.set(backlog.saturating_sub(EVENTS_PER_TURN));
        let woken = self.turn();
        if rang.sockets > 0 && woken == 0 {
            // Sockets rang and tokio woke nobody: a write-space event, usually, but should
            // tokio's watcher ever hear of an event after the doorbell (see `watch`), the
            // doorbell rings again shortly, so that a message waits milliseconds, not
            // until some later event.
            self.doorbell
                .borrow_mut()
                .ring_at(Instant::now() + LATE_EVENT_RECHECK);
        }
    }

    /// One turn of tokio's reactor (so that the futures' wakers fire), expired deadlines, then
    /// the woken handles: each is driven if it has a pump, and raised for Lua. Returns how
    /// many handles were woken.
    fn turn(&self) -> usize {
        self.write_held();
        // Yielding once makes the scheduler poll the reactor with a zero timeout.
        self.runtime.block_on(tokio::task::yield_now());
        self.raise_expired_deadlines();
        let _runtime = self.enter();
        // The buffer is taken out while handles are driven, so nothing borrows it meanwhile.
        let mut woken = self.woken_buffer.take();
        self.raised.take_woken_into(&mut woken);
        let count = woken.len();
        for readiness in woken.drain(..) {
            let pump = self
                .pumps
                .borrow()
                .get(&readiness.id())
                .and_then(Weak::upgrade);
            let lua_should_look = match pump {
                // A Lua call on this handle never steps while it holds the handle.
                Some(pump) => match pump.try_borrow_mut() {
                    Ok(mut pump) => pump.drive(self),
                    Err(_) => true,
                },
                None => true,
            };
            if lua_should_look {
                readiness.raise();
            }
        }
        self.woken_buffer.set(woken);
        count
    }

    /// Notes that connection `id` holds `bytes` more of broadcast frames (`first`: its first
    /// since it last wrote them) for this step, which the doorbell makes come soon.
    pub fn hold(&self, id: u64, first: bool, bytes: usize) {
        if self.corked.hold(id, first, bytes) {
            self.doorbell.borrow_mut().ring_at(Instant::now());
        }
    }

    /// Writes the broadcast frames every connection holds, when they are more than the
    /// step should wait for.
    pub fn write_held_if_many(&self) {
        if self.corked.is_over_limit() {
            self.write_held();
        }
    }

    /// Writes the broadcast frames every connection holds. A connection a Lua call holds
    /// now keeps its frames for the next step.
    fn write_held(&self) {
        if self.corked.is_empty() {
            return;
        }
        let mut ids = Vec::new();
        self.corked.take(&mut ids);
        let _runtime = self.enter();
        for id in ids {
            let Some(pump) = self.pump(id) else { continue };
            let held_by_lua = match pump.try_borrow_mut() {
                Ok(mut pump) => {
                    pump.write_held(self);
                    false
                }
                Err(_) => true,
            };
            if held_by_lua {
                self.hold(id, true, 0);
            }
        }
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
            let (readiness, audience) = entry.remove();
            readiness.wake();
            if audience == Audience::Lua {
                readiness.raise();
            }
        }
    }
}
