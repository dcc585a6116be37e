//! `fieldreport`: the command-line tool for test rigs and for trying the
//! library. Run `fieldreport help` for usage.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fieldreport::sandbox::{Sandbox, SandboxConfig};
use fieldreport::{
    Attachment, Client, Config, CrashReport, DeliveryError, Error, Feedback, FlushResult,
    ReportFilter, ReportState, ReportStatus, ServerConfig, Stats, Submission,
};
use serde_json::{json, Value};

/// Exit codes a rig can act on.
const EXIT_OK: u8 = 0;
const EXIT_FAILURE: u8 = 1;
const EXIT_BAD_INPUT: u8 = 2;
const EXIT_PENDING: u8 = 3;
const EXIT_DEAD: u8 = 4;

const USAGE: &str = "\
fieldreport — queue feedback and crash logs, deliver them to Centercode

USAGE: fieldreport [GLOBAL OPTIONS] COMMAND [OPTIONS]

GLOBAL OPTIONS (each also read from the environment variable shown)
  --outbox DIR          outbox directory            FIELDREPORT_OUTBOX
  --base-url URL        API base URL                FIELDREPORT_BASE_URL
  --company NAME        Centercode company, for https://NAME.centercode.com/api/v1
                                                    FIELDREPORT_COMPANY
  --project KEY         project key                 FIELDREPORT_PROJECT
  --feedback-type KEY   feedback source key         FIELDREPORT_FEEDBACK_TYPE
  --api-key KEY         API key                     FIELDREPORT_API_KEY

COMMANDS
  submit --summary S [--description D] [--submitter E]
         [--field NAME=VALUE]... [--attach ELEMENT=PATH]...
                        queue feedback; prints the local report id.
                        A VALUE that parses as JSON (23795, true, \"x\") is sent
                        as that JSON value, anything else as a string.
  crash --log PATH [--summary S] [--attach ELEMENT=PATH]...
                        queue a crash log (gzip-compressed); prints the id
  batch FILE            queue many reports at once, all or nothing, from a
                        JSON Lines file (- for stdin); prints one id a line.
                        Each line is an object: {\"summary\": S,
                        \"description\": D, \"submitter\": E, \"fields\": {NAME:
                        VALUE}, \"attach\": {ELEMENT: PATH or [PATH, ...]}};
                        with \"crash_log\": PATH it is a crash report (summary
                        optional). Blank lines are skipped; unknown keys are
                        refused.
  flush [--timeout SECS] [--json]
                        deliver what is due (default budget 60 s)
  status [--id N] [--json]
                        queue statistics, or one report
  retry ID              put a dead report back in the queue
  purge ID              delete one report
  sandbox [--port N]    run the local Centercode sandbox (key sandbox-key,
                        project WidgetPro, feedback type Mobile)
  demo                  start a sandbox, submit a feedback with a screenshot
                        and a crash log, flush, print the created keys
  help                  this text

EXIT CODES
  0  done: everything delivered (flush, status) or the command succeeded
  1  failure: storage or unexpected error
  2  bad configuration or input (nothing was changed)
  3  reports still pending (flush, status)
  4  dead reports in the outbox (flush, status)
";

struct Fail(u8, String);

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        let code = match e {
            Error::InvalidConfig { .. }
            | Error::InvalidInput { .. }
            | Error::AttachmentTooLarge { .. }
            | Error::AttachmentUnreadable { .. }
            | Error::NotFound { .. }
            | Error::InvalidState { .. } => EXIT_BAD_INPUT,
            _ => EXIT_FAILURE,
        };
        Fail(code, e.to_string())
    }
}

fn usage(msg: impl Into<String>) -> Fail {
    Fail(
        EXIT_BAD_INPUT,
        format!("{}\n(run `fieldreport help` for usage)", msg.into()),
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = match std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect::<Result<_, _>>()
    {
        Ok(a) => a,
        Err(bad) => {
            eprintln!("fieldreport: argument {bad:?} is not valid UTF-8");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    match run(args) {
        Ok(code) => ExitCode::from(code),
        Err(Fail(code, msg)) => {
            eprintln!("fieldreport: {msg}");
            ExitCode::from(code)
        }
    }
}

/// Parsed arguments: options (possibly repeated) and positionals.
#[derive(Default)]
struct Args {
    opts: BTreeMap<String, Vec<String>>,
    flags: Vec<String>,
    positional: Vec<String>,
}

const VALUE_OPTS: &[&str] = &[
    "outbox",
    "base-url",
    "company",
    "project",
    "feedback-type",
    "api-key",
    "summary",
    "description",
    "submitter",
    "field",
    "attach",
    "log",
    "timeout",
    "id",
    "port",
];
const FLAG_OPTS: &[&str] = &["json", "help"];

fn parse(args: Vec<String>) -> Result<Args, Fail> {
    let mut out = Args::default();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if let Some(name) = a.strip_prefix("--") {
            let (name, inline) = match name.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (name.to_string(), None),
            };
            if FLAG_OPTS.contains(&name.as_str()) {
                out.flags.push(name);
            } else if VALUE_OPTS.contains(&name.as_str()) {
                let v = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .ok_or_else(|| usage(format!("--{name} needs a value")))?,
                };
                out.opts.entry(name).or_default().push(v);
            } else {
                return Err(usage(format!("unknown option --{name}")));
            }
        } else {
            out.positional.push(a);
        }
    }
    Ok(out)
}

impl Args {
    fn one(&self, name: &str) -> Option<String> {
        self.opts.get(name).and_then(|v| v.last().cloned())
    }
    fn all(&self, name: &str) -> Vec<String> {
        self.opts.get(name).cloned().unwrap_or_default()
    }
    fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }
    fn global(&self, name: &str, env: &str) -> Option<String> {
        self.one(name)
            .or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty()))
    }
    fn required(&self, name: &str, env: &str) -> Result<String, Fail> {
        self.global(name, env)
            .ok_or_else(|| usage(format!("--{name} (or {env}) is required")))
    }
}

fn run(args: Vec<String>) -> Result<u8, Fail> {
    let args = parse(args)?;
    let command = args.positional.first().cloned().unwrap_or_default();
    if args.flag("help") || command == "help" || command.is_empty() {
        print!("{USAGE}");
        return Ok(if command.is_empty() && !args.flag("help") {
            EXIT_BAD_INPUT
        } else {
            EXIT_OK
        });
    }
    match command.as_str() {
        "sandbox" => sandbox(&args),
        "demo" => demo(),
        "submit" | "crash" | "batch" | "flush" | "status" | "retry" | "purge" => {
            let client = open(&args)?;
            match command.as_str() {
                "submit" => submit(&client, &args),
                "batch" => batch(&client, &args),
                "crash" => crash(&client, &args),
                "flush" => flush(&client, &args),
                "status" => status(&client, &args),
                "retry" => {
                    client.retry(positional_id(&args)?)?;
                    Ok(EXIT_OK)
                }
                _ => {
                    client.purge(positional_id(&args)?)?;
                    Ok(EXIT_OK)
                }
            }
        }
        other => Err(usage(format!("unknown command {other:?}"))),
    }
}

fn positional_id(args: &Args) -> Result<i64, Fail> {
    let raw = args
        .positional
        .get(1)
        .ok_or_else(|| usage("a report id is required"))?;
    raw.parse()
        .map_err(|_| usage(format!("report id {raw:?} is not a number")))
}

fn open(args: &Args) -> Result<Client, Fail> {
    let outbox = args.required("outbox", "FIELDREPORT_OUTBOX")?;
    let project = args.required("project", "FIELDREPORT_PROJECT")?;
    let feedback_type = args.required("feedback-type", "FIELDREPORT_FEEDBACK_TYPE")?;
    let api_key = args.required("api-key", "FIELDREPORT_API_KEY")?;
    let server = match (
        args.global("base-url", "FIELDREPORT_BASE_URL"),
        args.global("company", "FIELDREPORT_COMPANY"),
    ) {
        (Some(url), _) => ServerConfig::with_base_url(url, project, feedback_type, api_key),
        (None, Some(company)) => ServerConfig::centercode(company, project, feedback_type, api_key),
        (None, None) => {
            return Err(usage(
                "--base-url (FIELDREPORT_BASE_URL) or --company (FIELDREPORT_COMPANY) is required",
            ))
        }
    };
    let mut config = Config::new(PathBuf::from(outbox), server);
    config.app.name = Some("fieldreport-cli".into());
    config.app.version = Some(fieldreport::VERSION.into());
    Ok(Client::open(config)?)
}

fn attachments(args: &Args) -> Result<Vec<Attachment>, Fail> {
    args.all("attach")
        .into_iter()
        .map(|spec| {
            let (element, path) = spec
                .split_once('=')
                .ok_or_else(|| usage(format!("--attach {spec:?} must be ELEMENT=PATH")))?;
            Ok(Attachment::from_path(element, path))
        })
        .collect()
}

fn fields(args: &Args) -> Result<Vec<(String, Value)>, Fail> {
    args.all("field")
        .into_iter()
        .map(|spec| {
            let (name, raw) = spec
                .split_once('=')
                .ok_or_else(|| usage(format!("--field {spec:?} must be NAME=VALUE")))?;
            let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::from(raw));
            Ok((name.to_string(), value))
        })
        .collect()
}

fn submit(client: &Client, args: &Args) -> Result<u8, Fail> {
    let summary = args
        .one("summary")
        .ok_or_else(|| usage("submit needs --summary"))?;
    let mut f = Feedback::new(summary);
    f.description = args.one("description");
    f.submitter = args.one("submitter");
    f.fields = fields(args)?;
    f.attachments = attachments(args)?;
    println!("{}", client.submit(f)?);
    Ok(EXIT_OK)
}

fn crash(client: &Client, args: &Args) -> Result<u8, Fail> {
    let log = args
        .one("log")
        .ok_or_else(|| usage("crash needs --log PATH"))?;
    let mut c = CrashReport::from_file(log);
    c.summary = args.one("summary");
    c.fields = fields(args)?;
    c.attachments = attachments(args)?;
    println!("{}", client.submit_crash(c)?);
    Ok(EXIT_OK)
}

/// Reads the JSON Lines of `batch`; each item with its line number.
fn read_batch(args: &Args) -> Result<(Vec<Submission>, Vec<usize>), Fail> {
    let path = args
        .positional
        .get(1)
        .ok_or_else(|| usage("batch needs a FILE (or - for stdin)"))?;
    let text = if path == "-" {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)
            .map_err(|e| Fail(EXIT_BAD_INPUT, format!("cannot read stdin: {e}")))?;
        t
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Fail(EXIT_BAD_INPUT, format!("cannot read {path}: {e}")))?
    };
    let mut items = Vec::new();
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |msg: String| Fail(EXIT_BAD_INPUT, format!("{path} line {}: {msg}", n + 1));
        let obj: serde_json::Map<String, Value> =
            serde_json::from_str(line).map_err(|e| at(format!("not a JSON object: {e}")))?;
        items.push(batch_item(obj).map_err(at)?);
        lines.push(n + 1);
    }
    Ok((items, lines))
}

fn batch_item(mut obj: serde_json::Map<String, Value>) -> Result<Submission, String> {
    let mut text = |key: &str| -> Result<Option<String>, String> {
        match obj.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!("\"{key}\" must be a string, not {other}")),
        }
    };
    let summary = text("summary")?;
    let description = text("description")?;
    let submitter = text("submitter")?;
    let crash_log = text("crash_log")?;
    let fields: Vec<(String, Value)> = match obj.remove("fields") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => m.into_iter().collect(),
        Some(other) => return Err(format!("\"fields\" must be an object, not {other}")),
    };
    let mut attachments = Vec::new();
    match obj.remove("attach") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (element, paths) in m {
                let paths = match paths {
                    Value::String(p) => vec![Value::String(p)],
                    Value::Array(a) => a,
                    other => {
                        return Err(format!(
                        "\"attach\".\"{element}\" must be a path or a list of paths, not {other}"
                    ))
                    }
                };
                for p in paths {
                    let Value::String(p) = p else {
                        return Err(format!("\"attach\".\"{element}\": {p} is not a path"));
                    };
                    attachments.push(Attachment::from_path(element.as_str(), p));
                }
            }
        }
        Some(other) => {
            return Err(format!(
                "\"attach\" must be an object of ELEMENT: PATH, not {other}"
            ))
        }
    }
    if let Some(key) = obj.keys().next() {
        return Err(format!(
            "unknown key \"{key}\" (known: summary, description, submitter, fields, attach, crash_log)"
        ));
    }
    Ok(match crash_log {
        Some(log) => {
            let mut c = CrashReport::from_file(log);
            c.summary = summary;
            c.description = description;
            c.submitter = submitter;
            c.fields = fields;
            c.attachments = attachments;
            Submission::Crash(c)
        }
        None => {
            let summary =
                summary.ok_or("\"summary\" is required (or \"crash_log\" for a crash report)")?;
            let mut f = Feedback::new(summary);
            f.description = description;
            f.submitter = submitter;
            f.fields = fields;
            f.attachments = attachments;
            Submission::Feedback(f)
        }
    })
}

fn batch(client: &Client, args: &Args) -> Result<u8, Fail> {
    let (items, lines) = read_batch(args)?;
    let ids = client.submit_many(items).map_err(|e| {
        let mut fail = Fail::from(e);
        // Name the line as well as the item.
        if let Some(line) = fail
            .1
            .split("batch item ")
            .nth(1)
            .and_then(|rest| rest.split(':').next())
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| lines.get(n))
        {
            fail.1
                .push_str(&format!(" (line {line}; nothing of the batch was queued)"));
        }
        fail
    })?;
    for id in ids {
        println!("{id}");
    }
    Ok(EXIT_OK)
}

fn exit_for(pending: u64, dead: u64) -> u8 {
    if dead > 0 {
        EXIT_DEAD
    } else if pending > 0 {
        EXIT_PENDING
    } else {
        EXIT_OK
    }
}

fn flush(client: &Client, args: &Args) -> Result<u8, Fail> {
    let secs: f64 = match args.one("timeout") {
        Some(t) => t
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| usage(format!("--timeout {t:?} is not a number of seconds")))?,
        None => 60.0,
    };
    let r = client.flush(Duration::from_secs_f64(secs))?;
    if args.flag("json") {
        println!("{}", flush_json(&r));
    } else {
        for rc in &r.receipts {
            println!(
                "report {}: {}{}{}",
                rc.id,
                rc.state.as_str(),
                rc.server_key
                    .as_ref()
                    .map(|k| format!(" {k}"))
                    .unwrap_or_default(),
                rc.error
                    .as_ref()
                    .map(|e| format!(" — {}", error_text(e)))
                    .unwrap_or_default()
            );
            for rej in &rc.rejected_attachments {
                println!("  attachment rejected: {rej}");
            }
        }
        println!("pending: {}, dead: {}", r.pending, r.dead);
        if let Some(s) = &r.stopped {
            println!("stopped: {s}");
        }
    }
    Ok(exit_for(r.pending, r.dead))
}

fn status(client: &Client, args: &Args) -> Result<u8, Fail> {
    if let Some(id) = args.one("id") {
        let id: i64 = id
            .parse()
            .map_err(|_| usage(format!("--id {id:?} is not a number")))?;
        let r = client.report(id)?;
        if args.flag("json") {
            println!("{}", report_json(&r));
        } else {
            println!(
                "report {} (seq {}): {} — {:?}{}",
                r.id,
                r.seq,
                r.state.as_str(),
                r.summary,
                r.server_key
                    .as_ref()
                    .map(|k| format!(" {k}"))
                    .unwrap_or_default()
            );
            if let Some(e) = &r.last_error {
                println!("  last error: {}", error_text(e));
            }
            for a in &r.attachments {
                println!(
                    "  {} {} ({} bytes): {:?}{}",
                    a.element_key,
                    a.file_name,
                    a.size,
                    a.state,
                    a.reason
                        .as_ref()
                        .map(|x| format!(" — {x}"))
                        .unwrap_or_default()
                );
            }
        }
        return Ok(match r.state {
            ReportState::Dead => EXIT_DEAD,
            ReportState::Queued | ReportState::Created => EXIT_PENDING,
            _ => EXIT_OK,
        });
    }
    let s = client.stats()?;
    if args.flag("json") {
        let reports: Vec<Value> = client
            .reports(&ReportFilter {
                states: vec![ReportState::Queued, ReportState::Created, ReportState::Dead],
                ..ReportFilter::default()
            })?
            .iter()
            .map(report_json)
            .collect();
        let mut v = stats_json(&s);
        v["reports"] = Value::from(reports);
        println!("{v}");
    } else {
        println!(
            "pending: {}  delivered: {}  dead: {}  bytes: {}  evicted: {} (typed feedback: {})",
            s.pending, s.delivered, s.dead, s.bytes, s.evicted, s.evicted_feedback
        );
        if let Some(age) = s.oldest_pending_age_secs {
            println!("oldest pending: {age} s");
        }
        if let Some(t) = s.next_attempt_at {
            println!("next attempt: {}", unix(t));
        }
        if let Some(e) = &s.last_error {
            println!("last error: {}", error_text(e));
        }
        if s.paused_for_auth {
            println!("delivery paused: the server refused the API key");
        }
        if !s.consent {
            println!("no consent: reports are kept, not sent");
        }
        if let Some(p) = &s.moved_aside {
            println!("a corrupt outbox was moved aside to {p}");
        }
    }
    Ok(exit_for(s.pending, s.dead))
}

fn sandbox(args: &Args) -> Result<u8, Fail> {
    let port = match args.one("port") {
        Some(p) => p
            .parse()
            .map_err(|_| usage(format!("--port {p:?} is not a port number")))?,
        None => 8480,
    };
    let sb = Sandbox::start(SandboxConfig {
        port,
        ..SandboxConfig::default()
    })
    .map_err(|e| Fail(EXIT_FAILURE, format!("cannot start the sandbox: {e}")))?;
    println!("Centercode sandbox listening at {}", sb.base_url());
    println!(
        "  api key: {}  project: WidgetPro  feedback type: Mobile",
        sb.api_key()
    );
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

fn demo() -> Result<u8, Fail> {
    let fail = |what: &str, e: &dyn std::fmt::Display| Fail(EXIT_FAILURE, format!("{what}: {e}"));
    let sb = Sandbox::start(SandboxConfig::default()).map_err(|e| fail("sandbox", &e))?;
    println!("sandbox: {}", sb.base_url());
    let dir = std::env::temp_dir().join(format!(
        "fieldreport-demo-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    ));
    let mut config = Config::new(
        &dir,
        ServerConfig::with_base_url(sb.base_url(), "WidgetPro", "Mobile", sb.api_key()),
    );
    config.app.name = Some("fieldreport-demo".into());
    config.app.version = Some(fieldreport::VERSION.into());
    let client = Client::open(config)?;
    let feedback = client.submit(
        Feedback::new("Lighting presets should be more robust")
            .description("I really wish the app had more lighting preset options.")
            .submitter("jim@example.com")
            .field("topic", json!(23795))
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
            .all(|r| r.state == ReportState::Delivered);
    if ok {
        println!("demo: all reports delivered");
        Ok(EXIT_OK)
    } else {
        println!("demo: not everything was delivered: {:?}", result.stopped);
        Ok(exit_for(result.pending, result.dead.max(1)))
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn error_text(e: &DeliveryError) -> String {
    let mut s = match e.status {
        Some(st) => format!("{st} {}", e.message),
        None => e.message.clone(),
    };
    for p in &e.invalid_parameters {
        s.push_str(&format!("; {}: {}", p.name, p.description));
    }
    s
}

fn error_json(e: &Option<DeliveryError>) -> Value {
    match e {
        None => Value::Null,
        Some(e) => json!({
            "status": e.status,
            "message": e.message,
            "invalidParameters": e.invalid_parameters.iter()
                .map(|p| json!({"name": p.name, "description": p.description}))
                .collect::<Vec<_>>(),
        }),
    }
}

fn flush_json(r: &FlushResult) -> Value {
    json!({
        "receipts": r.receipts.iter().map(|rc| json!({
            "id": rc.id,
            "state": rc.state.as_str(),
            "serverKey": rc.server_key,
            "serverUrl": rc.server_url,
            "error": error_json(&rc.error),
            "rejectedAttachments": rc.rejected_attachments,
        })).collect::<Vec<_>>(),
        "pending": r.pending,
        "dead": r.dead,
        "stopped": r.stopped,
    })
}

fn report_json(r: &ReportStatus) -> Value {
    json!({
        "id": r.id,
        "clientId": r.client_id,
        "seq": r.seq,
        "kind": format!("{:?}", r.kind).to_lowercase(),
        "state": r.state.as_str(),
        "summary": r.summary,
        "submittedAt": unix(r.submitted_at),
        "attempts": r.attempts,
        "nextAttemptAt": r.next_attempt_at.map(unix),
        "serverKey": r.server_key,
        "serverUrl": r.server_url,
        "lastError": error_json(&r.last_error),
        "attachments": r.attachments.iter().map(|a| json!({
            "elementKey": a.element_key,
            "fileName": a.file_name,
            "contentType": a.content_type,
            "size": a.size,
            "sha256": a.sha256,
            "state": format!("{:?}", a.state).to_lowercase(),
            "reason": a.reason,
        })).collect::<Vec<_>>(),
        "context": r.context,
    })
}

fn stats_json(s: &Stats) -> Value {
    json!({
        "pending": s.pending,
        "delivered": s.delivered,
        "dead": s.dead,
        "bytes": s.bytes,
        "oldestPendingAgeSecs": s.oldest_pending_age_secs,
        "lastError": error_json(&s.last_error),
        "nextAttemptAt": s.next_attempt_at.map(unix),
        "evicted": s.evicted,
        "evictedFeedback": s.evicted_feedback,
        "ambiguousResends": s.ambiguous_resends,
        "pausedForAuth": s.paused_for_auth,
        "consent": s.consent,
        "movedAside": s.moved_aside,
    })
}
