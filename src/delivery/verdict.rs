//! What an exchange with a server means: an answer or none, judged into
//! a verdict (success, retry, permanent, unauthorized) with its reasons.

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::{parse_iso8601, parse_retry_after};
use crate::report::{DeliveryError, InvalidParameter};

/// A response as the decisions need it: status, the two timing headers, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub rate_limit_reset: Option<String>,
    pub body: String,
}

/// One exchange with the server: an answer, or no answer at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exchange {
    Answer(Answer),
    /// Reset, timed out, cut off after the request went out: no
    /// (complete) answer, and the server may have acted.
    Transport(String),
    /// The request never left: name resolution, connect or TLS handshake
    /// failed. The server cannot have acted.
    NotSent(String),
}

/// What the answer means for the report and for the rest of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// 2xx: the request did what was asked.
    Success,
    /// Try this report again later; stop the batch (the link or the server
    /// is in trouble). `not_before` is the server's own word, if it gave one.
    Retry {
        error: DeliveryError,
        not_before: Option<SystemTime>,
    },
    /// Will never succeed as it is: keep it, with the server's reasons.
    Permanent(DeliveryError),
    /// The API key was refused: pause everything, spend no attempt.
    Unauthorized(DeliveryError),
}

/// Centercode's error body: `{"status":400,"description":"...","invalidParameters":[...]}`.
#[derive(Deserialize)]
struct ErrorBody {
    description: Option<String>,
    #[serde(rename = "invalidParameters", default)]
    invalid_parameters: Vec<InvalidParameter>,
}

/// Turns an exchange into a verdict.
pub(crate) fn judge(exchange: &Exchange, now: SystemTime) -> Verdict {
    let answer = match exchange {
        Exchange::Transport(message) | Exchange::NotSent(message) => {
            return Verdict::Retry {
                error: DeliveryError {
                    status: None,
                    message: message.clone(),
                    invalid_parameters: Vec::new(),
                },
                not_before: None,
            }
        }
        Exchange::Answer(a) => a,
    };
    if (200..300).contains(&answer.status) {
        return Verdict::Success;
    }
    let error = error_of(answer);
    match answer.status {
        401 | 403 => Verdict::Unauthorized(error),
        429 => Verdict::Retry {
            error,
            not_before: wait_until(answer, now),
        },
        408 | 500..=599 => Verdict::Retry {
            not_before: answer
                .retry_after
                .as_deref()
                .and_then(|v| parse_retry_after(v, now)),
            error,
        },
        // 400, 404, 405, 409, 410, 413, 415, 422 and any other client error:
        // sending the same request again cannot help.
        _ => Verdict::Permanent(error),
    }
}

/// The error of an answer: the server's description when its body has a
/// non-blank one, else the status's reason phrase (a message is never empty).
pub(crate) fn error_of(answer: &Answer) -> DeliveryError {
    let parsed: Option<ErrorBody> = serde_json::from_str(&answer.body).ok();
    let (message, invalid_parameters) = match parsed {
        Some(ErrorBody {
            description: Some(d),
            invalid_parameters,
        }) if !d.trim().is_empty() => (d, invalid_parameters),
        Some(ErrorBody {
            invalid_parameters, ..
        }) => (
            reason_phrase(answer.status)
                .unwrap_or("Unexpected status")
                .to_string(),
            invalid_parameters,
        ),
        None => (
            reason_phrase(answer.status)
                .unwrap_or("Unexpected status")
                .to_string(),
            Vec::new(),
        ),
    };
    DeliveryError {
        status: Some(answer.status),
        message,
        invalid_parameters,
    }
}

/// The standard reason phrase of a status, where it has one.
pub(crate) fn reason_phrase(status: u16) -> Option<&'static str> {
    Some(match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => return None,
    })
}

/// When a 429 lets us go again: `X-Rate-Limit-Reset` first, then
/// `Retry-After`; one second when neither is readable (the documented window).
fn wait_until(answer: &Answer, now: SystemTime) -> Option<SystemTime> {
    let from_reset = answer
        .rate_limit_reset
        .as_deref()
        .and_then(parse_iso8601)
        // A reset far in the future is a broken clock or header: cap it.
        .map(|t| t.min(now + Duration::from_secs(3600)));
    let from_retry = answer
        .retry_after
        .as_deref()
        .and_then(|v| parse_retry_after(v, now));
    Some(
        from_reset
            .into_iter()
            .chain(from_retry)
            .max()
            .unwrap_or(now + Duration::from_secs(1)),
    )
}
