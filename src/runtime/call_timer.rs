//! One tokio timer for all the calls of a sync client, for their timeouts.
//!
//! Making and dropping a tokio timer for every call cost about 8 % of the instructions of a
//! 16-byte echo. A call that finishes within its limit never needs the timer to fire, so one
//! timer serves every call: it stays armed for the earliest limit a call asked for, and when
//! it fires before the limit of the call under way, it is set again for that limit.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::runtime::core::Core;

#[derive(Default)]
pub struct CallTimer {
    sleep: Option<Pin<Box<Sleep>>>,
}

impl CallTimer {
    /// Runs `work` to completion on `core`'s runtime, for at most `limit` (none: no limit);
    /// `None` when the limit passed first.
    ///
    /// With `try_first`, `work` is polled once before that: a call that can finish at once
    /// (a send the socket takes, a message already read) then skips `block_on`, which costs
    /// about as much as the rest of such a call (entering the runtime, taking its scheduler,
    /// reading the clock for the limit). Without it, a call that has to wait anyway is not
    /// polled twice.
    pub fn run<F: Future>(
        &mut self,
        core: &Core,
        limit: Option<Duration>,
        work: F,
        try_first: bool,
    ) -> Option<F::Output> {
        let mut work = pin!(work);
        if try_first {
            // Entered, for the timers the work may make; the waker is replaced by
            // block_on's own when it polls the work again.
            let _inside = core.enter();
            let mut cx = Context::from_waker(Waker::noop());
            if let Poll::Ready(output) = work.as_mut().poll(&mut cx) {
                return Some(output);
            }
        }
        let Some(limit) = limit else {
            return Some(core.block_on(work));
        };
        core.block_on(async {
            // The clock belongs to the runtime, so the deadline is taken inside it.
            let Some(deadline) = Instant::now().checked_add(limit) else {
                return Some(work.await); // a limit beyond the clock's range is none
            };
            let sleep = self.armed_by(deadline);
            poll_fn(|cx| {
                if let Poll::Ready(output) = work.as_mut().poll(cx) {
                    return Poll::Ready(Some(output));
                }
                while sleep.as_mut().poll(cx).is_ready() {
                    if Instant::now() >= deadline {
                        return Poll::Ready(None);
                    }
                    // Armed for an earlier call's limit: this call's is later.
                    sleep.as_mut().reset(deadline);
                }
                Poll::Pending
            })
            .await
        })
    }

    /// The timer, armed for `deadline` or earlier.
    fn armed_by(&mut self, deadline: Instant) -> &mut Pin<Box<Sleep>> {
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() > deadline {
            sleep.as_mut().reset(deadline);
        }
        sleep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn core() -> std::rc::Rc<Core> {
        std::rc::Rc::new(Core::start().expect("a core"))
    }

    #[test]
    fn a_call_within_its_limit_returns_its_output() {
        let core = core();
        let mut timer = CallTimer::default();
        let output = timer.run(&core, Some(Duration::from_secs(5)), async { 7 }, false);
        assert_eq!(output, Some(7));
    }

    #[test]
    fn a_call_past_its_limit_times_out_even_with_the_timer_armed_later() {
        let core = core();
        let mut timer = CallTimer::default();
        // Armed by a long limit first, then a short one must still fire on time.
        assert_eq!(
            timer.run(&core, Some(Duration::from_secs(60)), async { 1 }, true),
            Some(1)
        );
        let started = std::time::Instant::now();
        let never = std::future::pending::<()>();
        assert_eq!(
            timer.run(&core, Some(Duration::from_millis(50)), never, true),
            None
        );
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn a_timer_armed_for_an_earlier_limit_does_not_cut_a_later_call_short() {
        let core = core();
        let mut timer = CallTimer::default();
        assert_eq!(
            timer.run(&core, Some(Duration::from_millis(20)), async { 1 }, false),
            Some(1)
        );
        // The timer is armed 20 ms out; this call may take 200 ms and finishes after 100.
        let work = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            2
        };
        assert_eq!(
            timer.run(&core, Some(Duration::from_millis(200)), work, true),
            Some(2)
        );
    }
}
