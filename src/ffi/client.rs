//! `fieldreport_client`: the one object an app holds.

use std::ffi::{c_char, c_void};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::event::{
    fieldreport_event_callback, fieldreport_flush_result, fieldreport_report_state,
    fieldreport_stats, in_callback, CallbackSlot, Relay,
};
use super::{
    fieldreport_config, fieldreport_crash, fieldreport_feedback, fieldreport_status, guard,
    guard_value, handle, json, opt_out, out, owned_string, set_last_error, text, Fail, FfiResult,
};
use crate::report::{ReportFilter, ReportState, Submission};
use crate::{Client, Error};

/// The longest flush budget honoured; longer ones are cut to it.
const MAX_FLUSH_BUDGET: Duration = Duration::from_secs(24 * 3600);

/// A feedback client bound to one outbox directory. Opened by
/// `fieldreport_client_open`, freed by `fieldreport_client_free`; the caller
/// owns it. Thread-safe: every function taking a client may be called from
/// any thread, concurrently, until `fieldreport_client_free` (which no
/// other call on the same client may overlap). Only `fieldreport_client_flush`
/// (and the background sender) touch the network.
pub struct fieldreport_client {
    client: Client,
    slot: Arc<CallbackSlot>,
    /// The current API key, kept to scrub it from every message.
    secret: Arc<Mutex<String>>,
}

impl fieldreport_client {
    fn fail(&self, e: Error) -> Fail {
        let secret = self.secret.lock().unwrap_or_else(|p| p.into_inner());
        Fail::from_error(e, &secret)
    }

    fn secret(&self) -> String {
        self.secret
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

unsafe fn with_client(
    client: *const fieldreport_client,
    f: impl FnOnce(&fieldreport_client) -> FfiResult,
) -> fieldreport_status {
    guard(|| f(handle(client, "client")?))
}

/// The client behind `client`, for functions that reset their
/// out-pointers first (so that even a NULL client leaves them reset).
unsafe fn client_ref<'a>(client: *const fieldreport_client) -> FfiResult<&'a fieldreport_client> {
    handle(client, "client")
}

/// Resets `*out_json`, then sets it to the string `make` returns for the
/// client, for the caller to free with `fieldreport_string_free`.
unsafe fn put_string(
    out_json: *mut *mut c_char,
    client: *const fieldreport_client,
    make: impl FnOnce(&fieldreport_client) -> FfiResult<String>,
) -> fieldreport_status {
    guard(|| {
        let slot = out(out_json, "out_json", std::ptr::null_mut())?;
        let c = client_ref(client)?;
        *slot = owned_string(&make(c)?);
        Ok(())
    })
}

fn refuse_in_callback(what: &str) -> FfiResult {
    if in_callback() {
        return Err(Fail::new(
            fieldreport_status::InCallback,
            format!("{what} cannot be called from inside the event callback"),
        ));
    }
    Ok(())
}

/// The `count` pointers of the array `p` (the argument `what`, its length
/// the argument `count_what`): NULL is refused unless `count` is 0.
unsafe fn array<'a, T>(
    p: *const *const T,
    count: usize,
    what: &str,
    count_what: &str,
) -> FfiResult<&'a [*const T]> {
    if count == 0 {
        Ok(&[])
    } else if p.is_null() {
        Err(Fail::new(
            fieldreport_status::NullArgument,
            format!("{what} is NULL but {count_what} is {count}"),
        ))
    } else {
        Ok(std::slice::from_raw_parts(p, count))
    }
}

/// Opens (creating if needed) the outbox described by `config`, checks the
/// configuration, removes files left by a killed submit and applies the age
/// cap. Makes no network call; blocks on disk I/O, and up to the policy's
/// busy timeout when another process holds the outbox.
///
/// `config` is only read: the caller still owns and frees it, and may do so
/// at once. On success `*out_client` is a new handle that the caller owns
/// and frees with `fieldreport_client_free`; on failure it is NULL.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_client_open(
    config: *const fieldreport_config,
    out_client: *mut *mut fieldreport_client,
) -> fieldreport_status {
    guard(|| {
        let out_client = out(out_client, "out_client", std::ptr::null_mut())?;
        let config = &handle(config, "config")?.config;
        let secret = config.server.api_key.expose().to_string();
        let client = Client::open(config.clone()).map_err(|e| Fail::from_error(e, &secret))?;
        let secret = Arc::new(Mutex::new(secret));
        let slot = Arc::new(CallbackSlot::new(Arc::clone(&secret)));
        client.set_listener(Some(Arc::new(Relay(Arc::clone(&slot)))));
        *out_client = Box::into_raw(Box::new(fieldreport_client {
            client,
            slot,
            secret,
        }));
        Ok(())
    })
}

/// Stops the background sender (waiting for the request under way), then
/// frees the client. `client` may be NULL. Reports stay in the outbox for
/// the next open. No other call on this client may be under way or follow.
/// Called from inside the event callback it does nothing (freeing there
/// would wait for the callback itself): the handle stays valid and
/// `fieldreport_last_error` says why.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_client_free(client: *mut fieldreport_client) {
    guard_value((), || {
        if client.is_null() {
            return;
        }
        if let Err(fail) = refuse_in_callback("fieldreport_client_free") {
            set_last_error(Some(&fail.message));
            return;
        }
        drop(Box::from_raw(client));
    })
}

/// Stops the background sender (waiting for the request under way) and
/// makes every later call on this client return `FIELDREPORT_STATUS_CLOSED`,
/// while the handle stays valid. Lets a multi-threaded app shut down
/// cleanly: close, let the other threads notice, then free. Blocks as
/// `fieldreport_client_stop_sender` does.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_client_close(
    client: *mut fieldreport_client,
) -> fieldreport_status {
    with_client(client, |c| {
        refuse_in_callback("fieldreport_client_close")?;
        c.client.close();
        Ok(())
    })
}

/// Queues `feedback` as a new report. Returns once the report and copies of
/// its attachments are durable on disk (blocks on disk I/O and fsync, and
/// copying attachments); makes no network call. On failure nothing was
/// stored. `feedback` is only read: the caller still owns it.
///
/// `out_id` may be NULL; otherwise it receives the report's local id (0 on
/// failure), for `fieldreport_client_report_state` and friends.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_client_submit(
    client: *mut fieldreport_client,
    feedback: *const fieldreport_feedback,
    out_id: *mut i64,
) -> fieldreport_status {
    guard(|| {
        let out_id = opt_out(out_id, 0);
        let c = client_ref(client)?;
        let feedback = handle(feedback, "feedback")?;
        let id = c
            .client
            .submit(feedback.to_feedback())
            .map_err(|e| c.fail(e))?;
        if let Some(o) = out_id {
            *o = id;
        }
        Ok(())
    })
}

/// Queues `crash` as a new report: the log is gzip-compressed (streamed) and
/// bound to the crash file element. Blocks like `fieldreport_client_submit`;
/// makes no network call; on failure nothing was stored. `crash` is only
/// read: the caller still owns it. `out_id` may be NULL; otherwise it
/// receives the report's local id (0 on failure).
#[no_mangle]
pub unsafe extern "C" fn fieldreport_client_submit_crash(
    client: *mut fieldreport_client,
    crash: *const fieldreport_crash,
    out_id: *mut i64,
) -> fieldreport_status {
    guard(|| {
        let out_id = opt_out(out_id, 0);
        let c = client_ref(client)?;
        let crash = handle(crash, "crash")?;
        let id = c
            .client
            .submit_crash(crash.to_crash())
            .map_err(|e| c.fail(e))?;
        if let Some(o) = out_id {
            *o = id;
        }
        Ok(())
    })
}

/// Queues `feedback_count` feedback builders and `crash_count` crash
/// builders as one batch, all or nothing: feedback first, then crashes,
/// each in array order. Every report is checked and its attachments copied,
/// then all are committed together. Blocks like `fieldreport_client_submit`
/// (but with one disk sync for the whole batch); makes no network call. On
/// failure nothing of the batch was stored.
///
/// `feedback` is an array of `feedback_count` pointers and `crashes` one of
/// `crash_count` pointers; either array may be NULL when its count is 0. No
/// element may be NULL (`FIELDREPORT_STATUS_NULL_ARGUMENT`, naming the
/// index). The arrays and the builders are only read: the caller still owns
/// them. An error about one report keeps its status, and its message names
/// the report with `batch item N:` (except `ATTACHMENT_TOO_LARGE`, which
/// names the file, and `STORAGE_FULL`), N counting from 0 over the whole
/// batch: item N is `feedback[N]` when N < `feedback_count`, else
/// `crashes[N - feedback_count]`. A batch larger than the policy's
/// `FIELDREPORT_POLICY_MAX_REPORTS` is refused with
/// `FIELDREPORT_STATUS_OUTBOX_FULL`. Both counts 0: OK, nothing stored.
///
/// `out_ids` may be NULL; otherwise it is an array of `feedback_count +
/// crash_count` elements, owned by the caller, that receives the reports'
/// local ids in batch order. Every element is set to 0 first, and stays 0
/// on failure.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_client_submit_many(
    client: *mut fieldreport_client,
    feedback: *const *const fieldreport_feedback,
    feedback_count: usize,
    crashes: *const *const fieldreport_crash,
    crash_count: usize,
    out_ids: *mut i64,
) -> fieldreport_status {
    guard(|| {
        // An array longer than this cannot exist in memory.
        const MAX_ITEMS: usize = isize::MAX as usize / std::mem::size_of::<i64>();
        let total = feedback_count
            .checked_add(crash_count)
            .filter(|n| *n <= MAX_ITEMS)
            .ok_or_else(|| {
                Fail::input(format!(
                    "feedback_count ({feedback_count}) + crash_count ({crash_count}) is too large"
                ))
            })?;
        let out_ids = if out_ids.is_null() || total == 0 {
            None
        } else {
            let ids = std::slice::from_raw_parts_mut(out_ids, total);
            ids.fill(0);
            Some(ids)
        };
        let c = client_ref(client)?;
        let feedback = array(feedback, feedback_count, "feedback", "feedback_count")?;
        let crashes = array(crashes, crash_count, "crashes", "crash_count")?;
        let mut batch = Vec::with_capacity(total.min(4096));
        for (i, f) in feedback.iter().enumerate() {
            let f = handle(*f, &format!("feedback[{i}]"))?;
            batch.push(Submission::Feedback(f.to_feedback()));
        }
        for (i, k) in crashes.iter().enumerate() {
            let k = handle(*k, &format!("crashes[{i}]"))?;
            batch.push(Submission::Crash(k.to_crash()));
        }
        let ids = c.client.submit_many(batch).map_err(|e| c.fail(e))?;
        if let Some(o) = out_ids {
            o.copy_from_slice(&ids);
        }
        Ok(())
    })
}

/// Delivers what is due, oldest first, until done or `budget_ms`
/// milliseconds are spent (a request under way is finished, within its own
/// timeouts; budgets above a day are cut to a day; 0 sends nothing). BLOCKS
/// on the network: call it from a worker thread, not a UI thread, or use
/// `fieldreport_client_start_sender` instead. One flush runs at a time per
/// outbox, across threads and processes. The event callback, if set, is
/// called on this thread during the flush.
///
/// Network trouble is not a failure of the call: it returns
/// `FIELDREPORT_STATUS_OK` and the result tells what happened to each
/// report and why the flush stopped. `out_result` may be NULL; otherwise it
/// receives a result the caller owns and frees with
/// `fieldreport_flush_result_free` (NULL on failure).
#[no_mangle]
pub unsafe extern "C" fn fieldreport_client_flush(
    client: *mut fieldreport_client,
    budget_ms: u64,
    out_result: *mut *mut fieldreport_flush_result,
) -> fieldreport_status {
    guard(|| {
        let out_result = opt_out(out_result, std::ptr::null_mut());
        let c = client_ref(client)?;
        let budget = Duration::from_millis(budget_ms).min(MAX_FLUSH_BUDGET);
        let result = c.client.flush(budget).map_err(|e| c.fail(e))?;
        if let Some(o) = out_result {
            *o = Box::into_raw(Box::new(fieldreport_flush_result::new(
                &result,
                &c.secret(),
            )));
        }
        Ok(())
    })
}

/// Writes the state of report `id` to `*out_state` (0 on failure).
/// `FIELDREPORT_STATUS_NOT_FOUND` when no such report exists (never
/// submitted, purged, or pruned after delivery). Blocks briefly on disk.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_client_report_state(
    client: *mut fieldreport_client,
    id: i64,
    out_state: *mut fieldreport_report_state,
) -> fieldreport_status {
    guard(|| {
        // Written as a plain int32: 0 is no state.
        let slot = out(out_state.cast::<i32>(), "out_state", 0)?;
        let c = client_ref(client)?;
        let status = c.client.report(id).map_err(|e| c.fail(e))?;
        *slot = fieldreport_report_state::from(status.state) as i32;
        Ok(())
    })
}

/// Everything known about report `id` as a JSON document (state, attempts,
/// server key and URL, last error, each attachment's state; see
/// `bindings/c/README.md`). On success `*out_json` is a string the caller
/// frees with `fieldreport_string_free`; on failure NULL. Blocks briefly on
/// disk.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_client_report_json(
    client: *mut fieldreport_client,
    id: i64,
    out_json: *mut *mut c_char,
) -> fieldreport_status {
    put_string(out_json, client, |c| {
        let status = c.client.report(id).map_err(|e| c.fail(e))?;
        Ok(json::to_text(json::report(&status), &c.secret()))
    })
}

/// Lists reports as a JSON array of the documents of
/// `fieldreport_client_report_json`, newest first. `state_mask` selects
/// states: bit `1 << FIELDREPORT_REPORT_STATE_x` for each wanted state, or 0
/// for all; `limit` caps the count, 0 for no cap. On success `*out_json` is
/// a string the caller frees with `fieldreport_string_free`; on failure
/// NULL. Blocks briefly on disk.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_client_list_json(
    client: *mut fieldreport_client,
    state_mask: u32,
    limit: u32,
    out_json: *mut *mut c_char,
) -> fieldreport_status {
    put_string(out_json, client, |c| {
        let all = [
            ReportState::Queued,
            ReportState::Created,
            ReportState::Delivered,
            ReportState::Dead,
            ReportState::Evicted,
        ];
        let known: u32 = all
            .iter()
            .map(|s| 1u32 << fieldreport_report_state::from(*s) as i32)
            .sum();
        if state_mask & !known != 0 {
            return Err(Fail::input(format!(
                "state_mask {state_mask:#x} has bits that are no report state"
            )));
        }
        let filter = ReportFilter {
            states: all
                .into_iter()
                .filter(|s| state_mask & (1u32 << fieldreport_report_state::from(*s) as i32) != 0)
                .collect(),
            kind: None,
            limit: (limit > 0).then_some(limit),
        };
        let list = c.client.reports(&filter).map_err(|e| c.fail(e))?;
        let docs: Vec<_> = list.iter().map(json::report).collect();
        Ok(json::to_text(serde_json::Value::Array(docs), &c.secret()))
    })
}

/// Fills `*out_stats` with queue statistics (counts, bytes, consent, pause).
/// The caller owns the struct; on failure it is zeroed (and its "none"
/// fields -1). Blocks briefly on disk.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_client_stats(
    client: *mut fieldreport_client,
    out_stats: *mut fieldreport_stats,
) -> fieldreport_status {
    guard(|| {
        let slot = out(out_stats, "out_stats", fieldreport_stats::zero())?;
        let c = client_ref(client)?;
        let stats = c.client.stats().map_err(|e| c.fail(e))?;
        *slot = fieldreport_stats::new(&stats);
        Ok(())
    })
}

/// Queue statistics as a JSON document, including the last delivery error
/// and where a corrupt outbox was moved. On success `*out_json` is a string
/// the caller frees with `fieldreport_string_free`; on failure NULL. Blocks
/// briefly on disk.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_client_stats_json(
    client: *mut fieldreport_client,
    out_json: *mut *mut c_char,
) -> fieldreport_status {
    put_string(out_json, client, |c| {
        let stats = c.client.stats().map_err(|e| c.fail(e))?;
        Ok(json::to_text(json::stats(&stats), &c.secret()))
    })
}

/// Puts dead report `id` back in the queue, where it left off.
/// `FIELDREPORT_STATUS_INVALID_STATE` when it is not dead,
/// `FIELDREPORT_STATUS_NOT_FOUND` when it does not exist. Wakes the
/// background sender. Blocks briefly on disk.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_client_retry(
    client: *mut fieldreport_client,
    id: i64,
) -> fieldreport_status {
    with_client(client, |c| c.client.retry(id).map_err(|e| c.fail(e)))
}

/// Deletes report `id` and its attachment copies, whatever its state.
/// `FIELDREPORT_STATUS_NOT_FOUND` when it does not exist. Blocks briefly on
/// disk.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_client_purge(
    client: *mut fieldreport_client,
    id: i64,
) -> fieldreport_status {
    with_client(client, |c| c.client.purge(id).map_err(|e| c.fail(e)))
}

/// Deletes every report (for example when the user revokes consent).
/// Blocks on disk.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_client_purge_all(
    client: *mut fieldreport_client,
) -> fieldreport_status {
    with_client(client, |c| c.client.purge_all().map_err(|e| c.fail(e)))
}

/// Records the user's consent to sending. Without it, reports are kept but
/// not sent. The choice is stored in the outbox and outlives the process.
/// Blocks briefly on disk.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_client_set_consent(
    client: *mut fieldreport_client,
    granted: bool,
) -> fieldreport_status {
    with_client(client, |c| {
        c.client.set_consent(granted).map_err(|e| c.fail(e))
    })
}

/// The app's word on connectivity: while offline nothing is sent; coming
/// back online wakes the background sender. Starts online. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_client_set_online(
    client: *mut fieldreport_client,
    online: bool,
) -> fieldreport_status {
    with_client(client, |c| {
        c.client.set_online(online);
        Ok(())
    })
}

/// The app's word on a metered network: attachments larger than the
/// policy's metered limit wait for an unmetered one. Starts unmetered.
/// Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_client_set_metered(
    client: *mut fieldreport_client,
    metered: bool,
) -> fieldreport_status {
    with_client(client, |c| {
        c.client.set_metered(metered);
        Ok(())
    })
}

/// Replaces the API key (after the server refused the old one: an event of
/// kind `PAUSED`); delivery paused for the old key resumes. The key is
/// copied and never appears in any message. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_client_set_api_key(
    client: *mut fieldreport_client,
    api_key: *const c_char,
) -> fieldreport_status {
    with_client(client, |c| {
        let key = text(api_key, "api_key")?;
        c.client.set_api_key(key).map_err(|e| c.fail(e))?;
        *c.secret.lock().unwrap_or_else(|p| p.into_inner()) = key.to_string();
        Ok(())
    })
}

/// Starts the background sender: one thread that flushes when a report is
/// submitted, when the network comes back, when a retry falls due and at
/// least every `FIELDREPORT_POLICY_SENDER_INTERVAL_MS`. Idempotent. The
/// event callback is then called on that thread. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_client_start_sender(
    client: *mut fieldreport_client,
) -> fieldreport_status {
    with_client(client, |c| c.client.start_sender().map_err(|e| c.fail(e)))
}

/// Stops the background sender and waits for its thread to end: BLOCKS
/// until the request under way finishes (within its timeouts). Idempotent.
/// Refused with `FIELDREPORT_STATUS_IN_CALLBACK` from inside the callback.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_client_stop_sender(
    client: *mut fieldreport_client,
) -> fieldreport_status {
    with_client(client, |c| {
        refuse_in_callback("fieldreport_client_stop_sender")?;
        c.client.stop_sender();
        Ok(())
    })
}

/// Sets the event callback, replacing any earlier one; `callback` NULL
/// removes it. `user_data` (may be NULL) is passed to every call and must
/// stay valid, and usable from the threads the callback runs on (see
/// `fieldreport_event_callback`), until the callback is replaced or the
/// client freed.
///
/// When this returns, no call of an earlier callback is running any more
/// (it waits for calls under way on other threads) and none will start:
/// its `user_data` may be freed. Refused with
/// `FIELDREPORT_STATUS_IN_CALLBACK` from inside the callback.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_client_set_callback(
    client: *mut fieldreport_client,
    callback: fieldreport_event_callback,
    user_data: *mut c_void,
) -> fieldreport_status {
    with_client(client, |c| {
        refuse_in_callback("fieldreport_client_set_callback")?;
        c.slot.set(callback, user_data);
        Ok(())
    })
}
