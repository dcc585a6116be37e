//! The [`Client`]: the one object an app holds. `submit` writes to the
//! outbox and returns; `flush` (or the background sender) delivers.

mod submit;

use std::fs::{self, File};
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use crate::config::{check_path_segment, ApiKey, Config};
use crate::context;
use crate::delivery::engine::Engine;
use crate::delivery::sender::{Deliver, Sender};
use crate::error::{Error, Internal, Result};
use crate::http::progress::Meter;
use crate::outbox::{self, NewAttachment, NewReport, Outbox, Staged};
use crate::report::{
    Attachment, AttachmentSource, CrashLog, CrashReport, Event, Feedback, FlushResult, Listener,
    ReportFilter, ReportId, ReportKind, ReportStatus, Stats, Submission,
};
use crate::server::Server;

/// A feedback client bound to one outbox directory. `Send + Sync`: share it
/// (in an `Arc`) and call it from any thread. Every call blocks; none but
/// `flush` touches the network.
pub struct Client {
    pub(crate) inner: Arc<Inner>,
    sender: Mutex<Option<Sender>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("outbox", &self.inner.config.outbox_dir)
            .field("base_url", &self.inner.base_url)
            .finish()
    }
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) base_url: String,
    pub(crate) outbox: Mutex<Outbox>,
    pub(crate) files_dir: PathBuf,
    pub(crate) server: RwLock<Server>,
    pub(crate) flush_gate: Mutex<()>,
    pub(crate) listener: RwLock<Option<Arc<dyn Listener>>>,
    pub(crate) online: AtomicBool,
    pub(crate) metered: AtomicBool,
    pub(crate) closed: AtomicBool,
    pub(crate) base_context: Map<String, Value>,
    pub(crate) moved_aside: Option<PathBuf>,
    pub(crate) wake: crate::delivery::sender::Wake,
    /// Threads deleting delivered copies (see `discard_later`).
    pub(crate) janitors: Mutex<Vec<thread::JoinHandle<()>>>,
}

impl Client {
    /// Opens the outbox in `config.outbox_dir` (creating it, owner-only),
    /// checks the config, removes files left by a killed submit, and
    /// applies the age cap. Makes no network call.
    pub fn open(config: Config) -> std::result::Result<Client, Error> {
        let base_url = config.validate()?;
        let (mut outbox, moved_aside) = Outbox::open(&config.outbox_dir, &config.policy)?;
        // Every outbox before destinations were recorded was Centercode's:
        // a Centercode client takes such reports, no other does.
        let centercode = matches!(config.destination, crate::config::Destination::Centercode);
        outbox.bind(&config.destination_name(&base_url), centercode)?;
        outbox.sweep_orphans()?;
        let mut base_context = context::base_context(&config.app);
        base_context.insert(context::DEVICE_ID_ITEM.into(), outbox.device_id()?.into());
        let server = Server::new(
            base_url.clone(),
            config.server.project_key.clone(),
            config.server.feedback_type_key.clone(),
            config.server.api_key.clone(),
            &config.policy,
            config.transport.clone(),
        )?;
        let inner = Arc::new(Inner {
            files_dir: outbox.files_dir().to_path_buf(),
            base_context,
            base_url,
            outbox: Mutex::new(outbox),
            server: RwLock::new(server),
            flush_gate: Mutex::new(()),
            listener: RwLock::new(None),
            online: AtomicBool::new(true),
            metered: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            moved_aside,
            wake: crate::delivery::sender::Wake::default(),
            janitors: Mutex::new(Vec::new()),
            config,
        });
        outbox::ensure_reserve(
            &inner.config.outbox_dir,
            inner.config.policy.disk_reserve_bytes,
        );
        let (evictions, doomed) = inner.db(|o| o.expire(&inner.config.policy))?;
        outbox::remove_files(&doomed);
        for e in evictions {
            inner.emit(Event::Evicted {
                id: e.id,
                reason: e.reason,
            });
        }
        Ok(Client {
            inner,
            sender: Mutex::new(None),
        })
    }

    /// Queues feedback. Returns once the report and copies of its
    /// attachments are durable; makes no network call. On error nothing
    /// was stored.
    pub fn submit(&self, feedback: Feedback) -> std::result::Result<ReportId, Error> {
        self.inner.check_open()?;
        let id = self.inner.submit_feedback(feedback)?;
        self.inner.wake.notify();
        Ok(id)
    }

    /// Queues a crash report: the log is gzip-compressed (streamed) and
    /// bound to the crash file element; the summary defaults to the log's
    /// first meaningful line.
    pub fn submit_crash(&self, crash: CrashReport) -> std::result::Result<ReportId, Error> {
        self.inner.check_open()?;
        let id = self.inner.submit_crash(crash)?;
        self.inner.wake.notify();
        Ok(id)
    }

    /// Queues several reports at once, all or nothing: every report is
    /// checked and its attachments copied, then all are committed together
    /// (one disk sync instead of one per report, for rigs and imports that
    /// push hundreds). Returns their ids in the order given. An error about
    /// one report names it (`batch item N:` in its reason) and nothing of
    /// the batch is stored; a batch larger than `policy.max_reports` is
    /// refused as a whole. Reports of a batch never evict each other.
    pub fn submit_many(
        &self,
        reports: Vec<Submission>,
    ) -> std::result::Result<Vec<ReportId>, Error> {
        self.inner.check_open()?;
        let ids = self.inner.submit_many(reports)?;
        if !ids.is_empty() {
            self.inner.wake.notify();
        }
        Ok(ids)
    }

    /// Delivers what is due, oldest first, until done or `budget` is spent
    /// (a request under way is finished, within its own timeouts). One flush
    /// runs at a time per outbox, across threads and processes.
    pub fn flush(&self, budget: Duration) -> std::result::Result<FlushResult, Error> {
        self.inner.check_open()?;
        Ok(self.inner.flush(budget)?)
    }

    /// Everything known about one report.
    pub fn report(&self, id: ReportId) -> std::result::Result<ReportStatus, Error> {
        Ok(self.inner.db(|o| o.queries().status(id))?)
    }

    /// Reports matching `filter`, newest first.
    pub fn reports(&self, filter: &ReportFilter) -> std::result::Result<Vec<ReportStatus>, Error> {
        Ok(self.inner.db(|o| o.queries().list(filter))?)
    }

    /// Queue statistics.
    pub fn stats(&self) -> std::result::Result<Stats, Error> {
        let mut stats = self.inner.db(|o| o.queries().stats())?;
        stats.consent = self.inner.consent()?;
        stats.paused_for_auth = self.inner.auth_paused()?.is_some();
        Ok(stats)
    }

    /// Puts a dead report back in the queue, where it left off.
    pub fn retry(&self, id: ReportId) -> std::result::Result<(), Error> {
        self.inner.db(|o| o.steps().retry(id))?;
        self.inner.wake.notify();
        Ok(())
    }

    /// Deletes one report and its attachment copies, whatever its state.
    pub fn purge(&self, id: ReportId) -> std::result::Result<(), Error> {
        let doomed = self.inner.db(|o| o.purge(Some(id)))?;
        outbox::remove_files(&doomed);
        Ok(())
    }

    /// Deletes every report (for example when the user revokes consent).
    pub fn purge_all(&self) -> std::result::Result<(), Error> {
        let doomed = self.inner.db(|o| o.purge(None))?;
        outbox::remove_files(&doomed);
        Ok(())
    }

    /// Reports waiting for a destination other than the configured one
    /// (queued when the config named another server, project or form) are
    /// never sent by this client; `stats().other_destinations` counts them.
    /// This queues the ones not yet sent anywhere for the configured
    /// destination instead: the app's explicit choice. Returns how many.
    pub fn retarget_other_destinations(&self) -> std::result::Result<u64, Error> {
        let n = self.inner.db(|o| o.retarget_other_destinations())?;
        if n > 0 {
            self.inner.wake.notify();
        }
        Ok(n)
    }

    /// Deletes the undelivered reports waiting for other destinations, with
    /// their attachment copies. Returns how many.
    pub fn purge_other_destinations(&self) -> std::result::Result<u64, Error> {
        let ids = self.inner.db(|o| o.other_destination_ids())?;
        for id in &ids {
            let doomed = self.inner.db(|o| o.purge(Some(*id)))?;
            outbox::remove_files(&doomed);
        }
        Ok(ids.len() as u64)
    }

    /// Records the user's consent. Without it reports are kept, not sent.
    /// The choice is stored in the outbox and outlives the process.
    pub fn set_consent(&self, granted: bool) -> std::result::Result<(), Error> {
        self.inner
            .db(|o| o.set_meta("consent", if granted { "1" } else { "0" }))?;
        if granted {
            self.inner.wake.notify();
        }
        Ok(())
    }

    /// The app's word on connectivity: while offline nothing is sent;
    /// coming back online wakes the background sender.
    pub fn set_online(&self, online: bool) {
        let was = self.inner.online.swap(online, Ordering::SeqCst);
        if online && !was {
            self.inner.wake.notify();
        }
    }

    /// The app's word on a metered network: large attachments wait.
    pub fn set_metered(&self, metered: bool) {
        let was = self.inner.metered.swap(metered, Ordering::SeqCst);
        if was && !metered {
            self.inner.wake.notify();
        }
    }

    /// Replaces the API key (after the server refused the old one);
    /// delivery paused for the old key resumes.
    pub fn set_api_key(&self, api_key: &str) -> std::result::Result<(), Error> {
        if api_key.is_empty() || api_key.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(Error::InvalidInput {
                reason: "api key is empty or contains whitespace or control characters".into(),
            });
        }
        self.inner
            .server
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .set_api_key(ApiKey::new(api_key));
        self.inner.wake.notify();
        Ok(())
    }

    /// Sets (or with `None` removes) the listener that hears of deliveries
    /// and failures.
    pub fn set_listener(&self, listener: Option<Arc<dyn Listener>>) {
        *self
            .inner
            .listener
            .write()
            .unwrap_or_else(|p| p.into_inner()) = listener;
    }

    /// Starts the background sender: one thread that flushes when a report
    /// is submitted, when the network comes back, when a retry is due and
    /// every `policy.sender_interval`. Idempotent.
    pub fn start_sender(&self) -> std::result::Result<(), Error> {
        self.inner.check_open()?;
        let mut s = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        if s.is_none() {
            *s = Some(
                Sender::start(Arc::clone(&self.inner) as Arc<dyn Deliver>).map_err(|e| {
                    Error::from(Internal::io("cannot start the background sender", e))
                })?,
            );
        }
        Ok(())
    }

    /// Stops the background sender and waits for it (it finishes the
    /// request under way first).
    pub fn stop_sender(&self) {
        let s = self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(s) = s {
            s.stop();
        }
    }

    /// Stops the sender and refuses further calls. Also done on drop.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.stop_sender();
        self.inner.join_janitors();
    }

    /// Where a corrupt outbox was moved at open, if it was.
    pub fn moved_aside(&self) -> Option<&Path> {
        self.inner.moved_aside.as_deref()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.close();
    }
}

impl Deliver for Inner {
    fn wake(&self) -> &crate::delivery::sender::Wake {
        &self.wake
    }
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
    fn is_online(&self) -> bool {
        self.online.load(Ordering::SeqCst)
    }
    fn policy(&self) -> &crate::config::Policy {
        &self.config.policy
    }
    fn flush(&self, budget: Duration) -> Result<FlushResult> {
        Engine(self).flush(budget)
    }
    fn next_due(&self) -> Option<SystemTime> {
        Engine(self).next_due()
    }
}

impl Inner {
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Internal::Closed);
        }
        Ok(())
    }

    pub(crate) fn lock_outbox(&self) -> MutexGuard<'_, Outbox> {
        // A panic while holding the lock cannot leave SQLite half-written
        // (transactions roll back), so a poisoned lock is safe to reuse.
        self.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn db<T>(&self, f: impl FnOnce(&mut Outbox) -> Result<T>) -> Result<T> {
        f(&mut self.lock_outbox())
    }

    /// `db` for delivery: on a full disk it gives up the disk reserve and
    /// tries once more (each call is one transaction or statement, rolled
    /// back when it failed), so that a full disk does not also stop the
    /// deliveries that would free it.
    pub(crate) fn ddb<T>(&self, mut f: impl FnMut(&mut Outbox) -> Result<T>) -> Result<T> {
        let mut outbox = self.lock_outbox();
        match f(&mut outbox) {
            Err(e)
                if outbox::release_reserve_after(
                    &e,
                    &self.config.outbox_dir,
                    self.config.policy.disk_reserve_bytes,
                ) =>
            {
                f(&mut outbox)
            }
            other => other,
        }
    }

    /// Deletes the copies of a delivered report on a helper thread:
    /// unlinking a large file can take longer than uploading it (on a
    /// filesystem with online discard, 60 ms per 100 MiB), and the caller
    /// of `flush` need not wait for that. `close` waits for these threads;
    /// copies left by a process that ended first are swept at the next open.
    pub(crate) fn discard_later(&self, doomed: Vec<PathBuf>) {
        if doomed.is_empty() {
            return;
        }
        let mut janitors = self.janitors.lock().unwrap_or_else(|p| p.into_inner());
        janitors.retain(|h| !h.is_finished());
        let paths = doomed.clone();
        match thread::Builder::new()
            .name("fieldreport-janitor".into())
            .spawn(move || outbox::remove_files(&paths))
        {
            Ok(h) => janitors.push(h),
            Err(_) => outbox::remove_files(&doomed),
        }
    }

    pub(crate) fn join_janitors(&self) {
        let handles = std::mem::take(&mut *self.janitors.lock().unwrap_or_else(|p| p.into_inner()));
        for h in handles {
            let _ = h.join();
        }
    }

    pub(crate) fn emit(&self, event: Event) {
        let listener = self
            .listener
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(l) = listener {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| l.on_event(event)));
        }
    }

    /// A progress meter for an upload of `total` bytes of report `id`,
    /// reporting to the listener as `Event::Progress`; `None` when no
    /// listener is set or the upload is too small to report on.
    pub(crate) fn progress_meter(
        &self,
        id: ReportId,
        file_name: &str,
        total: u64,
    ) -> Option<Meter> {
        let listener = self
            .listener
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        let file_name = file_name.to_string();
        Meter::new(
            total,
            Box::new(move |sent_bytes, total_bytes| {
                let event = Event::Progress {
                    id,
                    file_name: file_name.clone(),
                    sent_bytes,
                    total_bytes,
                };
                // As `emit`: a panicking listener holds nothing up.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    listener.on_event(event)
                }));
            }),
        )
    }

    pub(crate) fn consent(&self) -> Result<bool> {
        Ok(match self.db(|o| o.meta("consent"))? {
            Some(v) => v == "1",
            None => self.config.consent_default,
        })
    }

    pub(crate) fn server(&self) -> std::sync::RwLockReadGuard<'_, Server> {
        self.server.read().unwrap_or_else(|p| p.into_inner())
    }

    /// `Some(probe_at)` while delivery is paused for the current key.
    pub(crate) fn auth_paused(&self) -> Result<Option<i64>> {
        let Some(v) = self.db(|o| o.meta(&o.gate("auth_pause")))? else {
            return Ok(None);
        };
        let (fp, probe_at) = v.split_once('|').unwrap_or((&v, "0"));
        if fp != self.server().api_key().fingerprint() {
            // A different key: the pause was for the old one.
            return Ok(None);
        }
        Ok(Some(probe_at.parse().unwrap_or(0)))
    }
}
