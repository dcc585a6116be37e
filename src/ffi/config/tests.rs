//! The C config object, tested through its C functions.

use super::*;
use crate::AbcConfig;
use std::ffi::CString;

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn last_error() -> String {
    let n = unsafe { super::super::fieldreport_last_error(std::ptr::null_mut(), 0) };
    let mut buf = vec![0 as c_char; n + 1];
    unsafe { super::super::fieldreport_last_error(buf.as_mut_ptr(), buf.len()) };
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn new_abc(project: &str) -> (fieldreport_status, *mut fieldreport_config) {
    let mut out: *mut fieldreport_config = std::ptr::dangling_mut();
    let st = unsafe {
        fieldreport_config_new_abc(
            c("/tmp/outbox").as_ptr(),
            c("http://127.0.0.1:9").as_ptr(),
            c(project).as_ptr(),
            c("2").as_ptr(),
            c("abc-secret-key").as_ptr(),
            &mut out,
        )
    };
    (st, out)
}

fn abc_of(cfg: *mut fieldreport_config) -> AbcConfig {
    match unsafe { &(*cfg).config.destination } {
        Destination::Abc(a) => a.clone(),
        other => panic!("not ABC: {other:?}"),
    }
}

#[test]
fn abc_config_is_checked_when_made() {
    let (st, cfg) = new_abc("seven");
    assert_eq!(st, fieldreport_status::InvalidConfig);
    assert!(cfg.is_null());
    assert!(
        last_error().contains("project_id: must be a number"),
        "{}",
        last_error()
    );

    let (st, cfg) = new_abc("7");
    assert_eq!(st, fieldreport_status::Ok);
    let abc = abc_of(cfg);
    assert_eq!(
        abc.channel_url(),
        "http://127.0.0.1:9/api/projects/7/channels/2"
    );
    assert_eq!(abc.map.summary, "message");
    unsafe { fieldreport_config_free(cfg) };

    let mut out: *mut fieldreport_config = std::ptr::dangling_mut();
    let st = unsafe {
        fieldreport_config_new_abc(
            c("/tmp/o").as_ptr(),
            std::ptr::null(),
            c("1").as_ptr(),
            c("1").as_ptr(),
            c("k").as_ptr(),
            &mut out,
        )
    };
    assert_eq!(st, fieldreport_status::NullArgument);
    assert!(out.is_null());
    assert_eq!(last_error(), "base_url is NULL");
}

#[test]
fn abc_fields_are_set_one_role_at_a_time_and_a_bad_one_changes_nothing() {
    let (_, cfg) = new_abc("1");
    let set = |role: &str, field: Option<&str>| {
        let field = field.map(c);
        unsafe {
            fieldreport_config_set_abc_field(
                cfg,
                c(role).as_ptr(),
                field.as_ref().map_or(std::ptr::null(), |f| f.as_ptr()),
            )
        }
    };
    assert_eq!(
        set("description", Some("description")),
        fieldreport_status::Ok
    );
    assert_eq!(
        set("context.device.os_name", Some("os")),
        fieldreport_status::Ok
    );
    assert_eq!(set("summary", Some("title")), fieldreport_status::Ok);
    let before = abc_of(cfg);
    assert_eq!(before.map.description.as_deref(), Some("description"));
    assert_eq!(before.map.summary, "title");

    assert_eq!(set("title", Some("x")), fieldreport_status::InvalidConfig);
    assert!(last_error().starts_with("invalid configuration: map.title: unknown role"));
    assert_eq!(
        set("submitter", Some("description")),
        fieldreport_status::InvalidConfig
    );
    assert!(last_error().contains("already receives another role"));
    assert_eq!(
        set("client_id", Some("id")),
        fieldreport_status::InvalidConfig
    );
    assert_eq!(set("nonsense", None), fieldreport_status::InvalidConfig);
    assert_eq!(abc_of(cfg), before, "a refused role changes nothing");

    // Again replaces; NULL clears (the summary goes back to `message`).
    assert_eq!(set("description", Some("details")), fieldreport_status::Ok);
    assert_eq!(set("summary", None), fieldreport_status::Ok);
    let after = abc_of(cfg);
    assert_eq!(after.map.description.as_deref(), Some("details"));
    assert_eq!(after.map.summary, "message");
    assert_eq!(after.map.context.len(), 1);

    let names = [c("crash"), c("ui")];
    let ptrs = [names[0].as_ptr(), names[1].as_ptr()];
    let st = unsafe { fieldreport_config_set_abc_issue_names(cfg, ptrs.as_ptr(), 2) };
    assert_eq!(st, fieldreport_status::Ok);
    assert_eq!(abc_of(cfg).issue_names, ["crash", "ui"]);
    let empty = [c(" ")];
    let bad = [empty[0].as_ptr()];
    let st = unsafe { fieldreport_config_set_abc_issue_names(cfg, bad.as_ptr(), 1) };
    assert_eq!(st, fieldreport_status::InvalidConfig);
    assert_eq!(abc_of(cfg).issue_names, ["crash", "ui"]);
    let st = unsafe { fieldreport_config_set_abc_issue_names(cfg, std::ptr::null(), 1) };
    assert_eq!(st, fieldreport_status::NullArgument);
    use crate::destinations::abc::config::ImageMode;
    assert_eq!(abc_of(cfg).image_mode, ImageMode::Multipart, "the default");
    let st = unsafe { fieldreport_config_set_abc_presigned_images(cfg, true) };
    assert_eq!(st, fieldreport_status::Ok);
    assert_eq!(abc_of(cfg).image_mode, ImageMode::Presigned);
    let st = unsafe { fieldreport_config_set_abc_presigned_images(cfg, false) };
    assert_eq!(st, fieldreport_status::Ok);
    assert_eq!(abc_of(cfg).image_mode, ImageMode::Multipart);

    // Centercode's and Apptentive's setters are refused, by name.
    let st = unsafe { fieldreport_config_set_base_url(cfg, c("http://h").as_ptr()) };
    assert_eq!(st, fieldreport_status::InvalidConfig);
    assert!(last_error()
        .contains("fieldreport_config_set_base_url applies only to a config for Centercode"));
    let st = unsafe { fieldreport_config_set_apptentive_max_record_bytes(cfg, 4096) };
    assert_eq!(st, fieldreport_status::InvalidConfig);
    assert!(last_error().contains("this one delivers to abc"));
    // Setters for every destination apply.
    let st =
        unsafe { fieldreport_config_set_policy(cfg, fieldreport_policy::MaxReports as i32, 9) };
    assert_eq!(st, fieldreport_status::Ok);
    assert!(!format!("{:?}", unsafe { &(*cfg).config }).contains("abc-secret-key"));
    unsafe { fieldreport_config_free(cfg) };
}

#[test]
fn apptentive_config_and_its_setters() {
    let mut cfg: *mut fieldreport_config = std::ptr::null_mut();
    let st = unsafe {
        fieldreport_config_new_apptentive(
            c("/tmp/o").as_ptr(),
            c("api.apptentive.com").as_ptr(),
            c("tok-1234").as_ptr(),
            &mut cfg,
        )
    };
    assert_eq!(st, fieldreport_status::InvalidConfig);
    assert!(cfg.is_null());
    assert!(last_error().contains("base_url"), "{}", last_error());
    let st = unsafe {
        fieldreport_config_new_apptentive(
            c("/tmp/o").as_ptr(),
            c("https://api.apptentive.com").as_ptr(),
            c("tok-1234").as_ptr(),
            &mut cfg,
        )
    };
    assert_eq!(st, fieldreport_status::Ok);
    let app = |cfg: *mut fieldreport_config| match unsafe { &(*cfg).config.destination } {
        Destination::Apptentive(a) => a.clone(),
        other => panic!("not Apptentive: {other:?}"),
    };
    let st = unsafe { fieldreport_config_set_apptentive_max_record_bytes(cfg, 10) };
    assert_eq!(st, fieldreport_status::InvalidConfig);
    assert!(last_error().contains("max_record_bytes: must be at least 1024"));
    assert_eq!(app(cfg).max_record_bytes, 32 * 1024 * 1024);
    let st = unsafe { fieldreport_config_set_apptentive_max_record_bytes(cfg, 4096) };
    assert_eq!(st, fieldreport_status::Ok);
    assert_eq!(app(cfg).max_record_bytes, 4096);
    let st =
        unsafe { fieldreport_config_set_apptentive_types(cfg, c("bug").as_ptr(), c("").as_ptr()) };
    assert_eq!(st, fieldreport_status::InvalidConfig);
    assert_eq!(app(cfg).feedback_type, "feedback");
    let st = unsafe {
        fieldreport_config_set_apptentive_types(cfg, c("bug").as_ptr(), c("boom").as_ptr())
    };
    assert_eq!(st, fieldreport_status::Ok);
    assert_eq!(
        (
            app(cfg).feedback_type.as_str(),
            app(cfg).crash_type.as_str()
        ),
        ("bug", "boom")
    );
    let st = unsafe {
        fieldreport_config_set_abc_field(cfg, c("description").as_ptr(), c("d").as_ptr())
    };
    assert_eq!(st, fieldreport_status::InvalidConfig);
    assert!(last_error().contains("applies only to a config for ABC"));
    let st = unsafe { fieldreport_config_set_crash_element_key(cfg, c("Log").as_ptr()) };
    assert_eq!(st, fieldreport_status::InvalidConfig);
    assert!(last_error().contains("this one delivers to apptentive"));
    unsafe { fieldreport_config_free(cfg) };
}

#[test]
fn abc_setters_refuse_a_centercode_config() {
    let mut cfg: *mut fieldreport_config = std::ptr::null_mut();
    let st = unsafe {
        fieldreport_config_new(
            c("/tmp/o").as_ptr(),
            c("P").as_ptr(),
            c("T").as_ptr(),
            c("key-123").as_ptr(),
            &mut cfg,
        )
    };
    assert_eq!(st, fieldreport_status::Ok);
    let st =
        unsafe { fieldreport_config_set_abc_field(cfg, c("summary").as_ptr(), c("m").as_ptr()) };
    assert_eq!(st, fieldreport_status::InvalidConfig);
    assert_eq!(
        last_error(),
        "fieldreport_config_set_abc_field applies only to a config for ABC; this one delivers to centercode"
    );
    let st = unsafe { fieldreport_config_set_abc_presigned_images(cfg, true) };
    assert_eq!(st, fieldreport_status::InvalidConfig);
    let st = unsafe {
        fieldreport_config_set_abc_field(
            std::ptr::null_mut(),
            c("summary").as_ptr(),
            std::ptr::null(),
        )
    };
    assert_eq!(st, fieldreport_status::NullArgument);
    unsafe { fieldreport_config_free(cfg) };
}
