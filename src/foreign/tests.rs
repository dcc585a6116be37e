//! The uniffi layer's conversions and client, tested without a foreign language.

use super::*;

pub(super) fn config(dir: &str) -> Config {
    Config {
        outbox_dir: dir.into(),
        project_key: "WidgetPro".into(),
        feedback_type_key: "Mobile".into(),
        api_key: "very-secret-key-42".into(),
        base_url: Some("http://127.0.0.1:9/api/v1".into()),
        company: None,
        allow_insecure_http: false,
        client_id_field: None,
        lookup_key: None,
        app: None,
        policy: None,
        context_fields: HashMap::new(),
        crash_element_key: None,
        consent_default: true,
        abc: None,
        apptentive: None,
    }
}

#[test]
fn config_never_prints_the_api_key() {
    let c = config("/tmp/x");
    for text in [format!("{c}"), format!("{c:?}")] {
        assert!(!text.contains("very-secret-key-42"), "{text}");
        assert!(text.contains("redacted"), "{text}");
    }
}

#[test]
fn policy_overrides_only_what_is_set() {
    let mut c = config("/tmp/x");
    c.policy = Some(Policy {
        max_reports: Some(7),
        max_bytes: None,
        max_age: None,
        max_attachment_bytes: None,
        max_attachments: None,
        max_summary_chars: None,
        max_description_chars: None,
        max_fields: None,
        max_field_bytes: None,
        retry_base: Some(Duration::from_millis(10)),
        retry_max: None,
        max_attempts: None,
        max_requests_per_sec: Some(0),
        connect_timeout: None,
        request_timeout: None,
        min_upload_bytes_per_sec: None,
        metered_max_upload_bytes: None,
        auth_probe_interval: None,
        sender_interval: None,
        sender_flush_budget: None,
        keep_delivered: None,
        busy_timeout: None,
        durability: Some(Durability::Normal),
    });
    let core = c.into_core().unwrap();
    let d = core_config::Policy::default();
    assert_eq!(core.policy.max_reports, 7);
    assert_eq!(core.policy.retry_base, Duration::from_millis(10));
    assert_eq!(core.policy.max_requests_per_sec, 0);
    assert_eq!(core.policy.durability, core_config::Durability::Normal);
    assert_eq!(core.policy.max_bytes, d.max_bytes);
    assert_eq!(core.policy.retry_max, d.retry_max);
    assert_eq!(core.crash_element_key, "CrashLog");
}

#[test]
fn fields_must_be_json_text() {
    let ok = Field {
        name: "topic".into(),
        json_value: "23795".into(),
    };
    assert_eq!(ok.into_core().unwrap().1, serde_json::json!(23795));
    let bad = Field {
        name: "title".into(),
        json_value: "not quoted".into(),
    };
    let e = bad.into_core().unwrap_err();
    assert!(
        matches!(&e, FieldReportError::InvalidInput { reason } if reason.contains("\"title\"")),
        "{e:?}"
    );
}

#[test]
fn attachment_needs_exactly_one_source() {
    let a = |path: Option<&str>, data: Option<Vec<u8>>| Attachment {
        element_key: "Screenshot".into(),
        path: path.map(Into::into),
        data,
        file_name: Some("a.png".into()),
        content_type: None,
    };
    assert!(a(Some("/tmp/a.png"), None).into_core().is_ok());
    assert!(a(None, Some(vec![1])).into_core().is_ok());
    for bad in [a(None, None), a(Some("/tmp/a.png"), Some(vec![1]))] {
        assert!(matches!(
            bad.into_core(),
            Err(FieldReportError::InvalidInput { .. })
        ));
    }
}

#[test]
fn errors_keep_the_core_wording() {
    let e = FieldReportError::from(CoreError::InvalidInput {
        reason: "summary is empty".into(),
    });
    assert_eq!(e.to_string(), "invalid input: summary is empty");
    assert_eq!(
        FieldReportError::from(CoreError::NotFound { id: 3 }),
        FieldReportError::NotFound { id: 3 }
    );
}

fn feedback(summary: &str) -> Feedback {
    Feedback {
        summary: summary.into(),
        description: None,
        submitter: None,
        fields: Vec::new(),
        attachments: Vec::new(),
    }
}

fn crash_text(text: Option<&str>) -> CrashReport {
    CrashReport {
        text: text.map(Into::into),
        path: None,
        summary: None,
        description: None,
        submitter: None,
        file_name: None,
        fields: Vec::new(),
        attachments: Vec::new(),
    }
}

#[test]
fn a_batch_item_that_does_not_convert_is_named() {
    let batch = vec![
        Submission::Feedback {
            feedback: feedback("fine"),
        },
        Submission::Crash {
            crash: crash_text(None),
        },
    ];
    match batch_into_core(batch) {
        Err(FieldReportError::InvalidInput { reason }) => {
            assert!(reason.starts_with("batch item 1: "), "{reason}");
            assert!(reason.contains("neither text nor path"), "{reason}");
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    let e = in_batch(2, FieldReportError::NotFound { id: 9 });
    assert_eq!(e, FieldReportError::NotFound { id: 9 });
}

/// A foreign transport that never reaches anything.
struct Unplugged;
impl HttpTransport for Unplugged {
    fn send(&self, _: HttpRequest) -> Result<HttpResponse, TransportError> {
        Err(TransportError::NotSent {
            reason: "unplugged".into(),
        })
    }
}

#[test]
fn submit_many_is_all_or_nothing_with_ids_in_order() {
    let dir = tempfile::tempdir().unwrap();
    // Through a transport: this also runs in a build without HTTP.
    let client = FieldReportClient::open_with_transport(
        config(dir.path().to_str().unwrap()),
        Box::new(Unplugged),
    )
    .unwrap();
    let ids = client
        .submit_many(vec![
            Submission::Feedback {
                feedback: feedback("first"),
            },
            Submission::Crash {
                crash: crash_text(Some("panic: second")),
            },
        ])
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[1], ids[0] + 1);
    assert_eq!(client.report(ids[0]).unwrap().kind, ReportKind::Feedback);
    assert_eq!(client.report(ids[1]).unwrap().kind, ReportKind::Crash);
    assert_eq!(client.submit_many(Vec::new()).unwrap(), Vec::<i64>::new());

    // The core's own refusal of item 1 (a blank summary), after item 0
    // converted and was checked: nothing of the batch is stored.
    let refused = client.submit_many(vec![
        Submission::Feedback {
            feedback: feedback("would be fine"),
        },
        Submission::Feedback {
            feedback: feedback("   "),
        },
    ]);
    match refused {
        Err(FieldReportError::InvalidInput { reason }) => {
            assert!(reason.starts_with("batch item 1: "), "{reason}")
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert_eq!(client.stats().unwrap().pending, 2);
}

#[test]
fn bad_config_is_invalid_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path().to_str().unwrap());
    c.project_key = "a/b".into();
    match FieldReportClient::new(c) {
        Err(FieldReportError::InvalidConfig { reason }) => {
            assert!(reason.contains("project_key"), "{reason}");
            assert!(!reason.contains("very-secret-key-42"));
        }
        other => panic!("expected InvalidConfig, got {:?}", other.err()),
    }
}

/// A listener that fails on every event, as a foreign one whose
/// exception uniffi hands over.
struct Throwing {
    calls: Arc<std::sync::atomic::AtomicUsize>,
}

impl DeliveryListener for Throwing {
    fn on_event(&self, _: Event) -> Result<(), ListenerError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Err(uniffi::UnexpectedUniFFICallbackError::new(
            "java.lang.IllegalStateException: listener bug\n\tat App.onEvent(App.kt:12)\n\tat x.y(z)",
        )
        .into())
    }
}

#[test]
fn a_throwing_listener_gives_one_line_once() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let adapter = ListenerAdapter::new(Box::new(Throwing {
        calls: calls.clone(),
    }));
    let event = || Event::Evicted {
        id: 1,
        reason: "cap".into(),
    };
    let line = adapter
        .deliver(event())
        .expect("the first exception is reported");
    assert!(!line.contains('\n'), "{line}");
    assert!(
        line.contains("java.lang.IllegalStateException: listener bug"),
        "{line}"
    );
    assert!(
        !line.contains("App.kt"),
        "the stack trace is left out: {line}"
    );
    // Every later event still reaches the listener, silently.
    assert_eq!(adapter.deliver(event()), None);
    assert_eq!(adapter.deliver(event()), None);
    assert_eq!(calls.load(Ordering::Relaxed), 3);
}

#[test]
fn a_listener_failure_line_is_bounded() {
    let long = ListenerError::Failed {
        reason: "é".repeat(1000),
    };
    let line = listener_failure_line(&long);
    assert!(line.len() < MAX_LISTENER_LINE + 200, "{}", line.len());
    assert!(line.contains('…'));
    let empty = ListenerError::Failed {
        reason: "\n\tat x".into(),
    };
    assert!(listener_failure_line(&empty).contains("(no message)"));
}
