//! Progress of an upload: a reader wrapper that counts the bytes handed to
//! the connection and reports them, throttled, to the listener.
//!
//! The throttle is meant to cost nothing measurable (BENCHMARKS.md): a read
//! adds to a counter and compares it; the clock is read only once per
//! [`CHECK_EVERY`] bytes, and a report goes out at most once per
//! [`INTERVAL`]. A report at 0 when sending starts and one at the total when
//! the last byte is handed over are always made; a failed upload never
//! reports its total.
// Without the builtin client only `Meter::finish` is used (an app's
// transport shows nothing while it sends).
#![cfg_attr(not(feature = "builtin-http"), allow(dead_code))]

use std::io::{self, Read};
use std::time::{Duration, Instant};

/// Bodies smaller than this report no progress: they go out in well under
/// a second on any link a rig or phone has, and `Delivered` follows at once.
pub(crate) const MIN_TOTAL: u64 = 1024 * 1024;

/// How many bytes pass between two looks at the clock.
const CHECK_EVERY: u64 = 256 * 1024;

/// The least time between two reports (four a second at most).
const INTERVAL: Duration = Duration::from_millis(250);

/// Where a report goes: `(sent_bytes, total_bytes)`.
pub(crate) type Report = Box<dyn FnMut(u64, u64) + Send>;

/// Counts bytes of one upload and reports them, throttled.
pub(crate) struct Meter {
    report: Report,
    total: u64,
    sent: u64,
    next_check: u64,
    last: Instant,
    done: bool,
}

impl Meter {
    /// A meter for `total` bytes, or `None` for a body under [`MIN_TOTAL`].
    pub(crate) fn new(total: u64, report: Report) -> Option<Meter> {
        (total >= MIN_TOTAL).then(|| Meter {
            report,
            total,
            sent: 0,
            next_check: 0,
            last: Instant::now(),
            done: false,
        })
    }

    /// Sending starts: one report at 0.
    pub(crate) fn start(&mut self) {
        self.last = Instant::now();
        self.next_check = CHECK_EVERY;
        (self.report)(0, self.total);
    }

    /// `n` more bytes were handed over.
    fn add(&mut self, n: u64) {
        self.sent = self.sent.saturating_add(n);
        if self.sent >= self.total {
            self.finish();
        } else if self.sent >= self.next_check {
            self.next_check = self.sent + CHECK_EVERY;
            let now = Instant::now();
            if now.duration_since(self.last) >= INTERVAL {
                self.last = now;
                (self.report)(self.sent, self.total);
            }
        }
    }

    /// Every byte was handed over: the report at the total, once. Used
    /// directly when an app's transport sent the body (nothing is seen of
    /// it before its answer comes back).
    pub(crate) fn finish(&mut self) {
        if !self.done {
            self.done = true;
            (self.report)(self.total, self.total);
        }
    }
}

/// A reader that reports what is read through it to a [`Meter`].
pub(crate) struct Metered<R> {
    inner: R,
    meter: Meter,
}

impl<R: Read> Metered<R> {
    /// Wraps `inner`; reports 0 now.
    pub(crate) fn new(inner: R, mut meter: Meter) -> Metered<R> {
        meter.start();
        Metered { inner, meter }
    }
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.add(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    type Seen = Arc<Mutex<Vec<(u64, u64)>>>;

    fn recorder() -> (Seen, Report) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        (seen, Box::new(move |a, b| s.lock().unwrap().push((a, b))))
    }

    #[test]
    fn small_bodies_report_nothing() {
        let (_, report) = recorder();
        assert!(Meter::new(MIN_TOTAL - 1, report).is_none());
    }

    #[test]
    fn a_fast_read_reports_start_and_total_only() {
        let total = 8 * MIN_TOTAL;
        let (seen, report) = recorder();
        let mut r = Metered::new(
            io::repeat(7).take(total),
            Meter::new(total, report).unwrap(),
        );
        let n = io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(n, total);
        // Read in far less than 250 ms: no report in between.
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.first(), Some(&(0, total)));
        assert_eq!(seen.last(), Some(&(total, total)));
        assert!(seen.len() <= 3, "{seen:?}");
    }

    /// A reader slow enough that the throttle lets reports through.
    struct Slow(u64);
    impl Read for Slow {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Ok(0);
            }
            std::thread::sleep(Duration::from_millis(20));
            let n = buf.len().min(64 * 1024).min(self.0 as usize);
            self.0 -= n as u64;
            Ok(n)
        }
    }

    #[test]
    fn a_slow_read_reports_a_few_times_a_second_ending_at_total() {
        // 64 reads of 64 KiB, 20 ms each: about 1.3 s.
        let total = 4 * MIN_TOTAL;
        let (seen, report) = recorder();
        let started = Instant::now();
        let mut r = Metered::new(Slow(total), Meter::new(total, report).unwrap());
        io::copy(&mut r, &mut io::sink()).unwrap();
        let secs = started.elapsed().as_secs_f64();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.last(), Some(&(total, total)));
        assert_eq!(seen.iter().filter(|(s, _)| *s == total).count(), 1);
        // Between the first and the last: at most four a second, and some.
        let between = seen.len() - 2;
        assert!(between >= 2, "{seen:?}");
        assert!(between as f64 <= secs * 4.0 + 1.0, "{seen:?} in {secs} s");
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
    }

    #[test]
    fn a_short_read_never_reports_the_total() {
        let total = 2 * MIN_TOTAL;
        let (seen, report) = recorder();
        let mut r = Metered::new(
            io::repeat(1).take(total - 1),
            Meter::new(total, report).unwrap(),
        );
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert!(seen.lock().unwrap().iter().all(|(s, _)| *s < total));
    }
}
