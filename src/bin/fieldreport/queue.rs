//! The commands that queue reports: `submit`, `crash`, `batch`.

use std::path::Path;

use fieldreport::{Attachment, Client, CrashReport, Error, Feedback, Submission};
use serde_json::{json, Value};

use crate::args::{BatchArgs, CrashArgs, ReportArgs, SubmitArgs};
use crate::fail::{bad_input, Fail, EXIT_OK};

fn attachments(r: &ReportArgs) -> Vec<Attachment> {
    r.attachments
        .iter()
        .map(|(element, path)| Attachment::from_path(element.as_str(), path))
        .collect()
}

fn print_id(id: i64, as_json: bool) {
    if as_json {
        println!("{}", json!({ "id": id }));
    } else {
        println!("{id}");
    }
}

/// `submit`.
pub fn submit(client: &Client, a: &SubmitArgs) -> Result<u8, Fail> {
    let mut f = Feedback::new(a.summary.as_str());
    f.description = a.report.description.clone();
    f.submitter = a.report.submitter.clone();
    f.fields = a.report.fields.clone();
    f.attachments = attachments(&a.report);
    print_id(client.submit(f)?, a.report.json);
    Ok(EXIT_OK)
}

/// `crash`.
pub fn crash(client: &Client, a: &CrashArgs) -> Result<u8, Fail> {
    let mut c = CrashReport::from_file(&a.log);
    c.summary = a.summary.clone();
    c.description = a.report.description.clone();
    c.submitter = a.report.submitter.clone();
    c.fields = a.report.fields.clone();
    c.attachments = attachments(&a.report);
    let id = client
        .submit_crash(c)
        .map_err(|e| crash_log_error(e, &a.log))?;
    print_id(id, a.report.json);
    Ok(EXIT_OK)
}

/// The library calls every unreadable file an attachment; the crash log is
/// named as what the user gave it as.
fn crash_log_error(e: Error, log: &Path) -> Fail {
    match e {
        Error::AttachmentUnreadable { name, reason } if Path::new(&name) == log => {
            bad_input(format!("crash log {name}: {reason}"))
        }
        other => other.into(),
    }
}

/// `batch`.
pub fn batch(client: &Client, a: &BatchArgs) -> Result<u8, Fail> {
    let (items, lines) = read_batch(&a.file)?;
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
    if a.json {
        println!("{}", json!({ "ids": ids }));
    } else {
        for id in ids {
            println!("{id}");
        }
    }
    Ok(EXIT_OK)
}

/// Reads the JSON Lines of `batch`; each item with its line number.
fn read_batch(path: &str) -> Result<(Vec<Submission>, Vec<usize>), Fail> {
    let text = if path == "-" {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)
            .map_err(|e| bad_input(format!("cannot read stdin: {e}")))?;
        t
    } else {
        std::fs::read_to_string(path).map_err(|e| bad_input(format!("cannot read {path}: {e}")))?
    };
    let mut items = Vec::new();
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |msg: String| bad_input(format!("{path} line {}: {msg}", n + 1));
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
    let attachments = match obj.remove("attach") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => batch_attachments(m)?,
        Some(other) => {
            return Err(format!(
                "\"attach\" must be an object of ELEMENT: PATH, not {other}"
            ))
        }
    };
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

fn batch_attachments(m: serde_json::Map<String, Value>) -> Result<Vec<Attachment>, String> {
    let mut out = Vec::new();
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
            out.push(Attachment::from_path(element.as_str(), p));
        }
    }
    Ok(out)
}
