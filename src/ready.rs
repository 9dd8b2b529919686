//! A waker that only raises a flag.
//!
//! Futures of the copas flavour are not spawned as tasks: Lua polls them when it asks for
//! something. Their waker raises this flag, which the Lua side reads (through copas'
//! `dirty()`) to know which waiting coroutine to resume.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

#[derive(Clone)]
pub struct Readiness {
    flag: Arc<Flag>,
    waker: Waker,
}

impl Default for Readiness {
    fn default() -> Self {
        // Raised at first, so that the first look polls.
        let flag = Arc::new(Flag(AtomicBool::new(true)));
        let waker = Waker::from(Arc::clone(&flag));
        Readiness { flag, waker }
    }
}

impl Readiness {
    /// Whether something happened since the last poll.
    pub fn is_raised(&self) -> bool {
        self.flag.0.load(Ordering::Acquire)
    }

    pub fn raise(&self) {
        self.flag.0.store(true, Ordering::Release);
    }

    /// Lowers the flag and gives the context to poll with: the waker raises it again.
    pub fn poll_context(&self) -> Context<'_> {
        self.flag.0.store(false, Ordering::Release);
        Context::from_waker(&self.waker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waker_raises_what_polling_lowered() {
        let readiness = Readiness::default();
        assert!(readiness.is_raised());
        let cx = readiness.poll_context();
        assert!(!readiness.is_raised());
        cx.waker().wake_by_ref();
        assert!(readiness.is_raised());
    }
}
