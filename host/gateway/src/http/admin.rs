//! The admin listener: a separate address with its own bearer token, for operators.
//!
//! - `GET /admin/policies`: per policy its path, content hash, load time, tenants, and the last
//!   reload outcome and error;
//! - `GET /admin/config`: the active config's hash and load time, the snapshot generation and the
//!   last reload error (never a key or secret);
//! - `POST /admin/reload`: reload now and return what happened;
//! - `GET /metrics`: Prometheus metrics (token required like the rest);
//! - `GET /healthz`: liveness, without a token;
//! - `/console`: the web console, with its own login (see `crate::console`).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::presented_key;
use crate::live::reload::{self, Trigger};
use crate::reports::{config, learning, policies};
use crate::response::{self, ResponseBody};
use crate::services::Services;

/// Serves the admin API (and the console, whose sampler runs as long as it does) until shutdown.
pub async fn serve(listener: TcpListener, shared: Arc<Services>, shutdown: watch::Receiver<bool>) {
    crate::console::spawn_sampler(shared.clone(), shutdown.clone());
    super::server::serve_with(listener, shared, shutdown, handle, false).await
}

fn json_response(status: StatusCode, body: &Value) -> Response<ResponseBody> {
    response::json(status, body)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<ResponseBody> {
    json_response(
        status,
        &json!({"error": {"message": message, "type": "admin_error", "code": code}}),
    )
}

fn authorized(shared: &Services, req: &Request<Incoming>) -> bool {
    let snapshot = shared.live.snapshot.load();
    let (Some(settings), Some(token)) = (&snapshot.config.admin, presented_key(req.headers()))
    else {
        return false;
    };
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    bool::from(digest.ct_eq(&settings.token_sha256))
}

async fn handle(shared: Arc<Services>, req: Request<Incoming>) -> Response<ResponseBody> {
    let path = req.uri().path().to_owned();
    if req.method() == Method::GET && path == "/healthz" {
        return json_response(StatusCode::OK, &json!({"status": "ok"}));
    }
    if req.method() == Method::GET && path == "/readyz" {
        return response::readiness(shared.is_draining());
    }
    if path == "/console" || path.starts_with("/console/") {
        return crate::console::handle(shared, req).await;
    }
    if !authorized(&shared, &req) {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_admin_token",
            "admin endpoints need `Authorization: Bearer <admin token>`",
        );
    }
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/metrics") => metrics(&shared),
        (Method::GET, "/admin/policies") => json_response(StatusCode::OK, &policies(&shared)),
        (Method::GET, "/admin/config") => json_response(StatusCode::OK, &config(&shared)),
        (Method::GET, "/admin/rollouts") => json_response(
            StatusCode::OK,
            &json!({"rollouts": shared.rollouts.report()}),
        ),
        (Method::GET, "/admin/learning") => json_response(StatusCode::OK, &learning(&shared)),
        (Method::POST, "/admin/reload") => {
            let report = reload::reload(&shared.live, Trigger::Admin).await;
            json_response(
                StatusCode::OK,
                &serde_json::to_value(&report).unwrap_or_default(),
            )
        }
        (_, "/admin/policies" | "/admin/config" | "/admin/reload") => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "wrong method for this endpoint",
        ),
        _ => error(StatusCode::NOT_FOUND, "not_found", "unknown admin endpoint"),
    }
}

fn metrics(shared: &Services) -> Response<ResponseBody> {
    for (upstream, model, state) in shared.breakers.states() {
        let value = match state {
            switchyard_upstream::BreakerState::Closed => 0,
            switchyard_upstream::BreakerState::HalfOpen => 1,
            switchyard_upstream::BreakerState::Open => 2,
        };
        shared
            .metrics
            .circuit_state
            .get_or_create(&crate::observe::metrics::CircuitLabels { upstream, model })
            .set(value);
    }
    let mut r = Response::new(Full::new(Bytes::from(shared.metrics.encode())).boxed_unsync());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}
