//! The request path, phase by phase. Read this file first.
//!
//! ```text
//! accept (server.rs) ─► authenticate ─► read body (size cap) ─► parse once ─► check requested model
//!   ─► summarise ─► policy decides (fresh sandbox) ─► host checks the decision
//!   ─► fallback loop (commit at the first byte) ─► respond: JSON, or a relayed SSE stream
//!   ─► access log + cost when the response (or stream) ends
//! ```
//! Every failure is a [`GatewayError`], turned into an OpenAI-style JSON error in one place
//! ([`error_response`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::json;
use tracing::Instrument;

use crate::accounting::{AccessLog, cost_usd};
use crate::app::Shared;
use crate::auth;
use crate::cache::{self, CacheKey, CacheOutcome, CachedResponse, replay};
use crate::error::GatewayError;
use crate::openai::request::{ChatRequest, ParseError};
use crate::openai::usage::{Usage, usage_of};
use crate::routing::RoutePlan;
use crate::routing::{self, PlanSource};
use crate::state::Snapshot;
use crate::tenant::Tenant;
use crate::upstream::fallback::ExecOptions;
use crate::upstream::relay::{self, RelayLimits};
use crate::upstream::{DeliveredBody, execute};
use http_body::Frame;
use http_body_util::StreamBody;
use switchyard_policy::types::{Budget, CacheMode, RequestSummary};

/// The body of every response the gateway sends.
pub type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

/// Response headers the gateway adds.
pub mod headers {
    pub const REQUEST_ID: &str = "x-request-id";
    pub const MODEL: &str = "x-switchyard-model";
    pub const UPSTREAM: &str = "x-switchyard-upstream";
    pub const POLICY: &str = "x-switchyard-policy";
    pub const ATTEMPTS: &str = "x-switchyard-attempts";
    pub const DECISION_US: &str = "x-switchyard-decision-us";
    pub const COST_USD: &str = "x-switchyard-cost-usd";
    pub const SIMULATED: &str = "x-switchyard-simulated";
    pub const FALLBACK_REASON: &str = "x-switchyard-policy-failure";
    pub const TAGS: &str = "x-switchyard-tags";
    pub const CACHE: &str = "x-switchyard-cache";
    pub const SAVED_USD: &str = "x-switchyard-saved-usd";
}

fn full(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(body).boxed_unsync());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The one place a [`GatewayError`] becomes a response.
pub fn error_response(err: &GatewayError) -> Response<ResponseBody> {
    let mut response = full(err.status(), "application/json", err.to_body());
    if let Some(wait) = err.retry_after() {
        // Whole seconds, rounded up: a client that waits this long will get through.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    response
}

/// A request id: the client's `x-request-id` when it is short and plain, otherwise a new one.
fn request_id(headers: &HeaderMap) -> (Arc<str>, u64) {
    let seed = fastrand::u64(..);
    if let Some(id) = headers
        .get(headers::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        && !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        return (id.into(), seed);
    }
    (format!("req_{seed:016x}").into(), seed)
}

/// Handles one request on the main listener.
pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<ResponseBody> {
    let started = Instant::now();
    let snapshot = shared.snapshot.load_full();
    let (id, seed) = request_id(req.headers());
    let mut log = AccessLog::new(
        id.clone(),
        req.method().clone(),
        req.uri().path().to_owned(),
        started,
        shared.metrics.clone(),
    );
    // With export on, the span also carries OpenTelemetry's name, kind and status; without it
    // those fields would only clutter the log lines that print the span.
    macro_rules! request_span {
        ($($otel:tt)*) => {
            tracing::info_span!(
                "request",
                $($otel)*
                id = %id,
                tenant = tracing::field::Empty,
                policy = tracing::field::Empty,
                model = tracing::field::Empty,
                attempts = tracing::field::Empty,
                decision_us = tracing::field::Empty,
                status = tracing::field::Empty,
                latency_ms = tracing::field::Empty,
            )
        };
    }
    let span = if crate::telemetry::exporting() {
        request_span!(
            otel.name = %format_args!("{} {}", req.method(), req.uri().path()),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
        )
    } else {
        request_span!()
    };
    crate::telemetry::adopt_remote_parent(&span, req.headers());
    let path = req.uri().path();
    let result = match (req.method(), path) {
        (&Method::POST, "/v1/chat/completions" | "/chat/completions") => {
            chat_completions(&shared, &snapshot, req, &id, seed, &mut log)
                .instrument(span.clone())
                .await
        }
        (&Method::GET, "/v1/models" | "/models") => list_models(&snapshot, req.headers(), &mut log),
        (&Method::GET, "/healthz") => Ok(full(
            StatusCode::OK,
            "application/json",
            Bytes::from_static(b"{\"status\":\"ok\"}"),
        )),
        (&Method::GET, "/readyz") => Ok(readiness(&shared)),
        (
            _,
            "/v1/chat/completions"
            | "/chat/completions"
            | "/v1/models"
            | "/models"
            | "/healthz"
            | "/readyz",
        ) => Err(GatewayError::MethodNotAllowed {
            method: req.method().to_string(),
            path: path.to_owned(),
        }),
        _ => Err(GatewayError::NotFound {
            path: path.to_owned(),
        }),
    };
    let mut response = match result {
        Ok(r) => r,
        Err(e) => {
            log.error = Some(e.to_string());
            error_response(&e)
        }
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(headers::REQUEST_ID, v);
    }
    if let Some(policy) = &log.policy_header {
        response
            .headers_mut()
            .insert(headers::POLICY, policy.clone());
    }
    if !response.headers().contains_key(headers::CACHE) {
        response
            .headers_mut()
            .insert(headers::CACHE, HeaderValue::from_static("bypass"));
    }
    log.status = response.status().as_u16();
    if response.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    log.record_on(&span);
    log.emit_unless_deferred();
    response
}

/// `/readyz`: 200 while serving, 503 from the start of a shutdown's drain, so load balancers stop
/// sending new requests while the in-flight ones finish.
pub fn readiness(shared: &Shared) -> Response<ResponseBody> {
    if shared.draining.load(std::sync::atomic::Ordering::Relaxed) {
        full(
            StatusCode::SERVICE_UNAVAILABLE,
            "application/json",
            Bytes::from_static(b"{\"ready\":false,\"reason\":\"draining\"}"),
        )
    } else {
        full(
            StatusCode::OK,
            "application/json",
            Bytes::from_static(b"{\"ready\":true}"),
        )
    }
}

fn list_models(
    snapshot: &Snapshot,
    headers: &HeaderMap,
    log: &mut AccessLog,
) -> Result<Response<ResponseBody>, GatewayError> {
    let tenant = auth::authenticate(headers, &snapshot.keys)?;
    log.tenant = Some(tenant.name.clone());
    let data: Vec<_> = tenant
        .config
        .models
        .iter()
        .chain(&tenant.config.model_aliases)
        .map(|m| json!({"id": m, "object": "model", "created": 0, "owned_by": "switchyard"}))
        .collect();
    let body = json!({"object": "list", "data": data});
    Ok(full(
        StatusCode::OK,
        "application/json",
        Bytes::from(body.to_string()),
    ))
}

/// Reads the body up to `limit` bytes; a declared or actual larger body is a 413.
async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, GatewayError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    // Chunks are appended to one buffer sized from `Content-Length` as they arrive and dropped
    // at once, so a request holds its body once (collecting the chunks, then joining them, held
    // it twice at the peak: 8 MB for a 4 MB prompt).
    let mut body = req.into_body();
    let mut buf = BytesMut::with_capacity(declared.map_or(0, |len| len as usize).min(limit));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| GatewayError::InvalidRequest {
            message: format!("could not read the request body: {e}"),
            param: None,
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(GatewayError::BodyTooLarge { limit });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

fn check_requested_model(
    snapshot: &Snapshot,
    tenant: &Tenant,
    model: &str,
) -> Result<(), GatewayError> {
    if tenant.allows(model) || tenant.config.model_aliases.iter().any(|a| a == model) {
        return Ok(());
    }
    if snapshot.config.models.contains_key(model) {
        Err(GatewayError::ModelNotAllowed {
            model: model.to_owned(),
        })
    } else {
        Err(GatewayError::ModelNotFound {
            model: model.to_owned(),
        })
    }
}

async fn chat_completions(
    shared: &Arc<Shared>,
    snapshot: &Arc<Snapshot>,
    req: Request<Incoming>,
    id: &Arc<str>,
    seed: u64,
    log: &mut AccessLog,
) -> Result<Response<ResponseBody>, GatewayError> {
    // Authenticate before reading the body: an unauthenticated client cannot make us buffer 32 MB.
    let tenant = auth::authenticate(req.headers(), &snapshot.keys)?;
    log.tenant = Some(tenant.name.clone());
    log.policy_header = Some(tenant.policy.header.clone());
    let quota = &tenant.config.quota;
    shared
        .accounts
        .check_request(&tenant.name, quota)
        .await
        .map_err(GatewayError::Refused)?;
    let headers = req.headers().clone();
    let server = &snapshot.config.server;
    let deadline = tokio::time::Instant::now() + server.request_deadline;

    let body = read_body(req, server.max_body_bytes).await?;
    let chat = ChatRequest::parse(body, server.max_messages).map_err(|e| {
        GatewayError::InvalidRequest {
            param: e.param().map(str::to_owned),
            message: match &e {
                ParseError::Malformed(m) => m.clone(),
                ParseError::Invalid { .. } => e.to_string(),
            },
        }
    })?;
    log.stream = chat.stream;
    if server.log_prompts {
        log.prompt = Some(chat.stats.last_user_excerpt.clone());
    }
    let requested = snapshot.config.canonical(&chat.model.value).to_owned();
    check_requested_model(snapshot, &tenant, &requested)?;
    let output_tokens = chat
        .max_output_tokens()
        .unwrap_or(server.reserve_output_tokens);
    shared
        .accounts
        .check_tokens(
            &tenant.name,
            quota,
            chat.stats.estimated_input_tokens + output_tokens,
        )
        .await
        .map_err(GatewayError::Refused)?;
    // Policies see the spend only when the tenant has budgets (it costs a Redis round trip when
    // shared).
    let spend = if quota.daily_budget_usd.is_some() || quota.monthly_budget_usd.is_some() {
        shared.accounts.spend(&tenant.name).await
    } else {
        Default::default()
    };
    let budget = Budget {
        spent_today_usd: spend.today_usd,
        daily_limit_usd: quota.daily_budget_usd,
        spent_month_usd: spend.month_usd,
        monthly_limit_usd: quota.monthly_budget_usd,
    };

    let summary = routing::summarise(
        id,
        seed,
        &tenant,
        &chat,
        routing::hints(&headers, &chat),
        &shared.breakers,
        budget,
    );
    let summary = RequestSummary {
        requested_model: requested,
        ..summary
    };
    let chooser = routing::Chooser {
        choice: snapshot.config.upstream_choice,
        prefix_key: chat.stats.prefix_key,
        tenant: &tenant.name,
        round_robin: &shared.round_robin,
        breakers: &shared.breakers,
    };
    let decided = routing::decide(
        snapshot,
        &tenant,
        id,
        summary,
        &chooser,
        &shared.quarantine,
        &shared.scheduler,
        &shared.metrics,
    )
    .instrument(crate::stage_span!(
        "policy.decide",
        policy = %tenant.policy.name,
    ))
    .await?;
    let decision_time = decided.decision_time;
    log.decision = Some(decision_time);
    let plan = decided.plan;
    // The rest of the request runs while the decision's instance waits to be torn down (and the
    // policy's next one made): that happens as soon as the request first waits, for the cache,
    // the budget store or the upstream, so neither a slow Redis nor a long upstream call keeps
    // the tenant's turn or a pool slot.
    let rest = async {
        log.tags = plan.tags.clone();

        // The cache, read side: an entry for any model of the route counts, in the route's order,
        // so a response a fallback produced is reused while the primary keeps failing.
        let primary = plan
            .targets
            .first()
            .map(|t| t.model.clone())
            .unwrap_or_default();
        let reads = matches!(plan.cache, CacheMode::ReadOnly | CacheMode::ReadWrite);
        let writes = matches!(plan.cache, CacheMode::WriteOnly | CacheMode::ReadWrite);
        let key = if reads || writes {
            CacheKey::new(&tenant.name, &primary, &chat, &plan.overrides)
        } else {
            None
        };
        if reads && key.is_some() {
            log.cache = CacheOutcome::Miss;
            let mut models: Vec<&str> = Vec::new();
            for t in &plan.targets {
                if !models.contains(&t.model.as_str()) {
                    models.push(&t.model);
                }
            }
            for model in models {
                let Some(k) = (if model == primary {
                    key
                } else {
                    CacheKey::new(&tenant.name, model, &chat, &plan.overrides)
                }) else {
                    continue;
                };
                let lookup = crate::stage_span!(
                    "cache.lookup",
                    model = model,
                    outcome = tracing::field::Empty,
                );
                let found = shared.cache.get(&k).instrument(lookup.clone()).await;
                lookup.record(
                    "outcome",
                    match &found {
                        Ok(Some(_)) => "hit",
                        Ok(None) => "miss",
                        Err(()) => "error",
                    },
                );
                match found {
                    Ok(Some(hit)) => {
                        log.cache = CacheOutcome::Hit;
                        return respond_from_cache(
                            snapshot,
                            &chat,
                            &hit,
                            &plan,
                            decision_time,
                            log,
                        );
                    }
                    Ok(None) => {}
                    Err(()) => {
                        log.cache = CacheOutcome::Bypass;
                        break;
                    }
                }
            }
        }
        let ttl = shared.cache.ttl(plan.cache_ttl_seconds);

        // Hold the request's worst-case cost against the tenant's budgets until it is settled.
        let output_tokens = plan
            .overrides
            .max_output_tokens
            .map_or(output_tokens, |cap| cap.min(output_tokens));
        let estimate = plan
            .targets
            .iter()
            .filter_map(|t| snapshot.config.models.get(&t.model))
            .map(|price| {
                let usage = Usage {
                    prompt_tokens: chat.stats.estimated_input_tokens,
                    cached_prompt_tokens: 0,
                    completion_tokens: output_tokens,
                };
                cost_usd(&usage, price)
            })
            .fold(0.0, f64::max);
        let reservation = shared
            .accounts
            .reserve(&tenant.name, quota, estimate)
            .await
            .map_err(GatewayError::Refused)?;

        let opts = ExecOptions {
            request_id: id,
            overrides: plan.overrides.clone(),
            deadline,
            redactor: &snapshot.redactor,
            incoming_headers: &headers,
            breakers: &shared.breakers,
            retry_budget: &shared.retry_budget,
            metrics: &shared.metrics,
            tenant: &tenant.name,
        };
        let delivered = match execute(&plan.targets, &chat, &opts).await {
            Ok(d) => d,
            Err(e) => {
                if let GatewayError::AllAttemptsFailed { attempts, .. }
                | GatewayError::UpstreamRejected { attempts, .. } = &e
                {
                    log.attempts = attempts.len();
                }
                return Err(e);
            }
        };
        log.model = Some(delivered.model.clone());
        log.upstream = Some(delivered.upstream.name.clone());
        log.attempts = delivered.attempts.len();
        log.upstream_wait = delivered.upstream_time;
        log.first_byte = Some(log.started.elapsed());
        // The cache, write side: the entry is filed under the model that actually answered.
        let write_key = match (writes, &key) {
            (false, _) => None,
            (true, Some(k)) if delivered.model == primary => Some(*k),
            (true, _) => CacheKey::new(&tenant.name, &delivered.model, &chat, &plan.overrides),
        };

        let mut builder = route_headers(
            Response::builder().status(StatusCode::OK),
            &plan,
            decision_time,
        )
        .header(headers::MODEL, delivered.model.as_str())
        .header(headers::UPSTREAM, &*delivered.upstream.name)
        .header(headers::ATTEMPTS, delivered.attempts.len())
        .header(headers::CACHE, log.cache.as_str());
        if delivered.upstream.is_simulated() {
            builder = builder.header(headers::SIMULATED, "true");
        }
        let price = snapshot.config.models.get(&delivered.model).cloned();

        match delivered.body {
            DeliveredBody::Full { body, usage } => {
                log.usage = usage;
                if let (Some(usage), Some(price)) = (usage, &price) {
                    let cost = cost_usd(&usage, price);
                    log.cost_usd = Some(cost);
                    builder = builder.header(headers::COST_USD, format!("{cost:.10}"));
                }
                // Without usage from the provider, the estimate is what the tenant is charged.
                reservation.settle(log.cost_usd.unwrap_or(estimate));
                if let Some(key) = write_key {
                    let entry = CachedResponse {
                        model: delivered.model.clone(),
                        body: String::from_utf8_lossy(&body).into_owned(),
                    };
                    let shared = shared.clone();
                    let store = crate::stage_span!("cache.store", model = %entry.model);
                    tokio::spawn(async move {
                        shared.cache.put(key, entry, ttl).instrument(store).await
                    });
                }
                builder
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Full::new(body).boxed_unsync())
                    .map_err(|e| GatewayError::Internal(e.to_string()))
            }
            DeliveredBody::Stream(start) => {
                let limits = RelayLimits {
                    idle: delivered.upstream.config.idle_timeout,
                    deadline,
                    strip_usage_chunks: !chat.wants_stream_usage(),
                    assemble: write_key.is_some(),
                    drain_expired: shared.drain_expired.subscribe(),
                };
                shared.metrics.open_streams.inc();
                let mut stream_log = log.defer();
                stream_log.status = 200;
                let (shared, upstream, model) = (
                    shared.clone(),
                    delivered.upstream.name.clone(),
                    delivered.model.clone(),
                );
                // The request's span stays open until the stream ends, so its duration in a trace is
                // the stream's.
                let request_span = tracing::Span::current();
                let body = relay::into_body(start, limits, snapshot.redactor.clone(), move |end| {
                    if matches!(end.outcome, relay::StreamOutcome::Failed(_)) {
                        // A provider that breaks streams is failing, even if it started them fine.
                        shared.breakers.record(&upstream, &model, true);
                    }
                    // Only a stream that finished is stored; a cut or failed one never is.
                    if let (Some(key), Some(completion)) = (write_key, &end.assembled) {
                        let entry = CachedResponse {
                            model: model.clone(),
                            body: completion.to_string(),
                        };
                        let shared = shared.clone();
                        let store = crate::stage_span!(
                            parent: &request_span,
                            "cache.store",
                            model = %entry.model,
                        );
                        tokio::spawn(async move {
                            shared.cache.put(key, entry, ttl).instrument(store).await
                        });
                    }
                    let cost = match (end.usage, &price) {
                        (Some(u), Some(p)) => cost_usd(&u, p),
                        _ => estimate,
                    };
                    reservation.settle(cost);
                    stream_log.finish_stream(end, price.as_ref());
                    drop(request_span);
                });
                builder
                    .header(header::CONTENT_TYPE, "text/event-stream")
                    .header(header::CACHE_CONTROL, "no-cache")
                    .body(body.boxed_unsync())
                    .map_err(|e| GatewayError::Internal(e.to_string()))
            }
        }
    };
    routing::tear_down_once_waiting(rest, decided.teardown).await
}

/// Headers that describe the route: decision time, tags, and a policy failure if one happened.
fn route_headers(
    mut builder: http::response::Builder,
    plan: &RoutePlan,
    decision_time: std::time::Duration,
) -> http::response::Builder {
    builder = builder.header(headers::DECISION_US, decision_time.as_micros() as u64);
    if !plan.tags.is_empty() {
        let tags = plan
            .tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        if let Ok(v) = HeaderValue::from_str(&tags) {
            builder = builder.header(headers::TAGS, v);
        }
    }
    if let PlanSource::FailureDefault(kind) = plan.source {
        builder = builder.header(headers::FALLBACK_REASON, kind.as_str());
    }
    builder
}

/// Serves a cache hit: as JSON, or replayed as an SSE stream if the client asked for one. It costs
/// nothing upstream; what it would have cost is reported as saved.
fn respond_from_cache(
    snapshot: &Snapshot,
    chat: &ChatRequest,
    hit: &CachedResponse,
    plan: &RoutePlan,
    decision_time: std::time::Duration,
    log: &mut AccessLog,
) -> Result<Response<ResponseBody>, GatewayError> {
    log.model = Some(hit.model.clone());
    log.upstream = Some("cache".into());
    let usage = usage_of(hit.body.as_bytes());
    log.usage = usage;
    log.cost_usd = Some(0.0);
    let saved = match (usage, snapshot.config.models.get(&hit.model)) {
        (Some(u), Some(price)) => cost_usd(&u, price),
        _ => 0.0,
    };
    log.saved_usd = Some(saved);
    let builder = route_headers(
        Response::builder().status(StatusCode::OK),
        plan,
        decision_time,
    )
    .header(headers::MODEL, hit.model.as_str())
    .header(headers::ATTEMPTS, 0)
    .header(headers::CACHE, CacheOutcome::Hit.as_str())
    .header(headers::COST_USD, format!("{:.10}", 0.0))
    .header(headers::SAVED_USD, format!("{saved:.10}"));
    let response = if chat.stream {
        let completion: serde_json::Value = serde_json::from_str(&hit.body)
            .map_err(|e| GatewayError::Internal(format!("cached entry: {e}")))?;
        let frames = replay::sse_frames(&completion, chat.wants_stream_usage());
        let body = StreamBody::new(futures_util::stream::iter(
            frames.into_iter().map(|f| Ok(Frame::data(f))),
        ));
        builder
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(body.boxed_unsync())
    } else {
        builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(cache::body_bytes(hit)).boxed_unsync())
    };
    response.map_err(|e| GatewayError::Internal(e.to_string()))
}
