//! The node's Lamport clock: tick on each event; on receipt, take the max plus one.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct LamportClock(AtomicU64);

impl LamportClock {
    /// A local event or a send: the new time.
    pub fn tick(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// A message stamped `remote` arrived: the new time.
    pub fn receive(&self, remote: u64) -> u64 {
        self.0.fetch_max(remote, Ordering::SeqCst);
        self.tick()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_jumps_past_the_sender_and_never_goes_back() {
        let c = LamportClock::default();
        assert_eq!(c.tick(), 1);
        assert_eq!(c.receive(10), 11);
        assert_eq!(c.receive(3), 12);
        assert_eq!(c.tick(), 13);
    }
}
