//! A connection's client side: the requests its callers make, written to the transport
//! in turn, and the answers read back and handed to their callers by request id.
//!
//! In place of tarpc's client dispatch, whose per-request bookkeeping (a span, a deadline
//! queue entry, a cancellation message when a caller leaves) serves a server that cuts
//! requests short: a node runs every request to its end and answers it (see `objectd`'s
//! `rpc::drive`), so a caller that leaves is simply not answered, and the caller keeps its
//! own deadline (`Connection::send`). The wire is tarpc's as before: `ClientMessage`s out,
//! `Response`s back, over the same transport.
//!
//! Written requests wait one turn of the scheduler while others of the connection await
//! their answers, and go out with one flush (`coalesce::Flush`).

use crate::coalesce::Flush;
use crate::service::{NodeRpcRequest, NodeRpcResponse};
use crate::wire::{Request, Response};
use futures::{Sink, Stream};
use std::collections::HashMap;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};

/// What a caller hears: the node's answer, or why there is none (the connection failed).
pub(crate) type Answer = Result<Response, String>;

/// One caller's request, and where its answer goes.
pub(crate) struct Outgoing {
    pub context: tarpc::context::Context,
    pub request: Request,
    pub answer: oneshot::Sender<Answer>,
}

/// The requests written and not yet answered, by id: each caller's end of its answer.
#[derive(Default)]
struct Waiting {
    callers: HashMap<u64, oneshot::Sender<Answer>>,
    /// How many there were when callers who gave up were last let go.
    swept: usize,
}

impl Waiting {
    fn insert(&mut self, id: u64, answer: oneshot::Sender<Answer>) {
        self.callers.insert(id, answer);
        // A caller that stopped waiting (its deadline) leaves its entry until the answer
        // comes: let such entries go now and then, so that they neither pile up nor count
        // as requests still awaited.
        if self.callers.len() > 2 * self.swept + 64 {
            self.callers.retain(|_, caller| !caller.is_closed());
            self.swept = self.callers.len();
        }
    }

    fn answer(&mut self, id: u64, answer: Answer) {
        if let Some(caller) = self.callers.remove(&id) {
            let _ = caller.send(answer);
        }
    }
}

/// Runs the connection until its transport ends or fails, or every handle to it is gone,
/// then records why in `ended` before letting go of the callers still waiting, so that
/// they can say why no answer came.
pub(crate) async fn run<T>(
    transport: T,
    mut requests: mpsc::UnboundedReceiver<Outgoing>,
    ended: std::sync::Arc<std::sync::OnceLock<String>>,
) where
    T: Sink<tarpc::ClientMessage<NodeRpcRequest>, Error = std::io::Error>
        + Stream<Item = Result<tarpc::Response<NodeRpcResponse>, std::io::Error>>,
{
    let mut transport = Box::pin(transport);
    let mut waiting = Waiting::default();
    let (mut next_id, mut unflushed, mut flush) = (0u64, 0usize, Flush::default());
    let mut handles_gone = false;
    let result = std::future::poll_fn(|cx: &mut Context<'_>| {
        // Requests first, while the transport takes them.
        while !handles_gone {
            match transport.as_mut().poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(format!("the connection failed: {e}"))),
                Poll::Pending => break,
            }
            match requests.poll_recv(cx) {
                Poll::Ready(Some(Outgoing { context, request, answer })) => {
                    if answer.is_closed() {
                        continue;
                    }
                    next_id += 1;
                    let message = NodeRpcRequest::Call { req: request };
                    let written = tarpc::ClientMessage::Request(tarpc::Request { context, id: next_id, message });
                    if let Err(e) = transport.as_mut().start_send(written) {
                        return Poll::Ready(Err(format!("a request could not be written: {e}")));
                    }
                    waiting.insert(next_id, answer);
                    unflushed += 1;
                }
                Poll::Ready(None) => handles_gone = true,
                Poll::Pending => break,
            }
        }
        if unflushed > 0 {
            // The others: what awaits an answer, less what this flush sends.
            let others = waiting.callers.len().saturating_sub(unflushed);
            if flush.now(cx, true, others) {
                match transport.as_mut().poll_flush(cx) {
                    Poll::Ready(Ok(())) => unflushed = 0,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(format!("the connection failed: {e}"))),
                    Poll::Pending => {}
                }
            }
        }
        loop {
            match transport.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(tarpc::Response { request_id, message }))) => {
                    let answer = match message {
                        Ok(NodeRpcResponse::Call(response)) => Ok(response),
                        Err(e) => Err(format!("the node could not serve the request: {:?}: {}", e.kind, e.detail)),
                    };
                    waiting.answer(request_id, answer);
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(format!("the connection failed: {e}"))),
                Poll::Ready(None) => return Poll::Ready(Err("the node closed the connection".to_string())),
                // Nothing to read; done once every handle is gone (a caller waiting for an
                // answer holds one) and what was written went out.
                Poll::Pending if handles_gone && unflushed == 0 => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await;
    let _ = ended.set(result.err().unwrap_or_else(|| "the connection was closed".to_string()));
    drop(waiting);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{RequestBody, ResponseBody};
    use std::sync::{Arc, Mutex};

    /// A transport that records what is written and flushed, and answers what the test
    /// puts in `answers`.
    #[derive(Clone, Default)]
    struct Wire {
        written: Arc<Mutex<Vec<u64>>>,
        flushes: Arc<Mutex<usize>>,
        answers: Arc<Mutex<std::collections::VecDeque<Option<u64>>>>,
        reader: Arc<Mutex<Option<std::task::Waker>>>,
    }

    impl Wire {
        /// Answers request `id` (`None`: the node closes the connection).
        fn answer(&self, id: Option<u64>) {
            self.answers.lock().unwrap().push_back(id);
            if let Some(w) = self.reader.lock().unwrap().take() {
                w.wake();
            }
        }
    }

    impl Sink<tarpc::ClientMessage<NodeRpcRequest>> for Wire {
        type Error = std::io::Error;
        fn poll_ready(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn start_send(
            self: std::pin::Pin<&mut Self>,
            m: tarpc::ClientMessage<NodeRpcRequest>,
        ) -> Result<(), Self::Error> {
            if let tarpc::ClientMessage::Request(r) = m {
                self.written.lock().unwrap().push(r.id);
            }
            Ok(())
        }
        fn poll_flush(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            *self.flushes.lock().unwrap() += 1;
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    impl Stream for Wire {
        type Item = Result<tarpc::Response<NodeRpcResponse>, std::io::Error>;
        fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            match self.answers.lock().unwrap().pop_front() {
                Some(Some(id)) => Poll::Ready(Some(Ok(tarpc::Response {
                    request_id: id,
                    message: Ok(NodeRpcResponse::Call(Ok(ResponseBody::Deleted))),
                }))),
                Some(None) => Poll::Ready(None),
                None => {
                    *self.reader.lock().unwrap() = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }
    }

    fn ask(to: &mpsc::UnboundedSender<Outgoing>) -> oneshot::Receiver<Answer> {
        let (answer, answered) = oneshot::channel();
        let context = tarpc::context::current();
        to.send(Outgoing { context, request: Request::new(RequestBody::Status), answer }).unwrap();
        answered
    }

    /// A dispatch over a recording wire: the wire, its callers' end, where it says why it
    /// ended, and its task.
    fn started(
    ) -> (Wire, mpsc::UnboundedSender<Outgoing>, Arc<std::sync::OnceLock<String>>, tokio::task::JoinHandle<()>) {
        let wire = Wire::default();
        let (to, from) = mpsc::unbounded_channel();
        let ended = Arc::new(std::sync::OnceLock::new());
        let run = tokio::spawn(run(wire.clone(), from, ended.clone()));
        (wire, to, ended, run)
    }

    async fn turns(n: usize) {
        for _ in 0..n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn each_caller_hears_its_own_answer_and_many_requests_share_a_flush() {
        let (wire, to, ended, run) = started();
        // A lone request goes out at once.
        let first = ask(&to);
        turns(3).await;
        assert_eq!((wire.written.lock().unwrap().clone(), *wire.flushes.lock().unwrap()), (vec![1], 1));
        // Two more while the first awaits its answer: held one turn, out in one flush.
        let (second, third) = (ask(&to), ask(&to));
        turns(5).await;
        assert_eq!((wire.written.lock().unwrap().clone(), *wire.flushes.lock().unwrap()), (vec![1, 2, 3], 2));
        // Answered out of order, each to its caller; an answer nobody waits for is dropped.
        wire.answer(Some(3));
        wire.answer(Some(9));
        wire.answer(Some(1));
        assert!(matches!(third.await.unwrap(), Ok(Ok(ResponseBody::Deleted))));
        assert!(matches!(first.await.unwrap(), Ok(Ok(ResponseBody::Deleted))));
        // The node closes the connection: who still waits hears so, and so does who asks now.
        wire.answer(None);
        assert!(second.await.is_err(), "let go without an answer");
        run.await.unwrap();
        assert_eq!(ended.get().map(String::as_str), Some("the node closed the connection"), "and told why");
        assert!(to.is_closed(), "nothing more can be asked on a closed connection (`send` says it closed)");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_caller_that_left_is_not_written_and_the_dispatch_ends_with_its_handles() {
        let (wire, to, ended, run) = started();
        drop(ask(&to));
        turns(3).await;
        assert!(wire.written.lock().unwrap().is_empty(), "its caller stopped waiting before it went out");
        drop(to);
        run.await.unwrap();
        assert_eq!(ended.get().map(String::as_str), Some("the connection was closed"));
    }

    #[test]
    fn callers_that_gave_up_are_let_go() {
        let mut w = Waiting::default();
        for id in 0..200 {
            let (answer, answered) = oneshot::channel();
            w.insert(id, answer);
            drop(answered);
        }
        assert!(w.callers.len() < 100, "{} kept", w.callers.len());
        w.answer(199, Err("late".into()));
    }
}
