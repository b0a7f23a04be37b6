//! The last phase: the response, whole or streamed, with the headers that describe its route,
//! and what settles when it ends (cost, the budget, the cache, the breaker, the access line).
//! A whole response settles here; a stream hands the request's context to its body, which
//! settles when the stream ends or the client leaves.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use switchyard_upstream::chat::ChatRequest;
use switchyard_upstream::dialect::Api;
use switchyard_upstream::{
    Delivered, DeliveredBody, RelayLimits, ResumeContext, Resumer, StreamEnd, StreamFinish,
    StreamOutcome, Usage, completion_output_tokens, into_body, usage_of,
};
use tracing::Instrument;

use super::RequestCtx;
use super::door::Door;
use crate::cache::{CacheKey, CacheKeys, CachedResponse};
use crate::config::ModelInfo;
use crate::error::GatewayError;
use crate::live::snapshot::Snapshot;
use crate::live::tenant::Tenant;
use crate::response::{ResponseBody, headers};
use crate::routing::{PlanSource, RoutePlan};
use crate::services::Services;

/// Headers that describe the route: decision time, tags, and a policy failure if one happened.
fn route_headers(
    mut builder: http::response::Builder,
    plan: &RoutePlan,
    ctx: &RequestCtx,
) -> http::response::Builder {
    builder = builder.header(
        headers::DECISION_US,
        ctx.decision.unwrap_or_default().as_micros() as u64,
    );
    if !plan.tags.is_empty() {
        let tags = plan
            .tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        if let Ok(v) = http::HeaderValue::from_str(&tags) {
            builder = builder.header(headers::TAGS, v);
        }
    }
    if let PlanSource::FailureDefault(kind) = plan.source {
        builder = builder.header(headers::POLICY_FAILURE, kind.as_str());
    }
    builder
}

fn built(
    r: Result<Response<ResponseBody>, http::Error>,
) -> Result<Response<ResponseBody>, GatewayError> {
    r.map_err(|e| GatewayError::Internal(e.to_string()))
}

/// Serves a cache hit: as JSON, or replayed as an SSE stream if the client asked for one. It costs
/// nothing upstream; what it would have cost is reported as saved.
pub(super) fn cached(
    snapshot: &Snapshot,
    ctx: &mut RequestCtx,
    door: &Door,
    chat: &ChatRequest,
    plan: &RoutePlan,
    hit: &CachedResponse,
) -> Result<Response<ResponseBody>, GatewayError> {
    ctx.model = Some(hit.model.clone());
    ctx.upstream = Some("cache".into());
    let usage = usage_of(hit.body.as_bytes());
    ctx.usage = usage;
    ctx.cost_usd = Some(0.0);
    let saved = match (usage, snapshot.config.models.get(&hit.model)) {
        (Some(u), Some(price)) => price.cost(&u),
        _ => 0.0,
    };
    ctx.saved_usd = Some(saved);
    ctx.first_byte = Some(ctx.started.elapsed());
    let builder = route_headers(Response::builder().status(StatusCode::OK), plan, ctx)
        .header(headers::MODEL, hit.model.as_str())
        .header(headers::ATTEMPTS, 0)
        .header(headers::CACHE, ctx.cache.as_str())
        .header(headers::COST_USD, format!("{:.10}", 0.0))
        .header(headers::SAVED_USD, format!("{saved:.10}"));
    let completion = || {
        serde_json::from_str::<serde_json::Value>(&hit.body)
            .map_err(|e| GatewayError::Internal(format!("cached entry: {e}")))
    };
    if chat.stream {
        let frames = door.replay(
            &completion()?,
            &ctx.id,
            &hit.model,
            chat.wants_stream_usage(),
        );
        let body = StreamBody::new(futures_util::stream::iter(
            frames.into_iter().map(|f| Ok(Frame::data(f))),
        ));
        built(
            builder
                .header(header::CONTENT_TYPE, "text/event-stream")
                .header(header::CACHE_CONTROL, "no-cache")
                .body(body.boxed_unsync()),
        )
    } else {
        let body = match door.api {
            Api::Chat => Bytes::copy_from_slice(hit.body.as_bytes()),
            _ => door.render(&completion()?, &ctx.id, &hit.model),
        };
        built(
            builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(body).boxed_unsync()),
        )
    }
}

/// Serves what the winning attempt delivered.
pub(super) fn delivered(
    services: &Arc<Services>,
    snapshot: &Snapshot,
    ctx: &mut RequestCtx,
    (tenant, door, chat): (&Tenant, &Door, &ChatRequest),
    plan: &RoutePlan,
    keys: Option<CacheKeys>,
    delivered: Delivered,
) -> Result<Response<ResponseBody>, GatewayError> {
    // The cache, write side: the entry is filed under the model that actually answered.
    let cache_write = keys.filter(|_| plan.cache_writes()).map(|k| {
        (
            k.for_model(&delivered.model),
            services.cache.ttl(plan.cache_ttl_seconds),
        )
    });
    let mut builder = route_headers(Response::builder().status(StatusCode::OK), plan, ctx)
        .header(headers::MODEL, delivered.model.as_str())
        .header(headers::UPSTREAM, &*delivered.upstream.name)
        .header(headers::ATTEMPTS, delivered.attempts.len())
        .header(headers::CACHE, ctx.cache.as_str());
    if delivered.upstream.is_simulated() {
        builder = builder.header(headers::SIMULATED, "true");
    }
    let price = snapshot.config.models.get(&delivered.model).cloned();
    match delivered.body {
        DeliveredBody::Full { body, wire, usage } => {
            ctx.wire = wire.label();
            // A non-chat answer is read as chat only when something needs that view: an estimate
            // of its output, the cache (which stores chat), or a client of another dialect. A
            // passed-through answer with usage goes out as it came.
            let needs_view = usage.is_none() || cache_write.is_some() || wire != door.api;
            let completion = needs_view
                .then(|| switchyard_upstream::dialect::response_chat_view(wire, &body))
                .flatten();
            let input = chat.stats.estimated_input_tokens;
            match usage {
                Some(u) => ctx.settle(Some(u), price.as_ref().map_or(0.0, |p| p.cost(&u)), false),
                None => {
                    // Without usage from the provider, the tenant is charged the host's estimate
                    // of what was delivered: the input, and the answer's text.
                    let output = match &completion {
                        Some(c) => completion_output_tokens(c),
                        None => serde_json::from_slice(&body)
                            .map_or(0, |c: serde_json::Value| completion_output_tokens(&c)),
                    };
                    let estimated = estimated_usage(input, output);
                    let cost = price.as_ref().map_or(0.0, |p| p.cost(&estimated));
                    ctx.settle(Some(estimated), cost, true);
                }
            }
            builder = builder.header(
                headers::COST_USD,
                format!("{:.10}", ctx.cost_usd.unwrap_or(0.0)),
            );
            if ctx.cost_estimated {
                builder = builder.header(headers::COST_ESTIMATED, "true");
            }
            if let Some((key, ttl)) = cache_write {
                // Entries are chat completions whatever the dialect, replayed in the client's.
                let stored = match &completion {
                    Some(c) => c.to_string(),
                    None => String::from_utf8_lossy(&body).into_owned(),
                };
                let entry = CachedResponse {
                    model: delivered.model.clone(),
                    body: stored,
                };
                store(services, key, entry, ttl, &ctx.span);
            }
            let body = door.full(wire, body, completion.as_ref(), &ctx.id, &delivered.model)?;
            built(
                builder
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Full::new(body).boxed_unsync()),
            )
        }
        DeliveredBody::Stream(start) => {
            ctx.wire = start.wire().label();
            let limits = RelayLimits {
                idle: delivered.upstream.settings.timeouts.idle,
                deadline: tokio::time::Instant::from_std(
                    ctx.started + snapshot.config.server.request_deadline,
                ),
                strip_usage_chunks: door.api == Api::Chat && !chat.wants_stream_usage(),
                assemble: cache_write.is_some(),
                drain_expired: services.drain_expired.subscribe(),
                output_budget: ctx.output_budget,
            };
            let resumer = tenant.config.resume_streams.then(|| {
                let resumer: Box<dyn switchyard_upstream::relay::Resume> = Box::new(Resumer::new(
                    &plan.targets,
                    delivered.index,
                    ResumeContext {
                        chat: chat.clone(),
                        overrides: plan.overrides.clone(),
                        request_id: ctx.id.clone(),
                        deadline: limits.deadline,
                        redactor: snapshot.redactor.clone(),
                        breakers: services.breakers.clone(),
                        retry_budget: services.retry_budget.clone(),
                        stats: services.stats.clone(),
                        observer: Arc::new(crate::observe::metrics::OwnedAttemptCounter(
                            services.metrics.clone(),
                        )),
                    },
                ));
                resumer
            });
            // The route's prices, for the targets a resumed stream may end on.
            let prices = plan
                .targets
                .iter()
                .filter_map(|t| {
                    let info = snapshot.config.models.get(&t.model)?;
                    Some((t.model.clone(), info.clone()))
                })
                .collect();
            services.metrics.open_streams.inc();
            ctx.status = 200;
            let finisher = StreamFinisher {
                ctx: ctx.hand_over(),
                services: services.clone(),
                upstream: delivered.upstream.name.clone(),
                model: delivered.model.clone(),
                prices,
                input_tokens: chat.stats.estimated_input_tokens,
                cache_write,
            };
            let client = door.stream(
                start.wire(),
                &ctx.id,
                &delivered.model,
                chat.wants_stream_usage(),
            );
            let body = into_body(
                start,
                limits,
                snapshot.redactor.clone(),
                client,
                resumer,
                finisher,
            );
            built(
                builder
                    .header(header::CONTENT_TYPE, "text/event-stream")
                    .header(header::CACHE_CONTROL, "no-cache")
                    .body(body.boxed_unsync()),
            )
        }
    }
}

/// Writes a cache entry off the response's path; failures are logged by the cache.
fn store(
    services: &Arc<Services>,
    key: CacheKey,
    entry: CachedResponse,
    ttl: Duration,
    parent: &tracing::Span,
) {
    let services = services.clone();
    let span = crate::stage_span!(parent: parent, "cache.store", model = %entry.model);
    tokio::spawn(async move { services.cache.put(key, entry, ttl).instrument(span).await });
}

/// Settles a streamed request when its stream ends, or when the client leaves and the body is
/// dropped: the breaker hears of a stream the provider broke, a finished stream is cached, the
/// budget is charged, and the request's context (dropped at the end) writes the access line.
struct StreamFinisher {
    ctx: RequestCtx,
    services: Arc<Services>,
    upstream: Arc<str>,
    model: String,
    /// Prices of the route's models (a resumed stream ends on another target).
    prices: Vec<(String, ModelInfo)>,
    /// The host's estimate of the request's input, for charging a target without usage.
    input_tokens: u64,
    cache_write: Option<(CacheKey, Duration)>,
}

/// The usage the host charges when a provider reported none: its own estimates.
fn estimated_usage(input: u64, output: u64) -> Usage {
    Usage {
        prompt_tokens: input,
        cached_prompt_tokens: 0,
        completion_tokens: output,
    }
}

impl StreamFinisher {
    fn price(&self, model: &str) -> Option<&ModelInfo> {
        self.prices.iter().find(|(m, _)| m == model).map(|(_, p)| p)
    }

    /// What one target's part of the stream costs: its usage at its model's price, or the
    /// host's estimate of what it delivered. Returns the usage charged, the cost, and whether it
    /// is an estimate.
    fn part(&self, model: &str, usage: Option<Usage>, delivered: u64) -> (Usage, f64, bool) {
        let (usage, estimated) = match usage {
            Some(u) => (u, false),
            None => (estimated_usage(self.input_tokens, delivered), true),
        };
        let cost = self.price(model).map_or(0.0, |p| p.cost(&usage));
        (usage, cost, estimated)
    }
}

impl StreamFinish for StreamFinisher {
    fn finish(mut self, end: StreamEnd) {
        self.services.metrics.open_streams.dec();
        if matches!(
            end.outcome,
            StreamOutcome::Failed(_) | StreamOutcome::Truncated(_)
        ) {
            // A provider that breaks streams is failing, even if it started them fine.
            let (model, upstream) = end
                .last_target
                .clone()
                .unwrap_or_else(|| (self.model.clone(), self.upstream.clone()));
            self.services.breakers.record(&upstream, &model, true);
        }
        for cut in &end.resumed {
            self.services
                .breakers
                .record(&cut.upstream, &cut.model, true);
        }
        // Only a stream that finished is stored; a cut or failed one never is.
        if let (Some((key, ttl)), Some(completion)) = (self.cache_write, &end.assembled) {
            let entry = CachedResponse {
                model: self.model.clone(),
                body: completion.to_string(),
            };
            store(&self.services, key, entry, ttl, &self.ctx.span);
        }
        let last_model = end
            .last_target
            .as_ref()
            .map_or(self.model.as_str(), |(m, _)| m.as_str());
        let (mut usage, mut cost, mut estimated) =
            self.part(last_model, end.usage, end.delivered_tokens);
        for cut in &end.resumed {
            let (u, c, e) = self.part(&cut.model, cut.usage, cut.delivered_tokens);
            usage.prompt_tokens += u.prompt_tokens;
            usage.cached_prompt_tokens += u.cached_prompt_tokens;
            usage.completion_tokens += u.completion_tokens;
            cost += c;
            estimated |= e;
        }
        self.ctx.settle(Some(usage), cost, estimated);
        self.ctx.stream_ended(&end);
    }
}
