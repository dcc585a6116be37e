//! Measurement helpers: sample statistics, memory from `/proc/self/status`,
//! test files, and the child-process protocol used for memory figures.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Environment variable that turns the bench binary into a child with a role.
pub const CHILD_ENV: &str = "FIELDREPORT_BENCH_CHILD";

/// Durations, in seconds.
#[derive(Debug, Default, Clone)]
pub struct Samples(pub Vec<f64>);

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64());
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        v
    }

    /// Nearest-rank percentile, `p` in 0..=100.
    pub fn percentile(&self, p: f64) -> f64 {
        let v = self.sorted();
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }

    pub fn median(&self) -> f64 {
        let v = self.sorted();
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    pub fn sum(&self) -> f64 {
        self.0.iter().sum()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Times one call.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

/// A field of `/proc/<pid>/status` in KiB (`VmHWM`, `VmRSS`).
pub fn proc_status_kib(pid: Option<u32>, field: &str) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_string(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub fn hwm_kib() -> u64 {
    proc_status_kib(None, "VmHWM").expect("VmHWM in /proc/self/status")
}

pub fn rss_kib() -> u64 {
    proc_status_kib(None, "VmRSS").expect("VmRSS in /proc/self/status")
}

/// Resets this process's peak RSS (`VmHWM`) to its current RSS (Linux 4.0+).
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Writes `size` pseudo-random bytes (incompressible, like a screenshot or
/// a compressed log) and fsyncs them.
pub fn make_file(path: &Path, size: u64) {
    let mut f = BufWriter::with_capacity(1 << 20, File::create(path).expect("create test file"));
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for w in chunk.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n]).expect("write test file");
        left -= n as u64;
    }
    f.into_inner()
        .expect("flush test file")
        .sync_all()
        .expect("sync test file");
}

/// Flushes dirty pages system-wide, so that each timed run starts with no
/// writeback left over from the previous one.
pub fn sync_all() {
    let _ = Command::new("sync").status();
}

/// Re-executes this binary as a child with `role` and `args`; returns the
/// `key=value` pairs of its `RESULT` lines.
pub fn run_child(role: &str, args: &[&str]) -> HashMap<String, f64> {
    let out = Command::new(std::env::current_exe().expect("current exe"))
        .env(CHILD_ENV, role)
        .args(args)
        .output()
        .expect("child runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child {role} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut map = HashMap::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("RESULT ") {
            for kv in rest.split_whitespace() {
                if let Some((k, v)) = kv.split_once('=') {
                    if let Ok(v) = v.parse() {
                        map.insert(k.to_string(), v);
                    }
                }
            }
        }
    }
    map
}

/// Prints one `RESULT` line for the parent.
pub fn report(pairs: &[(&str, f64)]) {
    let line: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("RESULT {}", line.join(" "));
}

pub fn kib_to_mb(kib: f64) -> f64 {
    kib * 1024.0 / 1e6
}

/// Text of about `len` bytes, for summaries and descriptions.
pub fn prose(len: usize, seed: usize) -> String {
    const WORDS: &[&str] = &[
        "the", "app", "froze", "when", "I", "tapped", "export", "after", "rotating", "screen",
        "lighting", "preset", "crashed", "again", "while", "syncing", "device", "firmware",
        "battery", "was", "low", "and", "network", "flaky",
    ];
    let mut s = String::with_capacity(len + 16);
    let mut i = seed;
    while s.len() < len {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(WORDS[i % WORDS.len()]);
        i = i.wrapping_mul(31).wrapping_add(7);
    }
    s.truncate(len);
    s
}
