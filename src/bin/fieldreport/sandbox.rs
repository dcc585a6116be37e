//! `sandbox` and `demo`: the local stand-ins (Centercode, ABC, Apptentive),
//! alone or with reports delivered to one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fieldreport::sandbox::{Sandbox, SandboxConfig};
use fieldreport::{
    AbcConfig, ApptentiveConfig, Attachment, Client, Config, CrashReport, Feedback, ReportState,
    ServerConfig,
};
use serde_json::json;

use crate::args::{DestinationArg, SandboxArgs, SandboxKindArg};
use crate::fail::{exit_for, Fail, EXIT_FAILURE, EXIT_OK};

/// What the sandbox offers, for the banner and `help sandbox`: its file
/// elements and its feedback lookup.
pub fn offers() -> String {
    let config = SandboxConfig::default();
    let elements: Vec<String> = config
        .file_elements
        .iter()
        .map(|e| {
            format!(
                "{} ({})",
                e.key,
                if e.accepts_multiple {
                    "several files"
                } else {
                    "one file"
                }
            )
        })
        .collect();
    let lookup = match &config.lookup_key {
        Some(key) => format!("feedback lookup: {key} (for --lookup {key} with --client-id-field)"),
        None => "no feedback lookup".into(),
    };
    format!("file elements: {}\n{lookup}", elements.join(", "))
}

/// `sandbox`: serves until killed. The first line is the one that the
/// bindings' tests parse (`listening at http://127.0.0.1:PORT/api/v1`, or
/// the server's root for ABC and Apptentive).
pub fn sandbox(a: &SandboxArgs) -> Result<u8, Fail> {
    let base = match a.kind {
        SandboxKindArg::Centercode => SandboxConfig::default(),
        SandboxKindArg::Abc => SandboxConfig::abc(),
        SandboxKindArg::Apptentive => SandboxConfig::apptentive(),
    };
    let sb = Sandbox::start(SandboxConfig {
        port: a.port,
        ..base.clone()
    })
    .map_err(|e| Fail(EXIT_FAILURE, format!("cannot start the sandbox: {e}")))?;
    match a.kind {
        SandboxKindArg::Centercode => {
            println!("Centercode sandbox listening at {}", sb.base_url());
            println!(
                "  api key: {}  project: WidgetPro  feedback type: Mobile",
                sb.api_key()
            );
            for line in offers().lines() {
                println!("  {line}");
            }
        }
        SandboxKindArg::Abc => {
            println!("ABC User Feedback sandbox listening at {}", sb.base_url());
            println!(
                "  api key (x-api-key header): {}  project: {}  channel: {}",
                sb.api_key(),
                base.abc.project_id,
                base.abc.channel_id
            );
            let fields: Vec<String> = base
                .abc
                .fields
                .iter()
                .map(|f| format!("{} ({})", f.key, f.format.as_str()))
                .collect();
            println!("  channel fields: {}", fields.join(", "));
        }
        SandboxKindArg::Apptentive => {
            println!("Apptentive sandbox listening at {}", sb.base_url());
            println!("  token (Authorization: OAuth ...): {}", sb.api_key());
            println!("  records: POST {}/records", sb.base_url());
        }
    }
    println!("  state: GET http://127.0.0.1:{}/_sandbox/state", sb.port());
    sb.run_forever()
}

/// A 1×1 PNG, so the demo's screenshot is a real image.
const DEMO_PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0xF0,
    0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D, 0x1D, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

/// The demo's config for a sandbox of the destination's kind.
fn demo_config(
    destination: DestinationArg,
    dir: &std::path::Path,
    sb: &Sandbox,
) -> Result<Config, Fail> {
    Ok(match destination {
        DestinationArg::Centercode => Config::new(
            dir,
            ServerConfig::with_base_url(sb.base_url(), "WidgetPro", "Mobile", sb.api_key()),
        ),
        DestinationArg::Abc => Config::abc(
            dir,
            AbcConfig::new(
                &sb.base_url(),
                "1",
                "1",
                sb.api_key(),
                &[
                    ("description", "description"),
                    ("submitter", "submitter"),
                    ("crash_log", "crash_log"),
                    ("client_id", "client_id"),
                    ("images", "images"),
                    ("context.device.os_name", "os"),
                    ("context.app_version.version", "app_version"),
                ],
            )?,
        ),
        DestinationArg::Apptentive => {
            Config::apptentive(dir, ApptentiveConfig::new(&sb.base_url(), sb.api_key())?)
        }
    })
}

/// `demo`, against a sandbox of the destination's kind.
pub fn demo(destination: DestinationArg) -> Result<u8, Fail> {
    let fail = |what: &str, e: &dyn std::fmt::Display| Fail(EXIT_FAILURE, format!("{what}: {e}"));
    let kind = match destination {
        DestinationArg::Centercode => SandboxConfig::default(),
        DestinationArg::Abc => SandboxConfig::abc(),
        DestinationArg::Apptentive => SandboxConfig::apptentive(),
    };
    let sb = Sandbox::start(kind).map_err(|e| fail("sandbox", &e))?;
    println!("sandbox ({}): {}", sb.kind().as_str(), sb.base_url());
    let dir = std::env::temp_dir().join(format!(
        "fieldreport-demo-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    ));
    let mut config = demo_config(destination, &dir, &sb)?;
    config.app.name = Some("fieldreport-demo".into());
    config.app.version = Some(fieldreport::VERSION.into());
    let client = Client::open(config)?;
    let feedback = client.submit(
        Feedback::new("Lighting presets should be more robust")
            .description("I really wish the app had more lighting preset options.")
            .submitter("jim@example.com")
            .field(
                // A field the sandbox's form (or channel) defines.
                if destination == DestinationArg::Abc {
                    "rating"
                } else {
                    "topic"
                },
                json!(23795),
            )
            .attach(Attachment::from_bytes(
                "Screenshot",
                "screenshot.png",
                DEMO_PNG.to_vec(),
            )),
    )?;
    println!("submitted feedback: local id {feedback}");
    let crash = client.submit_crash(CrashReport::from_text(
        "thread 'render' panicked at src/lighting.rs:42:9:\nindex out of bounds: the len is 3 but the index is 7\nstack backtrace:\n   0: lighting::preset\n",
    ))?;
    println!("submitted crash report: local id {crash}");
    let result = client.flush(Duration::from_secs(30))?;
    for rc in &result.receipts {
        println!(
            "report {} {}: {} {}",
            rc.id,
            rc.state.as_str(),
            rc.server_key.as_deref().unwrap_or("-"),
            rc.server_url.as_deref().unwrap_or("-")
        );
    }
    for up in sb.uploads() {
        println!(
            "  server received {} → {}/{} ({} bytes, sha256 {})",
            up.file_name,
            up.feedback_key,
            up.element_key,
            up.size,
            &up.sha256_hex[..16]
        );
    }
    drop(client);
    let _ = std::fs::remove_dir_all(&dir);
    let ok = result.pending == 0
        && result.dead == 0
        && result
            .receipts
            .iter()
            .all(|r| r.state == ReportState::Delivered && r.rejected_attachments.is_empty());
    if ok {
        println!("demo: all reports delivered");
        Ok(EXIT_OK)
    } else {
        println!("demo: not everything was delivered: {:?}", result.stopped);
        Ok(exit_for(result.pending, result.dead.max(1), 0))
    }
}
