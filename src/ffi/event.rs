//! What comes back to C: report states, receipts, flush results, statistics
//! and delivery events, and the callback that hears the events.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::{c_char, c_void, CString};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::{guard_value, json, to_cstring};
use crate::report::{Event, FlushResult, Listener, Receipt, ReportState, Stats};

/// Where a report is on its way. The numbers are stable forever; 0 is never
/// a state.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum fieldreport_report_state {
    /// Durable in the outbox; not yet created on the server.
    Queued = 1,
    /// Created on the server (its key is known); attachments may still be
    /// uploading.
    Created = 2,
    /// Created, and every attachment uploaded or rejected.
    Delivered = 3,
    /// Failed permanently; kept with the reason until retried or purged.
    Dead = 4,
    /// Removed by a storage cap before delivery; kept as a record of the loss.
    Evicted = 5,
}

impl From<ReportState> for fieldreport_report_state {
    fn from(s: ReportState) -> Self {
        match s {
            ReportState::Queued => fieldreport_report_state::Queued,
            ReportState::Created => fieldreport_report_state::Created,
            ReportState::Delivered => fieldreport_report_state::Delivered,
            ReportState::Dead => fieldreport_report_state::Dead,
            ReportState::Evicted => fieldreport_report_state::Evicted,
        }
    }
}

/// The outcome of one report in a flush (or of the delivery an event tells
/// of). Every pointer in it is owned by the flush result or event it came
/// from and lives exactly as long: copy what you keep. This struct is never
/// allocated by the caller; fields may be appended in later versions.
#[repr(C)]
pub struct fieldreport_receipt {
    /// The report's local id.
    pub id: i64,
    /// Its state after the flush.
    pub state: fieldreport_report_state,
    /// The server's key (e.g. `"BUG-0042"`) once created, else NULL.
    pub server_key: *const c_char,
    /// The server's URL of the feedback once created, else NULL.
    pub server_url: *const c_char,
    /// The HTTP status of this flush's failed attempt; 0 when it did not
    /// fail or no answer came back.
    pub http_status: i32,
    /// What went wrong in this flush's attempt, else NULL.
    pub error: *const c_char,
    /// How many attachments were rejected in this flush.
    pub rejected_count: usize,
    /// `rejected_count` strings, `"<file name>: <reason>"`; NULL when none.
    pub rejected: *const *const c_char,
}

/// A receipt and the memory its pointers point into.
pub(crate) struct OwnedReceipt {
    c: fieldreport_receipt,
    _strings: Vec<CString>,
    _rejected: Vec<*const c_char>,
}

impl OwnedReceipt {
    pub(crate) fn new(r: &Receipt, secret: &str) -> OwnedReceipt {
        let mut strings = Vec::new();
        let mut keep = |s: &str| {
            let c = to_cstring(&super::redact(s, secret));
            let p = c.as_ptr();
            strings.push(c);
            p
        };
        let server_key = r.server_key.as_deref().map_or(std::ptr::null(), &mut keep);
        let server_url = r.server_url.as_deref().map_or(std::ptr::null(), &mut keep);
        let error = r
            .error
            .as_ref()
            .map_or(std::ptr::null(), |e| keep(&e.message));
        let rejected: Vec<*const c_char> = r.rejected_attachments.iter().map(|s| keep(s)).collect();
        OwnedReceipt {
            c: fieldreport_receipt {
                id: r.id,
                state: r.state.into(),
                server_key,
                server_url,
                http_status: r.error.as_ref().and_then(|e| e.status).map_or(0, i32::from),
                error,
                rejected_count: rejected.len(),
                rejected: if rejected.is_empty() {
                    std::ptr::null()
                } else {
                    rejected.as_ptr()
                },
            },
            _strings: strings,
            _rejected: rejected,
        }
    }
}

/// What `fieldreport_client_flush` did: one receipt per report worked on,
/// what is left, and why it stopped early if it did. Owned by the caller,
/// freed with `fieldreport_flush_result_free`; everything read from it is
/// borrowed from it. Safe to read from any thread, not to free while read.
pub struct fieldreport_flush_result {
    receipts: Vec<OwnedReceipt>,
    pending: u64,
    dead: u64,
    stopped: Option<CString>,
    json: CString,
}

impl fieldreport_flush_result {
    pub(crate) fn new(f: &FlushResult, secret: &str) -> fieldreport_flush_result {
        fieldreport_flush_result {
            receipts: f
                .receipts
                .iter()
                .map(|r| OwnedReceipt::new(r, secret))
                .collect(),
            pending: f.pending,
            dead: f.dead,
            stopped: f
                .stopped
                .as_deref()
                .map(|s| to_cstring(&super::redact(s, secret))),
            json: to_cstring(&json::to_text(json::flush(f), secret)),
        }
    }
}

/// The number of receipts in `result` (0 when `result` is NULL). Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_flush_result_receipt_count(
    result: *const fieldreport_flush_result,
) -> usize {
    guard_value(0, || result.as_ref().map_or(0, |r| r.receipts.len()))
}

/// The receipt at `index` (from 0), or NULL when `index` is out of range or
/// `result` is NULL. The receipt and its strings are borrowed from `result`
/// and valid until it is freed. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_flush_result_receipt(
    result: *const fieldreport_flush_result,
    index: usize,
) -> *const fieldreport_receipt {
    guard_value(std::ptr::null(), || {
        result
            .as_ref()
            .and_then(|r| r.receipts.get(index))
            .map_or(std::ptr::null(), |r| &r.c as *const fieldreport_receipt)
    })
}

/// Reports still waiting (queued or created) after the flush; 0 when
/// `result` is NULL. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_flush_result_pending(
    result: *const fieldreport_flush_result,
) -> u64 {
    guard_value(0, || result.as_ref().map_or(0, |r| r.pending))
}

/// Dead reports in the outbox after the flush; 0 when `result` is NULL.
/// Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_flush_result_dead(
    result: *const fieldreport_flush_result,
) -> u64 {
    guard_value(0, || result.as_ref().map_or(0, |r| r.dead))
}

/// Why the flush stopped before everything due was sent (a network
/// failure, a rate limit, a refused API key, the time budget, no consent,
/// offline, another flush running), or NULL when it did not stop early or
/// `result` is NULL. Borrowed from `result`. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_flush_result_stopped(
    result: *const fieldreport_flush_result,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        result
            .as_ref()
            .and_then(|r| r.stopped.as_ref())
            .map_or(std::ptr::null(), |s| s.as_ptr())
    })
}

/// The whole result as a JSON document (see `bindings/c/README.md`), or
/// NULL when `result` is NULL. Borrowed from `result`: do not free it.
/// Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_flush_result_json(
    result: *const fieldreport_flush_result,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        result
            .as_ref()
            .map_or(std::ptr::null(), |r| r.json.as_ptr())
    })
}

/// Frees a flush result and every string and receipt borrowed from it.
/// `result` may be NULL. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_flush_result_free(result: *mut fieldreport_flush_result) {
    guard_value((), || {
        if !result.is_null() {
            drop(Box::from_raw(result));
        }
    })
}

/// Queue statistics, filled in by `fieldreport_client_stats`. The caller
/// owns the struct (usually on the stack); it holds no pointers. Its layout
/// is frozen: new statistics appear in `fieldreport_client_stats_json`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct fieldreport_stats {
    /// Reports waiting (queued or created).
    pub pending: u64,
    /// Reports delivered and still listed.
    pub delivered: u64,
    /// Dead reports.
    pub dead: u64,
    /// Bytes held for undelivered reports (bodies and attachment copies).
    pub bytes: u64,
    /// Age of the oldest waiting report in seconds; -1 when none waits.
    pub oldest_pending_age_secs: i64,
    /// When the next attempt is due, Unix milliseconds; -1 when none is.
    pub next_attempt_at_ms: i64,
    /// Reports evicted by the caps since the outbox was created.
    pub evicted: u64,
    /// Of those, typed feedback (only ever after every machine-made report).
    pub evicted_feedback: u64,
    /// Creates re-sent after a lost answer (possible duplicates on the server).
    pub ambiguous_resends: u64,
    /// Delivery is paused because the server refused the API key.
    pub paused_for_auth: bool,
    /// The user's consent to sending.
    pub consent: bool,
    /// The outbox was found corrupt at open and moved aside (where to is in
    /// the JSON statistics).
    pub moved_aside: bool,
}

impl fieldreport_stats {
    pub(crate) fn zero() -> fieldreport_stats {
        fieldreport_stats {
            oldest_pending_age_secs: -1,
            next_attempt_at_ms: -1,
            ..fieldreport_stats::default()
        }
    }

    pub(crate) fn new(s: &Stats) -> fieldreport_stats {
        fieldreport_stats {
            pending: s.pending,
            delivered: s.delivered,
            dead: s.dead,
            bytes: s.bytes,
            oldest_pending_age_secs: s
                .oldest_pending_age_secs
                .map_or(-1, |a| i64::try_from(a).unwrap_or(i64::MAX)),
            next_attempt_at_ms: s.next_attempt_at.map_or(-1, json::unix_ms),
            evicted: s.evicted,
            evicted_feedback: s.evicted_feedback,
            ambiguous_resends: s.ambiguous_resends,
            paused_for_auth: s.paused_for_auth,
            consent: s.consent,
            moved_aside: s.moved_aside.is_some(),
        }
    }
}

/// What a delivery event tells of. The numbers are stable forever; new
/// kinds may be added, so ignore the ones you do not know.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum fieldreport_event_kind {
    /// A report was created and all its attachments uploaded or rejected;
    /// `receipt` says how.
    Delivered = 1,
    /// An attachment was refused (`file_name`, `message`); the rest of its
    /// report goes on.
    AttachmentRejected = 2,
    /// An attempt failed and will be retried at `retry_at_ms`.
    Failed = 3,
    /// A report failed permanently and is kept as dead (`message`).
    Dead = 4,
    /// A report was evicted by a storage cap (`message` says which).
    Evicted = 5,
    /// Delivery is paused: the server refused the API key. Set a new key
    /// with `fieldreport_client_set_api_key` to resume.
    Paused = 6,
    /// An upload of 1 MiB or more is under way: `sent_bytes` of
    /// `total_bytes` of `file_name` handed to the connection. At most four a
    /// second, plus one at 0 and exactly one at the total when it is all sent.
    Progress = 7,
}

/// One delivery event, passed to the event callback. It and every pointer
/// in it are valid only during the callback: copy what you keep. Fields not
/// listed for an event's kind are 0 or NULL. Never allocated by the caller;
/// fields may be appended in later versions.
#[repr(C)]
pub struct fieldreport_event {
    /// What happened.
    pub kind: fieldreport_event_kind,
    /// The report's local id; 0 for `PAUSED`.
    pub report_id: i64,
    /// `DELIVERED`: the receipt. Otherwise NULL.
    pub receipt: *const fieldreport_receipt,
    /// `FAILED`, `DEAD`, `PAUSED`: the HTTP status, or 0 when no answer came.
    pub http_status: i32,
    /// `ATTACHMENT_REJECTED`, `FAILED`, `DEAD`, `EVICTED`, `PAUSED`: the
    /// reason or error message.
    pub message: *const c_char,
    /// `ATTACHMENT_REJECTED`, `PROGRESS`: the attachment's file name.
    pub file_name: *const c_char,
    /// `FAILED`: when the next attempt is due, Unix milliseconds.
    pub retry_at_ms: i64,
    /// Every event: the whole event as a JSON document (it also holds the
    /// server's `invalid_parameters`).
    pub json: *const c_char,
    /// `PROGRESS`: bytes handed over so far.
    pub sent_bytes: u64,
    /// `PROGRESS`: bytes to send in all.
    pub total_bytes: u64,
}

/// The event callback. `user_data` is the pointer given to
/// `fieldreport_client_set_callback`; `event` and everything it points to
/// are valid only during the call.
///
/// It is called on the thread that caused the event, after the outbox was
/// updated: the thread calling `fieldreport_client_flush`, the background
/// sender's thread (see `fieldreport_client_start_sender`), or, for
/// `EVICTED`, the thread calling a submit that made room. So `user_data`
/// must be safe to use from those threads. Keep it quick (it holds up
/// delivery), do not throw C++ exceptions or `longjmp` out of it, and do not
/// call `fieldreport_client_set_callback`, `_stop_sender`, `_close` or
/// `_free` from it (refused with `FIELDREPORT_STATUS_IN_CALLBACK`).
pub type fieldreport_event_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const fieldreport_event)>;

thread_local! {
    /// How deep this thread is in event callbacks.
    static IN_CALLBACK: Cell<u32> = const { Cell::new(0) };
}

/// True while this thread runs an event callback.
pub(crate) fn in_callback() -> bool {
    IN_CALLBACK.try_with(|d| d.get() > 0).unwrap_or(false)
}

/// Marks this thread as inside a callback until dropped.
struct Depth;

impl Depth {
    fn enter() -> Depth {
        let _ = IN_CALLBACK.try_with(|d| d.set(d.get() + 1));
        Depth
    }
}

impl Drop for Depth {
    fn drop(&mut self) {
        let _ = IN_CALLBACK.try_with(|d| d.set(d.get().saturating_sub(1)));
    }
}

struct SlotState {
    callback: fieldreport_event_callback,
    /// The caller's pointer, kept as an address: the caller vouches that it
    /// may be used from the threads listed above.
    user_data: usize,
    /// Bumped by every `set`; a call runs under the generation it started in.
    generation: u64,
    /// Calls under way, per generation.
    in_flight: BTreeMap<u64, usize>,
}

/// The client's callback, and the bookkeeping that lets `set` promise the
/// old callback is not running any more when it returns.
pub(crate) struct CallbackSlot {
    state: Mutex<SlotState>,
    idle: Condvar,
    /// The current API key, kept to scrub it from event text.
    pub(crate) secret: Arc<Mutex<String>>,
}

impl CallbackSlot {
    pub(crate) fn new(secret: Arc<Mutex<String>>) -> CallbackSlot {
        CallbackSlot {
            state: Mutex::new(SlotState {
                callback: None,
                user_data: 0,
                generation: 0,
                in_flight: BTreeMap::new(),
            }),
            idle: Condvar::new(),
            secret,
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the callback and waits until no call of an earlier one is
    /// under way (on other threads: the caller is not inside one).
    pub(crate) fn set(&self, callback: fieldreport_event_callback, user_data: *mut c_void) {
        let mut st = self.lock();
        st.generation += 1;
        st.callback = callback;
        st.user_data = user_data as usize;
        let mine = st.generation;
        while st.in_flight.range(..mine).next().is_some() {
            st = self.idle.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn finished(&self, generation: u64) {
        let mut st = self.lock();
        if let Some(n) = st.in_flight.get_mut(&generation) {
            *n -= 1;
            if *n == 0 {
                st.in_flight.remove(&generation);
            }
        }
        self.idle.notify_all();
    }
}

/// Ends one call's bookkeeping, also if building the event panics.
struct InFlight<'a>(&'a CallbackSlot, u64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.finished(self.1);
    }
}

/// The listener registered with the client: turns each event into a
/// `fieldreport_event` and calls the C callback, if one is set.
pub(crate) struct Relay(pub(crate) Arc<CallbackSlot>);

impl Listener for Relay {
    fn on_event(&self, event: Event) {
        let slot = &*self.0;
        let (callback, user_data, generation) = {
            let mut st = slot.lock();
            let Some(callback) = st.callback else {
                return;
            };
            let generation = st.generation;
            *st.in_flight.entry(generation).or_insert(0) += 1;
            (callback, st.user_data, generation)
        };
        let _in_flight = InFlight(slot, generation);
        let secret = slot
            .secret
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let owned = OwnedEvent::new(&event, &secret);
        let _depth = Depth::enter();
        // SAFETY: the caller registered this function and pointer together
        // and vouched for calling it from this thread.
        unsafe { callback(user_data as *mut c_void, &owned.c) };
    }
}

/// An event and the memory its pointers point into.
struct OwnedEvent {
    c: fieldreport_event,
    _receipt: Option<Box<OwnedReceipt>>,
    _strings: Vec<CString>,
}

impl OwnedEvent {
    fn new(e: &Event, secret: &str) -> OwnedEvent {
        let mut strings = Vec::new();
        let mut keep = |s: &str| {
            let c = to_cstring(&super::redact(s, secret));
            let p = c.as_ptr();
            strings.push(c);
            p
        };
        let json = keep(&json::to_text(json::event(e), secret));
        let null: *const c_char = std::ptr::null();
        let mut c = fieldreport_event {
            kind: fieldreport_event_kind::Delivered,
            report_id: 0,
            receipt: std::ptr::null(),
            http_status: 0,
            message: null,
            file_name: null,
            retry_at_ms: 0,
            json,
            sent_bytes: 0,
            total_bytes: 0,
        };
        let mut receipt = None;
        match e {
            Event::Delivered { receipt: r } => {
                let owned = Box::new(OwnedReceipt::new(r, secret));
                c.report_id = r.id;
                c.receipt = &owned.c;
                receipt = Some(owned);
            }
            Event::AttachmentRejected {
                id,
                file_name,
                reason,
            } => {
                c.kind = fieldreport_event_kind::AttachmentRejected;
                c.report_id = *id;
                c.file_name = keep(file_name);
                c.message = keep(reason);
            }
            Event::Failed {
                id,
                error,
                retry_at,
            } => {
                c.kind = fieldreport_event_kind::Failed;
                c.report_id = *id;
                c.http_status = error.status.map_or(0, i32::from);
                c.message = keep(&error.message);
                c.retry_at_ms = json::unix_ms(*retry_at);
            }
            Event::Dead { id, error } => {
                c.kind = fieldreport_event_kind::Dead;
                c.report_id = *id;
                c.http_status = error.status.map_or(0, i32::from);
                c.message = keep(&error.message);
            }
            Event::Evicted { id, reason } => {
                c.kind = fieldreport_event_kind::Evicted;
                c.report_id = *id;
                c.message = keep(reason);
            }
            Event::Paused { error } => {
                c.kind = fieldreport_event_kind::Paused;
                c.http_status = error.status.map_or(0, i32::from);
                c.message = keep(&error.message);
            }
            Event::Progress {
                id,
                file_name,
                sent_bytes,
                total_bytes,
            } => {
                c.kind = fieldreport_event_kind::Progress;
                c.report_id = *id;
                c.file_name = keep(file_name);
                c.sent_bytes = *sent_bytes;
                c.total_bytes = *total_bytes;
            }
        }
        OwnedEvent {
            c,
            _receipt: receipt,
            _strings: strings,
        }
    }
}
