//! Broadcast frames held for one write per connection ("corked"): a broadcast or publish
//! appends its small frame to each member's buffer (net/transport/around.rs) instead of
//! writing it, and the core writes every buffer that holds something at its next step,
//! which comes once the Lua code that broadcast lets its loop run (copas or luv wait on the
//! doorbell, which rings as soon as something is held). On loopback and fast networks the
//! kernel's work per write is most of what a small delivery costs: a connection that gets
//! several messages before that step takes them with one system call.
//!
//! What is held stays bounded: at most `MAX_HELD` bytes per connection (the transport writes
//! a connection's frames at once beyond it) and `MAX_HELD_IN_ALL` over all connections (a
//! loop that broadcasts without ever yielding gets them written then).

use std::cell::{Cell, RefCell};

/// The most bytes held over all connections before they are all written.
pub const MAX_HELD_IN_ALL: usize = 4 * 1024 * 1024;

/// The connections that hold frames for the core's next step.
#[derive(Default)]
pub struct Corked {
    ids: RefCell<Vec<u64>>,
    bytes: Cell<usize>,
}

impl Corked {
    /// Notes that connection `id` holds `bytes` more (`first`: its first since the last
    /// write): true when it is the first connection to hold anything since the last step.
    pub fn hold(&self, id: u64, first: bool, bytes: usize) -> bool {
        self.bytes.set(self.bytes.get() + bytes);
        if !first {
            return false;
        }
        let mut ids = self.ids.borrow_mut();
        ids.push(id);
        ids.len() == 1
    }

    /// Whether so much is held that it should be written without waiting for the step.
    pub fn is_over_limit(&self) -> bool {
        self.bytes.get() > MAX_HELD_IN_ALL
    }

    pub fn is_empty(&self) -> bool {
        self.ids.borrow().is_empty()
    }

    /// The connections that hold frames, into `into`; none are left here.
    pub fn take(&self, into: &mut Vec<u64>) {
        into.append(&mut self.ids.borrow_mut());
        self.bytes.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_holder_is_told_and_every_holder_is_taken_once() {
        let corked = Corked::default();
        assert!(corked.hold(7, true, 10));
        assert!(!corked.hold(8, true, 10));
        assert!(!corked.hold(7, false, MAX_HELD_IN_ALL));
        assert!(corked.is_over_limit());
        let mut taken = Vec::new();
        corked.take(&mut taken);
        assert_eq!(taken, vec![7, 8]);
        assert!(corked.is_empty() && !corked.is_over_limit());
        assert!(corked.hold(9, true, 1));
    }
}
