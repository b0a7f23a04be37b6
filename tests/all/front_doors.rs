//! The Anthropic Messages and OpenAI Responses front doors.
//! Claude Code and Codex, the CLIs from npm, run headless against `switchyard serve` on the
//! embedded default.
//!
//! Here, against mock upstreams: each door translated to chat completions and back (whole and
//! streamed), passed through byte for byte to an upstream that speaks it, chat translated to
//! Messages for an Anthropic upstream, the commit point and mid-stream failures in each dialect,
//! errors in the caller's shape, `count_tokens`, the cache, policies, metrics and the access log.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::*;

const FLASH: &str = "deepseek-v4-flash";
const PRO: &str = "deepseek-v4-pro";

/// Prices that make every kind of token visible in a cost: $1,000 per 1M uncached input tokens,
/// $100 per 1M cache hits, $10,000 per 1M output tokens.
const PRICES: &str = "[models.\"deepseek-v4-flash\"]\ninput_usd_per_mtok = 1000.0\ncached_input_usd_per_mtok = 100.0\noutput_usd_per_mtok = 10000.0\n\n[models.\"deepseek-v4-pro\"]\ninput_usd_per_mtok = 1000.0\ncached_input_usd_per_mtok = 100.0\noutput_usd_per_mtok = 10000.0\n\n";

/// What [`PRICES`] charge for `uncached` input, `cached` input and `output` tokens.
fn priced(uncached: u64, cached: u64, output: u64) -> f64 {
    (uncached as f64 * 1000.0 + cached as f64 * 100.0 + output as f64 * 10000.0) / 1e6
}

fn cost_header(r: &TestResponse) -> f64 {
    r.header("x-switchyard-cost-usd")
        .unwrap_or_else(|| panic!("no cost header: {:?}", r.headers))
        .parse()
        .unwrap()
}

fn assert_close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() < 1e-9, "{what}: got {got}, want {want}");
}

/// A tenant on `static-route` to `model` (then `fallbacks`), allowed `models`, taking any
/// `claude-*` name as an alias (as Claude Code sends its own model names).
fn tenant(name: &str, key: &str, models: &[&str], route: &[&str], extra: &str) -> String {
    let fallbacks = route[1..]
        .iter()
        .map(|m| format!("\"{m}\""))
        .collect::<Vec<_>>()
        .join(", ");
    tenant_toml(
        name,
        key,
        "sr",
        models,
        &format!(
            "model_aliases = [\"claude-*\", \"auto\"]\npolicy_config = {{ model = \"{}\", fallbacks = [{fallbacks}] }}\n{extra}",
            route[0]
        ),
    )
}

/// A gateway on `upstreams` (TOML) with tenant `a` routed statically to `route`.
async fn gateway(upstreams: &str, route: &[&str], tenant_extra: &str) -> TestGateway {
    let toml = PRICES.to_string()
        + upstreams
        + &policy_toml("sr", "static-route")
        + &tenant("a", KEY_A, route, route, tenant_extra);
    start_gateway(&toml).await
}

/// `POST {path}` with `body` as tenant `a`, read whole.
async fn stream_post(gw: &TestGateway, path: &str, body: &Value) -> TestResponse {
    let url = format!("{}{path}", gw.url);
    request("POST", &url, Some(KEY_A), &[], body.to_string()).await
}

fn data_step(delta: Value, finish: Option<&str>) -> SseStep {
    SseStep::Data(chunk("prov-flash", delta, finish).to_string())
}

fn usage_step() -> SseStep {
    SseStep::Data(
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "prov-flash",
               "choices": [], "usage": usage_json()})
        .to_string(),
    )
}

/// Breaks the connection once what came before has surely reached the gateway (a cut in the same
/// write as the response head would fail the request before its head, another failure).
fn cut() -> [SseStep; 2] {
    [SseStep::Pause(Duration::from_millis(50)), SseStep::Cut]
}

/// The bytes a mock sends for `steps` (all raw frames).
fn raw_bytes(steps: &[SseStep]) -> String {
    steps
        .iter()
        .map(|s| match s {
            SseStep::Raw(r) => r.as_str(),
            _ => panic!("only raw frames"),
        })
        .collect()
}

fn done_step() -> SseStep {
    SseStep::Raw("data: [DONE]\n\n".into())
}

/// The text of the last user message of a chat body (a string content).
fn last_said(r: &Recorded) -> String {
    r.body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}

// === reading the dialects' streams, checking their protocol on the way ===

/// An Anthropic event stream, reassembled.
#[derive(Debug, Default)]
struct AnthropicStream {
    names: Vec<String>,
    message_start: Value,
    text: String,
    thinking: String,
    /// (id, name, concatenated partial_json) of each tool_use block.
    tools: Vec<(String, String, String)>,
    message_delta: Option<Value>,
    stopped: bool,
    error: Option<Value>,
}

/// Reads an Anthropic Messages stream, asserting its protocol: every frame has an `event:` line
/// equal to its `type`; `message_start` first; blocks strictly sequential with indices 0, 1, 2…
/// (start, deltas of that block only, stop); `message_delta` and `message_stop` outside any block;
/// nothing after `message_stop` or `error`; no `[DONE]`.
fn anthropic_stream(body: &[u8]) -> AnthropicStream {
    let text = String::from_utf8_lossy(body);
    assert!(
        !text.contains("[DONE]"),
        "Messages streams have no [DONE]: {text}"
    );
    let events = sse_events(body);
    assert!(!events.is_empty(), "empty stream");
    let mut s = AnthropicStream::default();
    let mut open: Option<(u64, String)> = None;
    let mut next_index = 0;
    for (i, e) in events.iter().enumerate() {
        let d = e.json();
        let name = e
            .event
            .clone()
            .unwrap_or_else(|| panic!("frame {i} has no event: line: {}", e.data));
        assert_eq!(
            Some(name.as_str()),
            d["type"].as_str(),
            "frame {i}: {}",
            e.data
        );
        assert!(
            !s.stopped && s.error.is_none(),
            "frame {i} ({name}) after the end of the stream:\n{text}"
        );
        if i == 0 {
            assert_eq!(name, "message_start", "{text}");
        }
        match name.as_str() {
            "message_start" => {
                assert_eq!(i, 0, "a second message_start:\n{text}");
                s.message_start = d["message"].clone();
            }
            "ping" => {}
            "content_block_start" => {
                assert!(open.is_none(), "block opened inside another:\n{text}");
                assert_eq!(
                    d["index"], next_index,
                    "block indices are sequential:\n{text}"
                );
                next_index += 1;
                let block = &d["content_block"];
                let ty = block["type"].as_str().unwrap().to_owned();
                if ty == "tool_use" {
                    assert_eq!(block["input"], json!({}), "tool_use starts with input {{}}");
                    s.tools.push((
                        block["id"].as_str().unwrap().to_owned(),
                        block["name"].as_str().unwrap().to_owned(),
                        String::new(),
                    ));
                }
                open = Some((d["index"].as_u64().unwrap(), ty));
            }
            "content_block_delta" => {
                let (index, ty) = open.as_ref().expect("a delta outside any block");
                assert_eq!(d["index"], *index, "a delta for a block that is not open");
                let delta = &d["delta"];
                match (delta["type"].as_str().unwrap(), ty.as_str()) {
                    ("text_delta", "text") => s.text += delta["text"].as_str().unwrap(),
                    ("thinking_delta", "thinking") => {
                        s.thinking += delta["thinking"].as_str().unwrap();
                    }
                    ("signature_delta", "thinking") => {
                        assert!(delta["signature"].is_string());
                    }
                    ("input_json_delta", "tool_use") => {
                        s.tools.last_mut().unwrap().2 += delta["partial_json"].as_str().unwrap();
                    }
                    (dt, bt) => panic!("a {dt} in a {bt} block:\n{text}"),
                }
            }
            "content_block_stop" => {
                let (index, _) = open.take().expect("a stop outside any block");
                assert_eq!(d["index"], index);
            }
            "message_delta" => {
                assert!(open.is_none(), "message_delta inside a block:\n{text}");
                assert!(s.message_delta.is_none(), "two message_deltas");
                s.message_delta = Some(d.clone());
            }
            "message_stop" => {
                assert!(
                    s.message_delta.is_some(),
                    "message_stop before message_delta"
                );
                s.stopped = true;
            }
            "error" => s.error = Some(d.clone()),
            other => panic!("unknown Anthropic event {other}:\n{text}"),
        }
        s.names.push(name);
    }
    s
}

/// A Responses event stream, reassembled.
#[derive(Debug, Default)]
struct ResponsesStream {
    names: Vec<String>,
    text: String,
    reasoning: String,
    /// output_index → concatenated function_call_arguments deltas.
    arguments: std::collections::BTreeMap<u64, String>,
    /// The last event (the terminal one).
    last: Value,
}

/// Reads a Responses stream, asserting the canonical order: every event has an `event:` line
/// equal to its `type` and `sequence_number` counting from 0; `response.created` then
/// `response.in_progress` first; each item's `output_item.added` before any event about it;
/// exactly one terminal event (`response.completed`, `.incomplete`, `.failed` or `error`), last;
/// no `[DONE]`.
fn responses_stream(body: &[u8]) -> ResponsesStream {
    let text = String::from_utf8_lossy(body);
    assert!(
        !text.contains("[DONE]"),
        "Responses streams have no [DONE]: {text}"
    );
    let events = sse_events(body);
    assert!(events.len() >= 2, "too short:\n{text}");
    let mut s = ResponsesStream::default();
    let mut added = BTreeSet::new();
    let terminal = [
        "response.completed",
        "response.incomplete",
        "response.failed",
        "error",
    ];
    for (i, e) in events.iter().enumerate() {
        let d = e.json();
        let name = e
            .event
            .clone()
            .unwrap_or_else(|| panic!("event {i} has no event: line: {}", e.data));
        assert_eq!(Some(name.as_str()), d["type"].as_str(), "event {i}");
        assert_eq!(
            d["sequence_number"], i,
            "sequence numbers count from 0:\n{text}"
        );
        match i {
            0 => {
                assert_eq!(name, "response.created", "{text}");
                assert_eq!(d["response"]["status"], "in_progress");
                assert_eq!(d["response"]["output"], json!([]));
            }
            1 => assert_eq!(name, "response.in_progress", "{text}"),
            _ => assert!(
                name != "response.created" && name != "response.in_progress",
                "lifecycle event repeated:\n{text}"
            ),
        }
        assert_eq!(
            terminal.contains(&name.as_str()),
            i == events.len() - 1,
            "exactly one terminal event, last ({name} at {i}):\n{text}"
        );
        if let Some(index) = d["output_index"].as_u64() {
            if name == "response.output_item.added" {
                assert!(added.insert(index), "item {index} added twice");
            } else {
                assert!(
                    added.contains(&index),
                    "{name} before output_item.added for item {index}:\n{text}"
                );
            }
        }
        match name.as_str() {
            "response.output_text.delta" => s.text += d["delta"].as_str().unwrap(),
            "response.reasoning_text.delta" => s.reasoning += d["delta"].as_str().unwrap(),
            "response.function_call_arguments.delta" => {
                *s.arguments
                    .entry(d["output_index"].as_u64().unwrap())
                    .or_default() += d["delta"].as_str().unwrap();
            }
            _ => {}
        }
        s.names.push(name);
        s.last = d;
    }
    s
}

/// The five usage fields of a Response, as numbers.
fn responses_usage(u: &Value) -> [u64; 5] {
    [
        u["input_tokens"].as_u64().expect("input_tokens"),
        u["input_tokens_details"]["cached_tokens"]
            .as_u64()
            .expect("cached_tokens"),
        u["output_tokens"].as_u64().expect("output_tokens"),
        u["output_tokens_details"]["reasoning_tokens"]
            .as_u64()
            .expect("reasoning_tokens"),
        u["total_tokens"].as_u64().expect("total_tokens"),
    ]
}

/// The fields the SDK types require of a Response object.
fn assert_response_object(r: &Value) {
    assert!(
        r["id"].as_str().is_some_and(|id| id.starts_with("resp_")),
        "{r}"
    );
    assert_eq!(r["object"], "response");
    assert!(r["created_at"].is_u64(), "{r}");
    assert!(r["model"].is_string(), "{r}");
    assert!(r["output"].is_array(), "{r}");
    assert!(r["parallel_tool_calls"].is_boolean(), "{r}");
    assert!(r.get("tool_choice").is_some(), "{r}");
    assert!(r["tools"].is_array(), "{r}");
    assert_eq!(r["store"], false, "{r}");
    assert!(r.get("error").is_some() && r.get("incomplete_details").is_some());
}

// === 1. Messages → chat, whole responses ===

#[tokio::test]
async fn a_messages_request_reaches_a_chat_upstream_as_chat_and_comes_back_as_a_message() {
    let mock = MockUpstream::start(|_| Reply::Json {
        status: 200,
        body: json!({"id": "chatcmpl-7", "object": "chat.completion", "created": 1, "model": "prov-flash",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Here you go.",
                "reasoning_content": "The user wants a file.",
                "tool_calls": [{"id": "call_7", "type": "function",
                                "function": {"name": "Read", "arguments": "{\"path\": \"a.txt\"}"}}]}}],
            "usage": usage_json()})
        .to_string(),
        headers: vec![],
    })
    .await;
    let gw = gateway(
        &upstream_toml("main", &mock.url(), &[&format!("{FLASH}=prov-flash")], ""),
        &[FLASH],
        "",
    )
    .await;
    let user_id = r#"{"device_id":"d1","account_uuid":"","session_id":"s1"}"#;
    let body = json!({
        "model": "claude-opus-5-5",
        "max_tokens": 1024,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=1;"},
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "list the files"},
            {"role": "system", "content": [{"type": "text", "text": "<env>linux</env>"}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should run ls.", "signature": ""},
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls -la"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt\nb.txt",
                 "is_error": false, "cache_control": {"type": "ephemeral"}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "text", "text": "what is in the picture?"}]}],
        "stop_sequences": ["END"],
        "metadata": {"user_id": user_id},
        "tools": [{"name": "Bash", "description": "Run a command", "defer_loading": false,
                   "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}],
        "thinking": {"type": "adaptive", "display": "omitted"},
        "output_config": {"effort": "max"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "x_custom": {"a": [1, 2]}
    });
    let r = messages(&gw, KEY_A, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // What the chat upstream saw.
    let sent = &mock.requests()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    let c = &sent.body;
    assert_eq!(
        c["model"], "prov-flash",
        "the provider's name for the model"
    );
    assert_eq!(c["max_tokens"], 1024);
    assert_eq!(c["stop"], json!(["END"]));
    assert_eq!(
        c["reasoning_effort"], "high",
        "output_config.effort max, on chat's scale"
    );
    assert_eq!(
        c["tools"],
        json!([{"type": "function", "function": {"name": "Bash", "description": "Run a command",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}}])
    );
    let user = c["user"].as_str().expect("metadata.user_id becomes user");
    assert!(
        user.starts_with("u_")
            && user.len() <= 512
            && user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "a JSON user id is hashed into DeepSeek's alphabet: {user}"
    );
    for dropped in [
        "system",
        "stop_sequences",
        "metadata",
        "x_custom",
        "context_management",
        "output_config",
        "thinking",
        "stream",
    ] {
        assert!(
            c.get(dropped).is_none(),
            "{dropped} must not reach chat: {c}"
        );
    }
    let m = c["messages"].as_array().unwrap();
    assert_eq!(m.len(), 6, "{c}");
    assert_eq!(
        m[0],
        json!({"role": "system", "content": "x-anthropic-billing-header: cc_version=1;\n\nYou are Claude Code."}),
        "the system blocks come first, joined"
    );
    assert_eq!(m[1], json!({"role": "user", "content": "list the files"}));
    assert_eq!(
        m[2],
        json!({"role": "system", "content": "<env>linux</env>"}),
        "a system message inside messages stays where it was"
    );
    assert_eq!(m[3]["role"], "assistant");
    assert_eq!(m[3]["content"], "Let me look.");
    assert_eq!(m[3]["reasoning_content"], "I should run ls.");
    let call = &m[3]["tool_calls"][0];
    assert_eq!(
        (&call["id"], &call["type"], &call["function"]["name"]),
        (&json!("toolu_1"), &json!("function"), &json!("Bash"))
    );
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"command": "ls -la"}));
    assert_eq!(
        m[4],
        json!({"role": "tool", "tool_call_id": "toolu_1", "content": "a.txt\nb.txt"})
    );
    assert_eq!(
        m[5],
        json!({"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "text", "text": "what is in the picture?"}]})
    );

    // What the client got: an Anthropic Message.
    let id = r.header("x-request-id").expect("x-request-id");
    assert_eq!(
        r.header("request-id"),
        Some(id),
        "Anthropic's request-id header"
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-switchyard-model"), Some(FLASH));
    let msg = r.json();
    assert_eq!(msg["type"], "message");
    assert_eq!(msg["role"], "assistant");
    assert!(msg["id"].as_str().unwrap().starts_with("msg_"), "{msg}");
    assert!(msg["model"].is_string());
    assert_eq!(
        msg["content"],
        json!([
            {"type": "thinking", "thinking": "The user wants a file.", "signature": ""},
            {"type": "text", "text": "Here you go."},
            {"type": "tool_use", "id": "call_7", "name": "Read", "input": {"path": "a.txt"}}
        ])
    );
    assert_eq!(msg["stop_reason"], "tool_use");
    assert_eq!(msg["stop_sequence"], Value::Null);
    assert_eq!(
        msg["usage"],
        json!({"input_tokens": 40, "cache_read_input_tokens": 60,
               "cache_creation_input_tokens": 0, "output_tokens": 20}),
        "input_tokens are the prompt less its cache hits"
    );
    assert_close(
        cost_header(&r),
        priced(40, 60, 20),
        "cost at cache-hit prices",
    );

    // The same user id hashes the same way every time (one user, one id).
    assert_eq!(messages(&gw, KEY_A, &body).await.status, 200);
    assert_eq!(mock.requests()[1].body["user"], user);
}

#[tokio::test]
async fn chat_finish_reasons_become_anthropic_stop_reasons() {
    let mock = MockUpstream::start(|r| {
        let finish = last_said(r);
        let mut c = completion_body("prov-flash", "x");
        c["choices"][0]["finish_reason"] = json!(finish);
        Reply::Json {
            status: 200,
            body: c.to_string(),
            headers: vec![],
        }
    })
    .await;
    let gw = gateway(
        &upstream_toml("main", &mock.url(), &[FLASH], ""),
        &[FLASH],
        "",
    )
    .await;
    for (finish, stop) in [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
    ] {
        let body = json!({"model": FLASH, "max_tokens": 10,
                          "messages": [{"role": "user", "content": finish}]});
        let r = messages(&gw, KEY_A, &body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["stop_reason"], stop, "finish_reason {finish}");
    }
}

#[tokio::test]
async fn claude_code_style_requests_are_accepted() {
    // Claude Code posts to `/v1/messages?beta=true` with `x-api-key` and its own headers.
    let mock = MockUpstream::echo().await;
    let gw = gateway(
        &upstream_toml("main", &mock.url(), &[FLASH], ""),
        &[FLASH],
        "",
    )
    .await;
    let body = json!({"model": "claude-opus-5-5", "max_tokens": 128000,
                      "messages": [{"role": "user", "content": "say hi"}]});
    let r = request(
        "POST",
        &format!("{}/v1/messages?beta=true", gw.url),
        None,
        &[
            ("x-api-key", KEY_A),
            ("anthropic-version", "2023-06-01"),
            (
                "anthropic-beta",
                "claude-code-20250219,interleaved-thinking-2025-05-14",
            ),
            ("x-app", "cli"),
        ],
        body.to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["content"][0]["text"], "mock reply");
    assert_eq!(mock.requests()[0].body["model"], FLASH);
}

// === 2. Messages streams, translated ===

#[tokio::test]
async fn a_chat_stream_is_translated_into_anthropic_events() {
    let mock = MockUpstream::start(|_| {
        Reply::Sse(vec![
            data_step(json!({"role": "assistant", "content": ""}), None),
            data_step(json!({"reasoning_content": "Think"}), None),
            data_step(json!({"reasoning_content": "ing."}), None),
            data_step(json!({"content": "Hel"}), None),
            data_step(json!({"content": "lo"}), None),
            data_step(
                json!({"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
                                       "function": {"name": "Read", "arguments": ""}}]}),
                None,
            ),
            data_step(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"path\":"}}]}),
                None,
            ),
            data_step(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": " \"a.rs\"}"}}]}),
                None,
            ),
            data_step(json!({}), Some("tool_calls")),
            usage_step(),
            done_step(),
        ])
    })
    .await;
    let gw = gateway(
        &upstream_toml("main", &mock.url(), &[FLASH], ""),
        &[FLASH],
        "",
    )
    .await;
    let body = json!({"model": "claude-opus-5-5", "max_tokens": 100, "stream": true,
                      "messages": [{"role": "user", "content": "read a.rs"}]});
    let r = stream_post(&gw, "/v1/messages", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert!(r.header("request-id").is_some());
    let sent = &mock.requests()[0].body;
    assert_eq!(sent["stream"], true);
    assert_eq!(
        sent["stream_options"],
        json!({"include_usage": true}),
        "the gateway asks for usage to account for the stream"
    );

    let s = anthropic_stream(&r.body);
    assert_eq!(s.message_start["role"], "assistant");
    assert_eq!(s.message_start["type"], "message");
    assert_eq!(s.message_start["content"], json!([]));
    assert!(s.names.contains(&"ping".to_owned()));
    assert_eq!(s.thinking, "Thinking.");
    assert_eq!(s.text, "Hello");
    assert_eq!(s.tools.len(), 1, "{:?}", s.names);
    let (id, name, partial) = &s.tools[0];
    assert_eq!((id.as_str(), name.as_str()), ("call_9", "Read"));
    let input: Value = serde_json::from_str(partial).expect("partial_json parses");
    assert_eq!(input, json!({"path": "a.rs"}));
    let starts: Vec<String> = sse_events(&r.body)
        .iter()
        .filter(|e| e.event.as_deref() == Some("content_block_start"))
        .map(|e| {
            e.json()["content_block"]["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(starts, ["thinking", "text", "tool_use"]);
    let delta = s.message_delta.expect("message_delta");
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["output_tokens"], 20);
    assert_eq!(delta["usage"]["input_tokens"], 40);
    assert_eq!(delta["usage"]["cache_read_input_tokens"], 60);
    assert!(s.stopped, "ends with message_stop");
    assert_eq!(s.names.last().map(String::as_str), Some("message_stop"));
}

// === 3. Responses → chat ===

#[tokio::test]
async fn a_responses_conversation_with_tools_goes_through_chat_and_keeps_its_reasoning() {
    // Turn 1 asks for a tool; turn 2 (after the tool's output) answers.
    let mock = MockUpstream::start(|r| {
        let after_tool = r.body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .is_some_and(|m| m["role"] == "tool");
        let message = if after_tool {
            json!({"role": "assistant", "content": "Two files."})
        } else {
            json!({"role": "assistant", "content": null, "reasoning_content": "I will list the files.",
                   "tool_calls": [{"id": "call_1", "type": "function",
                                   "function": {"name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"}}]})
        };
        let finish = if after_tool { "stop" } else { "tool_calls" };
        Reply::Json {
            status: 200,
            body: json!({"id": "chatcmpl-r", "object": "chat.completion", "created": 1, "model": "prov-flash",
                         "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                         "usage": usage_json()})
            .to_string(),
            headers: vec![],
        }
    })
    .await;
    let gw = gateway(
        &upstream_toml("main", &mock.url(), &[&format!("{FLASH}=prov-flash")], ""),
        &[FLASH],
        "",
    )
    .await;
    let tool = json!({"type": "function", "name": "exec_command", "description": "Run a command",
                      "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}, "strict": false});
    let mut input = vec![
        json!({"type": "message", "role": "developer", "id": "msg_d",
               "content": [{"type": "input_text", "text": "You are Codex."}]}),
        json!({"type": "message", "role": "user", "id": "msg_u",
               "content": [{"type": "input_text", "text": "list files"}]}),
    ];
    let turn = |input: &[Value]| {
        json!({"model": FLASH, "instructions": "Be terse.", "input": input, "tools": [tool],
               "tool_choice": "auto", "parallel_tool_calls": true, "store": false,
               "include": ["reasoning.encrypted_content"], "prompt_cache_key": "sess-1",
               "client_metadata": {"x": "y"}, "reasoning": {"effort": "low", "summary": "auto"}})
    };

    let r = responses(&gw, KEY_A, &turn(&input)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let c = &mock.requests()[0].body;
    assert_eq!(mock.requests()[0].path, "/v1/chat/completions");
    assert_eq!(c["model"], "prov-flash");
    assert_eq!(
        c["messages"],
        json!([
            {"role": "system", "content": "Be terse."},
            {"role": "system", "content": "You are Codex."},
            {"role": "user", "content": "list files"}
        ]),
        "instructions first, developer items as system"
    );
    assert_eq!(
        c["tools"],
        json!([{"type": "function", "function": {"name": "exec_command", "description": "Run a command",
            "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}, "strict": false}}])
    );
    assert_eq!(c["tool_choice"], "auto");
    assert_eq!(c["parallel_tool_calls"], true);
    assert_eq!(c["reasoning_effort"], "low");
    for dropped in [
        "input",
        "instructions",
        "store",
        "include",
        "prompt_cache_key",
        "client_metadata",
        "reasoning",
    ] {
        assert!(
            c.get(dropped).is_none(),
            "{dropped} must not reach chat: {c}"
        );
    }

    let resp = r.json();
    assert_response_object(&resp);
    assert_eq!(resp["status"], "completed");
    assert_eq!(resp["error"], Value::Null);
    assert_eq!(resp["tool_choice"], "auto");
    assert_eq!(resp["tools"].as_array().map(Vec::len), Some(1));
    assert_eq!(resp["instructions"], "Be terse.");
    assert_eq!(responses_usage(&resp["usage"]), [100, 60, 20, 0, 120]);
    let output = resp["output"].as_array().unwrap();
    assert_eq!(
        output.len(),
        2,
        "reasoning, then the call (no empty message): {resp}"
    );
    let reasoning = &output[0];
    assert_eq!(reasoning["type"], "reasoning");
    assert_eq!(reasoning["content"][0]["text"], "I will list the files.");
    let sealed = reasoning["encrypted_content"]
        .as_str()
        .expect("reasoning carries encrypted_content")
        .to_owned();
    let call = &output[1];
    assert_eq!(call["type"], "function_call");
    assert_eq!(call["call_id"], "call_1");
    assert_eq!(call["name"], "exec_command");
    assert_eq!(call["arguments"], "{\"cmd\":\"ls\"}");
    assert_eq!(call["status"], "completed");

    // Turn 2, as Codex sends it: the reasoning item with `content: null`, the call, its output.
    input.push(
        json!({"type": "reasoning", "id": reasoning["id"], "summary": [], "content": null,
                      "encrypted_content": sealed}),
    );
    input.push(
        json!({"type": "function_call", "id": call["id"], "call_id": "call_1",
                      "name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"}),
    );
    input.push(
        json!({"type": "function_call_output", "id": "fco_1", "call_id": "call_1",
                      "output": "a.txt\nb.txt"}),
    );
    let r = responses(&gw, KEY_A, &turn(&input)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let m = mock.requests()[1].body["messages"].clone();
    let m = m.as_array().unwrap();
    assert_eq!(m.len(), 5, "{m:?}");
    assert_eq!(m[3]["role"], "assistant");
    assert_eq!(
        m[3]["reasoning_content"], "I will list the files.",
        "the reasoning comes back from encrypted_content"
    );
    assert_eq!(m[3]["tool_calls"][0]["id"], "call_1");
    assert_eq!(m[3]["tool_calls"][0]["function"]["name"], "exec_command");
    assert_eq!(
        m[3]["tool_calls"][0]["function"]["arguments"],
        "{\"cmd\":\"ls\"}"
    );
    assert_eq!(
        m[4],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "a.txt\nb.txt"})
    );
    let resp = r.json();
    assert_response_object(&resp);
    let output = resp["output"].as_array().unwrap();
    assert_eq!(output.len(), 1, "{resp}");
    assert_eq!(output[0]["type"], "message");
    assert_eq!(output[0]["content"][0]["type"], "output_text");
    assert_eq!(output[0]["content"][0]["text"], "Two files.");
}

#[tokio::test]
async fn a_chat_stream_becomes_the_canonical_responses_event_sequence_also_without_v1() {
    let mock = MockUpstream::start(|_| {
        Reply::Sse(vec![
            data_step(json!({"role": "assistant", "content": ""}), None),
            data_step(json!({"reasoning_content": "hmm"}), None),
            data_step(json!({"content": "o"}), None),
            data_step(json!({"content": "k"}), None),
            data_step(
                json!({"tool_calls": [{"index": 0, "id": "call_2", "type": "function",
                                       "function": {"name": "exec_command", "arguments": "{\"cmd\""}}]}),
                None,
            ),
            data_step(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": ": \"ls\"}"}}]}),
                None,
            ),
            data_step(json!({}), Some("tool_calls")),
            usage_step(),
            done_step(),
        ])
    })
    .await;
    let gw = gateway(
        &upstream_toml("main", &mock.url(), &[FLASH], ""),
        &[FLASH],
        "",
    )
    .await;
    let body = json!({"model": FLASH, "input": "list files", "stream": true, "store": false,
                      "tools": [{"type": "function", "name": "exec_command", "parameters": {"type": "object"}}]});
    // openai-python with a base URL without `/v1` posts to `/responses`.
    let r = stream_post(&gw, "/responses", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let s = responses_stream(&r.body);
    assert_eq!(s.reasoning, "hmm");
    assert_eq!(s.text, "ok");
    assert_eq!(s.arguments.len(), 1, "{:?}", s.names);
    let args: Value = serde_json::from_str(s.arguments.values().next().unwrap()).unwrap();
    assert_eq!(args, json!({"cmd": "ls"}));
    assert_eq!(s.last["type"], "response.completed", "{:?}", s.names);
    let done = &s.last["response"];
    assert_response_object(done);
    assert_eq!(done["status"], "completed");
    assert_eq!(responses_usage(&done["usage"]), [100, 60, 20, 0, 120]);
    let types: Vec<&str> = done["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["reasoning", "message", "function_call"]);
    assert_eq!(done["output"][1]["content"][0]["text"], "ok");
    assert_eq!(done["output"][2]["call_id"], "call_2");
    for name in [
        "response.output_item.done",
        "response.output_text.done",
        "response.function_call_arguments.done",
    ] {
        assert!(
            s.names.iter().any(|n| n == name),
            "{name} missing: {:?}",
            s.names
        );
    }
}

// === 4. Passthrough ===

#[tokio::test]
async fn a_messages_upstream_gets_the_clients_bytes_and_the_client_gets_the_upstreams() {
    let reply = anthropic_message("prov-flash", "passed through").to_string();
    let steps = anthropic_stream_steps("prov-flash", &["pass", "ed"]);
    let stream_bytes = raw_bytes(&steps);
    let (reply2, steps2) = (reply.clone(), steps.clone());
    let mock = MockUpstream::start(move |r| {
        if r.body["stream"] == true {
            Reply::Sse(steps2.clone())
        } else {
            Reply::Json {
                status: 200,
                body: reply2.clone(),
                headers: vec![],
            }
        }
    })
    .await;
    let admin = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_sha256 = \"{}\"\n\n",
        key_hash(ADMIN_TOKEN)
    );
    let gw = gateway(
        &(admin
            + &upstream_toml(
                "anth",
                &mock.url(),
                &[&format!("{FLASH}=prov-flash")],
                "apis = [\"messages\"]",
            )),
        &[FLASH],
        "",
    )
    .await;

    // Spacing, key order and an unknown field exactly as the client wrote them.
    let sent = r#"{"model": "claude-opus-5-5",  "max_tokens": 128000, "x_custom":{"a":[1,2]},
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}],
        "thinking": {"type": "adaptive", "display": "omitted"}}"#;
    let beta = "context-management-2025-06-27,interleaved-thinking-2025-05-14";
    let r = request(
        "POST",
        &format!("{}/v1/messages", gw.url),
        Some(KEY_A),
        &[("anthropic-beta", beta)],
        sent,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = &mock.requests()[0];
    assert_eq!(got.path, "/v1/messages");
    assert_eq!(
        got.headers
            .get("anthropic-beta")
            .and_then(|v| v.to_str().ok()),
        Some(beta),
        "the beta fields of the body need their header"
    );
    assert_eq!(
        String::from_utf8_lossy(&got.raw),
        sent.replace(r#""model": "claude-opus-5-5""#, r#""model": "prov-flash""#),
        "only the model changes"
    );
    assert_eq!(r.text(), reply, "the client gets the upstream's bytes");
    assert_eq!(r.header("x-switchyard-upstream"), Some("anth"));
    assert!(r.header("request-id").is_some());
    // 10 uncached + 5 written to the cache (billed as input), 90 cache reads, 42 output.
    assert_close(
        cost_header(&r),
        priced(15, 90, 42),
        "cost from Anthropic usage",
    );

    // Streamed: the events pass through as they came, and the usage is still accounted.
    let sent = sent.replacen('{', "{\"stream\": true, ", 1);
    let r = request(
        "POST",
        &format!("{}/v1/messages", gw.url),
        Some(KEY_A),
        &[],
        sent.clone(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        String::from_utf8_lossy(&mock.requests()[1].raw),
        sent.replace(r#""model": "claude-opus-5-5""#, r#""model": "prov-flash""#)
    );
    assert_eq!(
        r.text(),
        stream_bytes,
        "the stream passes through byte for byte"
    );
    let s = anthropic_stream(&r.body);
    assert_eq!(s.text, "passed");

    let tokens = |text: &str, kind: &str| {
        metric(
            text,
            "switchyard_tokens_total",
            &[("tenant", "a"), ("kind", kind)],
        )
    };
    eventually(
        "both requests' usage to be accounted",
        Duration::from_secs(10),
        || async { tokens(&gw.metrics_text().await, "output") == Some(84.0) },
    )
    .await;
    let text = gw.metrics_text().await;
    assert_eq!(tokens(&text, "input"), Some(30.0), "{text}");
    assert_eq!(tokens(&text, "cached_input"), Some(180.0), "{text}");
    let cost = metric(
        &text,
        "switchyard_cost_usd_total",
        &[("tenant", "a"), ("model", FLASH)],
    )
    .unwrap();
    assert_close(
        cost,
        2.0 * priced(15, 90, 42),
        "the streamed request is charged too",
    );
}

#[tokio::test]
async fn an_upstream_that_speaks_only_responses_is_refused() {
    let err = try_start_gateway(
        &(upstream_toml(
            "resp",
            "http://127.0.0.1:9/v1",
            &[FLASH],
            "apis = [\"responses\"]",
        ) + &policy_toml("sr", "static-route")
            + &tenant("a", KEY_A, &[FLASH], &[FLASH], "")),
    )
    .await
    .err()
    .expect("a Responses-only upstream is refused");
    assert!(err.contains("upstreams.resp.apis"), "{err}");
    assert!(err.contains("chat") && err.contains("messages"), "{err}");
}

#[tokio::test]
async fn a_chat_and_responses_upstream_passes_responses_through_and_serves_the_rest_as_chat() {
    let reply = response_object(
        "prov-flash",
        "completed",
        vec![response_message_item("passed through")],
        true,
    )
    .to_string();
    let steps = responses_stream_steps("prov-flash", &["pass", "ed"]);
    let stream_bytes = raw_bytes(&steps);
    let (reply2, steps2) = (reply.clone(), steps.clone());
    let mock = MockUpstream::start(move |r| match (r.path.as_str(), r.body["stream"] == true) {
        ("/v1/responses", true) => Reply::Sse(steps2.clone()),
        ("/v1/responses", false) => Reply::Json {
            status: 200,
            body: reply2.clone(),
            headers: vec![],
        },
        _ => Reply::completion("prov-flash", "as chat"),
    })
    .await;
    let gw = gateway(
        &upstream_toml(
            "both",
            &mock.url(),
            &[&format!("{FLASH}=prov-flash")],
            "apis = [\"chat\", \"responses\"]",
        ),
        &[FLASH],
        "",
    )
    .await;
    let sent =
        r#"{"model": "deepseek-v4-flash", "input": "hi",  "x_custom":{"a":[1,2]}, "store": false}"#;
    let url = format!("{}/v1/responses", gw.url);
    let r = request("POST", &url, Some(KEY_A), &[], sent).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = &mock.requests()[0];
    assert_eq!(got.path, "/v1/responses");
    assert_eq!(
        String::from_utf8_lossy(&got.raw),
        sent.replace(
            r#""model": "deepseek-v4-flash""#,
            r#""model": "prov-flash""#
        )
    );
    assert_eq!(r.text(), reply);
    assert_close(
        cost_header(&r),
        priced(40, 60, 20),
        "cost from Responses usage",
    );

    let sent = sent.replacen('{', "{\"stream\": true, ", 1);
    let r = request("POST", &url, Some(KEY_A), &[], sent).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.text(),
        stream_bytes,
        "the stream passes through byte for byte"
    );
    assert_eq!(responses_stream(&r.body).text, "passed");

    // The other doors reach the same upstream through chat.
    let r = messages(
        &gw,
        KEY_A,
        &json!({"model": FLASH, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["content"][0]["text"], "as chat");
    assert_eq!(mock.requests()[2].path, "/v1/chat/completions");
    let r = chat(&gw, KEY_A, &user_says(FLASH, "hi")).await;
    assert_eq!(r.json()["choices"][0]["message"]["content"], "as chat");
    assert_eq!(mock.requests()[3].path, "/v1/chat/completions");
}

#[tokio::test]
async fn messages_url_names_where_an_upstream_serves_messages() {
    let mock = MockUpstream::start(|r| Reply::Json {
        status: 200,
        body: anthropic_message(r.body["model"].as_str().unwrap_or("?"), "hi").to_string(),
        headers: vec![],
    })
    .await;
    let gw = gateway(
        &upstream_toml(
            "ds",
            &mock.url(),
            &[FLASH],
            &format!(
                "apis = [\"chat\", \"messages\"]\nmessages_url = \"http://{}/anthropic/v1/messages\"",
                mock.addr
            ),
        ),
        &[FLASH],
        "",
    )
    .await;
    let r = messages(
        &gw,
        KEY_A,
        &json!({"model": FLASH, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mock.requests()[0].path, "/anthropic/v1/messages");
    assert_eq!(r.json()["content"][0]["text"], "hi");
}

// === 5. An Anthropic upstream serving chat clients ===

#[tokio::test]
async fn an_anthropic_upstream_serves_chat_clients_with_its_own_headers() {
    const SECRET: &str = "sk-ant-test-0123456789";
    let mock = MockUpstream::start(|r| {
        if r.body["stream"] == true {
            Reply::Sse(anthropic_stream_steps("claude-sonnet-4-5", &["Hello", " there"]))
        } else {
            let mut m = anthropic_message("claude-sonnet-4-5", "Hello");
            m["content"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}));
            m["stop_reason"] = json!("tool_use");
            Reply::Json {
                status: 200,
                body: m.to_string(),
                headers: vec![],
            }
        }
    })
    .await;
    let dir = TempDir::new("anthropic-upstream");
    let config = dir.path("config.toml");
    let toml = format!(
        "[server]\nwatch = false\nartifact_cache_dir = \"{}\"\n\n",
        dir.path("cache").display()
    ) + PRICES
        + &upstream_toml(
            "claude",
            &mock.url(),
            &[&format!("{FLASH}=claude-sonnet-4-5")],
            "kind = \"anthropic\"\napi_key_env = \"SWITCHYARD_TEST_ANTHROPIC_KEY\"",
        )
        + &policy_toml("sr", "static-route")
        + &tenant("a", KEY_A, &[FLASH], &[FLASH], "");
    std::fs::write(&config, toml).unwrap();
    let p = Process::serve(
        &["--config", config.to_str().unwrap()],
        &[("SWITCHYARD_TEST_ANTHROPIC_KEY", SECRET)],
    );
    let url = format!("{}/v1/chat/completions", p.url());
    let body = json!({"model": FLASH, "max_tokens": 300, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "Bash", "description": "Run",
                   "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}}]});
    let r = request("POST", &url, Some(KEY_A), &[], body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text());

    let got = &mock.requests()[0];
    assert_eq!(got.path, "/v1/messages");
    assert_eq!(got.headers["x-api-key"], SECRET);
    assert_eq!(got.headers["anthropic-version"], "2023-06-01");
    assert!(
        got.headers.get("authorization").is_none(),
        "no Bearer key to Anthropic: {:?}",
        got.headers
    );
    let m = &got.body;
    assert_eq!(m["model"], "claude-sonnet-4-5");
    assert_eq!(m["system"], "Be brief.");
    assert_eq!(m["messages"], json!([{"role": "user", "content": "hi"}]));
    assert_eq!(m["max_tokens"], 300);
    assert_eq!(
        m["tools"],
        json!([{"name": "Bash", "description": "Run",
                "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}])
    );

    let c = r.json();
    assert_eq!(c["object"], "chat.completion");
    let msg = &c["choices"][0]["message"];
    assert_eq!(msg["role"], "assistant");
    assert_eq!(msg["content"], "Hello");
    assert_eq!(msg["tool_calls"][0]["id"], "toolu_1");
    assert_eq!(msg["tool_calls"][0]["function"]["name"], "Bash");
    let args: Value = serde_json::from_str(
        msg["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args, json!({"command": "ls"}));
    assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(c["usage"]["prompt_tokens"], 105);
    assert_eq!(c["usage"]["completion_tokens"], 42);
    assert_eq!(c["usage"]["prompt_cache_hit_tokens"], 90);
    assert_close(
        cost_header(&r),
        priced(15, 90, 42),
        "cost from Anthropic usage",
    );

    // A Messages client passes through, with the operator's key, never the client's.
    let sent = r#"{"model": "deepseek-v4-flash", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}"#;
    let r = request(
        "POST",
        &format!("{}/v1/messages", p.url()),
        None,
        &[("x-api-key", KEY_A), ("anthropic-version", "2026-10-21")],
        sent,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = &mock.requests()[1];
    assert_eq!(got.headers["x-api-key"], SECRET);
    assert_eq!(got.headers["anthropic-version"], "2023-06-01");
    assert_eq!(
        String::from_utf8_lossy(&got.raw),
        sent.replace("\"deepseek-v4-flash\"", "\"claude-sonnet-4-5\"")
    );
    assert_eq!(r.json()["content"][1]["name"], "Bash");

    // Streamed: chat chunks ending with [DONE].
    let body = json!({"model": FLASH, "stream": true, "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": "hi"}]});
    let r = request("POST", &url, Some(KEY_A), &[], body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mock.requests()[2].body["stream"], true);
    assert_eq!(
        mock.requests()[2].body["max_tokens"],
        4096,
        "Messages needs one"
    );
    let frames = sse_data(&r.body);
    assert_eq!(
        frames.last().map(String::as_str),
        Some("[DONE]"),
        "{frames:?}"
    );
    let chunks: Vec<Value> = frames[..frames.len() - 1]
        .iter()
        .map(|f| serde_json::from_str(f).expect("every other frame is a JSON chunk"))
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello there");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    assert!(
        chunks.iter().any(|c| c["usage"]["prompt_tokens"] == 105),
        "usage, as asked: {chunks:?}"
    );
    assert!(
        !String::from_utf8_lossy(&r.body).contains("event:"),
        "a chat client gets chat frames"
    );
}

// === 6. The commit point in each dialect ===

#[tokio::test]
async fn a_messages_stream_cut_before_its_first_content_falls_back_to_the_next_target() {
    let primary = MockUpstream::start(|_| {
        let mut steps = anthropic_stream_steps("prov-flash", &["never"]);
        steps.truncate(2); // message_start, ping
        steps.extend(cut());
        Reply::Sse(steps)
    })
    .await;
    let backup = MockUpstream::start(|_| Reply::stream(PRO, &["from ", "backup"])).await;
    let gw = gateway(
        &(upstream_toml("anth", &primary.url(), &[FLASH], "apis = [\"messages\"]")
            + &upstream_toml("backup", &backup.url(), &[PRO], "")),
        &[FLASH, PRO],
        "",
    )
    .await;
    let body = json!({"model": "claude-opus-5-5", "max_tokens": 100, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]});
    let r = stream_post(&gw, "/v1/messages", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(primary.count(), 1);
    assert_eq!(primary.requests()[0].path, "/v1/messages");
    assert_eq!(backup.count(), 1);
    assert_eq!(r.header("x-switchyard-upstream"), Some("backup"));
    assert_eq!(r.header("x-switchyard-attempts"), Some("2"));
    let s = anthropic_stream(&r.body);
    assert_eq!(
        s.names.iter().filter(|n| *n == "message_start").count(),
        1,
        "one message, not the primary's start and then the backup's"
    );
    assert_eq!(s.text, "from backup");
    assert!(s.stopped && s.error.is_none(), "{:?}", s.names);
}

#[tokio::test]
async fn a_responses_stream_cut_before_its_first_content_falls_back_to_the_next_target() {
    let primary = MockUpstream::start(|_| {
        let mut steps = responses_stream_steps("prov-flash", &["never"]);
        steps.truncate(2); // response.created, response.in_progress
        steps.extend(cut());
        Reply::Sse(steps)
    })
    .await;
    let backup = MockUpstream::start(|_| Reply::stream(PRO, &["from ", "backup"])).await;
    let gw = gateway(
        &(upstream_toml(
            "resp",
            &primary.url(),
            &[FLASH],
            "apis = [\"chat\", \"responses\"]",
        ) + &upstream_toml("backup", &backup.url(), &[PRO], "")),
        &[FLASH, PRO],
        "",
    )
    .await;
    let body = json!({"model": FLASH, "input": "hi", "stream": true});
    let r = stream_post(&gw, "/v1/responses", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(primary.requests()[0].path, "/v1/responses");
    assert_eq!(backup.count(), 1);
    assert_eq!(r.header("x-switchyard-upstream"), Some("backup"));
    let s = responses_stream(&r.body);
    assert_eq!(
        s.names.iter().filter(|n| *n == "response.created").count(),
        1
    );
    assert_eq!(s.text, "from backup");
    assert_eq!(s.last["type"], "response.completed");
}

// === 7. Streams cut after their content ===

/// A chat upstream that streams "partial" and then breaks the connection.
async fn chat_cut_after_content() -> MockUpstream {
    MockUpstream::start(|_| {
        Reply::Sse(vec![
            data_step(json!({"role": "assistant", "content": ""}), None),
            data_step(json!({"content": "partial"}), None),
            SseStep::Pause(Duration::from_millis(50)),
            SseStep::Cut,
        ])
    })
    .await
}

#[tokio::test]
async fn a_translated_messages_stream_cut_mid_way_ends_with_an_error_event() {
    let mock = chat_cut_after_content().await;
    let gw = gateway(
        &upstream_toml("main", &mock.url(), &[FLASH, PRO], ""),
        &[FLASH, PRO],
        "",
    )
    .await;
    let body = json!({"model": FLASH, "max_tokens": 100, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]});
    let r = stream_post(&gw, "/v1/messages", &body).await;
    assert_eq!(r.status, 200);
    let s = anthropic_stream(&r.body);
    assert_eq!(s.text, "partial");
    assert!(!s.stopped, "no message_stop after a cut: {:?}", s.names);
    assert!(s.message_delta.is_none());
    let error = s.error.expect("the stream ends with event: error");
    assert_eq!(s.names.last().map(String::as_str), Some("error"));
    assert_eq!(error["error"]["type"], "api_error", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(mock.count(), 1, "never retried after the commit point");
}

#[tokio::test]
async fn a_translated_responses_stream_cut_mid_way_ends_with_response_failed() {
    let mock = chat_cut_after_content().await;
    let gw = gateway(
        &upstream_toml("main", &mock.url(), &[FLASH, PRO], ""),
        &[FLASH, PRO],
        "",
    )
    .await;
    let body = json!({"model": FLASH, "input": "hi", "stream": true});
    let r = stream_post(&gw, "/v1/responses", &body).await;
    assert_eq!(r.status, 200);
    let s = responses_stream(&r.body);
    assert_eq!(s.text, "partial");
    assert_eq!(s.last["type"], "response.failed", "{:?}", s.names);
    assert_eq!(s.last["response"]["status"], "failed");
    assert_eq!(s.last["response"]["error"]["code"], "stream_interrupted");
    assert!(
        s.last.get("error").is_none(),
        "no top-level error key (openai-python raises on one)"
    );
    assert!(!s.names.iter().any(|n| n == "response.completed"));
}

#[tokio::test]
async fn a_passthrough_messages_stream_cut_or_ended_early_ends_with_an_error_event() {
    let mock = MockUpstream::start(|r| {
        let mut steps = anthropic_stream_steps("prov-flash", &["part", "ial"]);
        steps.truncate(5); // start, ping, block start, two deltas
        if r.body["max_tokens"] == 1 {
            steps.extend(cut());
        } // else: the upstream closes cleanly without message_stop
        Reply::Sse(steps)
    })
    .await;
    let gw = gateway(
        &upstream_toml("anth", &mock.url(), &[FLASH, PRO], "apis = [\"messages\"]"),
        &[FLASH, PRO],
        "",
    )
    .await;
    for max_tokens in [1, 2] {
        let body = json!({"model": FLASH, "max_tokens": max_tokens, "stream": true,
                          "messages": [{"role": "user", "content": "hi"}]});
        let r = stream_post(&gw, "/v1/messages", &body).await;
        assert_eq!(r.status, 200, "case {max_tokens}: {}", r.text());
        let s = anthropic_stream(&r.body);
        assert_eq!(s.text, "partial");
        assert!(!s.stopped, "{:?}", s.names);
        let error = s
            .error
            .unwrap_or_else(|| panic!("case {max_tokens}: no error event: {:?}", s.names));
        assert_eq!(error["error"]["type"], "api_error", "{error}");
    }
    assert_eq!(mock.count(), 2);
}

#[tokio::test]
async fn a_passthrough_responses_stream_cut_mid_way_ends_with_an_error_event_in_sequence() {
    let mock = MockUpstream::start(|_| {
        let mut steps = responses_stream_steps("prov-flash", &["part", "ial"]);
        steps.truncate(6); // created, in_progress, item added, part added, two deltas
        steps.extend(cut());
        Reply::Sse(steps)
    })
    .await;
    let gw = gateway(
        &upstream_toml(
            "resp",
            &mock.url(),
            &[FLASH, PRO],
            "apis = [\"chat\", \"responses\"]",
        ),
        &[FLASH, PRO],
        "",
    )
    .await;
    let body = json!({"model": FLASH, "input": "hi", "stream": true});
    let r = stream_post(&gw, "/v1/responses", &body).await;
    assert_eq!(r.status, 200);
    // `responses_stream` checks that the error event continues the upstream's numbering.
    let s = responses_stream(&r.body);
    assert_eq!(s.text, "partial");
    assert_eq!(s.last["type"], "error", "{:?}", s.names);
    assert_eq!(s.last["code"], "stream_interrupted");
    assert!(s.last["message"].as_str().is_some_and(|m| !m.is_empty()));
}

// === 8. Errors in the caller's shape ===

fn assert_anthropic_error(r: &TestResponse, status: u16, kind: &str) -> String {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let id = r.header("x-request-id").expect("x-request-id");
    assert_eq!(r.header("request-id"), Some(id));
    let e = r.json();
    assert_eq!(e["type"], "error", "{e}");
    assert_eq!(e["error"]["type"], kind, "{e}");
    e["error"]["message"]
        .as_str()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| panic!("no message: {e}"))
        .to_owned()
}

fn assert_openai_error(r: &TestResponse, status: u16, kind: &str) -> Value {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let e = r.json();
    assert!(
        e.get("type").is_none(),
        "OpenAI's shape, not Anthropic's: {e}"
    );
    assert_eq!(e["error"]["type"], kind, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    e["error"].clone()
}

#[tokio::test]
async fn messages_errors_are_in_anthropics_shape() {
    let mock = MockUpstream::echo().await;
    let toml = "[server]\nmax_body_bytes = 4096\n\n".to_string()
        + &upstream_toml("main", &mock.url(), &[FLASH, PRO], "")
        + &policy_toml("sr", "static-route")
        + &tenant("a", KEY_A, &[FLASH], &[FLASH], "")
        + &tenant("b", KEY_B, &[FLASH], &[FLASH], "requests_per_minute = 1");
    let gw = start_gateway(&toml).await;
    let url = format!("{}/v1/messages", gw.url);
    let ok =
        json!({"model": FLASH, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let with = |patch: Value| {
        let mut b = ok.clone();
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };

    let r = request("POST", &url, None, &[], ok.to_string()).await;
    assert_anthropic_error(&r, 401, "authentication_error");
    let r = request(
        "POST",
        &url,
        None,
        &[("x-api-key", "sk-wrong")],
        ok.to_string(),
    )
    .await;
    assert_anthropic_error(&r, 401, "authentication_error");

    let mut no_max = ok.clone();
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let message = assert_anthropic_error(
        &messages(&gw, KEY_A, &no_max).await,
        400,
        "invalid_request_error",
    );
    assert!(message.contains("max_tokens"), "{message}");

    let r = messages(&gw, KEY_A, &with(json!({"model": "no-such-model"}))).await;
    assert_anthropic_error(&r, 404, "not_found_error");
    let r = messages(&gw, KEY_A, &with(json!({"model": PRO}))).await;
    assert_anthropic_error(&r, 403, "permission_error");

    let r = request(
        "POST",
        &url,
        Some(KEY_A),
        &[],
        "{\"model\": \"x\", \"messages\": [",
    )
    .await;
    assert_anthropic_error(&r, 400, "invalid_request_error");
    let r = messages(
        &gw,
        KEY_A,
        &with(json!({"messages": [{"role": "tool", "content": "x"}]})),
    )
    .await;
    let message = assert_anthropic_error(&r, 400, "invalid_request_error");
    assert!(message.contains("messages[0].role"), "{message}");

    let big = with(json!({"messages": [{"role": "user", "content": "x".repeat(10_000)}]}));
    assert_anthropic_error(&messages(&gw, KEY_A, &big).await, 413, "request_too_large");

    assert_eq!(messages(&gw, KEY_B, &ok).await.status, 200);
    let r = messages(&gw, KEY_B, &ok).await;
    assert_anthropic_error(&r, 429, "rate_limit_error");
    assert!(r.header("retry-after").is_some());

    let r = request("GET", &url, Some(KEY_A), &[], "").await;
    assert_anthropic_error(&r, 405, "invalid_request_error");
    assert_eq!(mock.count(), 1, "only the one good request went upstream");
}

#[tokio::test]
async fn responses_errors_are_in_openais_shape_and_state_is_refused() {
    let mock = MockUpstream::echo().await;
    let gw = gateway(
        &upstream_toml("main", &mock.url(), &[FLASH], ""),
        &[FLASH],
        "",
    )
    .await;
    let e = assert_openai_error(
        &responses(
            &gw,
            KEY_A,
            &json!({"model": FLASH, "input": "hi", "previous_response_id": "resp_1"}),
        )
        .await,
        400,
        "invalid_request_error",
    );
    assert_eq!(e["param"], "previous_response_id", "{e}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("previous_response_id") && message.contains("stateless"),
        "{message}"
    );
    let e = assert_openai_error(
        &responses(
            &gw,
            KEY_A,
            &json!({"model": FLASH, "input": "hi", "store": true}),
        )
        .await,
        400,
        "invalid_request_error",
    );
    assert_eq!(e["param"], "store", "{e}");

    let url = format!("{}/v1/responses", gw.url);
    let e = assert_openai_error(
        &request(
            "POST",
            &url,
            None,
            &[],
            json!({"model": FLASH, "input": "hi"}).to_string(),
        )
        .await,
        401,
        "authentication_error",
    );
    assert_eq!(e["code"], "missing_api_key");
    assert_openai_error(
        &request("POST", &url, Some(KEY_A), &[], "{\"input\": ").await,
        400,
        "invalid_request_error",
    );
    assert_openai_error(
        &responses(
            &gw,
            KEY_A,
            &json!({"model": "no-such-model", "input": "hi"}),
        )
        .await,
        404,
        "not_found_error",
    );
    assert_eq!(mock.count(), 0);
}

// === 9. count_tokens ===

#[tokio::test]
async fn count_tokens_estimates_the_input_without_calling_an_upstream() {
    let mock = MockUpstream::echo().await;
    let gw = gateway(
        &upstream_toml("main", &mock.url(), &[FLASH], ""),
        &[FLASH],
        "",
    )
    .await;
    let url = format!("{}/v1/messages/count_tokens", gw.url);
    let count = |body: Value| {
        let url = url.clone();
        async move { request("POST", &url, Some(KEY_A), &[], body.to_string()).await }
    };
    let short = json!({"model": "claude-opus-5-5",
                       "messages": [{"role": "user", "content": "hi"}]});
    let r = count(short.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-switchyard-tokens-estimated"), Some("true"));
    assert!(r.header("request-id").is_some());
    let small = r.json()["input_tokens"]
        .as_u64()
        .expect("{\"input_tokens\": N}");
    assert!(small > 0);
    assert_eq!(r.json().as_object().unwrap().len(), 1, "{}", r.text());
    let long = json!({"model": "claude-opus-5-5", "system": "You are a careful assistant. ".repeat(200),
                      "messages": [{"role": "user", "content": "hi ".repeat(500)}],
                      "tools": [{"name": "Bash", "input_schema": {"type": "object"}}]});
    let large = count(long).await.json()["input_tokens"].as_u64().unwrap();
    assert!(large > small * 10, "{small} -> {large}");

    let r = request("POST", &url, None, &[], short.to_string()).await;
    assert_anthropic_error(&r, 401, "authentication_error");
    let r =
        count(json!({"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}))
            .await;
    assert_anthropic_error(&r, 404, "not_found_error");
    assert_eq!(mock.count(), 0, "a count never reaches an upstream");
}

// === 10. The cache ===

#[tokio::test]
async fn a_messages_answer_is_cached_and_replayed_as_messages_never_for_chat() {
    let mock = MockUpstream::echo().await;
    let toml = PRICES.to_string()
        + &upstream_toml("main", &mock.url(), &[FLASH], "")
        + &policy_toml("sr", "static-route")
        + &tenant_toml(
            "a",
            KEY_A,
            "sr",
            &[FLASH],
            "policy_config = { cache = \"read-write\" }",
        );
    let gw = start_gateway(&toml).await;
    // Valid as chat completions and as Messages alike: only the door differs.
    let body = json!({"model": FLASH, "max_tokens": 50,
                      "messages": [{"role": "user", "content": "what is 2+2?"}]});
    let first = messages(&gw, KEY_A, &body).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("x-switchyard-cache"), Some("miss"));
    gw.wait_until_cached_at("/v1/messages", KEY_A, &body).await;

    let second = messages(&gw, KEY_A, &body).await;
    assert_eq!(second.header("x-switchyard-cache"), Some("hit"));
    assert_eq!(second.header("x-switchyard-attempts"), Some("0"));
    assert_eq!(mock.count(), 1);
    let (a, b) = (first.json(), second.json());
    assert_eq!(b["type"], "message");
    assert_eq!(b["content"], a["content"]);
    assert_eq!(b["usage"], a["usage"]);
    assert_eq!(b["stop_reason"], "end_turn");

    // Streamed, the hit is replayed as a Messages stream.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let r = stream_post(&gw, "/v1/messages", &streamed).await;
    assert_eq!(r.header("x-switchyard-cache"), Some("hit"));
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let s = anthropic_stream(&r.body);
    assert_eq!(s.text, a["content"][0]["text"].as_str().unwrap());
    assert!(s.stopped);
    assert_eq!(mock.count(), 1);

    // The same JSON as a chat request is another entry.
    let r = chat(&gw, KEY_A, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-switchyard-cache"), Some("miss"));
    assert_eq!(r.json()["object"], "chat.completion");
    assert_eq!(mock.count(), 2);
}

#[tokio::test]
async fn a_responses_answer_is_cached_and_replayed_as_a_responses_stream() {
    let mock = MockUpstream::echo().await;
    let toml = upstream_toml("main", &mock.url(), &[FLASH], "")
        + &policy_toml("sr", "static-route")
        + &tenant_toml(
            "a",
            KEY_A,
            "sr",
            &[FLASH],
            "policy_config = { cache = \"read-write\" }",
        );
    let gw = start_gateway(&toml).await;
    let body = json!({"model": FLASH, "input": "what is 2+2?"});
    let first = responses(&gw, KEY_A, &body).await;
    assert_eq!(first.header("x-switchyard-cache"), Some("miss"));
    gw.wait_until_cached_at("/v1/responses", KEY_A, &body).await;
    let second = responses(&gw, KEY_A, &body).await;
    assert_eq!(second.header("x-switchyard-cache"), Some("hit"));
    assert_response_object(&second.json());
    let without_ids = |r: &TestResponse| {
        let mut output = r.json()["output"].clone();
        for item in output.as_array_mut().unwrap() {
            item.as_object_mut().unwrap().remove("id");
        }
        output
    };
    assert_eq!(without_ids(&second), without_ids(&first));
    assert_eq!(second.json()["usage"], first.json()["usage"]);
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let r = stream_post(&gw, "/v1/responses", &streamed).await;
    assert_eq!(r.header("x-switchyard-cache"), Some("hit"));
    let s = responses_stream(&r.body);
    assert_eq!(s.text, "mock reply");
    assert_eq!(s.last["type"], "response.completed");
    assert_eq!(mock.count(), 1);
}

// === 11. Policies see the door's conversation ===

/// A Claude Code-style session after `rounds` tool_use/tool_result rounds.
fn claude_code_session(rounds: usize) -> Value {
    let mut messages = vec![json!({"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>attribution</system-reminder>"},
        {"type": "text", "text": "fix the failing test"}]})];
    for i in 0..rounds {
        messages.push(json!({"role": "assistant", "content": [
            {"type": "thinking", "thinking": "next step", "signature": ""},
            {"type": "tool_use", "id": format!("toolu_{i}"), "name": "Bash",
             "input": {"command": format!("cargo test {i}")}}]}));
        messages.push(json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": format!("toolu_{i}"), "content": "ok",
             "is_error": false, "cache_control": {"type": "ephemeral"}}]}));
    }
    json!({"model": "claude-opus-5-5", "max_tokens": 32000, "stream": false,
           "system": [{"type": "text", "text": "You are Claude Code."}],
           "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
           "metadata": {"user_id": "{\"session_id\":\"s\"}"},
           "messages": messages})
}

#[tokio::test]
async fn flash_first_sends_a_deep_claude_code_session_to_pro_and_a_shallow_one_to_flash() {
    let mock = MockUpstream::echo().await;
    let toml = upstream_toml("main", &mock.url(), &[FLASH, PRO], "")
        + &policy_toml("ff", "flash-first")
        + &tenant_toml(
            "a",
            KEY_A,
            "ff",
            &[FLASH, PRO],
            "model_aliases = [\"claude-*\"]\npolicy_config = { agent_depth_threshold = 10 }",
        );
    let gw = start_gateway(&toml).await;
    let deep = messages(&gw, KEY_A, &claude_code_session(12)).await;
    assert_eq!(deep.status, 200, "{}", deep.text());
    assert_eq!(deep.header("x-switchyard-model"), Some(PRO));
    assert_eq!(deep.header("x-switchyard-tags"), Some("reason=agent-depth"));
    assert_eq!(mock.requests()[0].body["model"], PRO);
    let shallow = messages(&gw, KEY_A, &claude_code_session(2)).await;
    assert_eq!(shallow.status, 200, "{}", shallow.text());
    assert_eq!(shallow.header("x-switchyard-model"), Some(FLASH));
    assert_eq!(shallow.header("x-switchyard-tags"), Some("reason=default"));
    assert_eq!(mock.requests()[1].body["model"], FLASH);
}

// === 12. Metrics and the access log ===

#[tokio::test]
async fn requests_are_counted_per_api() {
    let mock = MockUpstream::echo().await;
    let admin = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_sha256 = \"{}\"\n\n",
        key_hash(ADMIN_TOKEN)
    );
    let gw = gateway(
        &(admin + &upstream_toml("main", &mock.url(), &[FLASH], "")),
        &[FLASH],
        "",
    )
    .await;
    let m =
        json!({"model": FLASH, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..2 {
        assert_eq!(messages(&gw, KEY_A, &m).await.status, 200);
    }
    assert_eq!(
        responses(&gw, KEY_A, &json!({"model": FLASH, "input": "hi"}))
            .await
            .status,
        200
    );
    assert_eq!(chat(&gw, KEY_A, &user_says(FLASH, "hi")).await.status, 200);
    assert_eq!(
        messages(&gw, KEY_A, &json!({"model": FLASH, "messages": []}))
            .await
            .status,
        400
    );
    let requests = |text: &str, api: &str, status: &str| {
        metric(
            text,
            "switchyard_requests_total",
            &[("tenant", "a"), ("api", api), ("status", status)],
        )
    };
    eventually("five requests counted", Duration::from_secs(10), || async {
        let t = gw.metrics_text().await;
        requests(&t, "messages", "400").is_some() && requests(&t, "chat", "200").is_some()
    })
    .await;
    let t = gw.metrics_text().await;
    assert_eq!(requests(&t, "messages", "200"), Some(2.0), "{t}");
    assert_eq!(requests(&t, "responses", "200"), Some(1.0), "{t}");
    assert_eq!(requests(&t, "chat", "200"), Some(1.0), "{t}");
    assert_eq!(requests(&t, "messages", "400"), Some(1.0), "{t}");
}

#[tokio::test]
async fn the_access_log_names_the_api() {
    let mock = MockUpstream::start(|r| {
        if r.body["stream"] == true {
            Reply::stream(FLASH, &["hi"])
        } else {
            Reply::completion(FLASH, "hi")
        }
    })
    .await;
    let dir = TempDir::new("front-door-logs");
    let config = dir.path("config.toml");
    let toml = format!(
        "[server]\nwatch = false\nartifact_cache_dir = \"{}\"\n\n",
        dir.path("cache").display()
    ) + &upstream_toml("main", &mock.url(), &[FLASH], "")
        + &policy_toml("sr", "static-route")
        + &tenant("a", KEY_A, &[FLASH], &[FLASH], "");
    std::fs::write(&config, toml).unwrap();
    let p = Process::serve(&["--config", config.to_str().unwrap()], &[]);
    let send = |path: &'static str, id: &'static str, body: Value| {
        let url = format!("{}{path}", p.url());
        async move {
            let r = request(
                "POST",
                &url,
                Some(KEY_A),
                &[("x-request-id", id)],
                body.to_string(),
            )
            .await;
            assert_eq!(r.status, 200, "{path}: {}", r.text());
        }
    };
    send(
        "/v1/messages",
        "req-messages",
        json!({"model": FLASH, "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    send(
        "/responses",
        "req-responses",
        json!({"model": FLASH, "input": "hi"}),
    )
    .await;
    send("/v1/chat/completions", "req-chat", user_says(FLASH, "hi")).await;
    let line = |id: &str| {
        p.logs().lines().find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            (v["target"] == "switchyard::access" && v["request_id"] == id).then_some(v)
        })
    };
    eventually(
        "three access-log lines",
        Duration::from_secs(10),
        || async {
            ["req-messages", "req-responses", "req-chat"]
                .iter()
                .all(|id| line(id).is_some())
        },
    )
    .await;
    for (id, api, path) in [
        ("req-messages", "messages", "/v1/messages"),
        ("req-responses", "responses", "/responses"),
        ("req-chat", "chat", "/v1/chat/completions"),
    ] {
        let v = line(id).unwrap();
        assert_eq!(v["api"], api, "{v}");
        assert_eq!(v["path"], path, "{v}");
        assert_eq!(v["status"], 200, "{v}");
    }
}

// === more: overrides, upstream errors, passed-through streams in the cache ===

#[tokio::test]
async fn policy_overrides_are_spliced_into_passed_through_bodies_or_sent_through_chat() {
    let mock = MockUpstream::start(|r| match r.path.as_str() {
        "/v1/messages" => Reply::Json {
            status: 200,
            body: anthropic_message("prov-flash", "m").to_string(),
            headers: vec![],
        },
        "/v1/responses" => Reply::Json {
            status: 200,
            body: response_object(
                "prov-flash",
                "completed",
                vec![response_message_item("r")],
                true,
            )
            .to_string(),
            headers: vec![],
        },
        _ => Reply::completion("prov-flash", "c"),
    })
    .await;
    let toml = upstream_toml(
        "all",
        &mock.url(),
        &[&format!("{FLASH}=prov-flash")],
        "apis = [\"chat\", \"messages\", \"responses\"]",
    ) + &policy_toml("sr", "static-route")
        + &tenant_toml(
            "a",
            KEY_A,
            "sr",
            &[FLASH],
            "policy_config = { max_output_tokens = 64 }",
        )
        + &tenant_toml(
            "b",
            KEY_B,
            "sr",
            &[FLASH],
            "policy_config = { reasoning_effort = \"high\" }",
        );
    let gw = start_gateway(&toml).await;
    let post = |path: &str, key: &str, body: &str| {
        let url = format!("{}{path}", gw.url);
        let (key, body) = (key.to_owned(), body.to_owned());
        async move { request("POST", &url, Some(&key), &[], body).await }
    };

    // The policy's output cap lowers the client's own field in its own bytes...
    let sent = r#"{"model": "deepseek-v4-flash", "max_tokens": 128000, "x_custom": 1, "messages": [{"role": "user", "content": "hi"}]}"#;
    let r = post("/v1/messages", KEY_A, sent).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mock.requests()[0].path, "/v1/messages");
    assert_eq!(
        String::from_utf8_lossy(&mock.requests()[0].raw),
        sent.replace("\"deepseek-v4-flash\"", "\"prov-flash\"")
            .replace("128000", "64")
    );
    // ... or adds it when the client set none.
    let sent = r#"{"model": "deepseek-v4-flash", "input": "hi", "x_custom": 1}"#;
    let r = post("/v1/responses", KEY_A, sent).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mock.requests()[1].path, "/v1/responses");
    assert_eq!(
        String::from_utf8_lossy(&mock.requests()[1].raw),
        sent.replacen('{', "{\"max_output_tokens\":64,", 1)
            .replace("\"deepseek-v4-flash\"", "\"prov-flash\"")
    );

    // A reasoning-effort override cannot be spliced: the request goes through chat instead.
    let sent = r#"{"model": "deepseek-v4-flash", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}"#;
    let r = post("/v1/messages", KEY_B, sent).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = &mock.requests()[2];
    assert_eq!(got.path, "/v1/chat/completions");
    assert_eq!(got.body["reasoning_effort"], "high");
    assert_eq!(got.body["model"], "prov-flash");
    assert_eq!(
        r.json()["content"][0]["text"],
        "c",
        "translated back to a Message"
    );
}

#[tokio::test]
async fn an_upstreams_own_error_event_mid_stream_reaches_the_client_once_in_its_dialect() {
    // A Messages upstream that says `overloaded_error` after some content.
    let anth = MockUpstream::start(|_| {
        let mut steps = anthropic_stream_steps("prov-flash", &["part"]);
        steps.truncate(4);
        steps.push(SseStep::Pause(Duration::from_millis(50)));
        steps.push(sse_event(
            "error",
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ));
        Reply::Sse(steps)
    })
    .await;
    // A chat upstream that sends an error object after some content.
    let chat_up = MockUpstream::start(|_| {
        Reply::Sse(vec![
            data_step(json!({"role": "assistant", "content": "part"}), None),
            SseStep::Pause(Duration::from_millis(50)),
            SseStep::Data(
                json!({"error": {"message": "model crashed", "type": "server_error"}}).to_string(),
            ),
        ])
    })
    .await;
    let gw = gateway(
        &(upstream_toml("anth", &anth.url(), &[FLASH], "apis = [\"messages\"]")
            + &upstream_toml("chat", &chat_up.url(), &[PRO], "")),
        &[FLASH],
        "",
    )
    .await;
    let body = |model: &str| {
        json!({"model": model, "max_tokens": 100, "stream": true,
               "messages": [{"role": "user", "content": "hi"}]})
    };
    let r = stream_post(&gw, "/v1/messages", &body(FLASH)).await;
    let s = anthropic_stream(&r.body);
    assert_eq!(s.text, "part");
    assert_eq!(
        s.names.iter().filter(|n| *n == "error").count(),
        1,
        "the upstream's own error event, and no second one: {:?}",
        s.names
    );
    let e = s.error.unwrap();
    assert_eq!(e["error"]["type"], "overloaded_error");
    assert_eq!(e["error"]["message"], "Overloaded");
    assert_eq!(anth.count(), 1);

    // The tenant's route is FLASH only; a second tenant goes to the chat upstream.
    let toml = upstream_toml("chat", &chat_up.url(), &[PRO], "")
        + &policy_toml("sr", "static-route")
        + &tenant("a", KEY_A, &[PRO], &[PRO], "");
    let gw = start_gateway(&toml).await;
    let r = stream_post(&gw, "/v1/messages", &body(PRO)).await;
    let s = anthropic_stream(&r.body);
    assert_eq!(s.text, "part");
    let e = s.error.expect("the chat error becomes event: error");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("model crashed"),
        "{e}"
    );
    assert!(!s.stopped);
    let r = stream_post(
        &gw,
        "/v1/responses",
        &json!({"model": PRO, "input": "hi", "stream": true}),
    )
    .await;
    let s = responses_stream(&r.body);
    assert_eq!(s.text, "part");
    assert_eq!(s.last["type"], "response.failed");
    assert!(
        s.last["response"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("model crashed")
    );
}

#[tokio::test]
async fn an_error_event_before_any_content_falls_back_to_the_next_target() {
    let primary = MockUpstream::start(|_| {
        let mut steps = anthropic_stream_steps("prov-flash", &["never"]);
        steps.truncate(2);
        steps.push(sse_event(
            "error",
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ));
        Reply::Sse(steps)
    })
    .await;
    let backup =
        MockUpstream::start(|_| Reply::Sse(anthropic_stream_steps("prov-pro", &["backup"]))).await;
    let gw = gateway(
        &(upstream_toml("anth", &primary.url(), &[FLASH], "apis = [\"messages\"]")
            + &upstream_toml("anth2", &backup.url(), &[PRO], "apis = [\"messages\"]")),
        &[FLASH, PRO],
        "",
    )
    .await;
    let body = json!({"model": FLASH, "max_tokens": 100, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]});
    let r = stream_post(&gw, "/v1/messages", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-switchyard-upstream"), Some("anth2"));
    let s = anthropic_stream(&r.body);
    assert_eq!(s.text, "backup");
    assert!(s.stopped && s.error.is_none(), "{:?}", s.names);
    assert_eq!((primary.count(), backup.count()), (1, 1));
}

#[tokio::test]
async fn upstream_refusals_reach_a_messages_client_in_anthropics_shape() {
    let refusing = MockUpstream::start(|_| Reply::Json {
        status: 400,
        body: json!({"type": "error", "error": {"type": "invalid_request_error",
                     "message": "max_tokens: 128000 > 64000, the maximum for this model"}})
        .to_string(),
        headers: vec![],
    })
    .await;
    let overloaded = MockUpstream::start(|_| Reply::Json {
        status: 529,
        body:
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                .to_string(),
        headers: vec![],
    })
    .await;
    let backup = MockUpstream::echo().await;
    let gw = gateway(
        &(upstream_toml(
            "refusing",
            &refusing.url(),
            &[FLASH],
            "apis = [\"messages\"]",
        ) + &upstream_toml(
            "overloaded",
            &overloaded.url(),
            &[PRO],
            "apis = [\"messages\"]",
        ) + &upstream_toml("backup", &backup.url(), &["gpt-5.5"], "")),
        &[FLASH, "gpt-5.5"],
        "",
    )
    .await;
    let body = |model: &str| json!({"model": model, "max_tokens": 128000, "messages": [{"role": "user", "content": "hi"}]});
    let r = messages(&gw, KEY_A, &body(FLASH)).await;
    let message = assert_anthropic_error(&r, 400, "invalid_request_error");
    assert!(
        message.contains("64000"),
        "the upstream's reason: {message}"
    );
    assert_eq!(backup.count(), 0, "a client error is not retried elsewhere");

    // An overloaded (529) Messages upstream is a provider failure: the next target answers.
    let toml = upstream_toml(
        "overloaded",
        &overloaded.url(),
        &[PRO],
        "apis = [\"messages\"]",
    ) + &upstream_toml("backup", &backup.url(), &["gpt-5.5"], "")
        + &policy_toml("sr", "static-route")
        + &tenant("a", KEY_A, &[PRO, "gpt-5.5"], &[PRO, "gpt-5.5"], "");
    let gw = start_gateway(&toml).await;
    let r = messages(&gw, KEY_A, &body(PRO)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-switchyard-upstream"), Some("backup"));
    assert_eq!(r.json()["content"][0]["text"], "mock reply");
    assert_eq!(overloaded.count(), 1);
}

#[tokio::test]
async fn a_passed_through_messages_stream_is_cached_and_replayed_whole() {
    let mock = MockUpstream::start(|r| {
        if r.body["stream"] == true {
            Reply::Sse(anthropic_stream_steps("prov-flash", &["cac", "hed"]))
        } else {
            Reply::error(500, "the replay must not come here")
        }
    })
    .await;
    let toml = upstream_toml("anth", &mock.url(), &[FLASH], "apis = [\"messages\"]")
        + &policy_toml("sr", "static-route")
        + &tenant_toml(
            "a",
            KEY_A,
            "sr",
            &[FLASH],
            "policy_config = { cache = \"read-write\" }",
        );
    let gw = start_gateway(&toml).await;
    let mut body = json!({"model": FLASH, "max_tokens": 100, "stream": true,
                          "messages": [{"role": "user", "content": "hi"}]});
    let r = stream_post(&gw, "/v1/messages", &body).await;
    assert_eq!(r.header("x-switchyard-cache"), Some("miss"));
    assert_eq!(anthropic_stream(&r.body).text, "cached");
    body["stream"] = json!(false);
    gw.wait_until_cached_at("/v1/messages", KEY_A, &body).await;
    let r = messages(&gw, KEY_A, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-switchyard-cache"), Some("hit"));
    let m = r.json();
    assert_eq!(m["type"], "message");
    assert_eq!(m["content"], json!([{"type": "text", "text": "cached"}]));
    assert_eq!(m["stop_reason"], "end_turn");
    assert_eq!(
        m["usage"],
        anthropic_usage_json(),
        "the upstream's usage survives the round trip through the chat entry"
    );
    assert_eq!(mock.count(), 1);
}

/// An Anthropic stream that calls `exec_command` with `{"cmd": "ls"}` in two fragments.
fn anthropic_tool_stream() -> Vec<SseStep> {
    let mut steps = anthropic_stream_steps("claude-sonnet-4-5", &["Let me look."]);
    let tail = steps.split_off(steps.len() - 2); // message_delta, message_stop
    steps.push(sse_event(
        "content_block_start",
        &json!({"type": "content_block_start", "index": 1, "content_block":
                {"type": "tool_use", "id": "toolu_9", "name": "exec_command", "input": {}}}),
    ));
    for part in ["{\"cmd\": ", "\"ls\"}"] {
        steps.push(sse_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": part}}),
        ));
    }
    steps.push(sse_event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 1}),
    ));
    steps.push(sse_event(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                "usage": {"output_tokens": 42}}),
    ));
    steps.push(tail.into_iter().last().unwrap());
    steps
}

#[tokio::test]
async fn a_responses_client_is_served_by_an_anthropic_only_upstream_through_chat() {
    let mock = MockUpstream::start(|r| {
        if r.body["stream"] == true {
            Reply::Sse(anthropic_tool_stream())
        } else {
            let mut m = anthropic_message("claude-sonnet-4-5", "Let me look.");
            m["content"].as_array_mut().unwrap().push(
                json!({"type": "tool_use", "id": "toolu_9", "name": "exec_command", "input": {"cmd": "ls"}}),
            );
            m["stop_reason"] = json!("tool_use");
            Reply::Json {
                status: 200,
                body: m.to_string(),
                headers: vec![],
            }
        }
    })
    .await;
    let gw = gateway(
        &upstream_toml(
            "claude",
            &mock.url(),
            &[&format!("{FLASH}=claude-sonnet-4-5")],
            "apis = [\"messages\"]",
        ),
        &[FLASH],
        "",
    )
    .await;
    let body = json!({"model": FLASH, "instructions": "Be terse.", "input": [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list files"}]}],
        "tools": [{"type": "function", "name": "exec_command", "parameters": {"type": "object"}}],
        "store": false});
    let r = responses(&gw, KEY_A, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = &mock.requests()[0];
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.body["model"], "claude-sonnet-4-5");
    assert_eq!(sent.body["system"], "Be terse.\n\nYou are Codex.");
    assert_eq!(
        sent.body["messages"],
        json!([{"role": "user", "content": "list files"}])
    );
    assert_eq!(
        sent.body["tools"],
        json!([{"name": "exec_command", "input_schema": {"type": "object"}}])
    );
    let resp = r.json();
    assert_response_object(&resp);
    let output = resp["output"].as_array().unwrap();
    assert_eq!(output[0]["type"], "message");
    assert_eq!(output[0]["content"][0]["text"], "Let me look.");
    assert_eq!(output[1]["type"], "function_call");
    assert_eq!(output[1]["call_id"], "toolu_9");
    let args: Value = serde_json::from_str(output[1]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"cmd": "ls"}));
    assert_eq!(responses_usage(&resp["usage"]), [105, 90, 42, 0, 147]);
    assert_close(
        cost_header(&r),
        priced(15, 90, 42),
        "cost from Anthropic usage",
    );

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let r = stream_post(&gw, "/v1/responses", &streamed).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let s = responses_stream(&r.body);
    assert_eq!(s.text, "Let me look.");
    assert_eq!(s.arguments.len(), 1);
    let args: Value = serde_json::from_str(s.arguments.values().next().unwrap()).unwrap();
    assert_eq!(args, json!({"cmd": "ls"}));
    assert_eq!(s.last["type"], "response.completed");
    let done = &s.last["response"];
    assert_eq!(done["output"][1]["call_id"], "toolu_9");
    assert_eq!(done["output"][1]["name"], "exec_command");
    assert_eq!(responses_usage(&done["usage"]), [105, 90, 42, 0, 147]);
}

#[tokio::test]
async fn a_reasoning_override_translates_a_messages_request_but_its_answer_still_passes_through() {
    // The upstream speaks Messages, but a reasoning override cannot be spliced: the request goes
    // through chat and back to Messages; the upstream's stream, in the client's dialect, is passed
    // on as it is.
    let steps = anthropic_tool_stream();
    let stream_bytes = raw_bytes(&steps);
    let mock = MockUpstream::start(move |_| Reply::Sse(steps.clone())).await;
    let toml = upstream_toml(
        "claude",
        &mock.url(),
        &[&format!("{FLASH}=claude-sonnet-4-5")],
        "apis = [\"messages\"]",
    ) + &policy_toml("sr", "static-route")
        + &tenant_toml(
            "a",
            KEY_A,
            "sr",
            &[FLASH],
            "policy_config = { reasoning_effort = \"low\" }",
        );
    let gw = start_gateway(&toml).await;
    let sent = json!({"model": FLASH, "max_tokens": 10000, "stream": true, "x_custom": 1,
                      "messages": [{"role": "user", "content": "list files"}]});
    let r = stream_post(&gw, "/v1/messages", &sent).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = &mock.requests()[0];
    assert_eq!(got.path, "/v1/messages");
    assert!(
        got.body.get("x_custom").is_none(),
        "translated, not spliced: {}",
        got.body
    );
    assert_eq!(got.body["model"], "claude-sonnet-4-5");
    assert_eq!(
        got.body["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048}),
        "the policy's effort as a thinking budget"
    );
    assert_eq!(r.text(), stream_bytes);
    let s = anthropic_stream(&r.body);
    assert_eq!(s.text, "Let me look.");
    let input: Value = serde_json::from_str(&s.tools[0].2).unwrap();
    assert_eq!(input, json!({"cmd": "ls"}));
}

#[tokio::test]
async fn a_responses_request_without_input_is_refused_naming_input() {
    let mock = MockUpstream::echo().await;
    let gw = gateway(
        &upstream_toml("main", &mock.url(), &[FLASH], ""),
        &[FLASH],
        "",
    )
    .await;
    for body in [
        json!({"model": FLASH}),
        json!({"model": FLASH, "input": []}),
    ] {
        let e = assert_openai_error(
            &responses(&gw, KEY_A, &body).await,
            400,
            "invalid_request_error",
        );
        assert_eq!(
            e["param"], "input",
            "the error names a field of the Responses request, not of its chat translation: {e}"
        );
    }
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn a_duplicated_model_key_cannot_smuggle_a_model_past_the_check_to_a_passthrough_upstream() {
    let mock = MockUpstream::start(|r| Reply::Json {
        status: 200,
        body: anthropic_message(r.body["model"].as_str().unwrap_or("?"), "hi").to_string(),
        headers: vec![],
    })
    .await;
    let gw = gateway(
        &upstream_toml(
            "anth",
            &mock.url(),
            &[FLASH, "gpt-5.5"],
            "apis = [\"messages\"]",
        ),
        &[FLASH],
        "",
    )
    .await;
    let url = format!("{}/v1/messages", gw.url);
    for sent in [
        r#"{"model": "gpt-5.5", "mod\u0065l": "deepseek-v4-flash", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}"#,
        r#"{"model": "deepseek-v4-flash", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "model": "gpt-5.5"}"#,
        r#"{"mod\u0065l": "gpt-5.5", "model": "deepseek-v4-flash", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}"#,
    ] {
        let r = request("POST", &url, Some(KEY_A), &[], sent).await;
        assert!(
            r.status == 400 || r.status == 403,
            "{sent}: {} {}",
            r.status,
            r.text()
        );
    }
    assert_eq!(
        mock.count(),
        0,
        "{:?}",
        mock.requests()
            .iter()
            .map(|r| String::from_utf8_lossy(&r.raw).into_owned())
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_translated_messages_stream_that_goes_idle_ends_with_an_error_event() {
    let mock = MockUpstream::start(|_| {
        Reply::Sse(vec![
            data_step(json!({"role": "assistant", "content": "partial"}), None),
            SseStep::Pause(Duration::from_secs(3)),
            data_step(json!({}), Some("stop")),
            done_step(),
        ])
    })
    .await;
    let gw = gateway(
        &upstream_toml("main", &mock.url(), &[FLASH], "idle_timeout_ms = 300"),
        &[FLASH],
        "",
    )
    .await;
    let started = std::time::Instant::now();
    let body = json!({"model": FLASH, "max_tokens": 100, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]});
    let r = stream_post(&gw, "/v1/messages", &body).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the idle timeout ended it"
    );
    let s = anthropic_stream(&r.body);
    assert_eq!(s.text, "partial");
    assert!(!s.stopped);
    let e = s.error.expect("event: error");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("300 ms"),
        "{e}"
    );
    // Claude Code retries any mid-stream error without streaming; the type only labels it.
    assert!(
        ["api_error", "overloaded_error"].contains(&e["error"]["type"].as_str().unwrap()),
        "{e}"
    );
}
