//! The console's JSON API (`/console/api/...`) and its event stream: one function per page.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};

use super::{error, json_ok, playground, query, secure, series};
use crate::config::PolicySource;
use crate::response::ResponseBody;
use crate::services::Services;

/// The API's routes. `csrf` is the session's (for `/session`), `None` for a bearer caller.
pub(super) async fn route(
    shared: &Arc<Services>,
    csrf: Option<(String, Duration)>,
    method: Method,
    path: &str,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let q = req.uri().query().unwrap_or("").to_owned();
    let param = |name: &str| query(&q, name);
    let number = |name: &str, default: u64, max: u64| {
        param(name)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(default)
            .clamp(1, max)
    };
    let now = SystemTime::now();
    match (method, path) {
        (Method::GET, "session") => json_ok(&session(shared, csrf)),
        (Method::GET, "events") => events(shared, &req),
        (Method::GET, "overview") => {
            let snapshot = shared.live.snapshot.load();
            let (window, step) = (
                number("window", 900, series::SECONDS as u64),
                number("step", 10, 300),
            );
            let mut v = shared
                .console
                .series
                .lock()
                .overview(&snapshot, now, window, step);
            v["in_flight"] = json!(shared.metrics.in_flight.get());
            json_ok(&v)
        }
        (Method::GET, "routing") => {
            let snapshot = shared.live.snapshot.load();
            let (window, step) = (
                number("window", 900, series::SECONDS as u64),
                number("step", 10, 300),
            );
            let tenant = param("tenant").filter(|t| !t.is_empty() && t != "*");
            json_ok(&shared.console.series.lock().routing(
                &snapshot,
                now,
                window,
                step,
                tenant.as_deref(),
            ))
        }
        (Method::GET, "upstreams") => json_ok(&upstreams(shared, now)),
        (Method::GET, "policies") => json_ok(&policies(shared)),
        (Method::GET, "requests") => {
            let limit = number("limit", 200, crate::observe::recent::RING as u64) as usize;
            let tenant = param("tenant").filter(|t| !t.is_empty() && t != "*");
            let rows = shared.metrics.recent.rows(limit, |r| {
                tenant
                    .as_deref()
                    .is_none_or(|t| r.tenant.as_deref() == Some(t))
            });
            json_ok(&json!({
                "requests": rows,
                "next_seq": shared.metrics.recent.next_seq(),
                "watchers": shared.metrics.recent.watchers(),
                "log_prompts": shared.live.snapshot.load().config.server.log_prompts,
                "capacity": crate::observe::recent::RING,
            }))
        }
        (Method::GET, p) if p.starts_with("requests/") => {
            let id = &p["requests/".len()..];
            match shared.metrics.recent.find(id) {
                (None, None) => error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "that request is no longer in the ring",
                ),
                (row, detail) => json_ok(&json!({
                    "request": row,
                    "detail": detail.map(|d| d.to_json()),
                    "log_prompts": shared.live.snapshot.load().config.server.log_prompts,
                })),
            }
        }
        (Method::POST, p) if p.starts_with("policies/") && p.ends_with("/rollback") => {
            let name = &p["policies/".len()..p.len() - "/rollback".len()];
            rollback(shared, name, req).await
        }
        (Method::GET, "playground") => json_ok(&playground_state(shared)),
        (Method::POST, "playground/upload") => {
            let kind = param("kind").unwrap_or_default();
            let name = param("name").unwrap_or_default();
            let body = match read(req, playground::MAX_UPLOAD).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            match shared.console.playground.upload(&kind, &name, &body) {
                Ok(u) => json_ok(&u.to_json()),
                Err(e) => error(StatusCode::BAD_REQUEST, "invalid_upload", &e),
            }
        }
        (Method::POST, "playground/run") => {
            let body = match read(req, 64 << 10).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            match serde_json::from_slice::<Value>(&body) {
                Ok(job) => run(shared, &job).await,
                Err(e) => error(StatusCode::BAD_REQUEST, "invalid_json", &e.to_string()),
            }
        }
        (
            _,
            "events" | "overview" | "routing" | "upstreams" | "policies" | "requests" | "session",
        ) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "wrong method for this endpoint",
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "unknown console endpoint",
        ),
    }
}

async fn read(req: Request<Incoming>, max: usize) -> Result<Bytes, Response<ResponseBody>> {
    http_body_util::Limited::new(req.into_body(), max)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|_| {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                &format!("the body is larger than {max} bytes, or was cut"),
            )
        })
}

fn session(shared: &Services, csrf: Option<(String, Duration)>) -> Value {
    let snapshot = shared.live.snapshot.load();
    json!({
        "csrf": csrf.as_ref().map(|(t, _)| t),
        "expires_in_s": csrf.as_ref().map(|(_, d)| d.as_secs()),
        "config": snapshot.config.origin,
        "generation": shared.live.reload_state.lock().generation,
        "tenants": snapshot.tenants.keys().collect::<Vec<_>>(),
        "log_prompts": snapshot.config.server.log_prompts,
        "playground": shared.console.playground.simulator.lock().is_some(),
        "versions_on_disk": snapshot.config.server.artifact_cache_dir.is_some(),
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// `GET /console/api/events`: one `tick` event a second with the requests finished since the
/// last one and the headline figures. Details are captured while any such stream is open.
fn events(shared: &Arc<Services>, req: &Request<Incoming>) -> Response<ResponseBody> {
    let guard = shared.metrics.recent.subscribe();
    let recent_from = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| shared.metrics.recent.next_seq());
    let ticks = shared.console.ticks.subscribe();
    let Some(credentials) = super::credentials(req) else {
        return error(StatusCode::UNAUTHORIZED, "login_required", "no credentials");
    };
    struct State {
        credentials: super::Credentials,
        shared: Arc<Services>,
        _guard: crate::observe::recent::WatchGuard,
        ticks: tokio::sync::watch::Receiver<u64>,
        next: u64,
        first: bool,
    }
    let state = State {
        credentials,
        shared: shared.clone(),
        _guard: guard,
        ticks,
        next: recent_from,
        first: true,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        if !s.first && s.ticks.changed().await.is_err() {
            return None;
        }
        // A logout, an expired session or a new admin token ends the stream.
        if !super::still_allowed(&s.shared, &s.credentials) {
            return None;
        }
        let (rows, next) = s.shared.metrics.recent.rows_since(s.next, 100);
        s.next = next;
        let headline = s.shared.console.series.lock().headline(SystemTime::now());
        let data = json!({
            "t_ms": crate::observe::recent::unix_ms(SystemTime::now()),
            "requests": rows,
            "headline": headline,
            "in_flight": s.shared.metrics.in_flight.get(),
            "watchers": s.shared.metrics.recent.watchers(),
            "generation": s.shared.live.reload_state.lock().generation,
        });
        let retry = if s.first { "retry: 2000\n" } else { "" };
        s.first = false;
        let frame = format!("{retry}id: {next}\nevent: tick\ndata: {data}\n\n");
        Some((
            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(frame))),
            s,
        ))
    });
    let mut r = Response::new(StreamBody::new(stream.boxed()).boxed_unsync());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    secure(r, false)
}

fn upstreams(shared: &Services, now: SystemTime) -> Value {
    use switchyard_upstream::BreakerState;
    let snapshot = shared.live.snapshot.load();
    let states: std::collections::HashMap<(String, String), BreakerState> = shared
        .breakers
        .states()
        .into_iter()
        .map(|(u, m, s)| ((u, m), s))
        .collect();
    let (t, points) = shared.console.series.lock().upstream_points(now, 900, 10);
    let mut rows = Vec::new();
    for (name, up) in &snapshot.config.upstreams {
        let upstream: Arc<str> = name.as_str().into();
        for model in up.models.keys() {
            let key = (name.clone(), model.clone());
            let sig = shared.stats.signals(&upstream, model);
            let circuit = match states.get(&key) {
                None | Some(BreakerState::Closed) => "closed",
                Some(BreakerState::HalfOpen) => "half-open",
                Some(BreakerState::Open) => "open",
            };
            let p = points.get(&key);
            let sum = |f: fn(&series::UpAgg) -> u64| p.map_or(0, |p| p.iter().map(f).sum::<u64>());
            let mut failures = std::collections::BTreeMap::<String, u64>::new();
            for point in p.into_iter().flatten() {
                for (k, v) in &point.failures {
                    *failures.entry(k.clone()).or_default() += v;
                }
            }
            rows.push(json!({
                "upstream": name,
                "model": model,
                "circuit": circuit,
                "ttft_p50_ms": sig.ttft_p50_ms,
                "ttft_p95_ms": sig.ttft_p95_ms,
                "error_rate": sig.error_rate,
                "samples": sig.samples,
                "in_flight": sig.in_flight,
                "remaining_requests": sig.remaining_requests,
                "remaining_tokens": sig.remaining_tokens,
                "attempts_15m": sum(|u| u.attempts),
                "failed_15m": sum(|u| u.failed),
                "failures_15m": failures,
                "series": {
                    "attempts": p.map(|p| p.iter().map(|u| u.attempts).collect::<Vec<_>>()),
                    "failed": p.map(|p| p.iter().map(|u| u.failed).collect::<Vec<_>>()),
                    "ttfb_ms": p.map(|p| p.iter().map(|u| (u.served > 0).then(|| u.ttfb_ms_sum / u.served as f64)).collect::<Vec<_>>()),
                },
            }));
        }
    }
    json!({"t": t, "step": 10, "upstreams": rows})
}

fn policies(shared: &Services) -> Value {
    let snapshot = shared.live.snapshot.load();
    let mut admin = crate::reports::policies(shared);
    if let Some(list) = admin["policies"].as_array_mut() {
        for p in list {
            let name = p["name"].as_str().unwrap_or_default().to_owned();
            let source = snapshot.config.policies.get(&name);
            p["builtin"] = json!(matches!(source, Some(PolicySource::Builtin(_))));
            p["versions"] = json!(shared.console.versions.list(&snapshot, &name));
        }
    }
    let quarantine = shared.sandbox.quarantine.report();
    let tenants: Vec<Value> = snapshot
        .tenants
        .values()
        .map(|t| {
            json!({
                "tenant": &*t.name,
                "policy": t.policy.name,
                "header": t.policy.header.to_str().ok(),
                "hash": t.policy.compiled.hash().to_string(),
                "contract": t.policy.compiled.contract().as_str(),
                "quarantine": quarantine.get(&*t.name),
                "candidate": t.rollout.as_ref().map(|r| json!({
                    "policy": r.policy.name,
                    "header": r.policy.header.to_str().ok(),
                    "mode": r.config.mode,
                    "share": r.config.share,
                    "max_error_rate": r.config.max_error_rate,
                    "min_requests": r.config.min_requests,
                })),
            })
        })
        .collect();
    admin["tenants"] = json!(tenants);
    admin["rollouts"] = shared.rollouts.report();
    admin["reloads"] = json!(
        shared
            .console
            .reloads
            .lock()
            .entries
            .iter()
            .rev()
            .cloned()
            .collect::<Vec<_>>()
    );
    admin["config"] = crate::reports::config(shared);
    admin["versions_on_disk"] = json!(snapshot.config.server.artifact_cache_dir.is_some());
    admin
}

/// `POST /console/api/policies/NAME/rollback` with `{"hash": "..."}`, or no body: the most
/// recent kept version other than the one in service.
async fn rollback(
    shared: &Arc<Services>,
    name: &str,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let body = match read(req, 4096).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let wanted = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["hash"].as_str().map(str::to_owned));
    let hash = match wanted {
        Some(h) => h,
        None => {
            let snapshot = shared.live.snapshot.load();
            match shared
                .console
                .versions
                .list(&snapshot, name)
                .into_iter()
                .find(|v| v["current"] == false)
                .and_then(|v| v["hash"].as_str().map(str::to_owned))
            {
                Some(h) => h,
                None => {
                    return error(
                        StatusCode::CONFLICT,
                        "no_previous_version",
                        "no earlier version of this policy is kept on disk",
                    );
                }
            }
        }
    };
    match shared
        .console
        .versions
        .rollback(&shared.live, name, &hash)
        .await
    {
        Ok(v) => json_ok(&v),
        Err(refused) => error(refused.status, "rollback_refused", &refused.message),
    }
}

fn playground_state(shared: &Services) -> Value {
    let snapshot = shared.live.snapshot.load();
    let tenants: Vec<Value> = snapshot
        .tenants
        .values()
        .map(|t| {
            json!({
                "tenant": &*t.name,
                "policy": t.policy.name,
                "header": t.policy.header.to_str().ok(),
                "recent": shared.metrics.recent.details_of(&t.name).len(),
            })
        })
        .collect();
    let versions: Vec<Value> = snapshot
        .config
        .policies
        .keys()
        .flat_map(|name| {
            shared
                .console
                .versions
                .list(&snapshot, name)
                .into_iter()
                .map(move |mut v| {
                    v["policy"] = json!(name);
                    v
                })
        })
        .collect();
    json!({
        "available": shared.console.playground.simulator.lock().is_some(),
        "tenants": tenants,
        "versions": versions,
        "uploads": shared.console.playground.uploads().iter().map(|u| u.to_json()).collect::<Vec<_>>(),
        "watching": shared.metrics.recent.watching(),
        "log_prompts": snapshot.config.server.log_prompts,
    })
}

/// `POST /console/api/playground/run` with `{"tenant", "policy": {"version": {"policy", "hash"}}
/// | {"upload": id} | {"live": true}, "trace": "recent" | {"upload": id}}`.
async fn run(shared: &Arc<Services>, job: &Value) -> Response<ResponseBody> {
    let pg = &shared.console.playground;
    let Some(simulator) = pg.simulator.lock().clone() else {
        return error(
            StatusCode::NOT_IMPLEMENTED,
            "playground_unavailable",
            "this gateway was started without `policy simulate` (the switchyard binary installs it)",
        );
    };
    let Ok(_turn) = pg.busy.try_acquire() else {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "playground_busy",
            "a simulation is already running",
        );
    };
    let snapshot = shared.live.snapshot.load_full();
    let bad = |m: String| error(StatusCode::BAD_REQUEST, "invalid_job", &m);
    let Some(tenant) = job["tenant"]
        .as_str()
        .and_then(|t| snapshot.tenants.get(t))
        .cloned()
    else {
        return bad("`tenant` must name a tenant".into());
    };
    let live = match playground::live_file(pg, &snapshot, &tenant.policy.name) {
        Ok(p) => p,
        Err(e) => return bad(e),
    };
    let (policy, policy_label) = match &job["policy"] {
        Value::Object(o) if o.contains_key("upload") => {
            match o["upload"].as_str().and_then(|id| pg.find(id, "wasm")) {
                Some(u) => (
                    u.path.clone(),
                    format!("upload {} ({})", u.name, &u.hash[..12]),
                ),
                None => return bad("no such uploaded component".into()),
            }
        }
        Value::Object(o) if o.contains_key("version") => {
            let v = &o["version"];
            let (name, hash) = (
                v["policy"].as_str().unwrap_or_default(),
                v["hash"].as_str().unwrap_or_default(),
            );
            match super::versions::file(&snapshot, name, hash).filter(|p| p.exists()) {
                Some(p) => (p, format!("{name}@{}", &hash[..12])),
                None => return bad("no such kept version".into()),
            }
        }
        _ => (
            live.clone(),
            format!(
                "{} (live)",
                tenant.policy.header.to_str().unwrap_or_default()
            ),
        ),
    };
    let (requests, trace_label, trace_count) = match &job["trace"] {
        Value::Object(o) if o.contains_key("upload") => {
            match o["upload"].as_str().and_then(|id| pg.find(id, "trace")) {
                Some(u) => {
                    let n = std::fs::read_to_string(&u.path)
                        .map_or(0, |t| t.lines().filter(|l| !l.trim().is_empty()).count());
                    (u.path.clone(), format!("uploaded trace {}", u.name), n)
                }
                None => return bad("no such uploaded trace".into()),
            }
        }
        _ => {
            let details = shared.metrics.recent.details_of(&tenant.name);
            if details.is_empty() {
                return error(
                    StatusCode::CONFLICT,
                    "no_recent_summaries",
                    &format!(
                        "no recent request of tenant `{}` has its summary captured (summaries are kept while a console is open): send traffic with the console open, or upload a trace",
                        tenant.name
                    ),
                );
            }
            let trace = playground::trace_of(&details);
            match pg.scratch(&format!("recent-{}.jsonl", tenant.name), trace.as_bytes()) {
                Ok(p) => (
                    p,
                    format!(
                        "the {} recent summaries of `{}`",
                        details.len(),
                        tenant.name
                    ),
                    details.len(),
                ),
                Err(e) => return bad(e.to_string()),
            }
        }
    };
    let config = match playground::config_file(pg, &shared.live) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::CONFLICT, "no_config_file", &e),
    };
    let sim = playground::SimulateJob {
        config,
        tenant: tenant.name.to_string(),
        policy: policy.clone(),
        compare: live.clone(),
        requests,
    };
    let started = std::time::Instant::now();
    match simulator.simulate(sim).await {
        Ok(report) => json_ok(&json!({
            "report": report,
            "policy": policy_label,
            "policy_file": playground::label(&policy),
            "live": format!("{} (live)", tenant.policy.header.to_str().unwrap_or_default()),
            "trace": trace_label,
            "trace_requests": trace_count,
            "log_prompts": snapshot.config.server.log_prompts,
            "seconds": started.elapsed().as_secs_f64(),
        })),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, "simulation_failed", &e),
    }
}
