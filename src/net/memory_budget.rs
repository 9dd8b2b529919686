//! The memory that incoming data may take, so that no peer can exhaust it.
//!
//! Every connection keeps an [`Account`] of the bytes it holds because of what its peer sent
//! or what Lua is sending: bytes read from the socket that tungstenite has not returned as a
//! message yet (partial frames and messages), messages read ahead for a later receive, the
//! message Lua took last (a handler usually holds it until its next receive: an echo sends
//! it back), and bytes written but not yet taken by the socket. The first
//! [`ALLOWANCE`] bytes of each connection are free, so connections of small messages are
//! always served; what a connection holds beyond that is charged to one budget per Lua
//! thread (the process, for a usual server; 256 MiB by default). A connection reads from
//! its socket only while it is inside its allowance or the budget has room, and then at
//! most that much: when both are spent it stops reading and TCP holds its peer back, until
//! Lua takes messages or the socket takes bytes and the budget has room again.
//!
//! Without it, 16 messages of up to 64 MiB read ahead per connection let five clients take
//! 5 GB, and pongs that a ping flooder never read grew without limit.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// What each connection may hold outside the budget (bytes).
pub const ALLOWANCE: usize = 64 * 1024;
/// The budget when nobody set one (bytes).
pub const DEFAULT_BUDGET: usize = 256 * 1024 * 1024;
/// What a connection alone over the budget reads at once (see `Account::poll_room`).
const ALONE_READ: usize = 256 * 1024;

struct Budget {
    limit: Cell<usize>,
    used: Cell<usize>,
    /// The most `used` has been since memory was last given back to the system.
    peak: Cell<usize>,
    /// Connections waiting for room, woken together once the budget has some again.
    waiting: RefCell<Vec<Waker>>,
}

thread_local! {
    static BUDGET: Budget = const {
        Budget {
            limit: Cell::new(DEFAULT_BUDGET),
            used: Cell::new(0),
            peak: Cell::new(0),
            waiting: RefCell::new(Vec::new()),
        }
    };
}

/// Sets the budget of this thread's connections (bytes).
pub fn set_limit(bytes: usize) {
    BUDGET.with(|budget| budget.limit.set(bytes));
    wake_waiting();
}

/// The budget of this thread's connections (bytes).
pub fn limit() -> usize {
    BUDGET.with(|budget| budget.limit.get())
}

/// The bytes charged to the budget now.
pub fn used() -> usize {
    BUDGET.with(|budget| budget.used.get())
}

/// Freed memory that glibc keeps (large blocks it now places in its heap) is returned to
/// the system once most of a large amount was released: a server that held a budget's
/// worth for departed peers goes back to its own size.
fn give_back_if_much_freed() {
    const MUCH: usize = 64 * 1024 * 1024;
    let worth_it = BUDGET.with(|budget| {
        let (peak, used) = (budget.peak.get(), budget.used.get());
        let worth_it = peak >= MUCH && used <= peak / 4;
        if worth_it {
            budget.peak.set(used);
        }
        worth_it
    });
    if worth_it {
        trim_heap();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    // SAFETY: malloc_trim only releases free memory; it takes no pointer.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

fn wake_waiting() {
    let waiting = BUDGET.with(|budget| std::mem::take(&mut *budget.waiting.borrow_mut()));
    for waker in waiting {
        waker.wake();
    }
}

/// What one connection holds, by where it is; shared by the connection's transport (which
/// reads and writes) and its owner (which queues messages for Lua).
#[derive(Default)]
pub struct Account {
    /// Read from the socket, not returned by tungstenite as a message yet.
    reading: Cell<usize>,
    /// Messages read ahead for a later receive.
    queued: Cell<usize>,
    /// The message Lua took last.
    taken: Cell<usize>,
    /// Written, not yet taken by the socket.
    writing: Cell<usize>,
    /// What this account has charged to the budget.
    charged: Cell<usize>,
}

/// The part of an account that a value stands for.
#[derive(Clone, Copy)]
pub enum Part {
    Reading,
    Queued,
    Taken,
    Writing,
}

impl Account {
    pub fn new() -> Rc<Self> {
        Rc::new(Account::default())
    }

    fn cell(&self, part: Part) -> &Cell<usize> {
        match part {
            Part::Reading => &self.reading,
            Part::Queued => &self.queued,
            Part::Taken => &self.taken,
            Part::Writing => &self.writing,
        }
    }

    /// Sets what `part` holds now, and charges the budget for the difference.
    #[inline]
    pub fn set(&self, part: Part, bytes: usize) {
        let cell = self.cell(part);
        if cell.get() != bytes {
            cell.set(bytes);
            self.settle();
        }
    }

    /// What `part` holds now.
    #[inline]
    pub fn holds(&self, part: Part) -> usize {
        self.cell(part).get()
    }

    /// Everything this connection holds.
    #[inline]
    pub fn held(&self) -> usize {
        self.reading.get() + self.queued.get() + self.taken.get() + self.writing.get()
    }

    #[inline]
    fn settle(&self) {
        let over = self.held().saturating_sub(ALLOWANCE);
        let before = self.charged.replace(over);
        if over == before {
            return;
        }
        let freed = BUDGET.with(|budget| {
            let used = budget.used.get() - before + over;
            budget.used.set(used);
            budget.peak.set(budget.peak.get().max(used));
            // Waiters are woken once there is room worth reading into again, not for every
            // byte taken (each wake costs every waiting connection a poll).
            over < before && used + ALLOWANCE <= budget.limit.get()
        });
        if freed && BUDGET.with(|budget| !budget.waiting.borrow().is_empty()) {
            wake_waiting();
        }
        if over < before {
            give_back_if_much_freed();
        }
    }

    /// How many bytes this connection may read now: Ready with a positive count, or Pending
    /// (woken once the budget has room) when its allowance and the budget are both spent.
    #[inline]
    pub fn poll_room(&self, cx: &mut Context<'_>) -> Poll<usize> {
        let held = self.held();
        if held == 0 {
            // The usual case between small messages, without a look at the thread's budget
            // (a thread-local, which costs a lookup in a loaded library).
            return Poll::Ready(ALLOWANCE);
        }
        let own = ALLOWANCE.saturating_sub(held);
        let (shared, alone) = BUDGET.with(|budget| {
            let (limit, used) = (budget.limit.get(), budget.used.get());
            (limit.saturating_sub(used), used == self.charged.get())
        });
        let room = own.max(shared);
        if room > 0 {
            return Poll::Ready(room);
        }
        // The only connection holding the budget, assembling one message (none waits for
        // Lua): it goes on, so that a message larger than the budget (a client's
        // max_message_size may be) still completes; max_message_size bounds it.
        if alone && self.queued.get() == 0 {
            return Poll::Ready(ALONE_READ);
        }
        BUDGET.with(|budget| {
            let mut waiting = budget.waiting.borrow_mut();
            if !waiting.iter().any(|known| known.will_wake(cx.waker())) {
                waiting.push(cx.waker().clone());
            }
        });
        Poll::Pending
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        self.reading.set(0);
        self.queued.set(0);
        self.taken.set(0);
        self.writing.set(0);
        self.settle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_allowance_is_free_and_the_rest_is_charged_until_released() {
        set_limit(1024 * 1024);
        let before = used();
        let account = Account::new();
        account.set(Part::Queued, ALLOWANCE);
        assert_eq!(used(), before);
        account.set(Part::Reading, 1000);
        assert_eq!(used(), before + 1000);
        account.set(Part::Queued, 0);
        assert_eq!(used(), before);
        account.set(Part::Taken, ALLOWANCE + 5);
        drop(account);
        assert_eq!(used(), before);
        set_limit(DEFAULT_BUDGET);
    }

    #[test]
    fn a_connection_alone_over_the_budget_finishes_its_message() {
        set_limit(2 * ALLOWANCE);
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let big = Account::new();
        big.set(Part::Reading, 10 * ALLOWANCE);
        assert_eq!(big.poll_room(&mut cx), Poll::Ready(ALONE_READ));
        // Not once another connection holds part of the budget too.
        let other = Account::new();
        other.set(Part::Reading, ALLOWANCE + 1);
        assert_eq!(big.poll_room(&mut cx), Poll::Pending);
        drop((big, other));
        set_limit(DEFAULT_BUDGET);
    }

    #[test]
    fn a_spent_budget_stops_reading_beyond_the_allowance_and_wakes_when_freed() {
        set_limit(4 * ALLOWANCE);
        let hog = Account::new();
        hog.set(Part::Queued, 5 * ALLOWANCE);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        // A small connection still reads within its allowance.
        let small = Account::new();
        small.set(Part::Queued, 100);
        assert_eq!(small.poll_room(&mut cx), Poll::Ready(ALLOWANCE - 100));
        // A large one waits.
        let large = Account::new();
        large.set(Part::Queued, ALLOWANCE);
        assert_eq!(large.poll_room(&mut cx), Poll::Pending);
        // So does the one over the budget, while it has messages waiting for Lua.
        assert_eq!(hog.poll_room(&mut cx), Poll::Pending);
        hog.set(Part::Queued, 0);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(large.poll_room(&mut cx), Poll::Ready(4 * ALLOWANCE));
        drop((hog, small, large));
        set_limit(DEFAULT_BUDGET);
    }
}
