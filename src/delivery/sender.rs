//! The optional background sender: one thread that flushes when woken (a
//! submit, the network coming back, consent given) or when work falls due,
//! and at least every `policy.sender_interval`.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use crate::config::Policy;
use crate::error::Result;
use crate::report::FlushResult;

/// What the sender drives, seen through the few calls it makes (the
/// client implements it; the sender knows nothing else of the client).
pub(crate) trait Deliver: Send + Sync + 'static {
    /// Where submits, a returning network and `stop` wake the sender.
    fn wake(&self) -> &Wake;
    /// The client is closing: the sender ends.
    fn is_closed(&self) -> bool;
    /// The app's word on connectivity.
    fn is_online(&self) -> bool;
    /// Every limit, among them the sender's interval and budget.
    fn policy(&self) -> &Policy;
    /// One flush, as `Client::flush`.
    fn flush(&self, budget: Duration) -> Result<FlushResult>;
    /// When a retry is next due, if any is known.
    fn next_due(&self) -> Option<SystemTime>;
}

#[derive(Default)]
struct WakeState {
    /// Set by `notify`, cleared by the sender when it wakes: a notify that
    /// arrives while a flush runs is not lost.
    requested: bool,
    stop: bool,
}

/// A wake-up flag and its condition variable.
#[derive(Default)]
pub(crate) struct Wake {
    state: Mutex<WakeState>,
    cv: Condvar,
}

impl Wake {
    /// Asks the sender to flush soon. Never blocks on a flush.
    pub(crate) fn notify(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.requested = true;
        self.cv.notify_all();
    }

    fn request_stop(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.stop = true;
        self.cv.notify_all();
    }

    fn clear_stop(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).stop = false;
    }

    /// Waits until notified, stopped, or `timeout`; returns `true` to stop.
    fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while !s.requested && !s.stop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            s = self
                .cv
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        s.requested = false;
        s.stop
    }
}

pub(crate) struct Sender {
    handle: Option<JoinHandle<()>>,
    inner: Arc<dyn Deliver>,
}

impl Sender {
    pub(crate) fn start(inner: Arc<dyn Deliver>) -> std::io::Result<Sender> {
        inner.wake().clear_stop();
        // Queued reports from an earlier run go out without waiting.
        inner.wake().notify();
        let worker = Arc::clone(&inner);
        let handle = thread::Builder::new()
            .name("fieldreport-sender".into())
            .spawn(move || run(worker))?;
        Ok(Sender {
            handle: Some(handle),
            inner,
        })
    }

    pub(crate) fn stop(mut self) {
        self.inner.wake().request_stop();
        if let Some(h) = self.handle.take() {
            // From the sender's own thread (a listener closing the client)
            // joining would wait forever; the loop ends by itself.
            if h.thread().id() != thread::current().id() {
                let _ = h.join();
            }
        }
    }
}

fn run(inner: Arc<dyn Deliver>) {
    let interval = inner.policy().sender_interval;
    let mut timeout = Duration::ZERO;
    loop {
        if inner.wake().wait(timeout) || inner.is_closed() {
            break;
        }
        if !inner.is_online() {
            timeout = interval;
            continue;
        }
        let result = inner.flush(inner.policy().sender_flush_budget);
        timeout = match result {
            // Nothing will change until the app acts (and wakes us) or the
            // interval passes.
            Ok(r) if r.stopped.as_deref().is_some_and(is_waiting_for_app) => interval,
            Ok(_) => until_due(inner.as_ref(), interval),
            Err(_) => interval,
        };
    }
}

fn is_waiting_for_app(reason: &str) -> bool {
    reason.starts_with("no consent")
        || reason.starts_with("offline")
        || reason.starts_with("paused")
}

fn until_due(inner: &dyn Deliver, interval: Duration) -> Duration {
    match inner.next_due() {
        Some(t) => t
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .clamp(Duration::from_millis(200), interval),
        None => interval,
    }
}
