//! `flush` and `status`: what was sent, what waits and until when, and the
//! exit code a rig acts on.

use std::time::{Duration, SystemTime};

use fieldreport::{Client, ReportFilter, ReportState, ReportStatus};
use serde_json::Value;

use crate::args::{FlushArgs, StatusArgs};
use crate::fail::{
    bad_input, exit_for, Fail, EXIT_ATTACHMENTS_REJECTED, EXIT_DEAD, EXIT_OK, EXIT_PENDING,
};
use crate::human;
use crate::output::{error_text, flush_json, has_rejected, rejected_in, report_json, stats_json};

/// `flush`.
pub fn flush(client: &Client, a: &FlushArgs) -> Result<u8, Fail> {
    let budget = a
        .timeout
        .secs()
        .ok_or_else(|| bad_input("--timeout is too long"))?;
    let r = client.flush(budget)?;
    // When the next report is due, for a flush that leaves some waiting.
    let next = if r.pending > 0 {
        client.stats()?.next_attempt_at
    } else {
        None
    };
    let rejected = rejected_in(&r);
    if a.json {
        println!("{}", flush_json(&r, next));
        return Ok(exit_for(r.pending, r.dead, rejected));
    }
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
    if rejected > 0 {
        println!(
            "attachments rejected: {rejected} {} delivered without all of {} attachments",
            if rejected == 1 { "report" } else { "reports" },
            if rejected == 1 { "its" } else { "their" },
        );
    }
    let now = SystemTime::now();
    match &r.stopped {
        Some(s) => println!("stopped: {s}"),
        None if r.receipts.is_empty() && r.pending > 0 => {
            // Sent nothing though reports wait: they are backing off.
            println!("nothing sent: no report is due yet (backing off after a failed attempt)");
        }
        None => {}
    }
    if r.pending > 0 {
        println!("next attempt: {}", human::when(next, now));
    }
    Ok(exit_for(r.pending, r.dead, rejected))
}

/// `status`.
pub fn status(client: &Client, a: &StatusArgs) -> Result<u8, Fail> {
    if let Some(id) = a.id {
        return report(client, id, a.json);
    }
    let s = client.stats()?;
    // Delivered reports still listed that lost an attachment on the way.
    let rejected: Vec<ReportStatus> = client
        .reports(&ReportFilter {
            states: vec![ReportState::Delivered],
            ..ReportFilter::default()
        })?
        .into_iter()
        .filter(has_rejected)
        .collect();
    let code = exit_for(s.pending, s.dead, rejected.len() as u64);
    if a.json {
        let reports: Vec<Value> = client
            .reports(&ReportFilter {
                states: vec![ReportState::Queued, ReportState::Created, ReportState::Dead],
                ..ReportFilter::default()
            })?
            .iter()
            .map(report_json)
            .collect();
        let mut v = stats_json(&s, rejected.len() as u64);
        v["reports"] = Value::from(reports);
        println!("{v}");
        return Ok(code);
    }
    let now = SystemTime::now();
    println!(
        "pending: {}  delivered: {}  dead: {}  bytes: {}  evicted: {} (typed feedback: {})",
        s.pending, s.delivered, s.dead, s.bytes, s.evicted, s.evicted_feedback
    );
    if let Some(age) = s.oldest_pending_age_secs {
        println!(
            "oldest pending: {}",
            human::ago(now - Duration::from_secs(age), now)
        );
    }
    if s.pending > 0 {
        println!("next attempt: {}", human::when(s.next_attempt_at, now));
    }
    if !rejected.is_empty() {
        let ids: Vec<String> = rejected.iter().map(|r| r.id.to_string()).collect();
        println!(
            "attachments rejected: delivered without all their attachments: report {} (status --id N says why)",
            ids.join(", ")
        );
    }
    if let Some(e) = &s.last_error {
        println!("last error: {}", error_text(e));
    }
    if s.ambiguous_resends > 0 {
        println!(
            "possible duplicates: {} creates re-sent after a lost answer (--client-id-field and --lookup prevent them)",
            s.ambiguous_resends
        );
    }
    if s.crash_logs_cut > 0 {
        println!(
            "crash logs cut: {} sent as head and tail to fit the server's limit (the field says how much was cut)",
            s.crash_logs_cut
        );
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
    Ok(code)
}

fn report(client: &Client, id: i64, as_json: bool) -> Result<u8, Fail> {
    let r = client.report(id)?;
    let code = match r.state {
        ReportState::Dead => EXIT_DEAD,
        ReportState::Queued | ReportState::Created => EXIT_PENDING,
        _ if has_rejected(&r) => EXIT_ATTACHMENTS_REJECTED,
        _ => EXIT_OK,
    };
    if as_json {
        println!("{}", report_json(&r));
        return Ok(code);
    }
    let now = SystemTime::now();
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
    println!("  submitted: {}", human::ago(r.submitted_at, now));
    if matches!(r.state, ReportState::Queued | ReportState::Created) {
        println!(
            "  attempts: {}, next attempt: {}",
            r.attempts,
            human::when(r.next_attempt_at, now)
        );
    }
    if let Some(e) = &r.last_error {
        println!("  last error: {}", error_text(e));
    }
    for a in &r.attachments {
        println!(
            "  {} {} ({} bytes): {}{}",
            a.element_key,
            a.file_name,
            a.size,
            a.state.as_str(),
            a.reason
                .as_ref()
                .map(|x| format!(" — {x}"))
                .unwrap_or_default()
        );
    }
    Ok(code)
}
