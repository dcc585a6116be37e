//! The C ABI: a thin layer of `extern "C"` functions over [`Client`].
//!
//! The header `bindings/c/fieldreport.h` is generated from this module by
//! cbindgen (settings in `cbindgen.toml`); `tests/c_header.rs` fails when
//! the committed header differs from what these sources produce, and
//! `bindings/c/generate-header.sh` rewrites it. Every `///` comment here
//! becomes a comment in the header, so each one says who owns what and
//! whether the call blocks.
//!
//! # Conventions (the same for every function)
//!
//! - Names are `fieldreport_<object>_<verb>`. Objects are opaque handles
//!   created by a `_new` or `_open` function and released by the matching
//!   `_free` function; nothing else frees them.
//! - Every fallible function returns a [`fieldreport_status`]; results come
//!   back through out-pointers, which are set to NULL (or zero) first, so a
//!   failed call never leaves a stale value behind.
//! - After a call that returned a status, [`fieldreport_last_error`] copies a
//!   readable message about it (empty after `FIELDREPORT_STATUS_OK`). The
//!   message is per thread and never contains the API key.
//! - Pointer arguments must not be NULL unless their documentation says
//!   "may be NULL"; a NULL one is refused with
//!   `FIELDREPORT_STATUS_NULL_ARGUMENT`, never a crash.
//! - Text arguments are NUL-terminated UTF-8; anything else is refused with
//!   `FIELDREPORT_STATUS_INVALID_UTF8`. Paths are the exception on Unix:
//!   they are passed to the operating system as the bytes given.
//! - Strings returned through `char **` out-pointers are allocated by the
//!   library and freed with [`fieldreport_string_free`]; `const char *`
//!   returned by accessors are borrowed from their handle.
//! - No panic crosses into C: each function catches it and returns
//!   `FIELDREPORT_STATUS_PANIC` (or a neutral value for functions without a
//!   status), leaving the library usable.
//! - Nothing here needs a particular thread. A client may be used from many
//!   threads at once; a config, feedback or crash builder from one thread at
//!   a time. Freeing a handle while another thread uses it is undefined, as
//!   with `free(3)`.
//!
//! Safety: every function is `unsafe extern "C"`; its contract (valid,
//! live pointers of the documented kind) is stated in its documentation,
//! which is what C callers read, so `clippy::missing_safety_doc` is off for
//! this module.

#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use crate::error::Error;

// The header lists items in this order (what to open, what to submit, the
// client, what comes back); blank lines keep rustfmt from sorting them.
mod config;

mod report;

mod client;

mod event;

mod json;

pub use client::*;
pub use config::*;
pub use event::*;
pub use report::*;

/// The result of every fallible function. The numbers are stable forever:
/// a value, once published, keeps its meaning, and new ones are only added.
/// 1 to 99 mirror the library's own errors; 100 and above come from the C
/// layer itself. Get the message with `fieldreport_last_error`, and a
/// constant's name with `fieldreport_status_name`.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum fieldreport_status {
    /// Success.
    Ok = 0,
    /// The configuration cannot be used; nothing was opened.
    InvalidConfig = 1,
    /// An argument or report was refused (empty summary, bad field name,
    /// malformed JSON, ...); the outbox is unchanged.
    InvalidInput = 2,
    /// An attachment is larger than the policy or the server accepts; the
    /// outbox is unchanged.
    AttachmentTooLarge = 3,
    /// An attachment or crash log file could not be read (missing, a
    /// directory, no permission); the outbox is unchanged.
    AttachmentUnreadable = 4,
    /// The disk is full; the report was not accepted, the outbox is unchanged.
    StorageFull = 5,
    /// The outbox's caps are reached with reports that may not be evicted;
    /// the new report was not accepted.
    OutboxFull = 6,
    /// The outbox could not be read or written.
    Storage = 7,
    /// No report with this id exists in the outbox.
    NotFound = 8,
    /// The call does not apply to the report's current state (for example
    /// retrying a report that is not dead).
    InvalidState = 9,
    /// The client has been closed with `fieldreport_client_close`.
    Closed = 10,
    /// A pointer argument that must not be NULL was NULL.
    NullArgument = 100,
    /// A text argument was not valid UTF-8.
    InvalidUtf8 = 101,
    /// The library panicked (a bug). The call had no effect, or only part of
    /// one that needs no cleanup; the library stays usable.
    Panic = 102,
    /// The call is not allowed from inside the event callback (it would
    /// wait for the callback itself to return).
    InCallback = 103,
}

impl fieldreport_status {
    fn name(self) -> &'static CStr {
        match self {
            fieldreport_status::Ok => c"FIELDREPORT_STATUS_OK",
            fieldreport_status::InvalidConfig => c"FIELDREPORT_STATUS_INVALID_CONFIG",
            fieldreport_status::InvalidInput => c"FIELDREPORT_STATUS_INVALID_INPUT",
            fieldreport_status::AttachmentTooLarge => c"FIELDREPORT_STATUS_ATTACHMENT_TOO_LARGE",
            fieldreport_status::AttachmentUnreadable => c"FIELDREPORT_STATUS_ATTACHMENT_UNREADABLE",
            fieldreport_status::StorageFull => c"FIELDREPORT_STATUS_STORAGE_FULL",
            fieldreport_status::OutboxFull => c"FIELDREPORT_STATUS_OUTBOX_FULL",
            fieldreport_status::Storage => c"FIELDREPORT_STATUS_STORAGE",
            fieldreport_status::NotFound => c"FIELDREPORT_STATUS_NOT_FOUND",
            fieldreport_status::InvalidState => c"FIELDREPORT_STATUS_INVALID_STATE",
            fieldreport_status::Closed => c"FIELDREPORT_STATUS_CLOSED",
            fieldreport_status::NullArgument => c"FIELDREPORT_STATUS_NULL_ARGUMENT",
            fieldreport_status::InvalidUtf8 => c"FIELDREPORT_STATUS_INVALID_UTF8",
            fieldreport_status::Panic => c"FIELDREPORT_STATUS_PANIC",
            fieldreport_status::InCallback => c"FIELDREPORT_STATUS_IN_CALLBACK",
        }
    }

    const ALL: [fieldreport_status; 15] = [
        fieldreport_status::Ok,
        fieldreport_status::InvalidConfig,
        fieldreport_status::InvalidInput,
        fieldreport_status::AttachmentTooLarge,
        fieldreport_status::AttachmentUnreadable,
        fieldreport_status::StorageFull,
        fieldreport_status::OutboxFull,
        fieldreport_status::Storage,
        fieldreport_status::NotFound,
        fieldreport_status::InvalidState,
        fieldreport_status::Closed,
        fieldreport_status::NullArgument,
        fieldreport_status::InvalidUtf8,
        fieldreport_status::Panic,
        fieldreport_status::InCallback,
    ];
}

/// The status for each public error. Exhaustive on purpose: a new
/// [`Error`] variant does not compile until it has its own number.
fn status_of(e: &Error) -> fieldreport_status {
    match e {
        Error::InvalidConfig { .. } => fieldreport_status::InvalidConfig,
        Error::InvalidInput { .. } => fieldreport_status::InvalidInput,
        Error::AttachmentTooLarge { .. } => fieldreport_status::AttachmentTooLarge,
        Error::AttachmentUnreadable { .. } => fieldreport_status::AttachmentUnreadable,
        Error::StorageFull => fieldreport_status::StorageFull,
        Error::OutboxFull { .. } => fieldreport_status::OutboxFull,
        Error::Storage { .. } => fieldreport_status::Storage,
        Error::NotFound { .. } => fieldreport_status::NotFound,
        Error::InvalidState { .. } => fieldreport_status::InvalidState,
        Error::Closed => fieldreport_status::Closed,
    }
}

// ---------------------------------------------------------------------------
// Failures, the last error, and the panic boundary
// ---------------------------------------------------------------------------

/// A failed call: its status and the message kept for `fieldreport_last_error`.
pub(crate) struct Fail {
    status: fieldreport_status,
    message: String,
}

impl Fail {
    pub(crate) fn new(status: fieldreport_status, message: impl Into<String>) -> Fail {
        Fail {
            status,
            message: message.into(),
        }
    }

    /// A library error, with `secret` (the API key) removed from its text.
    pub(crate) fn from_error(e: Error, secret: &str) -> Fail {
        Fail::new(status_of(&e), redact(&e.to_string(), secret))
    }

    pub(crate) fn input(message: impl Into<String>) -> Fail {
        Fail::new(fieldreport_status::InvalidInput, message)
    }

    pub(crate) fn config(message: impl Into<String>) -> Fail {
        Fail::new(fieldreport_status::InvalidConfig, message)
    }
}

pub(crate) type FfiResult<T = ()> = Result<T, Fail>;

/// Secrets shorter than this are not searched for: replacing every "a" in
/// a message would only garble it (and such keys are refused anyway).
const MIN_SECRET_LEN: usize = 4;

/// Replaces every occurrence of `secret` in `text` by `<redacted>`.
pub(crate) fn redact(text: &str, secret: &str) -> String {
    if secret.len() < MIN_SECRET_LEN {
        return text.to_string();
    }
    text.replace(secret, "<redacted>")
}

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

fn set_last_error(message: Option<&str>) {
    let value = message.map(to_cstring);
    // `try_with`: during thread teardown the slot may be gone; then there is
    // nobody left to read the message anyway.
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = value;
        }
    });
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    format!("internal error: the library panicked ({what}); please report this bug")
}

/// Runs the body of a status-returning function: catches panics, and
/// records the message of a failure (or clears it on success).
pub(crate) fn guard(f: impl FnOnce() -> FfiResult) -> fieldreport_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => {
            set_last_error(None);
            fieldreport_status::Ok
        }
        Ok(Err(fail)) => {
            set_last_error(Some(&fail.message));
            fail.status
        }
        Err(payload) => {
            set_last_error(Some(&panic_message(&*payload)));
            fieldreport_status::Panic
        }
    }
}

/// Runs the body of a function without a status: a panic returns `fallback`
/// (and leaves its message as the last error).
pub(crate) fn guard_value<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => {
            set_last_error(Some(&panic_message(&*payload)));
            fallback
        }
    }
}

// ---------------------------------------------------------------------------
// Argument helpers
// ---------------------------------------------------------------------------

fn null(what: &str) -> Fail {
    Fail::new(fieldreport_status::NullArgument, format!("{what} is NULL"))
}

/// A required text argument.
pub(crate) unsafe fn text<'a>(p: *const c_char, what: &str) -> FfiResult<&'a str> {
    if p.is_null() {
        return Err(null(what));
    }
    let bytes = CStr::from_ptr(p).to_bytes();
    std::str::from_utf8(bytes).map_err(|e| {
        Fail::new(
            fieldreport_status::InvalidUtf8,
            format!(
                "{what} is not valid UTF-8 (bad byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// An optional text argument: NULL is `None`.
pub(crate) unsafe fn opt_text<'a>(p: *const c_char, what: &str) -> FfiResult<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        text(p, what).map(Some)
    }
}

/// A path argument: on Unix the bytes as given, elsewhere UTF-8.
pub(crate) unsafe fn path(p: *const c_char, what: &str) -> FfiResult<PathBuf> {
    if p.is_null() {
        return Err(null(what));
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(
            CStr::from_ptr(p).to_bytes(),
        )))
    }
    #[cfg(not(unix))]
    {
        text(p, what).map(PathBuf::from)
    }
}

/// A handle passed for reading.
pub(crate) unsafe fn handle<'a, T>(p: *const T, what: &str) -> FfiResult<&'a T> {
    p.as_ref().ok_or_else(|| null(what))
}

/// A handle passed for changing.
pub(crate) unsafe fn handle_mut<'a, T>(p: *mut T, what: &str) -> FfiResult<&'a mut T> {
    p.as_mut().ok_or_else(|| null(what))
}

/// An out-pointer, reset to `empty` before anything else can fail.
pub(crate) unsafe fn out<'a, T>(p: *mut T, what: &str, empty: T) -> FfiResult<&'a mut T> {
    if p.is_null() {
        return Err(null(what));
    }
    p.write(empty);
    Ok(&mut *p)
}

/// An optional out-pointer: NULL means the caller does not want the value.
pub(crate) unsafe fn opt_out<'a, T>(p: *mut T, empty: T) -> Option<&'a mut T> {
    if p.is_null() {
        None
    } else {
        p.write(empty);
        Some(&mut *p)
    }
}

/// A C string of `s`; a NUL inside (which C could not see past) becomes U+FFFD.
pub(crate) fn to_cstring(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| {
        CString::new(s.replace('\0', "\u{fffd}")).expect("no NUL left after replacing them")
    })
}

/// A string handed to C, to be freed with `fieldreport_string_free`.
pub(crate) fn owned_string(s: &str) -> *mut c_char {
    to_cstring(s).into_raw()
}

// ---------------------------------------------------------------------------
// Library-wide functions
// ---------------------------------------------------------------------------

/// Copies the message about the last call on this thread that returned a
/// status into `buf`, like `snprintf`: at most `len - 1` bytes (cut at a
/// UTF-8 character boundary) and a terminating NUL. Returns the full
/// message's length in bytes, without the NUL; when that is `>= len`, the
/// message was cut, and a buffer of the returned length plus one holds it.
/// Returns 0 (and writes an empty string) when the last call succeeded.
///
/// `buf` may be NULL when `len` is 0, to ask for the length. The caller owns
/// `buf`. Never blocks; never fails; does not change the last error.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_last_error(buf: *mut c_char, len: usize) -> usize {
    guard_value(0, || {
        LAST_ERROR
            .try_with(|slot| {
                let slot = slot.borrow();
                let msg: &[u8] = slot.as_ref().map(|c| c.to_bytes()).unwrap_or(b"");
                if !buf.is_null() && len > 0 {
                    let mut n = msg.len().min(len - 1);
                    // Do not cut a UTF-8 sequence in half.
                    while n > 0 && n < msg.len() && (msg[n] & 0xC0) == 0x80 {
                        n -= 1;
                    }
                    std::ptr::copy_nonoverlapping(msg.as_ptr(), buf.cast::<u8>(), n);
                    *buf.add(n) = 0;
                }
                msg.len()
            })
            .unwrap_or(0)
    })
}

/// The name of a status constant, e.g. `"FIELDREPORT_STATUS_NOT_FOUND"`, or
/// `"FIELDREPORT_STATUS_UNKNOWN"` for a number this version does not know.
/// The string is static: never free it. Never blocks.
#[no_mangle]
pub extern "C" fn fieldreport_status_name(status: i32) -> *const c_char {
    guard_value(c"FIELDREPORT_STATUS_UNKNOWN".as_ptr(), || {
        fieldreport_status::ALL
            .iter()
            .find(|s| **s as i32 == status)
            .map(|s| s.name())
            .unwrap_or(c"FIELDREPORT_STATUS_UNKNOWN")
            .as_ptr()
    })
}

/// The library's version, e.g. `"0.1.0"`. The string is static: never free
/// it. Never blocks.
#[no_mangle]
pub extern "C" fn fieldreport_version() -> *const c_char {
    guard_value(std::ptr::null(), || {
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
    })
}

/// Frees a string that the library returned through a `char **`
/// out-pointer (JSON documents). `s` may be NULL (nothing happens). Passing
/// any other pointer, or the same one twice, is undefined. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_string_free(s: *mut c_char) {
    guard_value((), || {
        if !s.is_null() {
            drop(CString::from_raw(s));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_error() -> String {
        let n = unsafe { fieldreport_last_error(std::ptr::null_mut(), 0) };
        let mut buf = vec![0 as c_char; n + 1];
        let m = unsafe { fieldreport_last_error(buf.as_mut_ptr(), buf.len()) };
        assert_eq!(n, m);
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let st = guard(|| panic!("boom"));
        std::panic::set_hook(prev);
        assert_eq!(st, fieldreport_status::Panic);
        assert!(last_error().contains("boom"));
        assert_eq!(guard(|| Ok(())), fieldreport_status::Ok);
        assert_eq!(last_error(), "");
    }

    #[test]
    fn value_functions_fall_back_on_panic() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let v = guard_value(7usize, || panic!("x"));
        std::panic::set_hook(prev);
        assert_eq!(v, 7);
    }

    #[test]
    fn last_error_is_cut_like_snprintf_on_a_char_boundary() {
        let _ = guard(|| Err(Fail::input("ab\u{e9}cd")));
        let full = last_error();
        assert_eq!(full, "ab\u{e9}cd");
        // "ab" + 2-byte é: a 4-byte buffer holds "ab" and the NUL, not half of é.
        let mut buf = [1 as c_char; 4];
        let n = unsafe { fieldreport_last_error(buf.as_mut_ptr(), buf.len()) };
        assert_eq!(n, full.len());
        let got = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_bytes();
        assert_eq!(got, b"ab");
        // len 0 writes nothing.
        let mut one = [7 as c_char; 1];
        unsafe { fieldreport_last_error(one.as_mut_ptr(), 0) };
        assert_eq!(one[0], 7);
    }

    #[test]
    fn errors_are_redacted() {
        let e = Error::InvalidConfig {
            reason: "base URL \"https://h/api?apiKey=s3cret-key\" has a query".into(),
        };
        let f = Fail::from_error(e, "s3cret-key");
        assert_eq!(f.status, fieldreport_status::InvalidConfig);
        assert!(!f.message.contains("s3cret-key"));
        assert!(f.message.contains("<redacted>"));
    }

    #[test]
    fn status_names_and_numbers_are_stable() {
        let expected = [
            (0, "OK"),
            (1, "INVALID_CONFIG"),
            (2, "INVALID_INPUT"),
            (3, "ATTACHMENT_TOO_LARGE"),
            (4, "ATTACHMENT_UNREADABLE"),
            (5, "STORAGE_FULL"),
            (6, "OUTBOX_FULL"),
            (7, "STORAGE"),
            (8, "NOT_FOUND"),
            (9, "INVALID_STATE"),
            (10, "CLOSED"),
            (100, "NULL_ARGUMENT"),
            (101, "INVALID_UTF8"),
            (102, "PANIC"),
            (103, "IN_CALLBACK"),
        ];
        assert_eq!(expected.len(), fieldreport_status::ALL.len());
        for (n, name) in expected {
            let got = unsafe { CStr::from_ptr(fieldreport_status_name(n)) };
            assert_eq!(got.to_str().unwrap(), format!("FIELDREPORT_STATUS_{name}"));
        }
        let unknown = unsafe { CStr::from_ptr(fieldreport_status_name(55)) };
        assert_eq!(unknown.to_str().unwrap(), "FIELDREPORT_STATUS_UNKNOWN");
    }

    #[test]
    fn nul_inside_a_string_is_replaced() {
        assert_eq!(to_cstring("a\0b").to_str().unwrap(), "a\u{fffd}b");
    }
}
