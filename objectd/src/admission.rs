//! What a peer may cost a node before and after it is authenticated: how many connections
//! (in all, and per address), how big a frame (small for a peer that proved no key), how
//! long a frame may take to arrive once begun, and how many bytes of frames still arriving
//! all connections may hold at once (beyond that, reading waits: back-pressure, not an
//! unbounded buffer).
//!
//! - [`Admission`]: counts connections; `admit` refuses beyond the limits (pure counting,
//!   unit-tested).
//! - [`Metered`]: wraps a connection's stream. It follows the length-delimited frames as
//!   they are read (the stream carries nothing else after the handshake), refuses a frame
//!   longer than the connection may send before reading it, takes budget for a big frame's
//!   bytes (over 64 KiB) before reading its body and gives it back when the frame is
//!   complete (small frames take none, so big ones waiting never hold them up), and fails
//!   the read when a frame that began is not complete within `frame_within`.
//! - Refusals are logged at most once per `LOG_EVERY`, with how many there were.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::PollSemaphore;

/// The limits, with the defaults a node runs with.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub per_address: usize,
    /// The largest frame a connection that proved no key may send.
    pub anonymous_frame: usize,
    /// The largest frame any connection may send.
    pub max_frame: usize,
    /// How long a frame may take to arrive once its first byte has.
    pub frame_within: Duration,
    /// Bytes of incomplete frames all connections may hold at once.
    pub budget: usize,
    /// A connection with no request in flight for this long is closed.
    pub idle_within: Duration,
    /// Requests from callers the node serves at once; beyond, `Overloaded` at once (the
    /// steps of the cluster's own protocols are not counted: they must finish).
    pub max_requests: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            per_address: 512,
            anonymous_frame: 64 * 1024,
            max_frame: protocol::service::MAX_FRAME,
            frame_within: Duration::from_secs(10),
            budget: 64 * 1024 * 1024,
            idle_within: Duration::from_secs(120),
            max_requests: 4096,
        }
    }
}

/// The unit budget is counted in (a semaphore permit each).
const BUDGET_UNIT: usize = 1024;
/// Frames up to this size take no budget (their memory is bounded by the connections).
const SMALL_FRAME: usize = 64 * 1024;
/// The most one read takes in.
const SCRATCH: usize = 64 * 1024;
/// How often a refusal is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Open connections, in all and per address.
pub struct Admission {
    limits: Limits,
    /// std `Mutex`: one count at a time.
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    budget: PollSemaphore,
    refusals: RateLimited,
}

/// One admitted connection; its count goes when it is dropped.
pub struct Ticket {
    admission: Arc<Admission>,
    addr: IpAddr,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ticket({})", self.addr)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.admission.open.lock().expect("admission mutex");
        open.0 -= 1;
        if let Some(n) = open.1.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.addr);
            }
        }
    }
}

impl Admission {
    pub fn new(limits: Limits) -> Arc<Admission> {
        let permits = (limits.budget / BUDGET_UNIT).max(1);
        Arc::new(Admission {
            budget: PollSemaphore::new(Arc::new(tokio::sync::Semaphore::new(permits))),
            limits,
            open: Mutex::new((0, HashMap::new())),
            refusals: RateLimited::default(),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Counts a new connection from `addr`, or says why it is refused.
    pub fn admit(self: &Arc<Self>, addr: IpAddr) -> Result<Ticket, String> {
        let mut open = self.open.lock().expect("admission mutex");
        if open.0 >= self.limits.max_connections {
            return Err(format!("the node has {} connections, its limit", open.0));
        }
        let from = open.1.get(&addr).copied().unwrap_or(0);
        if from >= self.limits.per_address {
            return Err(format!("{addr} has {from} connections, the limit per address"));
        }
        open.0 += 1;
        *open.1.entry(addr).or_default() += 1;
        Ok(Ticket { admission: self.clone(), addr })
    }

    /// Logs a refused connection or frame, at most once per `LOG_EVERY`.
    pub fn refused(&self, what: &str) {
        if let Some(n) = self.refusals.note() {
            tracing::warn!(refused = n, "refused a peer's connection or frame (logged at most every 10 s): {what}");
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().expect("admission mutex").0
    }
}

/// Counts events that a log line reports at most once per `LOG_EVERY` (bad input from
/// peers must not flood the log).
#[derive(Default)]
pub struct RateLimited {
    count: AtomicU64,
    /// std `Mutex`: when it was last logged.
    last: Mutex<Option<std::time::Instant>>,
}

impl RateLimited {
    /// Counts one; `Some(n)` when it is time to log, with the `n` counted since the last.
    pub fn note(&self) -> Option<u64> {
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last.lock().expect("rate limit mutex");
        if last.is_some_and(|at| at.elapsed() < LOG_EVERY) {
            return None;
        }
        *last = Some(std::time::Instant::now());
        self.count.store(0, Ordering::Relaxed);
        Some(n)
    }
}

/// Where a connection's reading is within its frames.
enum Frame {
    /// Between frames, or in a length prefix: the bytes of it so far.
    Header([u8; 4], usize),
    /// A frame whose body has this many bytes left, and its budget until the body is read.
    Body { left: usize, permit: Option<tokio::sync::OwnedSemaphorePermit>, units: u32 },
}

/// A connection's stream, read frame by frame within the limits (see the module docs).
pub struct Metered<S> {
    inner: S,
    admission: Arc<Admission>,
    budget: PollSemaphore,
    max_frame: usize,
    frame: Frame,
    /// Set while a frame is arriving: when it must be complete.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Reads land here first, so that they stop at frame boundaries.
    scratch: Box<[u8]>,
}

impl<S> Metered<S> {
    /// `anonymous`: the peer proved no key (its frames are small).
    pub fn new(inner: S, admission: Arc<Admission>, anonymous: bool) -> Metered<S> {
        let limits = admission.limits();
        let max_frame = if anonymous { limits.anonymous_frame } else { limits.max_frame };
        Metered {
            inner,
            budget: admission.budget.clone(),
            admission,
            max_frame,
            frame: Frame::Header([0; 4], 0),
            deadline: None,
            scratch: vec![0u8; SCRATCH].into_boxed_slice(),
        }
    }

    fn arm(&mut self) {
        let within = self.admission.limits().frame_within;
        self.deadline = Some(Box::pin(tokio::time::sleep(within)));
    }
}

fn refused(kind: io::ErrorKind, why: String) -> io::Error {
    io::Error::new(kind, why)
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // A body needs its budget before it is read.
        if let Frame::Body { left, permit: None, units } = &mut this.frame {
            if *left > 0 && *units > 0 {
                match this.budget.poll_acquire_many(cx, *units) {
                    Poll::Ready(Some(p)) => {
                        let left = *left;
                        this.frame = Frame::Body { left, permit: Some(p), units: 0 };
                        // Waiting for budget is the node's doing: the frame's time starts now.
                        this.arm();
                    }
                    Poll::Ready(None) => return Poll::Ready(Err(refused(io::ErrorKind::Other, "closed".into()))),
                    Poll::Pending => return Poll::Pending,
                }
            }
        }
        let want = match &this.frame {
            Frame::Header(_, have) => 4 - have,
            Frame::Body { left, .. } => *left,
        };
        let n = want.min(buf.remaining()).min(this.scratch.len());
        let mut part = ReadBuf::new(&mut this.scratch[..n]);
        match Pin::new(&mut this.inner).poll_read(cx, &mut part) {
            Poll::Pending => {
                if let Some(deadline) = this.deadline.as_mut() {
                    if deadline.as_mut().poll(cx).is_ready() {
                        let within = this.admission.limits().frame_within;
                        this.admission.refused("a frame was not complete in time");
                        return Poll::Ready(Err(refused(
                            io::ErrorKind::TimedOut,
                            format!("a frame began and was not complete within {} s", within.as_secs_f64()),
                        )));
                    }
                }
                return Poll::Pending;
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {}
        }
        let n = part.filled().len();
        if n == 0 {
            return Poll::Ready(Ok(()));
        }
        let got = &this.scratch[..n];
        buf.put_slice(got);
        match &mut this.frame {
            Frame::Header(bytes, have) => {
                if *have == 0 {
                    let within = this.admission.limits().frame_within;
                    this.deadline = Some(Box::pin(tokio::time::sleep(within)));
                }
                bytes[*have..*have + n].copy_from_slice(got);
                *have += n;
                if *have == 4 {
                    let len = u32::from_be_bytes(*bytes) as usize;
                    if len > this.max_frame {
                        this.admission.refused("a frame longer than the connection may send");
                        return Poll::Ready(Err(refused(
                            io::ErrorKind::InvalidData,
                            format!(
                                "a frame of {len} bytes is more than the {} this connection may send",
                                this.max_frame
                            ),
                        )));
                    }
                    if len == 0 {
                        this.frame = Frame::Header([0; 4], 0);
                        this.deadline = None;
                    } else if len <= SMALL_FRAME {
                        // Small frames (every request but big blob writes) take no budget,
                        // so that big ones waiting for it never hold them up.
                        this.frame = Frame::Body { left: len, permit: None, units: 0 };
                    } else {
                        // A frame bigger than the whole budget waits for all of it.
                        let all = (this.admission.limits().budget / BUDGET_UNIT).max(1);
                        let units = len.div_ceil(BUDGET_UNIT).min(all) as u32;
                        this.frame = Frame::Body { left: len, permit: None, units };
                    }
                }
            }
            Frame::Body { left, .. } => {
                *left -= n;
                if *left == 0 {
                    // Complete: its budget goes back (the frame is decoded at once).
                    this.frame = Frame::Header([0; 4], 0);
                    this.deadline = None;
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn small() -> Limits {
        Limits {
            max_connections: 3,
            per_address: 2,
            anonymous_frame: 16,
            max_frame: 1 << 20,
            frame_within: Duration::from_millis(200),
            budget: 4 * 1024,
            ..Limits::default()
        }
    }

    #[test]
    fn connections_are_counted_in_all_and_per_address() {
        let a = Admission::new(small());
        let (x, y): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t1 = a.admit(x).unwrap();
        let _t2 = a.admit(x).unwrap();
        assert!(a.admit(x).unwrap_err().contains("the limit per address"));
        let _t3 = a.admit(y).unwrap();
        assert!(a.admit(y).unwrap_err().contains("its limit"));
        drop(t1);
        assert_eq!(a.open(), 2);
        a.admit(x).unwrap();
    }

    fn frame(len: usize) -> Vec<u8> {
        let mut f = (len as u32).to_be_bytes().to_vec();
        f.extend(std::iter::repeat_n(7u8, len));
        f
    }

    #[tokio::test]
    async fn frames_pass_whole_and_oversized_ones_are_refused_before_their_body() {
        let a = Admission::new(small());
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut m = Metered::new(server, a.clone(), true);
        client.write_all(&frame(10)).await.unwrap();
        let mut got = vec![0u8; 14];
        m.read_exact(&mut got).await.unwrap();
        assert_eq!(got, frame(10));
        client.write_all(&frame(17)).await.unwrap();
        let e = m.read_exact(&mut got).await.unwrap_err();
        assert!(e.to_string().contains("a frame of 17 bytes is more than the 16"), "{e}");
    }

    #[tokio::test]
    async fn a_frame_begun_and_left_unfinished_is_cut_off() {
        let a = Admission::new(small());
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut m = Metered::new(server, a, false);
        client.write_all(&frame(100)[..50]).await.unwrap();
        let mut got = vec![0u8; 104];
        let e = m.read_exact(&mut got).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        // Idle between frames is fine: nothing is cut.
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut m = Metered::new(server, Admission::new(small()), false);
        let read = tokio::spawn(async move {
            let mut got = vec![0u8; 14];
            m.read_exact(&mut got).await.map(|_| got)
        });
        tokio::time::sleep(Duration::from_millis(400)).await;
        client.write_all(&frame(10)).await.unwrap();
        assert_eq!(read.await.unwrap().unwrap(), frame(10));
    }

    #[tokio::test]
    async fn big_frames_beyond_the_budget_wait_for_it_and_small_ones_do_not() {
        // A budget of 128 KiB: one connection holds it with a 128 KiB frame begun; another's
        // 100 KiB frame waits until the first is complete, and a small frame goes through.
        let limits = Limits { frame_within: Duration::from_secs(5), budget: 128 * 1024, ..small() };
        let a = Admission::new(limits);
        let conn = || {
            let (c, s) = tokio::io::duplex(1 << 20);
            (c, Metered::new(s, a.clone(), false))
        };
        let ((mut c1, mut m1), (mut c2, mut m2), (mut c3, mut m3)) = (conn(), conn(), conn());
        let big = frame(128 * 1024);
        c1.write_all(&big[..100]).await.unwrap();
        let mut head = vec![0u8; 100];
        m1.read_exact(&mut head).await.unwrap();
        c2.write_all(&frame(100 * 1024)).await.unwrap();
        let second = tokio::spawn(async move {
            let mut got = vec![0u8; 4 + 100 * 1024];
            m2.read_exact(&mut got).await.map(|_| got)
        });
        c3.write_all(&frame(1000)).await.unwrap();
        let mut small_one = vec![0u8; 1004];
        m3.read_exact(&mut small_one).await.unwrap();
        assert_eq!(small_one, frame(1000), "a small frame needs no budget");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!second.is_finished(), "a big one waits for budget");
        c1.write_all(&big[100..]).await.unwrap();
        let mut rest = vec![0u8; big.len() - 100];
        m1.read_exact(&mut rest).await.unwrap();
        assert_eq!(second.await.unwrap().unwrap(), frame(100 * 1024));
    }
}

/// What one connection is doing, for its idle timeout: requests in flight, and when one
/// last began or ended.
pub struct Activity {
    started: std::time::Instant,
    inflight: std::sync::atomic::AtomicUsize,
    /// Milliseconds after `started`.
    last_ms: AtomicU64,
}

/// A request being served on a connection; its end counts as activity.
pub struct Serving<'a>(&'a Activity);

impl Activity {
    pub fn new() -> Activity {
        Activity { started: std::time::Instant::now(), inflight: Default::default(), last_ms: AtomicU64::new(0) }
    }

    fn touch(&self) {
        self.last_ms.store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Only the first of requests in flight together stamps the time (and, on drop, the last
    /// one): in between the connection is not idle whatever the stamp says, and a busy
    /// connection reads the clock for none of its other requests.
    pub fn serve(&self) -> Serving<'_> {
        if self.inflight.fetch_add(1, Ordering::AcqRel) == 0 {
            self.touch();
        }
        Serving(self)
    }

    /// How long the connection has had nothing in flight (zero while something is).
    pub fn idle_for(&self) -> Duration {
        if self.inflight.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let now = self.started.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }

    /// Returns once the connection has been idle for `within`.
    pub async fn idle(&self, within: Duration) {
        let check = (within / 4).clamp(Duration::from_millis(50), Duration::from_secs(10));
        loop {
            tokio::time::sleep(check).await;
            if self.idle_for() >= within {
                return;
            }
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

impl Drop for Serving<'_> {
    /// The request that leaves nothing in flight stamps the time before it says so, so that
    /// a connection never looks idle since before its last request ended.
    fn drop(&mut self) {
        let inflight = &self.0.inflight;
        let mut now = inflight.load(Ordering::Acquire);
        loop {
            if now == 1 {
                self.0.touch();
            }
            match inflight.compare_exchange_weak(now, now - 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(changed) => now = changed,
            }
        }
    }
}

/// Requests from callers in flight on the node, up to a limit.
pub struct Busy {
    inflight: std::sync::atomic::AtomicUsize,
    max: usize,
}

/// A counted request; it stops counting when dropped.
pub struct Slot<'a>(&'a Busy);

impl Busy {
    pub fn new(max: usize) -> Busy {
        Busy { inflight: Default::default(), max }
    }

    /// A slot, or `None` (with how many are in flight) when the node already serves `max`.
    pub fn enter(&self) -> Result<Slot<'_>, usize> {
        let before = self.inflight.fetch_add(1, Ordering::AcqRel);
        if before >= self.max {
            self.inflight.fetch_sub(1, Ordering::AcqRel);
            return Err(before);
        }
        Ok(Slot(self))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod activity_tests {
    use super::*;

    #[test]
    fn a_node_serves_at_most_its_limit_and_frees_slots() {
        let busy = Busy::new(2);
        let (a, b) = (busy.enter().unwrap(), busy.enter().unwrap());
        assert_eq!(busy.enter().err(), Some(2), "the third is refused, with the count");
        drop(a);
        let c = busy.enter().expect("a slot freed");
        drop((b, c));
        assert_eq!(busy.inflight.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_connection_is_idle_only_with_nothing_in_flight() {
        let activity = Activity::new();
        let serving = activity.serve();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(activity.idle_for(), Duration::ZERO, "a request in flight");
        drop(serving);
        std::thread::sleep(Duration::from_millis(20));
        assert!(activity.idle_for() >= Duration::from_millis(15));
    }

    #[test]
    fn the_last_of_overlapping_requests_stamps_its_end() {
        let activity = Activity::new();
        let first = activity.serve();
        std::thread::sleep(Duration::from_millis(30));
        let second = activity.serve();
        drop(first);
        assert_eq!(activity.idle_for(), Duration::ZERO, "one still in flight");
        std::thread::sleep(Duration::from_millis(30));
        let before = activity.started.elapsed().as_millis() as u64;
        drop(second);
        let stamped = activity.last_ms.load(Ordering::Relaxed);
        assert!(stamped >= before.max(30), "idle since the last end ({stamped} ms), not the first start");
    }

    #[test]
    fn requests_ending_together_leave_the_count_right_and_the_end_stamped() {
        let activity = std::sync::Arc::new(Activity::new());
        std::thread::sleep(Duration::from_millis(30));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let activity = activity.clone();
                std::thread::spawn(move || {
                    let mut before_last = 0;
                    for _ in 0..10_000 {
                        before_last = activity.started.elapsed().as_millis() as u64;
                        drop(activity.serve());
                    }
                    before_last
                })
            })
            .collect();
        // The last request to end began after every thread read the clock before its last.
        let latest = threads.into_iter().map(|t| t.join().unwrap()).max().unwrap();
        assert_eq!(activity.inflight.load(Ordering::Relaxed), 0, "no end lost or counted twice");
        let stamped = activity.last_ms.load(Ordering::Relaxed);
        assert!(stamped >= latest, "stamped {stamped} ms, before the last request began ({latest} ms)");
    }
}
