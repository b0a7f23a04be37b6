//! Every way a request can fail, and how each becomes an error body the client's library
//! understands ([`crate::response::error_response`] is where it becomes a response).

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;
use switchyard_policy::FailureKind;
use switchyard_upstream::{AttemptSummary, ExecError};

use crate::accounts::Refusal;

/// The `error` object of an OpenAI-style error body, `{"error": {"message", "type", "param",
/// "code"}}`, which the official clients turn into their matching exception classes.
#[derive(Debug, Serialize)]
struct ErrorObject<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: &'a str,
    /// Switchyard extension: what each upstream attempt did, when there were any.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    attempts: &'a [AttemptSummary],
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: ErrorObject<'a>,
}

/// A request that cannot be served. [`GatewayError::status`] and [`GatewayError::to_body`] turn
/// it into an OpenAI-style error that the official clients map to their exception classes.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum GatewayError {
    #[error("missing API key: send it as `Authorization: Bearer <key>`")]
    MissingKey,
    #[error("invalid API key")]
    InvalidKey,
    #[error("request body is larger than the {limit}-byte limit")]
    BodyTooLarge { limit: usize },
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
    },
    #[error("model `{model}` is not available to this tenant")]
    ModelNotAllowed { model: String },
    #[error("model `{model}` does not exist")]
    ModelNotFound { model: String },
    #[error("the routing policy failed ({kind}); the request was not sent")]
    PolicyFailed { kind: FailureKind },
    #[error("{message}")]
    PolicyRejected {
        status: u16,
        code: String,
        message: String,
    },
    #[error("{message}")]
    UpstreamRejected {
        status: u16,
        message: String,
        /// The provider's own error code (`content_policy_violation`), passed on as `error.code`.
        provider_code: Option<String>,
        attempts: Vec<AttemptSummary>,
    },
    #[error("all upstream attempts failed: {}", describe(.attempts))]
    AllAttemptsFailed {
        attempts: Vec<AttemptSummary>,
        all_timed_out: bool,
    },
    #[error("{}", describe_refusal(.0))]
    Refused(Refusal),
    #[error("not found: {path}")]
    NotFound { path: String },
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("internal error: {0}")]
    Internal(String),
    #[error("the client closed the connection before the request was complete")]
    ClientGone,
    /// The request bodies in flight already hold the gateway's budget for them.
    #[error(
        "the gateway is holding its limit of {limit} bytes of request bodies in flight; retry shortly"
    )]
    BodiesInFlight { limit: usize },
    /// A request head hyper could not read (answered before any handler runs).
    #[error("{message}")]
    BadHead {
        status: u16,
        code: &'static str,
        message: &'static str,
    },
}

impl From<ExecError> for GatewayError {
    fn from(e: ExecError) -> Self {
        match e {
            ExecError::Rejected {
                status,
                message,
                code,
                attempts,
            } => GatewayError::UpstreamRejected {
                status,
                message,
                provider_code: code,
                attempts,
            },
            ExecError::AllFailed {
                attempts,
                all_timed_out,
            } => GatewayError::AllAttemptsFailed {
                attempts,
                all_timed_out,
            },
        }
    }
}

fn describe_refusal(r: &Refusal) -> String {
    match r {
        Refusal::Budget {
            period,
            limit,
            spent,
            ..
        } => {
            format!(
                "the tenant's {period} budget of ${limit:.2} is used up (${spent:.4} spent or reserved)"
            )
        }
        Refusal::Rate { what, limit, .. } => {
            format!("rate limit reached: {limit} {what} per minute")
        }
    }
}

fn describe(attempts: &[AttemptSummary]) -> String {
    attempts
        .iter()
        .enumerate()
        .map(|(i, a)| format!("#{} {} via {}: {}", i + 1, a.model, a.upstream, a.outcome))
        .collect::<Vec<_>>()
        .join("; ")
}

impl GatewayError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        let code = match self {
            GatewayError::MissingKey | GatewayError::InvalidKey => 401,
            GatewayError::BodyTooLarge { .. } => 413,
            GatewayError::InvalidRequest { .. } => 400,
            GatewayError::ModelNotAllowed { .. } => 403,
            GatewayError::ModelNotFound { .. } | GatewayError::NotFound { .. } => 404,
            GatewayError::MethodNotAllowed { .. } => 405,
            GatewayError::PolicyFailed { .. } => 503,
            GatewayError::PolicyRejected { status, .. }
            | GatewayError::UpstreamRejected { status, .. } => *status,
            GatewayError::AllAttemptsFailed {
                all_timed_out: true,
                ..
            } => 504,
            GatewayError::AllAttemptsFailed { .. } => 502,
            GatewayError::Internal(_) => 500,
            GatewayError::ClientGone => 499,
            GatewayError::Refused(_) => 429,
            GatewayError::BodiesInFlight { .. } => 503,
            GatewayError::BadHead { status, .. } => *status,
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// OpenAI's `error.type`.
    pub fn error_type(&self) -> &'static str {
        match self.status().as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            _ => "api_error",
        }
    }

    /// The machine-readable `error.code`.
    pub fn code(&self) -> &str {
        match self {
            GatewayError::MissingKey => "missing_api_key",
            GatewayError::InvalidKey => "invalid_api_key",
            GatewayError::BodyTooLarge { .. } => "request_too_large",
            GatewayError::InvalidRequest { .. } => "invalid_request",
            GatewayError::ModelNotAllowed { .. } => "model_not_allowed",
            GatewayError::ModelNotFound { .. } => "model_not_found",
            GatewayError::PolicyFailed { .. } => "policy_failed",
            GatewayError::PolicyRejected { code, .. } => code,
            GatewayError::UpstreamRejected {
                provider_code: Some(code),
                ..
            } => code,
            GatewayError::UpstreamRejected { .. } => "upstream_rejected",
            GatewayError::AllAttemptsFailed {
                all_timed_out: true,
                ..
            } => "upstream_timeout",
            GatewayError::AllAttemptsFailed { .. } => "upstream_failed",
            GatewayError::NotFound { .. } => "not_found",
            GatewayError::MethodNotAllowed { .. } => "method_not_allowed",
            GatewayError::Internal(_) => "internal_error",
            GatewayError::ClientGone => "client_gone",
            GatewayError::Refused(Refusal::Budget { .. }) => "budget_exceeded",
            GatewayError::Refused(Refusal::Rate { .. }) => "rate_limit_exceeded",
            GatewayError::BodiesInFlight { .. } => "server_busy",
            GatewayError::BadHead { code, .. } => code,
        }
    }

    /// How long the client should wait before retrying, when the error says so.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            GatewayError::Refused(
                Refusal::Budget { retry_after, .. } | Refusal::Rate { retry_after, .. },
            ) => Some(*retry_after),
            GatewayError::BodiesInFlight { .. } => Some(std::time::Duration::from_secs(1)),
            _ => None,
        }
    }

    /// The JSON body.
    pub fn to_body(&self) -> Bytes {
        let message = self.to_string();
        let (param, attempts): (Option<&str>, &[AttemptSummary]) = match self {
            GatewayError::InvalidRequest { param, .. } => (param.as_deref(), &[]),
            GatewayError::ModelNotAllowed { .. } | GatewayError::ModelNotFound { .. } => {
                (Some("model"), &[])
            }
            GatewayError::UpstreamRejected { attempts, .. }
            | GatewayError::AllAttemptsFailed { attempts, .. } => (None, attempts),
            _ => (None, &[]),
        };
        let error = ErrorObject {
            message: &message,
            kind: self.error_type(),
            param,
            code: self.code(),
            attempts,
        };
        // Serialising this struct of strings cannot fail.
        Bytes::from(serde_json::to_vec(&Envelope { error }).unwrap_or_default())
    }
}

impl GatewayError {
    /// The body in Anthropic's shape, `{"type": "error", "error": {"type", "message"}}`, whose
    /// `error.type` (with the status) the Anthropic SDKs turn into their exception classes.
    pub fn to_anthropic_body(&self) -> Bytes {
        let status = self.status().as_u16();
        let mut body =
            switchyard_upstream::dialect::messages::error_body(status, &self.to_string());
        // Switchyard extension: the provider's own code, which Anthropic's shape has no field for.
        if let GatewayError::UpstreamRejected {
            provider_code: Some(code),
            ..
        } = self
            && let Some(error) = body.get_mut("error").and_then(|e| e.as_object_mut())
        {
            error.insert("code".into(), code.as_str().into());
        }
        switchyard_upstream::dialect::json_bytes(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_types_follow_openai() {
        let cases: [(GatewayError, u16, &str); 6] = [
            (GatewayError::InvalidKey, 401, "authentication_error"),
            (
                GatewayError::BodyTooLarge { limit: 10 },
                413,
                "invalid_request_error",
            ),
            (
                GatewayError::ModelNotAllowed { model: "m".into() },
                403,
                "permission_error",
            ),
            (
                GatewayError::PolicyFailed {
                    kind: FailureKind::Deadline,
                },
                503,
                "api_error",
            ),
            (
                GatewayError::AllAttemptsFailed {
                    attempts: vec![],
                    all_timed_out: true,
                },
                504,
                "api_error",
            ),
            (
                GatewayError::PolicyRejected {
                    status: 429,
                    code: "budget".into(),
                    message: "m".into(),
                },
                429,
                "rate_limit_error",
            ),
        ];
        for (err, status, kind) in cases {
            assert_eq!(err.status().as_u16(), status, "{err}");
            assert_eq!(err.error_type(), kind, "{err}");
            let body: serde_json::Value = serde_json::from_slice(&err.to_body()).unwrap();
            assert_eq!(body["error"]["type"], kind);
            assert_eq!(body["error"]["code"], err.code());
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
    }

    #[test]
    fn a_providers_code_is_passed_on_in_both_shapes() {
        let err = GatewayError::UpstreamRejected {
            status: 400,
            message: "upstream main refused the request: HTTP 400: flagged".into(),
            provider_code: Some("content_policy_violation".into()),
            attempts: vec![],
        };
        let body: serde_json::Value = serde_json::from_slice(&err.to_body()).unwrap();
        assert_eq!(body["error"]["code"], "content_policy_violation");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        let body: serde_json::Value = serde_json::from_slice(&err.to_anthropic_body()).unwrap();
        assert_eq!(body["error"]["code"], "content_policy_violation");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn attempts_are_listed_in_order() {
        let attempts = vec![
            AttemptSummary {
                model: "a".into(),
                upstream: "u1".into(),
                outcome: "HTTP 500".into(),
            },
            AttemptSummary {
                model: "b".into(),
                upstream: "u2".into(),
                outcome: "connect error".into(),
            },
        ];
        let err = GatewayError::AllAttemptsFailed {
            attempts,
            all_timed_out: false,
        };
        assert_eq!(
            err.to_string(),
            "all upstream attempts failed: #1 a via u1: HTTP 500; #2 b via u2: connect error"
        );
        let body: serde_json::Value = serde_json::from_slice(&err.to_body()).unwrap();
        assert_eq!(body["error"]["attempts"][1]["outcome"], "connect error");
    }
}
