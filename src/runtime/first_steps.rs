//! Whether a coroutine about to wait should step the core first (copas/driven.rs
//! `receive_on`).

use std::cell::Cell;

/// Whether a step before a coroutine waits is worth its epoll_waits: it is when such
/// steps found the awaited message lately. Skipping one is never wrong: whatever the core
/// has not taken rings the doorbell that copas selects on.
#[derive(Default)]
pub struct FirstSteps {
    /// Steps that found nothing, or were skipped, since the last that found something.
    misses: Cell<u32>,
}

impl FirstSteps {
    /// Misses in a row after which steps are skipped.
    const MISSES_TO_SKIP: u32 = 2;
    /// While skipping, one in this many is tried, to notice when the traffic changed.
    const PROBE_EVERY: u32 = 16;

    pub fn worth_trying(&self) -> bool {
        let misses = self.misses.get();
        let worth = misses < Self::MISSES_TO_SKIP || misses.is_multiple_of(Self::PROBE_EVERY);
        if !worth {
            self.misses.set(misses.wrapping_add(1));
        }
        worth
    }

    pub fn record(&self, found: bool) {
        let misses = self.misses.get();
        self.misses
            .set(if found { 0 } else { misses.wrapping_add(1) });
    }
}

#[cfg(test)]
mod tests {
    use super::FirstSteps;

    #[test]
    fn first_steps_are_skipped_after_misses_and_probed_now_and_then() {
        let steps = FirstSteps::default();
        for _ in 0..FirstSteps::MISSES_TO_SKIP {
            assert!(steps.worth_trying());
            steps.record(false);
        }
        let tried = (0..FirstSteps::PROBE_EVERY * 4)
            .filter(|_| {
                let worth = steps.worth_trying();
                if worth {
                    steps.record(false);
                }
                worth
            })
            .count();
        assert_eq!(tried, 4);
        // One that finds something makes the next worth trying again.
        steps.record(true);
        assert!(steps.worth_trying());
    }
}
