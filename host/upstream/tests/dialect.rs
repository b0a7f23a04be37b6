//! The dialect translators: golden fixtures from the providers' documented examples and the real
//! clients' request shapes, round-trip properties, stream encoder invariants, and arbitrary input
//! into every entry point.
//!
//! Expected fixtures live in `tests/fixtures/dialect/`; `UPDATE_DIALECT_FIXTURES=1` rewrites
//! them from the current output (review the diff). `PROPTEST_CASES=N` runs the properties longer.

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{Value, json};
use switchyard_upstream::chat::assemble::Assembler;
use switchyard_upstream::dialect::{
    self, Api, StreamDecoder, StreamEncoder, StreamEnd, messages, responses,
};
use switchyard_upstream::sse::payload;
use switchyard_upstream::usage_of;

// ---------------------------------------------------------------------------------------------
// Fixture plumbing

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dialect")
        .join(name)
}

fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture_path(name))
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Asserts `actual` equals the expected fixture `name` (or rewrites it when asked to).
fn golden(name: &str, actual: &Value) {
    if std::env::var_os("UPDATE_DIALECT_FIXTURES").is_some() {
        let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
        std::fs::write(fixture_path(name), text).unwrap();
        return;
    }
    let expected = fixture(name);
    assert!(
        &expected == actual,
        "{name} differs from the translation:\n{}",
        serde_json::to_string_pretty(actual).unwrap()
    );
}

/// Parsed SSE frames as `[{event, data}]`, after checking each is one well-formed frame.
fn parse_frames(frames: &[Bytes]) -> Vec<(String, Value)> {
    frames
        .iter()
        .map(|f| {
            let text = std::str::from_utf8(f).expect("frames are UTF-8");
            assert!(text.ends_with("\n\n"), "one whole frame: {text:?}");
            assert_eq!(
                text.matches("\n\n").count(),
                1,
                "one frame per entry: {text:?}"
            );
            let event = dialect::event_name(f).expect("every frame has an event: line");
            let data: Value = serde_json::from_str(&payload(f)).expect("data is JSON");
            assert_eq!(data["type"], event, "event: line equals data.type");
            (event.to_owned(), data)
        })
        .collect()
}

fn as_json(frames: &[(String, Value)]) -> Value {
    frames
        .iter()
        .map(|(e, d)| json!({"event": e, "data": d}))
        .collect()
}

fn events(frames: &[(String, Value)]) -> Vec<&str> {
    frames.iter().map(|(e, _)| e.as_str()).collect()
}

fn encode(mut encoder: impl StreamEncoder, chunks: &[Value]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for c in chunks {
        encoder.push(c, &mut out);
    }
    encoder.finish(&mut out);
    parse_frames(&out)
}

/// Decodes `[{event, data}]` and reassembles the chunks; also returns how the stream ended.
fn decode(
    mut decoder: impl StreamDecoder,
    events: &[(Option<String>, Value)],
) -> (Value, Option<StreamEnd>) {
    let mut a = Assembler::default();
    let mut end = None;
    for (event, data) in events {
        assert!(end.is_none(), "nothing after the end");
        let d = decoder.push(event.as_deref(), data);
        for c in d.chunks {
            assert_eq!(c["object"], "chat.completion.chunk");
            a.push(&c.to_string());
        }
        end = d.end;
    }
    (a.finish().expect("the decoded stream assembles"), end)
}

fn event_list(v: &Value) -> Vec<(Option<String>, Value)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| (e["event"].as_str().map(str::to_owned), e["data"].clone()))
        .collect()
}

fn assemble(chunks: &[Value]) -> Value {
    let mut a = Assembler::default();
    for c in chunks {
        a.push(&c.to_string());
    }
    a.finish().expect("the original stream assembles")
}

// ---------------------------------------------------------------------------------------------
// Golden fixtures

#[test]
fn api_labels() {
    assert_eq!(Api::ALL.map(Api::label), ["chat", "messages", "responses"]);
    assert_eq!(Api::ALL.map(Api::index), [0, 1, 2]);
    assert_eq!(serde_json::to_value(Api::Messages).unwrap(), "messages");
}

#[test]
fn claude_code_request_becomes_chat() {
    let chat = messages::request_to_chat(&fixture("messages_claude_code.request.json")).unwrap();
    golden("messages_claude_code.chat.json", &chat);
    // The translation is a chat request the gateway accepts as is.
    let parsed = switchyard_upstream::chat::ChatRequest::parse(Bytes::from(chat.to_string()), 100)
        .expect("the gateway's chat parser accepts the translation");
    assert!(parsed.stream && parsed.wants_stream_usage());
    assert_eq!(parsed.max_output_tokens(), Some(128000));
}

#[test]
fn claude_code_request_reaches_an_anthropic_upstream_intact() {
    // Messages → chat → Messages (an Anthropic fallback behind the Messages door).
    let chat = messages::request_to_chat(&fixture("messages_claude_code.request.json")).unwrap();
    let back = messages::request_from_chat(&chat).unwrap();
    golden("messages_claude_code.anthropic.json", &back);
}

#[test]
fn codex_request_becomes_chat() {
    let body = fixture("responses_codex.request.json");
    let chat = responses::request_to_chat(&body).unwrap();
    golden("responses_codex.chat.json", &chat);
    let parsed = switchyard_upstream::chat::ChatRequest::parse(Bytes::from(chat.to_string()), 100)
        .expect("the gateway's chat parser accepts the translation");
    assert!(parsed.stream);
    assert_eq!(
        parsed.reasoning_effort.map(|r| r.value).as_deref(),
        Some("low")
    );
}

#[test]
fn anthropic_message_becomes_a_completion() {
    let chat = messages::response_to_chat(&fixture("messages_response.json"));
    golden("messages_response.chat.json", &chat);
}

#[test]
fn completion_becomes_a_message_and_a_response() {
    let completion = fixture("chat_completion.json");
    golden(
        "chat_completion.messages.json",
        &messages::response_from_chat(&completion, "claude-opus-5-5"),
    );
    let echo = responses::Echo::from_request(&fixture("responses_codex.request.json"));
    let r = responses::response_from_chat(&completion, &echo, "resp_0f3c", 1796132883);
    golden("chat_completion.responses.json", &r);
    // Every field the SDK types require (§B.2).
    for key in [
        "id",
        "object",
        "created_at",
        "model",
        "output",
        "parallel_tool_calls",
        "tool_choice",
        "tools",
        "status",
        "error",
        "incomplete_details",
        "usage",
        "store",
    ] {
        assert!(r.get(key).is_some(), "{key}");
    }
    for key in ["input_tokens", "output_tokens", "total_tokens"] {
        assert!(r["usage"][key].is_u64(), "{key}");
    }
    assert_eq!(r["usage"]["input_tokens_details"]["cached_tokens"], 1024);
    assert_eq!(r["usage"]["output_tokens_details"]["reasoning_tokens"], 12);
}

/// §A.3's exact stream, decoded and reassembled.
#[test]
fn anthropic_stream_decodes_to_a_completion() {
    let (chat, end) = decode(
        messages::Decoder::new(),
        &event_list(&fixture("messages_stream.events.json")),
    );
    assert_eq!(end, Some(StreamEnd::Completed));
    golden("messages_stream.chat.json", &chat);
}

/// §A.3's content from a chat upstream, encoded: the same event sequence as Anthropic's (the
/// ping comes right after message_start, where it keeps the connection alive soonest).
#[test]
fn chat_chunks_encode_to_anthropics_sequence() {
    let frames = encode(
        messages::Encoder::new("msg_01A3".into(), "claude-opus-5-5".into()),
        fixture("chunks_thinking_text_tool.json")
            .as_array()
            .unwrap(),
    );
    messages_invariants(&frames);
    let documented: Vec<String> = fixture("messages_stream.events.json")
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .filter(|e| e != "ping")
        .collect();
    let ours: Vec<&str> = events(&frames)
        .into_iter()
        .filter(|e| *e != "ping")
        .collect();
    // Anthropic's example sends one empty partial_json first; ours does not.
    let mut documented: Vec<&str> = documented.iter().map(String::as_str).collect();
    documented.remove(11);
    assert_eq!(ours, documented);
    golden("chunks_thinking_text_tool.messages.json", &as_json(&frames));
    let delta = &frames[frames.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(
        delta["usage"],
        json!({"input_tokens": 10, "output_tokens": 42, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 0})
    );
}

/// Worked example 1 (§B.3): the encoder's events are the documented sequence, field for field
/// where the example is specific.
#[test]
fn responses_worked_example_1() {
    let echo = responses::Echo::from_request(&json!({"model": "m", "store": false}));
    let frames = encode(
        responses::Encoder::new(echo, "resp_1".into(), 1796132883),
        fixture("chunks_text.json").as_array().unwrap(),
    );
    responses_invariants(&frames);
    let documented = fixture("responses_stream_1.events.json");
    let documented: Vec<&str> = documented
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events(&frames), documented);
    let text_delta = &frames[4].1;
    assert_eq!(
        (
            &text_delta["delta"],
            &text_delta["content_index"],
            &text_delta["output_index"]
        ),
        (&json!("hel"), &json!(0), &json!(0))
    );
    let completed = &frames[9].1["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["output"][0]["content"][0]["text"], "hello");
    assert_eq!(
        completed["usage"],
        json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 5,
               "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 15})
    );
    golden("chunks_text.responses.json", &as_json(&frames));
}

/// Worked example 2 (§B.3): reasoning, then a function call. Reasoning goes out as
/// `reasoning_text` events (raw chain of thought, like DeepSeek's own endpoint) instead of the
/// example's summary events; the function call part is the documented sequence.
#[test]
fn responses_worked_example_2() {
    let echo = responses::Echo::from_request(&json!({"model": "m"}));
    let frames = encode(
        responses::Encoder::new(echo, "resp_1".into(), 1796132883),
        fixture("chunks_reasoning_tool.json").as_array().unwrap(),
    );
    responses_invariants(&frames);
    assert_eq!(
        events(&frames),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.reasoning_text.delta",
            "response.reasoning_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let call = &frames[12].1["item"];
    assert_eq!(call["call_id"], "call_1");
    assert_eq!(call["name"], "exec_command");
    assert_eq!(call["arguments"], "{\"cmd\": \"echo hi-from-tool\"}");
    let reasoning = &frames[7].1["item"];
    assert!(
        reasoning["encrypted_content"]
            .as_str()
            .unwrap()
            .starts_with("swy1:")
    );
    golden("chunks_reasoning_tool.responses.json", &as_json(&frames));

    // Codex's next turn echoes the reasoning item with `content: null`: the text comes back.
    let next = json!({"model": "m", "input": [
        {"role": "user", "content": "say hi"},
        {"type": "reasoning", "id": reasoning["id"], "summary": [], "content": null,
         "encrypted_content": reasoning["encrypted_content"]},
        call,
        {"type": "function_call_output", "call_id": "call_1", "output": "hi-from-tool"}]});
    let chat = responses::request_to_chat(&next).unwrap();
    assert_eq!(
        chat["messages"][1]["reasoning_content"],
        "**Thinking** about it"
    );
    assert_eq!(chat["messages"][1]["tool_calls"][0]["id"], "call_1");
}

#[test]
fn responses_worked_examples_decode() {
    let (chat, end) = decode(
        responses::Decoder::new(),
        &event_list(&fixture("responses_stream_1.events.json")),
    );
    assert_eq!(end, Some(StreamEnd::Completed));
    golden("responses_stream_1.chat.json", &chat);
    let (chat, end) = decode(
        responses::Decoder::new(),
        &event_list(&fixture("responses_stream_2.events.json")),
    );
    assert_eq!(end, Some(StreamEnd::Completed));
    golden("responses_stream_2.chat.json", &chat);
    // Without event: lines (Codex accepts that too) the decoder reads data.type.
    let bare: Vec<_> = event_list(&fixture("responses_stream_2.events.json"))
        .into_iter()
        .map(|(_, d)| (None, d))
        .collect();
    assert_eq!(decode(responses::Decoder::new(), &bare).0, chat);
}

#[test]
fn failures_end_streams_in_each_dialect() {
    let mut out = Vec::new();
    let mut m = messages::Encoder::new("msg_1".into(), "m".into());
    m.push(
        &json!({"choices": [{"index": 0, "delta": {"content": "x"}}]}),
        &mut out,
    );
    m.fail("upstream idle for 60s", "stream_interrupted", &mut out);
    let frames = parse_frames(&out);
    assert_eq!(frames.last().unwrap().0, "error");
    let mut dec = messages::Decoder::new();
    let d = dec.push(Some("error"), &frames.last().unwrap().1);
    assert_eq!(
        d.end,
        Some(StreamEnd::Failed("upstream idle for 60s".into()))
    );

    let mut out = Vec::new();
    let mut r = responses::Encoder::new(responses::Echo::default(), "resp_1".into(), 0);
    r.push(
        &json!({"choices": [{"index": 0, "delta": {"content": "x"}}]}),
        &mut out,
    );
    r.fail("cut", "server_shutting_down", &mut out);
    let frames = parse_frames(&out);
    responses_invariants(&frames);
    let failed = &frames.last().unwrap().1;
    assert_eq!(
        failed["response"]["error"],
        json!({"code": "server_shutting_down", "message": "cut"})
    );
    let mut dec = responses::Decoder::new();
    assert_eq!(
        dec.push(None, failed).end,
        Some(StreamEnd::Failed("cut".into()))
    );
}

#[test]
fn anthropic_error_body() {
    assert_eq!(
        messages::error_body(429, "slow down"),
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
    );
}

// ---------------------------------------------------------------------------------------------
// Encoder invariants

/// Messages: message_start first, blocks strictly sequential with indices 0..n, every tool_use's
/// concatenated partial_json empty or a JSON object, message_stop exactly once and last.
fn messages_invariants(frames: &[(String, Value)]) {
    assert_eq!(frames.first().map(|f| f.0.as_str()), Some("message_start"));
    assert_eq!(frames.last().map(|f| f.0.as_str()), Some("message_stop"));
    assert_eq!(
        events(frames)
            .iter()
            .filter(|e| **e == "message_stop")
            .count(),
        1
    );
    let mut open: Option<(u64, String, String)> = None;
    let mut next = 0;
    let mut delta_seen = false;
    for (event, data) in frames {
        match event.as_str() {
            "content_block_start" => {
                assert!(open.is_none(), "blocks never interleave");
                assert!(!delta_seen);
                assert_eq!(data["index"], next, "indices count up from 0");
                let kind = data["content_block"]["type"].as_str().unwrap().to_owned();
                if kind == "tool_use" {
                    assert_eq!(data["content_block"]["input"], json!({}));
                }
                open = Some((next, kind, String::new()));
                next += 1;
            }
            "content_block_delta" => {
                let (index, kind, json) = open.as_mut().expect("a delta inside a block");
                assert_eq!(data["index"], *index);
                let ty = data["delta"]["type"].as_str().unwrap();
                let expected = match kind.as_str() {
                    "thinking" => ["thinking_delta", "signature_delta"].contains(&ty),
                    "text" => ty == "text_delta",
                    "tool_use" => {
                        json.push_str(data["delta"]["partial_json"].as_str().unwrap());
                        ty == "input_json_delta"
                    }
                    _ => false,
                };
                assert!(expected, "{ty} in a {kind} block");
            }
            "content_block_stop" => {
                let (index, kind, json) = open.take().expect("a stop closes a block");
                assert_eq!(data["index"], index);
                if kind == "tool_use" && !json.is_empty() {
                    let v: Value = serde_json::from_str(&json).expect("partial_json parses");
                    assert!(v.is_object(), "tool input is an object: {json}");
                }
            }
            "message_delta" => {
                assert!(open.is_none(), "every block closed before message_delta");
                delta_seen = true;
                assert!(data["usage"]["output_tokens"].is_u64());
            }
            "message_start" | "ping" | "message_stop" => {}
            other => panic!("unexpected event {other}"),
        }
    }
}

/// Responses: sequence numbers 0,1,2,…; created first; every item added before its deltas and
/// done events; exactly one terminal event, last; never a top-level `error` key.
fn responses_invariants(frames: &[(String, Value)]) {
    assert_eq!(
        frames.first().map(|f| f.0.as_str()),
        Some("response.created")
    );
    let terminal = [
        "response.completed",
        "response.incomplete",
        "response.failed",
    ];
    let terminals = frames
        .iter()
        .filter(|f| terminal.contains(&f.0.as_str()))
        .count();
    assert_eq!(terminals, 1);
    assert!(terminal.contains(&frames.last().unwrap().0.as_str()));
    let mut added = BTreeSet::new();
    let mut done = BTreeSet::new();
    for (i, (event, data)) in frames.iter().enumerate() {
        assert_eq!(data["sequence_number"], i as u64);
        assert!(data.get("error").is_none(), "no top-level error in {event}");
        let index = data.get("output_index").and_then(Value::as_u64);
        match event.as_str() {
            "response.output_item.added" => {
                let index = index.unwrap();
                assert_eq!(index as usize, added.len(), "items open in order");
                assert!(added.len() == done.len(), "one item open at a time");
                added.insert(index);
            }
            "response.output_item.done" => {
                let index = index.unwrap();
                assert!(added.contains(&index) && done.insert(index));
            }
            e if e.starts_with("response.") && index.is_some() => {
                let index = index.unwrap();
                assert!(added.contains(&index), "{e} after its output_item.added");
                assert!(!done.contains(&index), "{e} before its output_item.done");
            }
            _ => {}
        }
        if let Some(r) = data.get("response") {
            assert!(r["output"].is_array() && r["tools"].is_array());
            assert!(r["parallel_tool_calls"].is_boolean());
        }
    }
    let last = &frames.last().unwrap().1["response"];
    if last["status"] != "failed" {
        assert_eq!(added, done, "every item closed before the end");
        assert_eq!(last["output"].as_array().unwrap().len(), done.len());
    }
}

// ---------------------------------------------------------------------------------------------
// Generators

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Arbitrary JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON objects for data that must survive a round trip: floats with few digits, which
/// serde_json (built without `float_roundtrip`) parses back exactly.
fn json_object() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (any::<i32>(), 0i32..6).prop_map(|(m, e)| Value::from(f64::from(m) / 10f64.powi(e))),
        ".{0,20}".prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map("[a-zA-Z_]{1,8}", value, 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn any_object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-z_]{1,12}", json_value(), 0..8)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// Non-empty text, some of it not ASCII.
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 .,:\"\\\\{}é✓🙂\n]{1,24}"
}

fn image_block() -> impl Strategy<Value = Value> {
    prop_oneof![
        (
            prop::sample::select(vec!["image/png", "image/jpeg", "image/gif", "image/webp"]),
            "[A-Za-z0-9+/]{4,16}"
        )
            .prop_map(|(m, d)| json!({"type": "image", "source": {"type": "base64", "media_type": m, "data": d}})),
        "[a-z]{1,8}".prop_map(|p| json!({"type": "image", "source": {"type": "url", "url": format!("https://example.com/{p}.png")}})),
    ]
}

/// A random Messages conversation: alternating turns, user first and last; each assistant
/// turn's tool uses answered by tool_results at the start of the next user turn.
fn anthropic_conversation() -> impl Strategy<Value = Value> {
    let assistant = (
        prop::option::of(text()),
        prop::option::of(text()),
        prop::collection::vec(("[a-z_]{1,10}", json_object()), 0..3),
    );
    let result = (
        prop_oneof![
            text().prop_map(|t| json!(t)),
            prop::collection::vec(text(), 1..3).prop_map(|ts| json!(
                ts.into_iter()
                    .map(|t| json!({"type": "text", "text": t}))
                    .collect::<Vec<_>>()
            )),
            (text(), image_block()).prop_map(|(t, i)| json!([{"type": "text", "text": t}, i])),
        ],
        any::<bool>(),
    );
    let user_rest = prop::collection::vec(
        prop_oneof![
            text().prop_map(|t| json!({"type": "text", "text": t})),
            image_block()
        ],
        0..3,
    );
    let round = (
        assistant,
        prop::collection::vec(result, 3),
        user_rest.clone(),
    );
    (
        prop::option::of(prop_oneof![
            text().prop_map(|t| json!(t)),
            prop::collection::vec(text(), 1..3)
                .prop_map(|ts| json!(ts.into_iter().map(|t| json!({"type": "text", "text": t})).collect::<Vec<_>>())),
        ]),
        text(),
        prop::collection::vec(round, 0..3),
    )
        .prop_map(|(system, first, rounds)| {
            let mut messages = vec![json!({"role": "user", "content": first})];
            for (r, (assistant, results, rest)) in rounds.into_iter().enumerate() {
                let (thinking, text, uses) = assistant;
                let mut blocks = Vec::new();
                if let Some(t) = thinking {
                    blocks.push(json!({"type": "thinking", "thinking": t, "signature": ""}));
                }
                if let Some(t) = text {
                    blocks.push(json!({"type": "text", "text": t}));
                }
                let mut ids = Vec::new();
                for (j, (name, input)) in uses.into_iter().enumerate() {
                    let id = format!("toolu_{r}_{j}");
                    blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
                    ids.push(id);
                }
                if blocks.iter().all(|b| b["type"] == "thinking") {
                    blocks.push(json!({"type": "text", "text": "ok"}));
                }
                messages.push(json!({"role": "assistant", "content": blocks}));
                let mut user: Vec<Value> = ids
                    .iter()
                    .zip(results)
                    .map(|(id, (content, is_error))| {
                        json!({"type": "tool_result", "tool_use_id": id, "content": content, "is_error": is_error})
                    })
                    .collect();
                user.extend(rest);
                if user.is_empty() {
                    user.push(json!({"type": "text", "text": "go on"}));
                }
                messages.push(json!({"role": "user", "content": user}));
            }
            let mut body = json!({"model": "claude", "max_tokens": 1024, "messages": messages});
            if let Some(s) = system {
                body["system"] = s;
            }
            body
        })
}

#[derive(Debug, Clone, PartialEq)]
enum Atom {
    Text(String),
    Image(String),
    ToolUse(String, String, Value),
    ToolResult(String, String),
}

fn image_key(b: &Value) -> String {
    let s = &b["source"];
    match s["type"].as_str() {
        Some("base64") => format!("b64:{}:{}", s["media_type"], s["data"]),
        _ => format!("url:{}", s["url"]),
    }
}

/// What a Messages conversation says, in a form the round trip must preserve: the system text;
/// per turn its role, tool results (text, errors spelled out), then result images, then the
/// other blocks; assistant text concatenated; thinking ignored (an Anthropic upstream cannot take
/// unsigned thinking).
fn conversation_view(body: &Value) -> (String, Vec<(String, Vec<Atom>)>) {
    let system = match &body["system"] {
        Value::String(s) => s.clone(),
        Value::Array(b) => b
            .iter()
            .map(|b| b["text"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join("\n\n"),
        _ => String::new(),
    };
    let mut turns = Vec::new();
    for m in body["messages"].as_array().unwrap() {
        let role = m["role"].as_str().unwrap().to_owned();
        let blocks = match &m["content"] {
            Value::String(s) => vec![json!({"type": "text", "text": s})],
            Value::Array(b) => b.clone(),
            _ => Vec::new(),
        };
        let (mut results, mut images, mut rest) = (Vec::new(), Vec::new(), Vec::new());
        let mut assistant_text = String::new();
        for b in &blocks {
            match b["type"].as_str().unwrap() {
                "text" if role == "assistant" => {
                    assistant_text.push_str(b["text"].as_str().unwrap())
                }
                "text" => rest.push(Atom::Text(b["text"].as_str().unwrap().to_owned())),
                "image" => rest.push(Atom::Image(image_key(b))),
                "tool_use" => rest.push(Atom::ToolUse(
                    b["id"].as_str().unwrap().to_owned(),
                    b["name"].as_str().unwrap().to_owned(),
                    b["input"].clone(),
                )),
                "tool_result" => {
                    let mut text = match &b["content"] {
                        Value::String(s) => s.clone(),
                        Value::Array(inner) => {
                            let mut texts = Vec::new();
                            for c in inner {
                                match c["type"].as_str().unwrap() {
                                    "text" => texts.push(c["text"].as_str().unwrap()),
                                    _ => images.push(Atom::Image(image_key(c))),
                                }
                            }
                            texts.join("\n")
                        }
                        _ => String::new(),
                    };
                    if b["is_error"] == true {
                        text.insert_str(0, "Error: ");
                    }
                    results.push(Atom::ToolResult(
                        b["tool_use_id"].as_str().unwrap().to_owned(),
                        text,
                    ));
                }
                _ => {}
            }
        }
        let mut atoms = results;
        atoms.extend(images);
        if !assistant_text.is_empty() {
            atoms.push(Atom::Text(assistant_text));
        }
        atoms.extend(rest);
        turns.push((role, atoms));
    }
    (system, turns)
}

#[derive(Debug, Clone)]
struct Completion {
    content: Option<String>,
    reasoning: Option<String>,
    /// (id, name, arguments)
    calls: Vec<(String, String, String)>,
    finish: &'static str,
    /// (prompt, cached, cache writes, completion, reasoning)
    usage: (u64, u64, u64, u64, u64),
}

/// Tool-call arguments: mostly JSON objects as a model writes them, sometimes broken.
fn arguments(valid_only: bool) -> BoxedStrategy<String> {
    let valid = prop_oneof![
        json_object().prop_map(|v| v.to_string()),
        json_object().prop_map(|v| serde_json::to_string_pretty(&v).unwrap()),
    ];
    if valid_only {
        valid.boxed()
    } else {
        prop_oneof![
            4 => valid,
            1 => prop_oneof![Just(String::new()), Just("{\"cut".to_owned()), Just("[1,2]".to_owned()), ".{0,12}"],
        ]
        .boxed()
    }
}

fn completion(valid_args: bool) -> impl Strategy<Value = Completion> {
    (
        prop::option::of(prop_oneof![Just(String::new()), text()]),
        prop::option::of(text()),
        prop::collection::vec(
            ("[a-zA-Z0-9]{1,8}", "[a-z_]{1,10}", arguments(valid_args)),
            0..4,
        ),
        any::<prop::sample::Index>(),
        (
            0u64..100_000,
            0u64..100_000,
            0u64..100_000,
            0u64..10_000,
            0u64..10_000,
        ),
    )
        .prop_map(|(content, reasoning, calls, finish, (p, h, w, c, r))| {
            let calls: Vec<_> = calls
                .into_iter()
                .enumerate()
                .map(|(i, (id, name, args))| (format!("call_{i}_{id}"), name, args))
                .collect();
            // Chat upstreams say tool_calls when they call tools; length can cut either.
            let finishes: &[&'static str] = if calls.is_empty() {
                &["stop", "length", "content_filter"]
            } else {
                &["tool_calls", "length"]
            };
            let h = h.min(p);
            Completion {
                content,
                reasoning,
                calls,
                finish: finishes[finish.index(finishes.len())],
                usage: (p, h, w.min(p - h), c, r.min(c)),
            }
        })
}

fn chat_usage(c: &Completion) -> Value {
    let (p, h, w, out, r) = c.usage;
    json!({"prompt_tokens": p, "completion_tokens": out, "total_tokens": p + out,
           "prompt_tokens_details": {"cached_tokens": h}, "cache_creation_input_tokens": w,
           "completion_tokens_details": {"reasoning_tokens": r}})
}

fn completion_json(c: &Completion) -> Value {
    let mut message = json!({"role": "assistant", "content": c.content});
    if let Some(r) = &c.reasoning {
        message["reasoning_content"] = json!(r);
    }
    if !c.calls.is_empty() {
        message["tool_calls"] = c
            .calls
            .iter()
            .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
            .collect();
    }
    json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
           "choices": [{"index": 0, "message": message, "finish_reason": c.finish}],
           "usage": chat_usage(c)})
}

/// What a completion says, compared across a round trip: content (null and "" alike),
/// reasoning (absent and "" alike), each call's id, name and arguments (as JSON when they parse,
/// else the exact text; empty meaning `{}` when `empty_is_object`), finish reason, and the usage
/// the gateway accounts.
fn completion_view(c: &Value, empty_is_object: bool) -> Value {
    let choice = &c["choices"][0];
    let m = &choice["message"];
    let calls: Vec<Value> = m["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let args = t["function"]["arguments"].as_str().unwrap_or_default();
            let args = if empty_is_object && args.trim().is_empty() {
                "{}"
            } else {
                args
            };
            let args = match serde_json::from_str::<Value>(args) {
                Ok(v @ Value::Object(_)) => v,
                _ => json!(args),
            };
            json!([t["id"], t["function"]["name"], args])
        })
        .collect();
    let usage = usage_of(c.to_string().as_bytes())
        .map(|u| json!([u.prompt_tokens, u.cached_prompt_tokens, u.completion_tokens]));
    json!({
        "content": m["content"].as_str().unwrap_or_default(),
        "reasoning": m["reasoning_content"].as_str().unwrap_or_default(),
        "calls": calls,
        "finish": choice["finish_reason"],
        "usage": usage,
    })
}

/// Splits `s` at the given points (snapped to character boundaries), keeping every piece.
fn split(s: &str, points: &[prop::sample::Index]) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut cuts: Vec<usize> = points.iter().map(|p| p.index(chars.len() + 1)).collect();
    cuts.push(0);
    cuts.push(chars.len());
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2)
        .map(|w| chars[w[0]..w[1]].iter().collect())
        .collect()
}

/// A completion streamed as chat chunks: content and reasoning pieces interleaved at random,
/// each tool call's arguments split at random, usage on the last chunk or in its own.
fn chunk_stream() -> impl Strategy<Value = (Completion, Vec<Value>)> {
    (
        completion(true),
        prop::collection::vec(any::<prop::sample::Index>(), 0..5),
        prop::collection::vec(any::<prop::sample::Index>(), 0..5),
        prop::collection::vec(any::<bool>(), 0..16),
        prop::collection::vec(prop::collection::vec(any::<prop::sample::Index>(), 0..4), 4),
        any::<bool>(),
    )
        .prop_map(|(c, rcuts, tcuts, order, arg_cuts, usage_apart)| {
            let chunk = |delta: Value, finish: Value| {
                json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            };
            let pieces = |text: &Option<String>, cuts: &[prop::sample::Index]| -> VecDeque<String> {
                match text.as_deref() {
                    None | Some("") => VecDeque::new(),
                    Some(t) => split(t, cuts).into(),
                }
            };
            let mut chunks = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
            let mut reasoning = pieces(&c.reasoning, &rcuts);
            let mut content = pieces(&c.content, &tcuts);
            let mut order = order.into_iter();
            while !reasoning.is_empty() || !content.is_empty() {
                let want_reasoning = order.next().unwrap_or(true);
                let (field, piece) = if (want_reasoning && !reasoning.is_empty()) || content.is_empty() {
                    ("reasoning_content", reasoning.pop_front())
                } else {
                    ("content", content.pop_front())
                };
                chunks.push(chunk(json!({ field: piece }), Value::Null));
            }
            for (k, (id, name, args)) in c.calls.iter().enumerate() {
                for (i, p) in split(args, &arg_cuts[k % arg_cuts.len()]).iter().enumerate() {
                    let call = if i == 0 {
                        json!({"index": k, "id": id, "type": "function", "function": {"name": name, "arguments": p}})
                    } else {
                        json!({"index": k, "function": {"arguments": p}})
                    };
                    chunks.push(chunk(json!({"tool_calls": [call]}), Value::Null));
                }
            }
            let mut last = chunk(json!({}), json!(c.finish));
            if usage_apart {
                chunks.push(last);
                let mut u = chunk(json!({}), Value::Null);
                u["choices"] = json!([]);
                u["usage"] = chat_usage(&c);
                chunks.push(u);
            } else {
                last["usage"] = chat_usage(&c);
                chunks.push(last);
            }
            (c, chunks)
        })
}

/// Frames to `(event, data)` pairs as an SSE reader sees them.
fn reread(frames: &[(String, Value)]) -> Vec<(Option<String>, Value)> {
    frames
        .iter()
        .map(|(e, d)| (Some(e.clone()), d.clone()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(config())]

    /// (1) Messages → chat → Messages keeps text, tool ids, names, inputs, results and images.
    #[test]
    fn anthropic_conversations_survive_chat(body in anthropic_conversation()) {
        let chat = messages::request_to_chat(&body).unwrap();
        switchyard_upstream::chat::ChatRequest::parse(Bytes::from(chat.to_string()), 1000)
            .expect("the chat parser accepts the translation");
        let back = messages::request_from_chat(&chat).unwrap();
        prop_assert_eq!(conversation_view(&back), conversation_view(&body));
        // And chat's own rule: tool messages follow the assistant message that called them.
        let msgs = chat["messages"].as_array().unwrap();
        for (i, m) in msgs.iter().enumerate() {
            if m["role"] == "tool" {
                let before = msgs[..i].iter().rev().find(|p| p["role"] != "tool").unwrap();
                prop_assert_eq!(&before["role"], "assistant");
            }
        }
    }

    /// (2) chat.completion → Message → chat.completion, and → Response → chat.completion.
    #[test]
    fn completions_survive_both_dialects(c in completion(false)) {
        let original = completion_json(&c);
        let via_messages = messages::response_to_chat(&messages::response_from_chat(&original, "claude"));
        prop_assert_eq!(completion_view(&via_messages, true), completion_view(&original, true));
        let echo = responses::Echo::default();
        let response = responses::response_from_chat(&original, &echo, "resp_1", 0);
        let via_responses = responses::response_to_chat(&response);
        prop_assert_eq!(completion_view(&via_responses, false), completion_view(&original, false));
    }

    /// (3) Chat chunks → Messages events → chat chunks, and the same through Responses,
    /// reassemble to what the original stream assembles to; the encoders' invariants hold.
    #[test]
    fn streams_survive_both_dialects((_c, chunks) in chunk_stream()) {
        let original = completion_view(&assemble(&chunks), false);

        let frames = encode(messages::Encoder::new("msg_1".into(), "m".into()), &chunks);
        messages_invariants(&frames);
        let (chat, end) = decode(messages::Decoder::new(), &reread(&frames));
        prop_assert_eq!(end, Some(StreamEnd::Completed));
        prop_assert_eq!(completion_view(&chat, false), original.clone());

        let echo = responses::Echo::default();
        let frames = encode(responses::Encoder::new(echo, "resp_1".into(), 0), &chunks);
        responses_invariants(&frames);
        let (chat, end) = decode(responses::Decoder::new(), &reread(&frames));
        prop_assert_eq!(end, Some(StreamEnd::Completed));
        prop_assert_eq!(completion_view(&chat, false), original);
    }

    /// (4) Arbitrary JSON into every entry point: errors are fine, panics are not.
    #[test]
    fn arbitrary_json_never_panics(v in json_value(), o in any_object(), event in prop::option::of(event_name())) {
        for input in [&v, &o] {
            let _ = messages::request_to_chat(input);
            let _ = messages::request_from_chat(input);
            let _ = messages::response_to_chat(input);
            let _ = messages::response_from_chat(input, "m");
            let _ = responses::request_to_chat(input);
            let echo = responses::Echo::from_request(input);
            let _ = responses::response_from_chat(input, &echo, "resp_x", 0);
            let _ = responses::response_to_chat(input);
            let _ = messages::Decoder::new().push(event.as_deref(), input);
            let _ = responses::Decoder::new().push(event.as_deref(), input);
        }
    }

    /// (4) Structured garbage: the known fields, holding arbitrary values.
    #[test]
    fn known_fields_with_arbitrary_values_never_panic(
        body in known_object(&REQUEST_KEYS, known_items()),
    ) {
        let _ = messages::request_to_chat(&body);
        let _ = messages::request_from_chat(&body);
        let _ = responses::request_to_chat(&body);
        let echo = responses::Echo::from_request(&body);
        let _ = responses::response_from_chat(&body, &echo, "", 0);
        let _ = messages::response_to_chat(&body);
        let _ = responses::response_to_chat(&body);
    }

    /// (4) Encoders and decoders fed arbitrary chunk-shaped values and events.
    #[test]
    fn streams_of_garbage_never_panic(
        chunks in prop::collection::vec(chunk_like(), 0..8),
        events in prop::collection::vec((prop::option::of(event_name()), event_like()), 0..8),
        fail in any::<bool>(),
    ) {
        let mut out = Vec::new();
        let mut m = messages::Encoder::new("msg_1".into(), "m".into());
        let mut r = responses::Encoder::new(responses::Echo::default(), "resp_1".into(), 0);
        for c in &chunks {
            m.push(c, &mut out);
            r.push(c, &mut out);
        }
        if fail {
            m.fail("x", "stream_interrupted", &mut out);
            r.fail("x", "stream_interrupted", &mut out);
        } else {
            m.finish(&mut out);
            r.finish(&mut out);
        }
        let mut md = messages::Decoder::new();
        let mut rd = responses::Decoder::new();
        for (e, d) in &events {
            let _ = md.push(e.as_deref(), d);
            let _ = rd.push(e.as_deref(), d);
        }
    }

    /// (4) The real request, response and stream fixtures with random parts replaced by
    /// arbitrary JSON: deep paths, reached with wrong types.
    #[test]
    fn mutated_fixtures_never_panic(
        mutations in prop::collection::vec((any::<prop::sample::Index>(), json_value()), 1..4),
    ) {
        for name in [
            "messages_claude_code.request.json", "responses_codex.request.json",
            "messages_response.json", "chat_completion.json", "chat_completion.responses.json",
        ] {
            let v = mutate(fixture(name), &mutations);
            let _ = messages::request_to_chat(&v);
            let _ = responses::request_to_chat(&v);
            if let Ok(chat) = messages::request_to_chat(&v).or_else(|_| responses::request_to_chat(&v)) {
                let _ = messages::request_from_chat(&chat);
            }
            let _ = messages::request_from_chat(&v);
            let echo = responses::Echo::from_request(&v);
            let _ = messages::response_to_chat(&v);
            let _ = messages::response_from_chat(&v, "m");
            let _ = responses::response_to_chat(&v);
            let _ = responses::response_from_chat(&v, &echo, "resp_1", 0);
        }
        for name in ["chunks_thinking_text_tool.json", "chunks_reasoning_tool.json"] {
            let chunks = mutate(fixture(name), &mutations);
            let mut out = Vec::new();
            let mut m = messages::Encoder::new("msg_1".into(), "m".into());
            let mut r = responses::Encoder::new(responses::Echo::default(), "resp_1".into(), 0);
            for c in chunks.as_array().into_iter().flatten() {
                m.push(c, &mut out);
                r.push(c, &mut out);
            }
            m.finish(&mut out);
            r.finish(&mut out);
        }
        for name in ["messages_stream.events.json", "responses_stream_2.events.json"] {
            let events = mutate(fixture(name), &mutations);
            let mut md = messages::Decoder::new();
            let mut rd = responses::Decoder::new();
            for e in events.as_array().into_iter().flatten() {
                let event = e.get("event").and_then(Value::as_str);
                let data = e.get("data").unwrap_or(&Value::Null);
                let _ = md.push(event, data);
                let _ = rd.push(event, data);
            }
        }
    }

    #[test]
    fn event_name_never_panics(raw in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = dialect::event_name(&raw);
    }
}

// ---------------------------------------------------------------------------------------------
// Structured garbage

/// Every node of `v`, as the list of steps to reach it.
fn paths(v: &Value, at: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(at.clone());
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                at.push(json!(i));
                paths(item, at, out);
                at.pop();
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                at.push(json!(k));
                paths(item, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

/// `v` with each chosen node replaced by the paired value.
fn mutate(mut v: Value, mutations: &[(prop::sample::Index, Value)]) -> Value {
    for (which, replacement) in mutations {
        let mut all = Vec::new();
        paths(&v, &mut Vec::new(), &mut all);
        let path = &all[which.index(all.len())];
        let mut node = &mut v;
        for step in path {
            node = match step {
                Value::String(k) => &mut node[k.as_str()],
                _ => &mut node[step.as_u64().unwrap() as usize],
            };
        }
        *node = replacement.clone();
    }
    v
}

const REQUEST_KEYS: [&str; 24] = [
    "model",
    "max_tokens",
    "max_completion_tokens",
    "system",
    "messages",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "metadata",
    "stream",
    "stop",
    "stop_sequences",
    "temperature",
    "top_p",
    "reasoning",
    "text",
    "store",
    "user",
    "choices",
    "output",
    "usage",
];

fn event_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
            "error",
            "ping",
            "response.created",
            "response.output_item.added",
            "response.output_item.done",
            "response.output_text.delta",
            "response.function_call_arguments.delta",
            "response.custom_tool_call_input.delta",
            "response.reasoning_text.delta",
            "response.completed",
            "response.incomplete",
            "response.failed",
        ])
        .prop_map(str::to_owned),
        ".{0,12}",
    ]
}

/// Values that are sometimes well typed: either arbitrary or a plausible string/number.
fn field() -> BoxedStrategy<Value> {
    prop_oneof![
        json_value(),
        prop::sample::select(vec![
            "user",
            "assistant",
            "system",
            "developer",
            "tool",
            "text",
            "image",
            "tool_use",
            "tool_result",
            "thinking",
            "document",
            "base64",
            "url",
            "function",
            "namespace",
            "message",
            "function_call",
            "function_call_output",
            "reasoning",
            "input_text",
            "input_image",
            "image_url",
            "enabled",
            "adaptive",
            "auto",
            "any",
            "none",
        ])
        .prop_map(|s| json!(s)),
        (0u64..100_000).prop_map(|n| json!(n)),
    ]
    .boxed()
}

const ITEM_KEYS: [&str; 22] = [
    "type",
    "role",
    "content",
    "text",
    "source",
    "id",
    "name",
    "input",
    "tool_use_id",
    "is_error",
    "thinking",
    "tool_calls",
    "tool_call_id",
    "function",
    "arguments",
    "call_id",
    "output",
    "encrypted_content",
    "image_url",
    "index",
    "delta",
    "message",
];

fn known_object(
    keys: &'static [&'static str],
    nested: BoxedStrategy<Value>,
) -> BoxedStrategy<Value> {
    prop::collection::btree_map(
        prop::sample::select(keys),
        prop_oneof![3 => field(), 1 => nested],
        0..keys.len().min(7),
    )
    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
    .boxed()
}

/// Arrays of item-like objects whose fields hold item-like arrays again.
fn known_items() -> BoxedStrategy<Value> {
    let leaf = known_object(&ITEM_KEYS, field());
    leaf.prop_recursive(2, 12, 3, |inner| {
        let nested = prop::collection::vec(inner, 0..3)
            .prop_map(Value::Array)
            .boxed();
        prop::collection::vec(known_object(&ITEM_KEYS, nested), 0..4).prop_map(Value::Array)
    })
    .boxed()
}

fn chunk_like() -> impl Strategy<Value = Value> {
    let delta = known_object(
        &["role", "content", "reasoning_content", "tool_calls"],
        known_items(),
    );
    (delta, field(), prop::option::of(field()), field()).prop_map(
        |(delta, finish, usage, index)| {
            let mut c =
                json!({"choices": [{"index": index, "delta": delta, "finish_reason": finish}]});
            if let Some(u) = usage {
                c["usage"] = u;
            }
            c
        },
    )
}

fn event_like() -> impl Strategy<Value = Value> {
    (event_name(), known_object(&ITEM_KEYS, known_items())).prop_map(|(ty, mut v)| {
        v["type"] = json!(ty);
        v
    })
}
