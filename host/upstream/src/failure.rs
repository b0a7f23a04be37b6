//! Classifying what went wrong with an upstream attempt, and whether the next target may be tried.

use std::time::Duration;

use http::StatusCode;

/// What kind of failure an attempt met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Could not connect (refused, DNS, TLS handshake, connect timeout).
    Connect,
    /// No first byte (response head, or first stream event) within the deadline.
    Timeout,
    /// The upstream answered with an error status.
    Status(u16),
    /// The prompt does not fit the model's context window (a 400 that a bigger model can serve).
    ContextLength,
    /// The connection broke or the body was malformed before anything reached the client.
    Broken,
    /// A stream that sent an error event, or ended, before its first real event.
    StreamError,
    /// Not tried: the deadline for the whole request had passed.
    DeadlineExceeded,
}

/// One failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamFailure {
    pub class: FailureClass,
    /// A one-line description, already redacted of upstream keys.
    pub detail: String,
    /// `Retry-After` sent with a 429 or 503.
    pub retry_after: Option<Duration>,
    /// The provider's own `error.code` (`content_policy_violation`, `insufficient_quota`...),
    /// passed on to the client when the failure ends the request.
    pub code: Option<String>,
}

impl FailureClass {
    /// A metrics label.
    pub fn label(self) -> &'static str {
        match self {
            FailureClass::Connect => "connect",
            FailureClass::Timeout => "timeout",
            FailureClass::Status(429) => "status_429",
            FailureClass::Status(400..=499) => "status_4xx",
            FailureClass::Status(_) => "status_5xx",
            FailureClass::ContextLength => "context_length",
            FailureClass::Broken => "broken",
            FailureClass::StreamError => "stream_error",
            FailureClass::DeadlineExceeded => "deadline",
        }
    }
}

impl UpstreamFailure {
    pub fn new(class: FailureClass, detail: impl Into<String>) -> Self {
        UpstreamFailure {
            class,
            detail: detail.into(),
            retry_after: None,
            code: None,
        }
    }

    /// Whether the same target may be tried again (when its retries allow): a rate limit, a
    /// server error or a broken connection is often gone a moment later; a timeout is not worth
    /// waiting for twice (the next target gets the time instead), and a context-length error
    /// would fail the same way.
    pub fn retry_same_target(&self) -> bool {
        self.retryable()
            && !matches!(
                self.class,
                FailureClass::Timeout | FailureClass::ContextLength
            )
    }

    /// Whether the next target may be tried. Client errors (400, 401, 402, 403, 404, 413, 422...)
    /// would fail the same way anywhere, so they end the request; a context-length error is the
    /// exception, since a model with a larger window can serve it.
    pub fn retryable(&self) -> bool {
        match self.class {
            FailureClass::Status(code) => status_is_retryable(code),
            FailureClass::DeadlineExceeded => false,
            _ => true,
        }
    }

    /// Whether the failure says the provider is in trouble (what circuit breakers count): not the
    /// client's own errors, which any healthy provider returns.
    pub fn is_provider_failure(&self) -> bool {
        match self.class {
            FailureClass::Status(code) => code == 429 || code >= 500,
            FailureClass::ContextLength | FailureClass::DeadlineExceeded => false,
            FailureClass::Connect
            | FailureClass::Timeout
            | FailureClass::Broken
            | FailureClass::StreamError => true,
        }
    }

    /// Whether this attempt failed by running out of time.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.class,
            FailureClass::Timeout | FailureClass::DeadlineExceeded
        )
    }

    /// The text shown for this attempt in error bodies and logs.
    pub fn outcome(&self) -> String {
        match self.class {
            FailureClass::Status(code) => format!("HTTP {code}: {}", self.detail),
            FailureClass::ContextLength => format!("context length exceeded: {}", self.detail),
            FailureClass::Connect => format!("connection failed: {}", self.detail),
            FailureClass::Timeout => format!("timed out: {}", self.detail),
            FailureClass::Broken => format!("connection broken: {}", self.detail),
            FailureClass::StreamError => {
                format!("stream failed before its first event: {}", self.detail)
            }
            FailureClass::DeadlineExceeded => "not tried: request deadline exceeded".to_owned(),
        }
    }
}

/// Statuses worth trying elsewhere: rate limits, overload and server errors.
pub fn status_is_retryable(code: u16) -> bool {
    matches!(code, 408 | 409 | 425 | 429) || code >= 500
}

/// The status a client sees for an upstream error that ends the request. Errors about the
/// client's request (400, 413, 422) pass through; errors about the gateway's own standing with
/// the provider (its key, balance, or the provider's model name) are the operator's problem: 502.
pub fn client_status_for(code: u16) -> u16 {
    match code {
        400 | 413 | 422 => code,
        _ => StatusCode::BAD_GATEWAY.as_u16(),
    }
}

/// Whether an error body says the prompt is longer than the model's context window.
pub fn is_context_length_error(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("context_length_exceeded")
        || m.contains("maximum context length")
        || m.contains("context window")
        // Anthropic: "prompt is too long: 210000 tokens > 200000 maximum".
        || m.contains("prompt is too long")
}

/// Longest `Retry-After` taken from an upstream; anything longer is read as this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

/// `Retry-After` as a wait: seconds (fractions accepted) or an HTTP date, capped at
/// [`MAX_RETRY_AFTER`]. Absurd values (`1e300`, a date in the year 9999) are capped, not trusted.
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<f64>() {
        if !(secs.is_finite() && secs >= 0.0) {
            return None;
        }
        return Some(
            Duration::try_from_secs_f64(secs).map_or(MAX_RETRY_AFTER, |d| d.min(MAX_RETRY_AFTER)),
        );
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(v)
        .ok()?;
    let wait = at.duration_since(jiff::Timestamp::now());
    Some(
        Duration::try_from(wait)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// Longest provider error code passed on; anything longer (or not a plain identifier) is not a
/// code.
const MAX_CODE_LEN: usize = 64;

/// The `error.code` of an OpenAI-style error body, when it is a short identifier
/// (`content_policy_violation`); Anthropic's bodies have none.
pub fn error_code(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        #[serde(default)]
        code: Option<serde_json::Value>,
    }
    let code = match serde_json::from_slice::<Envelope>(body).ok()?.error.code? {
        serde_json::Value::String(s) => s,
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let plain = !code.is_empty()
        && code.len() <= MAX_CODE_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    plain.then_some(code)
}

/// The `error.message` of an OpenAI-style error body, or the start of the body.
pub fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        code: Option<serde_json::Value>,
    }
    let text = match serde_json::from_slice::<Envelope>(body) {
        Ok(e) => match (e.error.message, e.error.code) {
            (Some(m), Some(serde_json::Value::String(c))) => format!("{m} ({c})"),
            (Some(m), _) => m,
            (None, Some(c)) => c.to_string(),
            (None, None) => String::new(),
        },
        Err(_) => String::from_utf8_lossy(body).trim().to_owned(),
    };
    let text: String = text.chars().filter(|c| !c.is_control()).take(300).collect();
    if text.is_empty() {
        "(no message)".to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_and_server_errors_are_retryable_client_errors_are_not() {
        for code in [429, 500, 502, 503, 504, 529] {
            assert!(
                UpstreamFailure::new(FailureClass::Status(code), "").retryable(),
                "{code}"
            );
        }
        for code in [400, 401, 402, 403, 404, 422] {
            assert!(
                !UpstreamFailure::new(FailureClass::Status(code), "").retryable(),
                "{code}"
            );
        }
        assert!(UpstreamFailure::new(FailureClass::ContextLength, "").retryable());
        assert!(UpstreamFailure::new(FailureClass::Connect, "").retryable());
    }

    #[test]
    fn only_client_request_errors_keep_their_status() {
        assert_eq!(client_status_for(400), 400);
        assert_eq!(client_status_for(422), 422);
        assert_eq!(client_status_for(401), 502);
        assert_eq!(client_status_for(402), 502);
    }

    #[test]
    fn error_messages_are_extracted_and_bounded() {
        assert_eq!(
            error_message(br#"{"error":{"message":"Overloaded","code":"overloaded"}}"#),
            "Overloaded (overloaded)"
        );
        assert_eq!(error_message(b"plain text\n"), "plain text");
        assert_eq!(error_message(b""), "(no message)");
        assert_eq!(error_message(&vec![b'a'; 5000]).len(), 300);
    }

    #[test]
    fn provider_codes_are_read_when_they_are_identifiers() {
        assert_eq!(
            error_code(br#"{"error":{"message":"no","code":"content_policy_violation"}}"#)
                .as_deref(),
            Some("content_policy_violation")
        );
        assert_eq!(
            error_code(br#"{"error":{"message":"no","code":null}}"#),
            None
        );
        assert_eq!(
            error_code(br#"{"error":{"code":"has spaces in it"}}"#),
            None
        );
        assert_eq!(error_code(b"not json"), None);
        assert_eq!(
            error_code(br#"{"error":{"code":429}}"#).as_deref(),
            Some("429")
        );
    }

    #[test]
    fn only_transient_failures_are_retried_on_the_same_target() {
        for class in [
            FailureClass::Status(429),
            FailureClass::Status(500),
            FailureClass::Connect,
            FailureClass::Broken,
        ] {
            assert!(
                UpstreamFailure::new(class, "").retry_same_target(),
                "{class:?}"
            );
        }
        for class in [
            FailureClass::Timeout,
            FailureClass::ContextLength,
            FailureClass::Status(400),
            FailureClass::DeadlineExceeded,
        ] {
            assert!(
                !UpstreamFailure::new(class, "").retry_same_target(),
                "{class:?}"
            );
        }
    }

    #[test]
    fn context_length_errors_are_recognised() {
        assert!(is_context_length_error(
            "This model's maximum context length is 131072 tokens"
        ));
        assert!(is_context_length_error("context_length_exceeded"));
        assert!(!is_context_length_error("invalid temperature"));
    }

    #[test]
    fn retry_after_seconds_are_read() {
        let mut h = http::HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after", "0.25".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        // A date in the past means now.
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(30);
        h.insert(
            "retry-after",
            jiff::fmt::rfc2822::DateTimePrinter::new()
                .timestamp_to_rfc9110_string(&soon)
                .unwrap()
                .parse()
                .unwrap(),
        );
        let wait = retry_after(&h).unwrap();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn absurd_retry_afters_are_capped_not_a_panic() {
        let mut h = http::HeaderMap::new();
        for huge in ["1e300", "18446744073709551616", "1e19"] {
            h.insert("retry-after", huge.parse().unwrap());
            assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER), "{huge}");
        }
        for bad in ["-1", "NaN", "inf"] {
            h.insert("retry-after", bad.parse().unwrap());
            assert_eq!(retry_after(&h), None, "{bad}");
        }
        h.insert(
            "retry-after",
            "Tue, 01 Jan 2999 00:00:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
    }
}
