//! A simulated OpenAI-compatible provider, built into the binary so the default configuration
//! works offline.
//!
//! It is a real HTTP server on loopback, reached through the same client, TLS-less connection pool
//! and fallback loop as a real provider. Every response says it is simulated (`x-simulated: true`,
//! `system_fingerprint: "switchyard-simulated"`, and the reply text itself). Usage is realistic:
//! prompt tokens are estimated from the text, and a per-model prefix cache reports
//! `prompt_cache_hit_tokens` / `prompt_cache_miss_tokens` the way DeepSeek does (whole 64-token
//! units of a previously seen message prefix).

use std::collections::HashSet;
use std::convert::Infallible;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::stream;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// Prefixes remembered per simulator before the cache is reset.
const MAX_CACHED_PREFIXES: usize = 100_000;
/// DeepSeek persists cache prefixes in units of 64 tokens.
const CACHE_UNIT_TOKENS: u64 = 64;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Settings of one simulated provider.
#[derive(Debug, Clone)]
pub struct SimulatorSettings {
    /// Models it serves (the provider-side names).
    pub models: Vec<String>,
    /// Delay between streamed tokens.
    pub token_delay: Duration,
}

struct Simulator {
    settings: SimulatorSettings,
    prefixes: Mutex<HashSet<u64>>,
    counter: std::sync::atomic::AtomicU64,
}

/// Starts a simulated provider on `addr` (port 0 picks one) and returns its address.
pub async fn spawn(addr: SocketAddr, settings: SimulatorSettings) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let sim = Arc::new(Simulator {
        settings,
        prefixes: Mutex::new(HashSet::new()),
        counter: 0.into(),
    });
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let sim = sim.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let sim = sim.clone();
                    async move { Ok::<_, Infallible>(sim.handle(req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(local)
}

fn json_response(status: StatusCode, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-simulated", "true")
        .body(Full::new(Bytes::from(body.to_string())).boxed_unsync())
        .unwrap_or_default()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json_response(
        status,
        json!({"error": {"message": message, "type": "invalid_request_error", "code": code}}),
    )
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn tokens_of(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4) + 4
}

impl Simulator {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_owned();
        match (req.method(), path.as_str()) {
            (&Method::GET, "/v1/models" | "/models") => {
                let data: Vec<Value> = self
                    .settings
                    .models
                    .iter()
                    .map(
                        |m| json!({"id": m, "object": "model", "owned_by": "switchyard-simulated"}),
                    )
                    .collect();
                json_response(StatusCode::OK, json!({"object": "list", "data": data}))
            }
            (&Method::POST, "/v1/chat/completions" | "/chat/completions") => {
                let body = match Limited::new(req.into_body(), 64 << 20).collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(_) => {
                        return error(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "request_too_large",
                            "body too large",
                        );
                    }
                };
                match serde_json::from_slice::<Value>(&body) {
                    Ok(v) => self.chat(v).await,
                    Err(e) => error(
                        StatusCode::BAD_REQUEST,
                        "invalid_json",
                        &format!("invalid JSON: {e}"),
                    ),
                }
            }
            _ => error(StatusCode::NOT_FOUND, "not_found", "unknown path"),
        }
    }

    /// Tokens of the longest message prefix seen before (rounded down to whole cache units), and
    /// remembers every prefix of this conversation for later requests.
    fn cache_hit_tokens(&self, model: &str, messages: &[Value]) -> u64 {
        let mut hasher = DefaultHasher::new();
        model.hash(&mut hasher);
        let mut hit = 0;
        let mut running = 0;
        let mut seen = self.prefixes.lock();
        if seen.len() > MAX_CACHED_PREFIXES {
            seen.clear();
        }
        for m in messages {
            m.to_string().hash(&mut hasher);
            running += tokens_of(&text_of(m.get("content").unwrap_or(&Value::Null)));
            let key = hasher.finish();
            if seen.contains(&key) {
                hit = running;
            } else {
                seen.insert(key);
            }
        }
        hit / CACHE_UNIT_TOKENS * CACHE_UNIT_TOKENS
    }

    async fn chat(&self, req: Value) -> Response<Body> {
        let model = req
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if !self.settings.models.contains(&model) {
            return error(
                StatusCode::NOT_FOUND,
                "model_not_found",
                &format!("The model `{model}` does not exist (simulated provider)"),
            );
        }
        let Some(messages) = req.get("messages").and_then(Value::as_array) else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "messages is required",
            );
        };
        let prompt_tokens: u64 = messages
            .iter()
            .map(|m| tokens_of(&text_of(m.get("content").unwrap_or(&Value::Null))))
            .sum();
        let cached = self.cache_hit_tokens(&model, messages).min(prompt_tokens);
        let last_user = messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .map(|m| text_of(m.get("content").unwrap_or(&Value::Null)))
            .unwrap_or_default();
        let excerpt: String = last_user.chars().take(80).collect();
        let reply = format!(
            "[simulated {model}] This reply comes from Switchyard's built-in simulated provider, not a real model. \
             You said: \"{excerpt}\". Point an upstream at a real API to get real answers."
        );
        let mut words: Vec<&str> = reply.split(' ').collect();
        let max = req
            .get("max_completion_tokens")
            .or(req.get("max_tokens"))
            .and_then(Value::as_u64);
        let mut finish = "stop";
        if let Some(max) = max
            && (words.len() as u64) > max
        {
            words.truncate(max as usize);
            finish = "length";
        }
        let completion_tokens = words.len() as u64;
        let usage = json!({
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_cache_hit_tokens": cached,
            "prompt_cache_miss_tokens": prompt_tokens - cached,
            "prompt_tokens_details": {"cached_tokens": cached},
        });
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("chatcmpl-sim-{n}");
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if !req.get("stream").and_then(Value::as_bool).unwrap_or(false) {
            return json_response(
                StatusCode::OK,
                json!({
                    "id": id, "object": "chat.completion", "created": created, "model": model,
                    "system_fingerprint": "switchyard-simulated",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": words.join(" ")}, "finish_reason": finish}],
                    "usage": usage,
                }),
            );
        }
        let include_usage = req
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let chunk = |delta: Value, finish: Value| {
            json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "system_fingerprint": "switchyard-simulated",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let mut events: Vec<Value> = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        let count = words.len();
        for (i, w) in words.iter().enumerate() {
            let text = if i + 1 < count {
                format!("{w} ")
            } else {
                (*w).to_owned()
            };
            events.push(chunk(json!({"content": text}), Value::Null));
        }
        events.push(chunk(json!({}), json!(finish)));
        if include_usage {
            events.push(json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                               "system_fingerprint": "switchyard-simulated", "choices": [], "usage": usage}));
        }
        let delay = self.settings.token_delay;
        let frames = events
            .into_iter()
            .map(|e| Bytes::from(format!("data: {e}\n\n")))
            .chain([Bytes::from_static(b"data: [DONE]\n\n")]);
        let body = StreamBody::new(stream::unfold(
            (frames, true),
            move |(mut frames, first)| async move {
                let next = frames.next()?;
                if !first && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Some((Ok::<_, Infallible>(Frame::data(next)), (frames, false)))
            },
        ));
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .header("x-simulated", "true")
            .body(body.boxed_unsync())
            .unwrap_or_default()
    }
}
