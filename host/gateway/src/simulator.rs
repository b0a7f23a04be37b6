//! A simulated provider, built into the binary so the default configuration works offline. It
//! speaks chat completions, Anthropic Messages and Responses (the last two written by the same
//! translators the gateway uses, from the chat answer it composes), so Claude Code and Codex can be
//! pointed at the embedded default.
//!
//! It calls a tool when the request offers tools and asks for one: `tool_choice` forces it, or the
//! last user message names an offered tool (`use the Bash tool to run \`ls\``). The arguments
//! are filled from the tool's schema (a backticked command for `command`/`cmd`). Reasoning (a
//! thinking block, a reasoning item) comes when the request enables thinking or sets an effort.
//!
//! It is a real HTTP server on loopback, reached through the same client, TLS-less connection pool
//! and fallback loop as a real provider. Every response says it is simulated (`x-simulated: true`,
//! `system_fingerprint: "switchyard-simulated"`, and the reply text itself). Usage is realistic:
//! prompt tokens are estimated from the text, and a per-model prefix cache reports
//! `prompt_cache_hit_tokens` / `prompt_cache_miss_tokens` the way DeepSeek does (whole 64-token
//! units of a previously seen message prefix).

use std::collections::HashSet;
use std::convert::Infallible;
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
use switchyard_upstream::dialect::{self, Api, StreamEncoder};
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
        .body(Full::new(switchyard_upstream::dialect::json_bytes(&body)).boxed_unsync())
        .unwrap_or_default()
}

fn error(api: Api, status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = match api {
        Api::Messages => dialect::messages::error_body(status.as_u16(), message),
        _ => json!({"error": {"message": message, "type": "invalid_request_error", "code": code}}),
    };
    json_response(status, body)
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
        let api = match (req.method(), path.as_str()) {
            (&Method::GET, "/v1/models" | "/models") => {
                let data: Vec<Value> = self
                    .settings
                    .models
                    .iter()
                    .map(
                        |m| json!({"id": m, "object": "model", "owned_by": "switchyard-simulated"}),
                    )
                    .collect();
                return json_response(StatusCode::OK, json!({"object": "list", "data": data}));
            }
            (&Method::POST, "/v1/chat/completions" | "/chat/completions") => Api::Chat,
            (&Method::POST, "/v1/messages" | "/messages") => Api::Messages,
            (&Method::POST, "/v1/responses" | "/responses") => Api::Responses,
            _ => {
                return error(
                    Api::Chat,
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "unknown path",
                );
            }
        };
        let body = match Limited::new(req.into_body(), 64 << 20).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return error(
                    api,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request_too_large",
                    "body too large",
                );
            }
        };
        let request = match serde_json::from_slice::<Value>(&body) {
            Ok(v) => v,
            Err(e) => {
                return error(
                    api,
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    &format!("invalid JSON: {e}"),
                );
            }
        };
        let chat = match api {
            Api::Chat => Ok(request.clone()),
            Api::Messages => dialect::messages::request_to_chat(&request),
            Api::Responses => dialect::responses::request_to_chat(&request),
        };
        let chat = match chat {
            Ok(c) => c,
            Err(e) => {
                return error(
                    api,
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &e.to_string(),
                );
            }
        };
        let answer = match self.answer(&chat) {
            Ok(a) => a,
            Err((status, code, message)) => return error(api, status, code, &message),
        };
        let id = answer.id.clone();
        if !chat.get("stream").and_then(Value::as_bool).unwrap_or(false) {
            let body = match api {
                Api::Chat => answer.completion,
                Api::Messages => {
                    dialect::messages::response_from_chat(&answer.completion, &answer.model)
                }
                Api::Responses => dialect::responses::response_from_chat(
                    &answer.completion,
                    &dialect::responses::Echo::from_request(&request),
                    &format!("resp_{id}"),
                    answer.created,
                ),
            };
            return json_response(StatusCode::OK, body);
        }
        let include_usage = chat
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut encoder: Box<dyn StreamEncoder> = match api {
            Api::Chat => Box::new(switchyard_upstream::chat::encode::Encoder::new(
                include_usage,
            )),
            Api::Messages => Box::new(dialect::messages::Encoder::new(
                format!("msg_{id}"),
                answer.model.clone(),
            )),
            Api::Responses => Box::new(dialect::responses::Encoder::new(
                dialect::responses::Echo::from_request(&request),
                format!("resp_{id}"),
                answer.created,
            )),
        };
        // One write per chunk, as a provider streams tokens.
        let mut frames: Vec<Bytes> = Vec::with_capacity(answer.chunks.len() + 1);
        for chunk in &answer.chunks {
            let mut out = Vec::new();
            encoder.push(chunk, &mut out);
            frames.push(join(out));
        }
        let mut out = Vec::new();
        encoder.finish(&mut out);
        frames.push(join(out));
        frames.retain(|b| !b.is_empty());
        let delay = self.settings.token_delay;
        let body = StreamBody::new(stream::unfold(
            (frames.into_iter(), true),
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

    /// Tokens of the longest message prefix seen before (rounded down to whole cache units), and
    /// remembers every prefix of this conversation for later requests.
    fn cache_hit_tokens(&self, model: &str, messages: &[Value]) -> u64 {
        // A fixed algorithm (XXH3), so the simulated cache behaves alike in every build.
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(model.as_bytes());
        let mut hit = 0;
        let mut running = 0;
        let mut seen = self.prefixes.lock();
        if seen.len() > MAX_CACHED_PREFIXES {
            seen.clear();
        }
        for m in messages {
            hasher.update(&[0]);
            hasher.update(m.to_string().as_bytes());
            running += tokens_of(&text_of(m.get("content").unwrap_or(&Value::Null)));
            let key = hasher.digest();
            if seen.contains(&key) {
                hit = running;
            } else {
                seen.insert(key);
            }
        }
        hit / CACHE_UNIT_TOKENS * CACHE_UNIT_TOKENS
    }

    /// The answer to a chat-completions request, whole and as stream chunks.
    fn answer(&self, req: &Value) -> Result<Answer, (StatusCode, &'static str, String)> {
        let model = req
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if !self.settings.models.contains(&model) {
            return Err((
                StatusCode::NOT_FOUND,
                "model_not_found",
                format!("The model `{model}` does not exist (simulated provider)"),
            ));
        }
        let Some(messages) = req.get("messages").and_then(Value::as_array) else {
            return Err((
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "messages is required".into(),
            ));
        };
        let prompt_tokens: u64 = messages
            .iter()
            .map(|m| tokens_of(&text_of(m.get("content").unwrap_or(&Value::Null))))
            .sum();
        let cached = self.cache_hit_tokens(&model, messages).min(prompt_tokens);
        // The conversation's last turn, past trailing system messages (Claude Code puts its
        // environment block in one after the user's turn).
        let last = messages.iter().rev().find(|m| {
            !matches!(
                m.get("role").and_then(Value::as_str),
                Some("system" | "developer")
            )
        });
        let last_role = last.and_then(|m| m.get("role")).and_then(Value::as_str);
        // The user's own words: the last text part of the last user message (clients such as
        // Claude Code put reminders before them).
        let last_user = messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .map(|m| match m.get("content") {
                Some(Value::Array(parts)) => parts
                    .iter()
                    .rev()
                    .find_map(|p| p.get("text").and_then(Value::as_str))
                    .unwrap_or_default()
                    .to_owned(),
                Some(other) => text_of(other),
                None => String::new(),
            })
            .unwrap_or_default();
        let call = (last_role == Some("user"))
            .then(|| tool_call(req, &last_user))
            .flatten();
        let reply = if last_role == Some("tool") {
            let result = last
                .map(|m| text_of(m.get("content").unwrap_or(&Value::Null)))
                .unwrap_or_default();
            // The end of the output, where a tool's result usually is (Codex puts a header
            // before it).
            let chars: Vec<char> = result.trim_end().chars().collect();
            let excerpt: String = chars[chars.len().saturating_sub(120)..].iter().collect();
            format!(
                "[simulated {model}] The tool returned: \"{excerpt}\". This reply comes from Switchyard's built-in simulated provider, not a real model."
            )
        } else {
            let excerpt: String = last_user.chars().take(80).collect();
            format!(
                "[simulated {model}] This reply comes from Switchyard's built-in simulated provider, not a real model. \
                 You said: \"{excerpt}\". Point an upstream at a real API to get real answers."
            )
        };
        let reasoning =
            thinks(req).then_some("Simulated reasoning: read the request, then answer.");
        let mut words: Vec<&str> = if call.is_some() {
            Vec::new()
        } else {
            reply.split(' ').collect()
        };
        let max = req
            .get("max_completion_tokens")
            .or(req.get("max_tokens"))
            .and_then(Value::as_u64);
        let mut finish = if call.is_some() { "tool_calls" } else { "stop" };
        if let Some(max) = max
            && (words.len() as u64) > max
        {
            words.truncate(max as usize);
            finish = "length";
        }
        let completion_tokens = words.len() as u64
            + reasoning.map_or(0, tokens_of)
            + call.as_ref().map_or(0, |(_, _, args)| tokens_of(args));
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
        let content = words.join(" ");
        let mut message = json!({"role": "assistant", "content": if call.is_some() { Value::Null } else { json!(content) }});
        if let Some(r) = reasoning {
            message["reasoning_content"] = json!(r);
        }
        if let Some((call_id, name, args)) = &call {
            message["tool_calls"] = json!([{"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}]);
        }
        let completion = json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "system_fingerprint": "switchyard-simulated",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        });
        let chunk = |delta: Value, finish: Value| {
            json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "system_fingerprint": "switchyard-simulated",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let mut chunks = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        if let Some(r) = reasoning {
            for piece in r.split_inclusive(' ') {
                chunks.push(chunk(json!({"reasoning_content": piece}), Value::Null));
            }
        }
        let count = words.len();
        for (i, w) in words.iter().enumerate() {
            let text = if i + 1 < count {
                format!("{w} ")
            } else {
                (*w).to_owned()
            };
            chunks.push(chunk(json!({"content": text}), Value::Null));
        }
        if let Some((call_id, name, args)) = &call {
            chunks.push(chunk(
                json!({"tool_calls": [{"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
                Value::Null,
            ));
            let mid = args.len() / 2;
            let mid = (0..=mid)
                .rev()
                .find(|i| args.is_char_boundary(*i))
                .unwrap_or(0);
            for piece in [&args[..mid], &args[mid..]] {
                chunks.push(chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                    Value::Null,
                ));
            }
        }
        chunks.push(chunk(json!({}), json!(finish)));
        chunks.push(json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                           "system_fingerprint": "switchyard-simulated", "choices": [], "usage": usage}));
        Ok(Answer {
            id,
            model,
            created,
            completion,
            chunks,
        })
    }
}

/// What the simulated model says to one request.
struct Answer {
    id: String,
    model: String,
    created: u64,
    completion: Value,
    chunks: Vec<Value>,
}

fn join(frames: Vec<Bytes>) -> Bytes {
    if frames.len() == 1 {
        return frames.into_iter().next().unwrap_or_default();
    }
    Bytes::from(frames.concat())
}

/// Whether the request turns reasoning on: DeepSeek's `thinking`, or a reasoning effort.
fn thinks(req: &Value) -> bool {
    req.pointer("/thinking/type")
        .and_then(Value::as_str)
        .is_some_and(|t| t != "disabled")
        || req
            .get("reasoning_effort")
            .and_then(Value::as_str)
            .is_some_and(|e| e != "none")
}

/// The tool call the request asks for, if any: `(call id, tool name, arguments JSON)`.
fn tool_call(req: &Value, last_user: &str) -> Option<(String, String, String)> {
    let tools = req.get("tools").and_then(Value::as_array)?;
    let function = |t: &Value| t.get("function").cloned();
    let forced = match req.get("tool_choice") {
        Some(Value::String(s)) if s == "none" => return None,
        Some(Value::String(s)) if s == "required" => tools.first().and_then(function),
        Some(Value::Object(o)) => {
            let name = o.get("function").and_then(|f| f.get("name"));
            tools
                .iter()
                .filter_map(function)
                .find(|f| f.get("name") == name)
        }
        _ => None,
    };
    let named = || {
        tools.iter().filter_map(function).find(|f| {
            f.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| mentions_word(last_user, n))
        })
    };
    let tool = forced.or_else(named)?;
    let name = tool.get("name").and_then(Value::as_str)?.to_owned();
    let args = arguments(tool.get("parameters").unwrap_or(&Value::Null), last_user);
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(last_user.as_bytes());
    hasher.update(&[0]);
    hasher.update(name.as_bytes());
    Some((
        format!("call_sim_{:016x}", hasher.digest()),
        name,
        args.to_string(),
    ))
}

/// Whether `text` has `word` as a whole word.
fn mentions_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Arguments that satisfy a JSON schema's required properties (all of them when none are
/// marked required): a command in backticks for `command` or `cmd`, placeholders otherwise.
fn arguments(schema: &Value, last_user: &str) -> Value {
    let mut out = serde_json::Map::new();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Value::Object(out);
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_else(|| props.keys().map(String::as_str).collect());
    let backticked = last_user
        .split('`')
        .nth(1)
        .filter(|c| !c.is_empty())
        .unwrap_or("echo simulated");
    for name in required {
        let kind = props
            .get(name)
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("string");
        let value = match kind {
            "integer" | "number" => json!(1),
            "boolean" => json!(false),
            "array" => json!([]),
            "object" => json!({}),
            _ if matches!(name, "command" | "cmd") => json!(backticked),
            _ => json!("simulated"),
        };
        out.insert(name.to_owned(), value);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_tool_is_called_with_arguments_from_its_schema() {
        let req = json!({
            "tools": [
                {"type": "function", "function": {"name": "Read", "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "Bash", "parameters": {"type": "object", "properties": {"command": {"type": "string"}, "timeout": {"type": "number"}}, "required": ["command"]}}},
            ],
        });
        let (_, name, args) = tool_call(&req, "Use the Bash tool to run `echo hi`").unwrap();
        assert_eq!(name, "Bash");
        assert_eq!(
            serde_json::from_str::<Value>(&args).unwrap(),
            json!({"command": "echo hi"})
        );
        assert!(
            tool_call(&req, "say hi").is_none(),
            "no tool named, no call"
        );
        assert!(
            tool_call(&req, "Bashful people").is_none(),
            "whole words only"
        );
        let mut forced = req.clone();
        forced["tool_choice"] = json!("required");
        assert_eq!(tool_call(&forced, "say hi").unwrap().1, "Read");
        forced["tool_choice"] = json!("none");
        assert!(tool_call(&forced, "use Bash").is_none());
    }
}
