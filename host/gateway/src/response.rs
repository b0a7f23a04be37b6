//! What every response the gateway sends is made of: one body type, the headers it adds, and the
//! one place a [`GatewayError`] becomes a response.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

use switchyard_upstream::dialect::Api;

use crate::error::GatewayError;

/// The body of every response the gateway sends.
pub type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

/// Response headers the gateway adds. Names made once (`HeaderName::from_static`): a name given
/// as a string is parsed and, for these non-standard ones, copied into a new allocation on every
/// response.
pub mod headers {
    use http::HeaderName;

    pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
    /// The request id under the name Anthropic's API uses.
    pub const ANTHROPIC_REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
    /// Set (`true`) on a token count that is the host's estimate, not the provider's tokenizer.
    pub const TOKENS_ESTIMATED: HeaderName =
        HeaderName::from_static("x-switchyard-tokens-estimated");
    pub const MODEL: HeaderName = HeaderName::from_static("x-switchyard-model");
    pub const UPSTREAM: HeaderName = HeaderName::from_static("x-switchyard-upstream");
    pub const POLICY: HeaderName = HeaderName::from_static("x-switchyard-policy");
    pub const ATTEMPTS: HeaderName = HeaderName::from_static("x-switchyard-attempts");
    pub const DECISION_US: HeaderName = HeaderName::from_static("x-switchyard-decision-us");
    pub const COST_USD: HeaderName = HeaderName::from_static("x-switchyard-cost-usd");
    /// Set (`true`) when the cost is an estimate (the provider reported no usage).
    pub const COST_ESTIMATED: HeaderName = HeaderName::from_static("x-switchyard-cost-estimated");
    pub const SIMULATED: HeaderName = HeaderName::from_static("x-switchyard-simulated");
    /// The policy failed this way and the tenant's default route served the request.
    pub const POLICY_FAILURE: HeaderName = HeaderName::from_static("x-switchyard-policy-failure");
    pub const TAGS: HeaderName = HeaderName::from_static("x-switchyard-tags");
    pub const CACHE: HeaderName = HeaderName::from_static("x-switchyard-cache");
    pub const SAVED_USD: HeaderName = HeaderName::from_static("x-switchyard-saved-usd");
}

/// A whole response with `content_type`.
pub fn full(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(body).boxed_unsync());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON response.
pub fn json(status: StatusCode, body: &serde_json::Value) -> Response<ResponseBody> {
    full(
        status,
        "application/json",
        switchyard_upstream::dialect::json_bytes(body),
    )
}

/// The one place a [`GatewayError`] becomes a response, in the shape of the API the client
/// spoke: Anthropic's for Messages, OpenAI's otherwise.
pub(crate) fn error_response(api: Api, err: &GatewayError) -> Response<ResponseBody> {
    let body = match api {
        Api::Messages => err.to_anthropic_body(),
        Api::Chat | Api::Responses => err.to_body(),
    };
    let mut response = full(err.status(), "application/json", body);
    if let Some(wait) = err.retry_after() {
        // Whole seconds, rounded up: a client that waits this long will get through.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    response
}

/// `/readyz`: 200 while serving, 503 from the start of a shutdown's drain, so load balancers stop
/// sending new requests while the in-flight ones finish.
pub fn readiness(draining: bool) -> Response<ResponseBody> {
    let body: &'static [u8] = if draining {
        b"{\"ready\":false,\"reason\":\"draining\"}"
    } else {
        b"{\"ready\":true}"
    };
    let status = if draining {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    full(status, "application/json", Bytes::from_static(body))
}
