//! When to try again and how fast to send: full-jitter backoff, and the
//! client-side one-second rate window.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::Policy;

/// Delay before the next attempt: full jitter over a capped exponential,
/// `random(0 ..= min(retry_max, retry_base * 2^(attempts-1)))`, never below
/// 100 ms so that a zero draw does not spin. `unit` is uniform in [0, 1).
pub(crate) fn backoff(policy: &Policy, attempts: u32, unit: f64) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let ceiling = policy
        .retry_base
        .saturating_mul(1u32 << exp)
        .min(policy.retry_max);
    let unit = unit.clamp(0.0, 1.0);
    ceiling.mul_f64(unit).max(Duration::from_millis(100))
}

/// A uniform draw in [0, 1) from the standard library's random hasher keys.
pub(crate) fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Added to the one-second window: requests leave here at the limit's pace
/// but reach the server with uneven delays (a new connection's handshake,
/// then kept-alive ones), which can squeeze eleven into its window.
pub(super) const RATE_MARGIN_MS: u64 = 100;

/// A client-side limit of `per_sec` requests in any one-second window,
/// kept as the send times of the last `per_sec` requests (unix ms, so the
/// window can be persisted and shared with the next process).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RateWindow {
    pub sent_ms: std::collections::VecDeque<u64>,
}

impl RateWindow {
    /// How long to wait before the next request may go at `now_ms`.
    pub fn wait(&self, per_sec: u32, now_ms: u64) -> Duration {
        if per_sec == 0 || (self.sent_ms.len() as u32) < per_sec {
            return Duration::ZERO;
        }
        // A send time ahead of now means the clock was set back: count it
        // as now, so the wait is never longer than one window.
        let oldest = self.sent_ms[self.sent_ms.len() - per_sec as usize].min(now_ms);
        Duration::from_millis((oldest + 1000 + RATE_MARGIN_MS).saturating_sub(now_ms))
    }

    /// Records a request sent at `now_ms`.
    pub fn record(&mut self, per_sec: u32, now_ms: u64) {
        self.sent_ms.push_back(now_ms);
        while self.sent_ms.len() > per_sec.max(1) as usize {
            self.sent_ms.pop_front();
        }
    }
}
