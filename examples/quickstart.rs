//! A first run of fieldreport against the local sandbox:
//! `cargo run --example quickstart`.
//!
//! In an app, replace the sandbox with
//! `ServerConfig::centercode("your-company", "ProjectKey", "FeedbackTypeKey", api_key)`
//! and point the outbox at the app's private data directory.

use std::sync::Arc;
use std::time::Duration;

use fieldreport::sandbox::{Sandbox, SandboxConfig};
use fieldreport::{
    Attachment, Client, Config, CrashReport, Event, Feedback, Listener, ServerConfig,
};

/// Prints what the library tells the app.
struct PrintListener;

impl Listener for PrintListener {
    fn on_event(&self, event: Event) {
        match event {
            Event::Delivered { receipt } => println!(
                "delivered report {} as {}",
                receipt.id,
                receipt.server_key.unwrap_or_default()
            ),
            other => println!("event: {other:?}"),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sandbox = Sandbox::start(SandboxConfig::default())?;
    let outbox =
        std::env::temp_dir().join(format!("fieldreport-quickstart-{}", std::process::id()));

    let mut config = Config::new(
        &outbox,
        ServerConfig::with_base_url(sandbox.base_url(), "WidgetPro", "Mobile", sandbox.api_key()),
    );
    config.app.name = Some("Quickstart".into());
    config.app.version = Some("1.0.0".into());
    let client = Client::open(config)?;
    client.set_listener(Some(Arc::new(PrintListener)));

    let id = client.submit(
        Feedback::new("The export button does nothing")
            .description("Tapped Export on the report screen; no file appeared.")
            .submitter("tester@example.com")
            .attach(Attachment::from_bytes(
                "Screenshot",
                "export.png",
                vec![0x89, b'P', b'N', b'G'],
            )),
    )?;
    println!("queued feedback as local report {id}");
    client.submit_crash(CrashReport::from_text(
        "SIGABRT in export_report\n  at export.c:120\n  at main.c:33\n",
    ))?;

    let result = client.flush(Duration::from_secs(30))?;
    println!(
        "pending after flush: {}, dead: {}",
        result.pending, result.dead
    );
    let stats = client.stats()?;
    println!("delivered so far: {}", stats.delivered);

    drop(client);
    std::fs::remove_dir_all(&outbox)?;
    Ok(())
}
