//! The request path, phase by phase. Read this file first.
//!
//! ```text
//! handle ─► authenticate ─► parse ─► summarise ─► decide (sandbox) ─► serve:
//!             │ 401, 429     │ 400, 413, 403, 404     │ policy's 4xx/503   lookup cache ─► hit: respond_cached
//!                                                                          reserve budget ─► 429
//!                                                                          execute (fallback loop, commit point) ─► 502/504
//!                                                                          respond: whole, or streamed
//! every path ─► the request context is dropped: access line, metrics, budget, in-flight gauge
//! ```
//!
//! Every phase is a method of [`Pipeline`] that reads or fills the request's [`RequestCtx`]; every
//! failure is a [`GatewayError`], turned into a response in one place
//! ([`crate::response::error_response`]). A client that hangs up drops the request's future
//! wherever it waits, and the context's `Drop` finishes it (see [`ctx`]).

mod body;
mod ctx;
mod door;
mod respond;

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use switchyard_policy::FailureKind;
use switchyard_policy::types::{Budget, RateLimits, RequestSummary};
use switchyard_upstream::chat::ChatRequest;
use switchyard_upstream::dialect::Api;
use switchyard_upstream::{Delivered, ExecOptions, execute};
use tracing::Instrument;

pub(crate) use ctx::{Finish, RequestCtx, seed_of};
use door::Door;

use crate::auth;
use crate::cache::{CacheKeys, CacheOutcome, CachedResponse};
use crate::config::RolloutMode;
use crate::conversations::ConversationKey;
use crate::error::GatewayError;
use crate::live::snapshot::Snapshot;
use crate::live::tenant::Tenant;
use crate::response::{self, ResponseBody, headers};
use crate::rollout::Role;
use crate::routing::{self, Chooser, RoutePlan};
use crate::sandbox::Teardown;
use crate::services::Services;

/// Handles one request on the main listener.
pub(crate) async fn handle(
    services: Arc<Services>,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let (id, seed) = ctx::request_id(req.headers());
    let ctx = RequestCtx::start(
        id,
        seed,
        req.method().clone(),
        req.uri().path(),
        services.metrics.clone(),
    );
    crate::observe::telemetry::adopt_remote_parent(&ctx.span, req.headers());
    let span = ctx.span.clone();
    let api = api_of(req.uri().path());
    let mut pipeline = Pipeline {
        snapshot: services.live.snapshot.load_full(),
        services: &services,
        ctx,
        api,
    };
    if let Some(api) = api {
        pipeline.ctx.api = api.label();
    }
    let result = match (req.method(), req.uri().path(), api) {
        (&Method::POST, "/v1/messages/count_tokens", _) => {
            pipeline.count_tokens(req).instrument(span).await
        }
        (&Method::POST, _, Some(api)) => pipeline.front(api, req).instrument(span).await,
        (&Method::GET, "/v1/models" | "/models", _) => pipeline.models(req.headers()),
        (&Method::GET, "/healthz", _) => {
            Ok(response::json(StatusCode::OK, &json!({"status": "ok"})))
        }
        (&Method::GET, "/readyz", _) => Ok(response::readiness(services.is_draining())),
        (_, path @ ("/v1/models" | "/models" | "/healthz" | "/readyz"), _) | (_, path, Some(_)) => {
            Err(GatewayError::MethodNotAllowed {
                method: req.method().to_string(),
                path: path.to_owned(),
            })
        }
        (_, path, _) => Err(GatewayError::NotFound {
            path: path.to_owned(),
        }),
    };
    pipeline.finish(result)
}

/// The front door a path is: chat completions, Anthropic Messages, or Responses (both with and
/// without `/v1`, as the SDKs build them from a base URL either way).
fn api_of(path: &str) -> Option<Api> {
    match path {
        "/v1/chat/completions" | "/chat/completions" => Some(Api::Chat),
        "/v1/messages" | "/v1/messages/count_tokens" => Some(Api::Messages),
        "/v1/responses" | "/responses" => Some(Api::Responses),
        _ => None,
    }
}

/// One request on its way through the phases.
struct Pipeline<'a> {
    services: &'a Arc<Services>,
    /// The config version the whole request runs on.
    snapshot: Arc<Snapshot>,
    ctx: RequestCtx,
    /// The front door the request came in through, if it is one; errors are written in its
    /// dialect's shape.
    api: Option<Api>,
}

impl Pipeline<'_> {
    /// `POST /v1/chat/completions`, `POST /v1/messages`, `POST /v1/responses`.
    async fn front(
        &mut self,
        api: Api,
        req: Request<Incoming>,
    ) -> Result<Response<ResponseBody>, GatewayError> {
        let tenant = self.authenticate(req.headers()).await?;
        let headers = req.headers().clone();
        let (door, chat) = self.parse(&tenant, api, req, &headers).await?;
        let summary = self.summarise(&tenant, &door, &chat, &headers).await;
        let (plan, teardown) = self
            .decide(&tenant, &door, summary, chat.stats.prefix_key)
            .await?;
        // The decision's instance is torn down once the request first waits (see `Teardown`).
        teardown
            .after_first_wait(self.serve(&tenant, &door, &chat, &headers, plan))
            .await
    }

    /// From a checked plan to a response: the cache, the budget, the upstreams.
    async fn serve(
        &mut self,
        tenant: &Tenant,
        door: &Door,
        chat: &ChatRequest,
        headers: &HeaderMap,
        mut plan: RoutePlan,
    ) -> Result<Response<ResponseBody>, GatewayError> {
        let original = door.original.as_ref().map(|o| (o.api, &o.body));
        let keys = CacheKeys::for_plan(tenant, original, chat, &plan);
        if let Some(hit) = self.lookup(keys.as_ref(), &plan).await {
            return respond::cached(&self.snapshot, &mut self.ctx, door, chat, &plan, &hit);
        }
        self.reserve(tenant, chat, &mut plan).await?;
        let delivered = self.execute(tenant, door, chat, headers, &plan).await?;
        respond::delivered(
            self.services,
            &self.snapshot,
            &mut self.ctx,
            (tenant, door, chat),
            &plan,
            keys,
            delivered,
        )
    }

    /// `POST /v1/messages/count_tokens`: the host's estimate of the input tokens of a Messages
    /// request (the same estimate budgets and policies use), not the provider's tokenizer.
    async fn count_tokens(
        &mut self,
        req: Request<Incoming>,
    ) -> Result<Response<ResponseBody>, GatewayError> {
        // Counted against the tenant's request rate like any request: parsing costs the gateway.
        let tenant = self.authenticate(req.headers()).await?;
        let body = self.read_body(req).await?;
        let server = &self.snapshot.config.server;
        // The count takes no `max_tokens`; the translation wants one.
        let mut value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| GatewayError::InvalidRequest {
                message: format!("request body is not valid JSON: {e}"),
                param: None,
            })?;
        if let Some(obj) = value.as_object_mut() {
            obj.entry("max_tokens").or_insert(json!(1));
            obj.remove("stream");
        }
        let (_, chat) = Door::open(
            Api::Messages,
            switchyard_upstream::dialect::json_bytes(&value),
            server.max_messages,
        )?;
        check_requested_model(
            &self.snapshot,
            &tenant,
            self.snapshot.config.canonical(&chat.model.value),
        )?;
        let mut response = response::json(
            StatusCode::OK,
            &json!({"input_tokens": chat.stats.estimated_input_tokens}),
        );
        response
            .headers_mut()
            .insert(headers::TOKENS_ESTIMATED, HeaderValue::from_static("true"));
        Ok(response)
    }

    /// Phase 1: who is calling. Before the body is read, so an unauthenticated client cannot
    /// make the gateway buffer 32 MB; then the tenant's request rate.
    async fn authenticate(&mut self, headers: &HeaderMap) -> Result<Arc<Tenant>, GatewayError> {
        let tenant = auth::authenticate(headers, &self.snapshot.keys)?;
        self.ctx.tenant = Some(tenant.name.clone());
        self.ctx.policy_header = Some(tenant.policy.header.clone());
        self.ctx.requests_remaining = self
            .services
            .accounts
            .check_request(&tenant.name, &tenant.config.quota)
            .await
            .map_err(GatewayError::Refused)?;
        Ok(tenant)
    }

    /// Phase 2: read the body (size-capped) and parse it once; the requested model must be the
    /// tenant's or one of its aliases; the request's tokens count against its rate.
    async fn parse(
        &mut self,
        tenant: &Tenant,
        api: Api,
        req: Request<Incoming>,
        headers: &HeaderMap,
    ) -> Result<(Door, ChatRequest), GatewayError> {
        let body = self.read_body(req).await?;
        let server = &self.snapshot.config.server;
        let (mut door, chat) = Door::open(api, body, server.max_messages)?;
        if let Some(original) = &mut door.original {
            original.forward_from(headers);
        }
        self.ctx.stream = chat.stream;
        if server.log_prompts {
            self.ctx.prompt = Some(chat.stats.last_user_excerpt.clone());
        }
        check_requested_model(
            &self.snapshot,
            tenant,
            self.snapshot.config.canonical(&chat.model.value),
        )?;
        let output_tokens = chat
            .max_output_tokens()
            .unwrap_or(server.reserve_output_tokens);
        self.ctx.tokens_remaining = self
            .services
            .accounts
            .check_tokens(
                &tenant.name,
                &tenant.config.quota,
                chat.stats.estimated_input_tokens + output_tokens,
            )
            .await
            .map_err(GatewayError::Refused)?;
        Ok((door, chat))
    }

    /// Reads the request body within the server's limits; the request holds its share of the
    /// in-flight body budget until it ends.
    async fn read_body(&mut self, req: Request<Incoming>) -> Result<bytes::Bytes, GatewayError> {
        let server = &self.snapshot.config.server;
        let (body, permit) = body::read(
            req,
            server.max_body_bytes,
            &self.services.bodies,
            server.max_inflight_body_bytes,
        )
        .await?;
        self.ctx.body = Some(permit);
        Ok(body)
    }

    /// Phase 3: the policy's view of the request.
    async fn summarise(
        &mut self,
        tenant: &Tenant,
        door: &Door,
        chat: &ChatRequest,
        headers: &HeaderMap,
    ) -> RequestSummary {
        let quota = &tenant.config.quota;
        // Policies see the spend only when the tenant has budgets (it costs a Redis round trip
        // when shared).
        let spend = if quota.daily_budget_usd.is_some() || quota.monthly_budget_usd.is_some() {
            self.services.accounts.spend(&tenant.name).await
        } else {
            Default::default()
        };
        let budget = Budget {
            spent_today_usd: spend.today_usd,
            daily_limit_usd: quota.daily_budget_usd,
            spent_month_usd: spend.month_usd,
            monthly_limit_usd: quota.monthly_budget_usd,
        };
        let conversation = ConversationKey::of(chat.stats.user.as_deref(), chat.stats.prefix_key);
        self.ctx.conversation = Some(conversation);
        let (seen, last_upstream) = self.services.conversations.view(&tenant.name, conversation);
        self.ctx.last_upstream = last_upstream;
        let rate_limits = RateLimits {
            requests_per_minute: quota.requests_per_minute,
            requests_remaining: self.ctx.requests_remaining,
            tokens_per_minute: quota.tokens_per_minute,
            tokens_remaining: self.ctx.tokens_remaining,
        };
        let context = routing::Context {
            request_id: &self.ctx.id,
            seed: self.ctx.seed,
            endpoint: door.endpoint(),
            hints: routing::hints(headers, chat),
            breakers: &self.services.breakers,
            stats: &self.services.stats,
            budget,
            rate_limits,
            conversation: seen,
            received_at: self.ctx.received_at,
        };
        let mut summary = routing::summarise(tenant, chat, context);
        summary.requested_model = self.snapshot.config.canonical(&chat.model.value).to_owned();
        summary
    }

    /// Phase 4: the tenant's policy decides in its sandbox, and the host checks the decision.
    async fn decide(
        &mut self,
        tenant: &Arc<Tenant>,
        door: &Door,
        mut summary: RequestSummary,
        prefix_key: u64,
    ) -> Result<(RoutePlan, Teardown), GatewayError> {
        // A canary candidate decides its share of requests; a shadow one decides beside the live
        // policy, off the request path. Each with its own config.
        let (policy, role) = self.services.rollouts.pick(tenant, self.ctx.seed);
        let policy = policy.clone();
        let shadow = tenant
            .rollout
            .as_ref()
            .filter(|r| r.config.mode == RolloutMode::Shadow)
            .map(|r| RequestSummary {
                config: r.config.policy_config.clone(),
                ..summary.clone()
            });
        if role == Role::Canary
            && let Some(r) = &tenant.rollout
        {
            summary.config = r.config.policy_config.clone();
        }
        // The console's request detail (observe/recent.rs): the summary is copied only while a
        // console session watches; otherwise this is one relaxed load.
        let log_prompts = self.snapshot.config.server.log_prompts;
        let watched = self
            .services
            .metrics
            .recent
            .watch(&mut summary, log_prompts);
        let decided = self
            .services
            .sandbox
            .decide(tenant, &policy, &self.ctx.id, summary)
            .instrument(crate::stage_span!("policy.decide", policy = %policy.name))
            .await?;
        self.ctx.decision = Some(decided.time);
        if let Some(watched) = watched {
            watched.decided(&policy.header, &decided.result);
        }
        if let (Some(summary), Ok(decision)) = (shadow, &decided.result) {
            self.services
                .rollouts
                .shadow(tenant.clone(), summary, decision.clone());
        }
        let mut canary = (role == Role::Canary).then(|| {
            self.ctx.policy_header = Some(policy.header.clone());
            (self.services.rollouts.clone(), false)
        });
        let chooser = self.chooser(tenant, prefix_key);
        let checked = decided
            .result
            .and_then(|decision| routing::check(&self.snapshot, tenant, decision, &chooser));
        let plan = match checked {
            Ok(routing::Checked::Route(plan)) => plan,
            Ok(routing::Checked::Reject {
                status,
                code,
                message,
            }) => {
                return Err(GatewayError::PolicyRejected {
                    status,
                    code,
                    message,
                });
            }
            Err(failure) => {
                if failure.kind == FailureKind::InvalidDecision {
                    // The host refused what the instance returned: a warm one goes too.
                    policy.compiled.discard_warm(&tenant.name);
                }
                let quarantined =
                    self.services
                        .sandbox
                        .record_failure(tenant, &policy, &self.ctx.id, &failure);
                if let Some((rollouts, failed)) = &mut canary {
                    *failed = true;
                    if quarantined {
                        rollouts.canary_finished(tenant, true, true);
                    }
                }
                routing::failure_route(&self.snapshot, tenant, failure.kind, &chooser)?
            }
        };
        self.ctx.tags = plan.tags.clone();
        if canary.is_some() {
            self.ctx.tags.push(("rollout".into(), "canary".into()));
        }
        self.ctx.finish = Some(Finish {
            tenant: tenant.clone(),
            conversations: self.services.conversations.clone(),
            learning: plan.report_outcome.then(|| self.services.learning.clone()),
            endpoint: door.endpoint(),
            canary,
        });
        self.ctx.route = plan
            .targets
            .iter()
            .map(|t| (t.model.clone(), t.upstream.name.clone()))
            .collect();
        Ok((plan, decided.teardown))
    }

    /// Phase 5: the response cache, read side. An entry for any model of the route counts, in
    /// the route's order, so a response a fallback produced is reused while the primary keeps
    /// failing.
    async fn lookup(
        &mut self,
        keys: Option<&CacheKeys>,
        plan: &RoutePlan,
    ) -> Option<Arc<CachedResponse>> {
        let keys = keys.filter(|_| plan.cache_reads())?;
        self.ctx.cache = CacheOutcome::Miss;
        for (model, key) in keys.in_route_order(plan) {
            let lookup = crate::stage_span!(
                "cache.lookup",
                model = model,
                outcome = tracing::field::Empty
            );
            let found = self
                .services
                .cache
                .get(&key)
                .instrument(lookup.clone())
                .await;
            lookup.record("outcome", found.label());
            match found {
                crate::cache::Lookup::Hit(hit) => {
                    self.ctx.cache = CacheOutcome::Hit;
                    return Some(hit);
                }
                crate::cache::Lookup::Miss => {}
                crate::cache::Lookup::Unavailable => {
                    self.ctx.cache = CacheOutcome::Bypass;
                    return None;
                }
            }
        }
        None
    }

    /// Phase 6: hold the request's worst-case cost against the tenant's budgets until it is
    /// settled (the most expensive target's prices, the estimated input plus the output cap).
    /// With a hard budget the output is held to what was reserved: the upstream is asked for no
    /// more, and a stream is metered against it.
    async fn reserve(
        &mut self,
        tenant: &Tenant,
        chat: &ChatRequest,
        plan: &mut RoutePlan,
    ) -> Result<(), GatewayError> {
        let server = &self.snapshot.config.server;
        let output_tokens = chat
            .max_output_tokens()
            .unwrap_or(server.reserve_output_tokens);
        let output_tokens = plan
            .overrides
            .max_output_tokens
            .map_or(output_tokens, |cap| cap.min(output_tokens));
        let estimate = plan
            .targets
            .iter()
            .filter_map(|t| self.snapshot.config.models.get(&t.model))
            .map(|price| price.estimate(chat.stats.estimated_input_tokens, output_tokens))
            .fold(0.0, f64::max);
        let reservation = self
            .services
            .accounts
            .reserve(&tenant.name, &tenant.config.quota, estimate)
            .await
            .map_err(GatewayError::Refused)?;
        self.ctx.hold(reservation, estimate);
        let quota = &tenant.config.quota;
        if quota.hard_budget
            && (quota.daily_budget_usd.is_some() || quota.monthly_budget_usd.is_some())
        {
            plan.overrides.max_output_tokens = Some(output_tokens);
            self.ctx.output_budget = Some(output_tokens);
        }
        Ok(())
    }

    /// Phase 7: the fallback loop, up to its commit point (a whole response, or a stream's first
    /// substantive event).
    async fn execute(
        &mut self,
        tenant: &Tenant,
        door: &Door,
        chat: &ChatRequest,
        headers: &HeaderMap,
        plan: &RoutePlan,
    ) -> Result<Delivered, GatewayError> {
        let observer = crate::observe::metrics::AttemptCounter(&self.services.metrics);
        let opts = ExecOptions {
            request_id: &self.ctx.id,
            overrides: plan.overrides.clone(),
            deadline: tokio::time::Instant::from_std(
                self.ctx.started + self.snapshot.config.server.request_deadline,
            ),
            redactor: &self.snapshot.redactor,
            breakers: &self.services.breakers,
            retry_budget: &self.services.retry_budget,
            observer: &observer,
            trace: &crate::observe::telemetry::Propagation(headers),
            progress: &self.ctx.progress,
            stats: &self.services.stats,
        };
        let result = execute(&plan.targets, door.outbound(chat), &opts).await;
        let delivered = result.inspect_err(|e| {
            self.ctx.attempts = e.attempts().len();
            self.ctx.attempt_list = e.attempts().to_vec();
        })?;
        if delivered.attempts.len() > 1 {
            self.services.metrics.fallback(&tenant.name);
        }
        self.ctx.model = Some(delivered.model.clone());
        self.ctx.upstream = Some(delivered.upstream.name.clone());
        self.ctx.attempts = delivered.attempts.len();
        self.ctx.attempt_list = delivered.attempts.clone();
        self.ctx.upstream_wait = delivered.upstream_time;
        self.ctx.first_byte = Some(self.ctx.started.elapsed());
        Ok(delivered)
    }

    /// `GET /v1/models`: the tenant's models and aliases.
    fn models(&mut self, headers: &HeaderMap) -> Result<Response<ResponseBody>, GatewayError> {
        let tenant = auth::authenticate(headers, &self.snapshot.keys)?;
        self.ctx.tenant = Some(tenant.name.clone());
        let data: Vec<_> = tenant
            .config
            .models
            .iter()
            .chain(
                tenant
                    .config
                    .model_aliases
                    .iter()
                    .filter(|a| !a.ends_with('*')),
            )
            .map(|m| json!({"id": m, "object": "model", "created": 0, "owned_by": "switchyard"}))
            .collect();
        Ok(response::json(
            StatusCode::OK,
            &json!({"object": "list", "data": data}),
        ))
    }

    /// The last step of every request: an error becomes its response, and every response gets
    /// the request id, the policy version and the cache outcome. Dropping the pipeline (and its
    /// context) then writes the access line, unless a stream took it over.
    fn finish(
        mut self,
        result: Result<Response<ResponseBody>, GatewayError>,
    ) -> Response<ResponseBody> {
        let api = self.api.unwrap_or(Api::Chat);
        let mut response = result.unwrap_or_else(|e| {
            self.ctx.error = Some(e.to_string());
            response::error_response(api, &e)
        });
        let h = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.ctx.id) {
            if api == Api::Messages {
                // Anthropic's SDKs expose this one as the error's `request_id`.
                h.insert(headers::ANTHROPIC_REQUEST_ID, v.clone());
            }
            h.insert(headers::REQUEST_ID, v);
        }
        if let Some(policy) = &self.ctx.policy_header {
            h.insert(headers::POLICY, policy.clone());
        }
        if !h.contains_key(headers::CACHE) {
            h.insert(headers::CACHE, HeaderValue::from_static("bypass"));
        }
        self.ctx.status = response.status().as_u16();
        response
    }

    fn chooser<'c>(&'c self, tenant: &'c Tenant, prefix_key: u64) -> Chooser<'c> {
        Chooser {
            choice: self.snapshot.config.upstream_choice,
            prefix_key,
            tenant: &tenant.name,
            round_robin: &self.services.round_robin,
            breakers: &self.services.breakers,
            last_upstream: self.ctx.last_upstream.clone(),
        }
    }
}

fn check_requested_model(
    snapshot: &Snapshot,
    tenant: &Tenant,
    model: &str,
) -> Result<(), GatewayError> {
    if tenant.allows(model) || tenant.config.is_alias(model) {
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
