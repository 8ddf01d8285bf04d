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
use std::time::Instant;

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
    awaiting: Awaiting,
}

impl<T> Coalesced<T> {
    pub fn new(inner: T) -> Self {
        Coalesced { inner, flush: Flush::default(), unflushed: 0, awaiting: Awaiting::default() }
    }
}

/// The requests of a connection whose answers are waited for: sent, neither answered nor
/// cancelled, and not past their deadline. A cancelled request's answer may still come (a
/// node runs every request to its end and answers it; tarpc's own servers drop it), but
/// the client no longer waits for it; one past its deadline may never be answered.
#[derive(Debug, Default)]
struct Awaiting {
    deadlines: std::collections::HashMap<u64, Instant>,
    /// The earliest deadline among them, once known: nothing expires before it.
    earliest: Option<Instant>,
}

impl Awaiting {
    fn sent(&mut self, id: u64, deadline: Instant) {
        self.deadlines.insert(id, deadline);
        self.earliest = Some(self.earliest.map_or(deadline, |e| e.min(deadline)));
    }

    /// Answered or cancelled.
    fn done(&mut self, id: u64) {
        self.deadlines.remove(&id);
    }

    /// How many at `now`.
    fn count(&mut self, now: Instant) -> usize {
        if self.earliest.is_some_and(|e| e <= now) {
            self.deadlines.retain(|_, d| *d > now);
            self.earliest = self.deadlines.values().min().copied();
        }
        self.deadlines.len()
    }
}

impl<T, R, E> Stream for Coalesced<T>
where
    T: Stream<Item = Result<tarpc::Response<R>, E>> + Unpin,
{
    type Item = Result<tarpc::Response<R>, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(answer))) = &next {
            self.awaiting.done(answer.request_id);
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
        match &item {
            tarpc::ClientMessage::Request(r) => {
                self.unflushed += 1;
                self.awaiting.sent(r.id, r.context.deadline);
            }
            tarpc::ClientMessage::Cancel { request_id, .. } => self.awaiting.done(*request_id),
            // Whatever else tarpc may send is not answered.
            _ => {}
        }
        Pin::new(&mut self.inner).start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = &mut *self;
        if this.unflushed > 0 {
            // The others: what awaits an answer, less what this flush sends.
            let others = this.awaiting.count(Instant::now()).saturating_sub(this.unflushed);
            if !this.flush.now(cx, true, others) {
                return Poll::Pending;
            }
        }
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            this.unflushed = 0;
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
        answered: usize,
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

    /// Answers the requests it was sent, in order, one per poll.
    impl Stream for Counting {
        type Item = Result<tarpc::Response<u8>, std::io::Error>;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.answered += 1;
            Poll::Ready(Some(Ok(tarpc::Response { request_id: self.answered as u64, message: Ok(0) })))
        }
    }

    fn request(id: u64) -> tarpc::ClientMessage<u8> {
        tarpc::ClientMessage::Request(tarpc::Request { context: tarpc::context::current(), id, message: 0 })
    }

    #[test]
    fn requests_answered_cancelled_or_past_their_deadline_are_not_awaited() {
        let mut a = Awaiting::default();
        let now = Instant::now();
        let s = std::time::Duration::from_secs(1);
        a.sent(1, now + s);
        a.sent(2, now + 2 * s);
        a.sent(3, now + 3 * s);
        a.sent(4, now + 4 * s);
        assert_eq!(a.count(now), 4);
        a.done(3);
        assert_eq!(a.count(now), 3, "answered (or cancelled)");
        assert_eq!(a.count(now + s), 2, "request 1's deadline has passed: no answer will come");
        assert_eq!(a.count(now + 5 * s), 0);
        a.done(9);
        assert_eq!(a.count(now + 5 * s), 0, "an answer to no request counts for nothing");
    }

    /// Runs `steps` on a coalesced counting transport.
    fn on_coalesced(steps: impl FnOnce(Pin<&mut Coalesced<Counting>>, &mut Context<'_>)) {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut c = Coalesced::new(Counting::default());
        steps(Pin::new(&mut c), &mut cx);
    }

    #[test]
    fn a_cancelled_request_holds_no_later_flush() {
        on_coalesced(|mut c, cx| {
            c.as_mut().start_send(request(1)).unwrap();
            assert!(c.as_mut().poll_flush(cx).is_ready());
            // Request 1's caller went away: tarpc cancels it, and the server will not answer.
            let cancel = tarpc::ClientMessage::Cancel { trace_context: Default::default(), request_id: 1 };
            c.as_mut().start_send(cancel).unwrap();
            assert!(c.as_mut().poll_flush(cx).is_ready());
            c.as_mut().start_send(request(2)).unwrap();
            assert!(c.as_mut().poll_flush(cx).is_ready(), "nothing else awaits an answer: out at once");
            assert_eq!(c.inner.flushes, 3);
        });
    }

    #[test]
    fn the_client_holds_a_flush_only_while_answers_are_awaited() {
        on_coalesced(|mut c, cx| {
            // The first request: nothing else in flight, out at once.
            c.as_mut().start_send(request(1)).unwrap();
            assert!(c.as_mut().poll_flush(cx).is_ready());
            assert_eq!(c.inner.flushes, 1);
            // A second while the first awaits its answer: held one turn, then out.
            c.as_mut().start_send(request(2)).unwrap();
            assert!(c.as_mut().poll_flush(cx).is_pending());
            assert_eq!(c.inner.flushes, 1);
            c.as_mut().start_send(request(3)).unwrap();
            assert!(c.as_mut().poll_flush(cx).is_ready());
            assert_eq!((c.inner.sent, c.inner.flushes), (3, 2), "two requests in one flush");
            // Every answer back: the next request goes out at once again.
            for _ in 0..3 {
                assert!(matches!(c.as_mut().poll_next(cx), Poll::Ready(Some(Ok(_)))));
            }
            c.as_mut().start_send(request(4)).unwrap();
            assert!(c.as_mut().poll_flush(cx).is_ready());
            assert_eq!(c.inner.flushes, 3);
            // A flush with nothing written is passed on (tarpc flushes after cancellations).
            assert!(c.as_mut().poll_flush(cx).is_ready());
        });
    }
}
