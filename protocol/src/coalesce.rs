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
//! [`Flush`] is the decision; the node's connection driver uses it directly, and
//! [`Coalesced`] puts it under tarpc's client dispatch.

use futures::{Sink, Stream};
use std::pin::Pin;
use std::task::{Context, Poll};

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

/// A client's transport whose flushes wait one turn while other requests of the
/// connection await their answers (see the module).
pub struct Coalesced<T> {
    inner: T,
    flush: Flush,
    /// Requests written since the last flush.
    unflushed: usize,
    /// Requests flushed whose answers have not come back.
    awaiting: usize,
}

impl<T> Coalesced<T> {
    pub fn new(inner: T) -> Self {
        Coalesced { inner, flush: Flush::default(), unflushed: 0, awaiting: 0 }
    }
}

impl<T, R, E> Stream for Coalesced<T>
where
    T: Stream<Item = Result<R, E>> + Unpin,
{
    type Item = Result<R, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(_))) = &next {
            self.awaiting = self.awaiting.saturating_sub(1);
        }
        next
    }
}

impl<T, Req> Sink<tarpc::ClientMessage<Req>> for Coalesced<T>
where
    T: Sink<tarpc::ClientMessage<Req>> + Unpin,
{
    type Error = T::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: tarpc::ClientMessage<Req>) -> Result<(), Self::Error> {
        if matches!(item, tarpc::ClientMessage::Request(_)) {
            self.unflushed += 1;
        }
        Pin::new(&mut self.inner).start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = &mut *self;
        if this.unflushed > 0 && !this.flush.now(cx, true, this.awaiting) {
            return Poll::Pending;
        }
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            this.awaiting += std::mem::take(&mut this.unflushed);
        }
        flushed
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_close(cx)
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

    /// A sink of client messages that counts its flushes.
    #[derive(Default)]
    struct Counting {
        sent: usize,
        flushes: usize,
    }

    impl Sink<tarpc::ClientMessage<u8>> for Counting {
        type Error = std::io::Error;
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn start_send(mut self: Pin<&mut Self>, _: tarpc::ClientMessage<u8>) -> Result<(), Self::Error> {
            self.sent += 1;
            Ok(())
        }
        fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.flushes += 1;
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    impl Stream for Counting {
        type Item = Result<u8, std::io::Error>;
        fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Poll::Ready(Some(Ok(0)))
        }
    }

    fn request(id: u64) -> tarpc::ClientMessage<u8> {
        tarpc::ClientMessage::Request(tarpc::Request { context: tarpc::context::current(), id, message: 0 })
    }

    #[test]
    fn the_client_holds_a_flush_only_while_answers_are_awaited() {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut c = Coalesced::new(Counting::default());
        let mut c = Pin::new(&mut c);
        // The first request: nothing else in flight, out at once.
        c.as_mut().start_send(request(1)).unwrap();
        assert!(c.as_mut().poll_flush(&mut cx).is_ready());
        assert_eq!(c.inner.flushes, 1);
        // A second while the first awaits its answer: held one turn, then out.
        c.as_mut().start_send(request(2)).unwrap();
        assert!(c.as_mut().poll_flush(&mut cx).is_pending());
        assert_eq!(c.inner.flushes, 1);
        c.as_mut().start_send(request(3)).unwrap();
        assert!(c.as_mut().poll_flush(&mut cx).is_ready());
        assert_eq!((c.inner.sent, c.inner.flushes), (3, 2), "two requests in one flush");
        // Every answer back: the next request goes out at once again.
        for _ in 0..3 {
            assert!(matches!(c.as_mut().poll_next(&mut cx), Poll::Ready(Some(Ok(_)))));
        }
        c.as_mut().start_send(request(4)).unwrap();
        assert!(c.as_mut().poll_flush(&mut cx).is_ready());
        assert_eq!(c.inner.flushes, 3);
        // A flush with nothing written is passed on (tarpc flushes after cancellations).
        assert!(c.as_mut().poll_flush(&mut cx).is_ready());
    }
}
