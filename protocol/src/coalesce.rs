//! When a connection's written messages go out: one flush for as many as a turn of the
//! scheduler brings.
//!
//! A flush is a system call and, on loopback, the receiver's wake-up as well; at a few
//! hundred requests in flight on a connection those calls are what its task spends most
//! of its time in. The messages at hand wait one turn of the scheduler when more are on
//! their way (other requests of the connection are running, or waiting for their
//! answers, so their tasks are about to write too), and go out together at the next turn.
//! With nothing else in flight they go out at once: a lone caller's message is never held.
//!
//! [`Flush`] is the decision; the node's connection driver (answers) and a connection's
//! client side (`dispatch`, requests) use it.

use std::task::Context;

/// Whether written messages go out now or wait one turn.
#[derive(Debug, Default)]
pub struct Flush {
    /// The messages at hand were held back once already.
    held: bool,
}

impl Flush {
    /// Whether to flush now, with messages `written` and not flushed, while `others` other
    /// messages of the connection are in flight (requests running, or awaiting answers).
    /// `false` with messages written holds them one turn of the scheduler: the task is
    /// woken to be polled again after the tasks queued now.
    pub fn now(&mut self, cx: &mut Context<'_>, written: bool, others: usize) -> bool {
        let now = self.decide(written, others);
        if written && !now {
            cx.waker().wake_by_ref();
        }
        now
    }

    /// The decision alone.
    fn decide(&mut self, written: bool, others: usize) -> bool {
        if !written {
            return false;
        }
        if others == 0 || self.held {
            self.held = false;
            return true;
        }
        self.held = true;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_written_is_never_flushed() {
        let mut f = Flush::default();
        assert!(!f.decide(false, 0));
        assert!(!f.decide(false, 10));
    }

    #[test]
    fn a_lone_message_goes_out_at_once() {
        let mut f = Flush::default();
        for _ in 0..3 {
            assert!(f.decide(true, 0));
        }
    }

    #[test]
    fn with_others_in_flight_messages_wait_one_turn_then_go() {
        let mut f = Flush::default();
        assert!(!f.decide(true, 5), "held the first time");
        assert!(f.decide(true, 5), "out at the next turn, whatever is still in flight");
        assert!(!f.decide(true, 5), "the next messages are held again");
        assert!(f.decide(true, 0), "out at once when the others have come back");
        assert!(!f.decide(true, 1));
    }

    struct Woken(std::sync::atomic::AtomicUsize);

    impl futures::task::ArcWake for Woken {
        fn wake_by_ref(arc_self: &std::sync::Arc<Self>) {
            arc_self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_held_flush_wakes_its_task_to_be_polled_again() {
        let woken = std::sync::Arc::new(Woken(Default::default()));
        let waker = futures::task::waker(woken.clone());
        let mut cx = Context::from_waker(&waker);
        let mut f = Flush::default();
        assert!(f.now(&mut cx, true, 0));
        assert!(!f.now(&mut cx, false, 3), "nothing to flush: no wake-up either");
        assert_eq!(woken.0.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert!(!f.now(&mut cx, true, 3));
        assert_eq!(woken.0.load(std::sync::atomic::Ordering::SeqCst), 1, "held: polled again");
        assert!(f.now(&mut cx, true, 3));
        assert_eq!(woken.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
