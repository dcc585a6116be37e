//! Helpers of the reliability suites (`tests/faults.rs`, `tests/disk.rs`,
//! `tests/hostile.rs`, `tests/input_props.rs`, `tests/kill.rs`): the
//! short/full switch, seeded randomness, the `FIGURES` lines that
//! `tests/reliability.sh` assembles into RELIABILITY.md, child processes,
//! and mounts that undo themselves.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `FIELDREPORT_FULL=1` selects the full version (more rounds, more
/// reports); without it every suite runs its short version, the one CI runs.
pub fn full() -> bool {
    std::env::var("FIELDREPORT_FULL").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `short` normally, `full` under `FIELDREPORT_FULL=1`.
pub fn scale<T>(short: T, full_value: T) -> T {
    if full() {
        full_value
    } else {
        short
    }
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The SplitMix64 finalizer.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small deterministic generator (SplitMix64) whose seed is printed.
pub struct Rng {
    state: u64,
    pub seed: u64,
}

impl Rng {
    /// Seeded from `var` when it is set (to replay a run), otherwise from
    /// the clock; the seed is printed with the way to replay it.
    pub fn seeded(var: &str, test: &str) -> Rng {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0);
                mix(nanos ^ (u64::from(std::process::id()) << 32))
            });
        println!("{test}: seed {seed} ({var}={seed} replays it)");
        Rng { state: seed, seed }
    }

    pub fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix(self.state)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    /// One of `items`, chosen with the given weights.
    pub fn weighted<T: Copy>(&mut self, items: &[(T, u64)]) -> T {
        let total: u64 = items.iter().map(|(_, w)| w).sum();
        let mut pick = self.next() % total;
        for (item, w) in items {
            if pick < *w {
                return *item;
            }
            pick -= w;
        }
        items[items.len() - 1].0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

/// `size` bytes that are a pure function of `(n, i)`.
pub fn bytes_for(n: u64, i: usize, size: usize) -> Vec<u8> {
    let mut state = mix(n.wrapping_mul(0x1_0000).wrapping_add(i as u64 + 1));
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        state = state.wrapping_add(GOLDEN);
        out.extend_from_slice(&mix(state).to_le_bytes());
    }
    out.truncate(size);
    out
}

/// Prints one `FIGURES <suite> key=value ...` line (values must not hold
/// spaces) and, when `FIELDREPORT_FIGURES_FILE` names a file, appends it
/// there too: `tests/reliability.sh` builds the table from those lines.
pub fn figures(suite: &str, pairs: &[(&str, String)]) {
    let mut line = format!("FIGURES {suite}");
    for (k, v) in pairs {
        let v = if v.is_empty() {
            "-".to_string()
        } else {
            v.replace(' ', "_")
        };
        line.push_str(&format!(" {k}={v}"));
    }
    line.push_str(&format!(" mode={}", if full() { "full" } else { "short" }));
    {
        let mut out = std::io::stdout().lock();
        // The leading newline ends libtest's "test name ... " on that line.
        let _ = writeln!(out, "\n{line}");
        let _ = out.flush();
    }
    if let Ok(path) = std::env::var("FIELDREPORT_FIGURES_FILE") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Waits (polling) until `f` holds; panics after `limit`. For waits on
/// other threads and processes, never for timing assertions.
pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a command; `Err` with its output when it fails or cannot start.
pub fn run(program: &str, args: &[&str]) -> Result<(), String> {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "{program} {}: {} {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("{program}: {e}")),
    }
}

/// A mount that is undone when dropped (also when the test panics).
pub struct Mount {
    pub target: PathBuf,
    /// A loop device image to remove after unmounting.
    image: Option<PathBuf>,
    /// How it was made, for the test output: `tmpfs`, `loop ext4`, `ro bind`.
    pub how: String,
}

impl Mount {
    /// A `size` tmpfs on `target`; failing that, an ext4 image of that size
    /// on a loop device (the image lives beside `target`).
    pub fn small_fs(target: &Path, size_mib: u64) -> Result<Mount, String> {
        std::fs::create_dir_all(target).map_err(|e| e.to_string())?;
        let t = target.to_str().ok_or("non-UTF-8 path")?;
        let tmpfs = run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size_mib}m,mode=0755"),
                "tmpfs",
                t,
            ],
        );
        let tmpfs_err = match tmpfs {
            Ok(()) => {
                return Ok(Mount {
                    target: target.to_path_buf(),
                    image: None,
                    how: "tmpfs".into(),
                })
            }
            Err(e) => e,
        };
        let image = target.with_extension("img");
        let img = image.to_str().ok_or("non-UTF-8 path")?;
        let f = File::create(&image).map_err(|e| e.to_string())?;
        f.set_len(size_mib * 1024 * 1024)
            .map_err(|e| e.to_string())?;
        drop(f);
        let looped = run("mkfs.ext4", &["-q", "-F", "-m", "0", img])
            .and_then(|_| run("mount", &["-o", "loop", img, t]));
        match looped {
            Ok(()) => Ok(Mount {
                target: target.to_path_buf(),
                image: Some(image),
                how: "loop ext4".into(),
            }),
            Err(loop_err) => {
                let _ = std::fs::remove_file(&image);
                Err(format!("tmpfs: {tmpfs_err}; loop device: {loop_err}"))
            }
        }
    }

    /// `target` bind-mounted onto itself, read-only.
    pub fn read_only_bind(target: &Path) -> Result<Mount, String> {
        let t = target.to_str().ok_or("non-UTF-8 path")?;
        run("mount", &["--bind", t, t])?;
        let m = Mount {
            target: target.to_path_buf(),
            image: None,
            how: "ro bind".into(),
        };
        run("mount", &["-o", "remount,ro,bind", t])?;
        Ok(m)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let t = self.target.to_string_lossy().into_owned();
        if run("umount", &[&t]).is_err() {
            // Busy (a file still open): detach it now, it goes when closed.
            let _ = run("umount", &["-l", &t]);
        }
        if let Some(image) = &self.image {
            let _ = std::fs::remove_file(image);
        }
    }
}

/// Prefix of every line a child prints for the parent.
pub const MARK: &str = "CHILDSAYS ";

/// Prints one line for the parent and flushes it out at once.
pub fn tell_parent(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\n{MARK}{line}");
    let _ = out.flush();
}

/// Reads one line the parent wrote to the child's stdin.
pub fn hear_parent() -> String {
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    line.trim().to_string()
}

/// This test binary re-executed to run one `child_role_*` test, optionally
/// under a wrapper command (e.g. `setpriv` to run as another user).
/// Dropping it kills and reaps the child if it still runs.
pub struct ChildProc {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: PathBuf,
}

/// Generous bound on any wait for a child; never reached when things work.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

impl ChildProc {
    pub fn spawn(
        wrapper: &[&str],
        role_test: &str,
        envs: &[(&str, String)],
        stderr: PathBuf,
    ) -> ChildProc {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        cmd.args(["--exact", role_test, "--nocapture", "--test-threads=1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).expect("stderr file"));
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {role_test} ({:?}): {e}", cmd.get_program()));
        let out = child.stdout.take().expect("child stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find(MARK) {
                    if tx.send(line[at + MARK.len()..].to_string()).is_err() {
                        break;
                    }
                }
            }
        });
        ChildProc {
            child,
            lines: rx,
            stderr,
        }
    }

    pub fn stderr_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.stderr) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// The next line from the child; `None` once it closed its stdout.
    pub fn next_line(&mut self) -> Option<String> {
        match self.lines.recv_timeout(CHILD_TIMEOUT) {
            Ok(line) => Some(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "child printed nothing for {CHILD_TIMEOUT:?}; its stderr:\n{}",
                self.stderr_text()
            ),
        }
    }

    /// The next line, which must start with `prefix`; returns the rest.
    pub fn expect_prefix(&mut self, prefix: &str) -> String {
        match self.next_line() {
            Some(line) if line.starts_with(prefix) => line[prefix.len()..].to_string(),
            other => panic!(
                "expected a line starting {prefix:?} from the child, got {other:?}; its stderr:\n{}",
                self.stderr_text()
            ),
        }
    }

    /// Waits for a line equal to `want`; panics on anything else first.
    pub fn expect_line(&mut self, want: &str) {
        match self.next_line() {
            Some(line) if line == want => {}
            other => panic!(
                "expected {want:?} from the child, got {other:?}; its stderr:\n{}",
                self.stderr_text()
            ),
        }
    }

    /// Every line not read yet, up to the child's closing its stdout: call
    /// it once the child is gone (after `wait` or `kill`), or it waits for
    /// that.
    pub fn rest(&mut self) -> Vec<String> {
        let deadline = Instant::now() + CHILD_TIMEOUT;
        let mut rest = Vec::new();
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => rest.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return rest,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "the child's stdout stayed open for {CHILD_TIMEOUT:?}; read so far: {rest:?}; \
                     its stderr:\n{}",
                    self.stderr_text()
                ),
            }
        }
    }

    /// SIGKILLs the child, reaps it, and returns its exit status and the
    /// lines it printed before dying that were not read yet.
    pub fn kill(&mut self) -> (ExitStatus, Vec<String>) {
        // `Child::kill` is SIGKILL on Unix.
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait for the killed child");
        (status, self.rest())
    }

    /// Writes one line to the child's stdin.
    pub fn say(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("child stdin");
        writeln!(stdin, "{line}").expect("write to the child");
        stdin.flush().expect("flush to the child");
    }

    /// Waits for the child to exit on its own.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + CHILD_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "child did not finish within {CHILD_TIMEOUT:?}; its stderr:\n{}",
                    self.stderr_text()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Whether a child ended by SIGKILL (and not by exiting on its own).
#[cfg(unix)]
pub fn killed_by_sigkill(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
