//! Translation between chat completions, the gateway's canonical form, and the other wire APIs
//! clients and upstreams speak: Anthropic Messages ([`messages`]) and stateless OpenAI Responses
//! ([`responses`]).
//!
//! Everything here is pure: `serde_json::Value` in, `Value` (or SSE frames) out, no I/O. Requests
//! are translated to a chat-completions body that `chat::ChatRequest::parse` then validates as
//! usual; responses come back as a `chat.completion` or a stream of `chat.completion.chunk`s and
//! are translated to the client's dialect. What each field becomes is tabulated in
//! `docs/dialects.md`. Unknown fields are never an error; a field the translation cannot carry is
//! a [`TranslateError`] (a 400 for the client) or is dropped, as documented there.

pub mod messages;
pub mod responses;

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::usage::{Usage, usage_of_object};

/// A wire API spoken by a client or an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    Chat,
    Messages,
    Responses,
}

impl Api {
    /// Every API, in [`Api::index`] order.
    pub const ALL: [Api; 3] = [Api::Chat, Api::Messages, Api::Responses];

    /// The name used in configuration, logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Api::Chat => "chat",
            Api::Messages => "messages",
            Api::Responses => "responses",
        }
    }

    /// A dense index (0, 1, 2), for per-API arrays.
    pub fn index(self) -> usize {
        match self {
            Api::Chat => 0,
            Api::Messages => 1,
            Api::Responses => 2,
        }
    }

    /// The path appended to a provider's `.../v1` base URL.
    pub fn path(self) -> &'static str {
        match self {
            Api::Chat => "/chat/completions",
            Api::Messages => "/messages",
            Api::Responses => "/responses",
        }
    }
}

/// A request the translation cannot carry: a 400 invalid_request_error in the caller's shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TranslateError {
    /// The request field at fault, as a path in the caller's dialect (`messages[2].content[0]`).
    pub param: Option<String>,
    pub message: String,
}

impl TranslateError {
    /// An error about the field at `param`.
    pub fn at(param: impl Into<String>, message: impl Into<String>) -> Self {
        TranslateError {
            param: Some(param.into()),
            message: message.into(),
        }
    }

    /// An error about the body as a whole.
    pub fn body(message: impl Into<String>) -> Self {
        TranslateError {
            param: None,
            message: message.into(),
        }
    }
}

/// Turns canonical chat-completion stream chunks into a client dialect's SSE frames.
pub trait StreamEncoder: Send {
    /// One chat chunk (the parsed `data:` JSON of a `chat.completion.chunk`); appends 0..n
    /// complete SSE frames (`event: X\ndata: {...}\n\n`) to `out`.
    fn push(&mut self, chunk: &Value, out: &mut Vec<Bytes>);
    /// The upstream stream completed (`[DONE]` or a clean end): close open blocks/items and
    /// emit the dialect's terminal events, with the usage seen in earlier chunks.
    fn finish(&mut self, out: &mut Vec<Bytes>);
    /// The stream was cut after the commit point: emit the dialect's own error ending.
    fn fail(&mut self, message: &str, code: &str, out: &mut Vec<Bytes>);
}

/// What one upstream event means in canonical terms.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Equivalent chat chunks (JSON objects shaped like `chat.completion.chunk`, usage in chat
    /// shape). Empty for pings and lifecycle events with nothing to say.
    pub chunks: Vec<Value>,
    /// The event ended the stream.
    pub end: Option<StreamEnd>,
}

/// How an upstream stream in another dialect said it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    Completed,
    Failed(String),
}

/// Turns an upstream dialect's SSE events into canonical chat chunks.
pub trait StreamDecoder: Send {
    /// `event` is the SSE `event:` name if the frame had one; `data` the parsed `data:` JSON.
    fn push(&mut self, event: Option<&str>, data: &Value) -> Decoded;

    /// Reads an event from a few borrowed fields of its raw `data:` payload when [`Self::push`]
    /// would make exactly a [`LiteEvent`] of it; `None` sends the event to `push` (every other
    /// event, and anything that is not a well-formed JSON object). A passed-through stream is
    /// mostly text deltas and lifecycle events, and building each one's tree cost more than
    /// relaying it ([BENCHMARKS.md](../../../../BENCHMARKS.md), front doors).
    fn lite<'a>(&self, _event: Option<&str>, _data: &'a str) -> Option<Lite<'a>> {
        None
    }
}

/// What [`StreamDecoder::lite`] read of one event.
#[derive(Debug, PartialEq, Eq)]
pub struct Lite<'a> {
    pub event: LiteEvent<'a>,
    /// A Responses event's `sequence_number`.
    pub sequence: Option<u64>,
}

/// An event whose whole effect is known without its tree.
#[derive(Debug, PartialEq, Eq)]
pub enum LiteEvent<'a> {
    /// Adds this (non-empty) text to the answer's content: `push` would make one chat chunk with
    /// only `content` in choice 0's delta.
    Text(Cow<'a, str>),
    /// Changes nothing: `push` would make no chunk, no end, and leave the decoder as it was.
    Inert,
}

/// A whole response in `wire`'s dialect as a `chat.completion`; `None` for chat itself (the
/// body already is one) and for a body that is not JSON.
pub fn response_chat_view(wire: Api, body: &[u8]) -> Option<Value> {
    let to_chat = match wire {
        Api::Chat => return None,
        Api::Messages => messages::response_to_chat,
        Api::Responses => responses::response_to_chat,
    };
    Some(to_chat(&serde_json::from_slice::<Value>(body).ok()?))
}

/// The usage of a whole response in `wire`'s dialect, as [`response_chat_view`]'s completion
/// carries it, read from the top-level `usage` alone (a passed-through answer needs no chat view
/// unless it is cached, translated or carries no usage).
pub fn response_usage(wire: Api, body: &[u8]) -> Option<Usage> {
    #[derive(serde::Deserialize)]
    struct Top {
        #[serde(default)]
        usage: Option<Value>,
    }
    let usage = match wire {
        Api::Chat => return crate::usage::usage_of(body),
        Api::Messages | Api::Responses => serde_json::from_slice::<Top>(body).ok()?.usage?,
    };
    if !usage.is_object() {
        return None;
    }
    let counts = match wire {
        Api::Messages => messages::counts(&usage),
        _ => responses::counts(&usage),
    };
    Some(counts.usage())
}

/// The `type` a decoder dispatches on: the payload's own, else the SSE event name (as
/// [`type_of`] with a fallback, read from a borrowed field).
pub(crate) fn lite_type<'a>(ty: &'a Option<Cow<'a, str>>, event: Option<&'a str>) -> &'a str {
    match ty.as_deref() {
        None | Some("") => event.unwrap_or_default(),
        Some(t) => t,
    }
}

/// Parses `data` as `T` only if it is a JSON object: derived structs also accept arrays, which
/// `push` reads as having no fields.
pub(crate) fn lite_object<'a, T: serde::Deserialize<'a>>(data: &'a str) -> Option<T> {
    data.trim_start()
        .starts_with('{')
        .then(|| serde_json::from_str(data).ok())
        .flatten()
}

/// The `event:` field of one raw SSE frame (the first one, if a frame repeats it).
pub fn event_name(raw: &[u8]) -> Option<&str> {
    raw.split(|b| *b == b'\n' || *b == b'\r')
        .find_map(|line| line.strip_prefix(b"event:"))
        .map(|rest| rest.strip_prefix(b" ").unwrap_or(rest))
        .and_then(|name| std::str::from_utf8(name).ok())
}

/// One SSE frame with an `event:` line; Anthropic's SDKs drop frames without one.
/// How far an encoder has got with one streamed tool call.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallPhase {
    /// Id or name not seen yet; arguments are buffered.
    #[default]
    Pending,
    Open,
    Closed,
}

/// One tool call an encoder turns into a block or an item: its id and name once they have come,
/// and the argument fragments that arrived before them.
#[derive(Debug, Default)]
pub(crate) struct StreamedCall {
    pub id: Option<String>,
    pub name: Option<String>,
    pub pending: String,
    pub phase: CallPhase,
}

/// Files one `tool_calls[]` entry of a chat delta under its index (its id and name the first
/// time they come); returns the index and the entry's arguments fragment.
pub(crate) fn file_call<'a>(
    calls: &mut std::collections::BTreeMap<u64, StreamedCall>,
    call: &'a Value,
) -> (u64, &'a str) {
    let k = call.get("index").and_then(Value::as_u64).unwrap_or(0);
    let f = call.get("function").unwrap_or(&Value::Null);
    let c = calls.entry(k).or_default();
    if c.id.is_none() {
        c.id = str_at(call, "id")
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
    }
    if c.name.is_none() {
        c.name = str_at(f, "name")
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
    }
    (k, str_at(f, "arguments").unwrap_or_default())
}

/// One SSE event with an `event:` line. The JSON is written straight into the frame: through
/// `Display` (`format!`) each of its tokens went through the formatting machinery, a tenth of a
/// translated stream's CPU (`BENCHMARKS.md`).
pub(crate) fn frame(event: &str, data: &Value) -> Bytes {
    let mut out = Vec::with_capacity(event.len() + 256);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    write_json(&mut out, data);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// One SSE event of only a `data:` line, written as [`frame`] writes its JSON.
pub(crate) fn data_frame(data: &Value) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    write_json(&mut out, data);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// `value` as compact JSON (the bytes its `Display` writes), written as [`frame`] writes an
/// event's: a whole translated answer through `to_string` went token by token through the
/// formatting machinery.
pub fn json_bytes(value: &Value) -> Bytes {
    let mut out = Vec::with_capacity(1024);
    write_json(&mut out, value);
    Bytes::from(out)
}

/// Appends `value` as compact JSON, the bytes its `Display` writes.
fn write_json(out: &mut Vec<u8>, value: &Value) {
    // Writing a `Value` into a `Vec` cannot fail: its map keys are strings and a `Vec` takes
    // every write.
    let _ = serde_json::to_writer(out, value);
}

/// An end-user id as DeepSeek accepts it (`[A-Za-z0-9_-]{1,512}`, used for KV-cache isolation):
/// kept when it already fits, otherwise replaced by a stable hash of it, so one user still maps
/// to one id (Claude Code sends a JSON document here).
pub(crate) fn user_id(raw: &str) -> Option<String> {
    if raw.is_empty() {
        return None;
    }
    let fits = raw.len() <= 512
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if fits {
        return Some(raw.to_owned());
    }
    Some(format!(
        "u_{:032x}",
        xxhash_rust::xxh3::xxh3_128(raw.as_bytes())
    ))
}

/// Token counts in the canonical (chat) sense, whatever dialect reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// All input tokens.
    pub prompt: u64,
    /// Input tokens read from the prompt cache.
    pub cached: u64,
    /// Output tokens, reasoning included.
    pub completion: u64,
    /// Input tokens written to the prompt cache (Anthropic's `cache_creation_input_tokens`;
    /// part of `prompt`, billed as misses).
    pub cache_write: u64,
    /// Output tokens spent on reasoning.
    pub reasoning: u64,
}

impl Counts {
    /// The counts of a chat `usage` object, read as `usage::usage_of` reads it (so DeepSeek's
    /// `prompt_cache_hit_tokens` and OpenAI's `prompt_tokens_details` agree with the gateway's
    /// accounting).
    pub fn from_chat(usage: &Value) -> Option<Counts> {
        if !usage.is_object() {
            return None;
        }
        let u = usage_of_object(usage)?;
        let cache_write = u64_at(usage, &["cache_creation_input_tokens"])
            .min(u.prompt_tokens.saturating_sub(u.cached_prompt_tokens));
        Some(Counts {
            prompt: u.prompt_tokens,
            cached: u.cached_prompt_tokens,
            completion: u.completion_tokens,
            cache_write,
            reasoning: u64_at(usage, &["completion_tokens_details", "reasoning_tokens"]),
        })
    }

    /// The gateway's usage, as `usage::usage_of` reads [`Counts::to_chat`] (without building
    /// that object and reading it back).
    pub fn usage(self) -> Usage {
        Usage {
            prompt_tokens: self.prompt,
            cached_prompt_tokens: self.cached.min(self.prompt),
            completion_tokens: self.completion,
        }
    }

    /// The canonical chat `usage` object, readable by `usage::usage_of`.
    pub fn to_chat(self) -> Value {
        let cached = self.cached.min(self.prompt);
        let mut u = json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt.saturating_add(self.completion),
            "prompt_tokens_details": {"cached_tokens": cached},
            "prompt_cache_hit_tokens": cached,
            "prompt_cache_miss_tokens": self.prompt - cached,
        });
        if self.cache_write > 0 {
            u["cache_creation_input_tokens"] = json!(self.cache_write);
        }
        if self.reasoning > 0 {
            u["completion_tokens_details"] = json!({"reasoning_tokens": self.reasoning});
        }
        u
    }
}

/// The non-negative integer at `path` inside `v`, or 0.
pub(crate) fn u64_at(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for key in path {
        match cur.get(key) {
            Some(next) => cur = next,
            None => return 0,
        }
    }
    cur.as_u64().unwrap_or(0)
}

/// The string at `key`, if it is one.
pub(crate) fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A `type` field, or "" (so a `match` can fall through to "unknown").
pub(crate) fn type_of(v: &Value) -> &str {
    str_at(v, "type").unwrap_or("")
}

/// A `chat.completion.chunk` with one choice (index 0).
pub(crate) fn chat_chunk(id: &Value, model: &Value, delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    })
}

/// The first choice of a chat completion or chunk (choice 0: the gateway never asks for `n`).
pub(crate) fn first_choice(v: &Value) -> Option<&Value> {
    let choices = v.get("choices")?.as_array()?;
    choices
        .iter()
        .find(|c| c.get("index").and_then(Value::as_u64) == Some(0))
        .or_else(|| choices.first())
}

/// The assistant message of a chat completion, read leniently (an upstream's answer is never an
/// error here): its text, reasoning, tool calls and finish reason.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub text: String,
    pub reasoning: String,
    /// (id, name, arguments) of each tool call.
    pub calls: Vec<(String, String, String)>,
    pub finish: Option<String>,
    pub counts: Option<Counts>,
}

impl Answer {
    pub fn of(completion: &Value) -> Answer {
        let mut a = Answer {
            counts: completion.get("usage").and_then(Counts::from_chat),
            ..Answer::default()
        };
        let Some(choice) = first_choice(completion) else {
            return a;
        };
        a.finish = str_at(choice, "finish_reason").map(str::to_owned);
        let message = choice.get("message").unwrap_or(&Value::Null);
        a.text = match message.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| str_at(p, "text").or_else(|| str_at(p, "refusal")))
                .collect(),
            _ => String::new(),
        };
        if a.text.is_empty()
            && let Some(refusal) = str_at(message, "refusal")
        {
            a.text = refusal.to_owned();
        }
        a.reasoning = str_at(message, "reasoning_content")
            .unwrap_or_default()
            .to_owned();
        for (i, call) in message
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let f = call.get("function").unwrap_or(&Value::Null);
            let arguments = match f.get("arguments") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            a.calls.push((
                str_at(call, "id").map_or_else(|| format!("call_{i}"), str::to_owned),
                str_at(f, "name").unwrap_or_default().to_owned(),
                arguments,
            ));
        }
        a
    }
}

/// A chat `message` for the assistant: `content` is null only when there are tool calls and no
/// text, as `chat::assemble` does.
pub(crate) fn assistant_message(
    text: String,
    reasoning: String,
    calls: Vec<(String, String, String)>,
) -> Value {
    let mut m = Map::new();
    m.insert("role".into(), json!("assistant"));
    m.insert(
        "content".into(),
        if text.is_empty() && !calls.is_empty() {
            Value::Null
        } else {
            Value::String(text)
        },
    );
    if !reasoning.is_empty() {
        m.insert("reasoning_content".into(), Value::String(reasoning));
    }
    if !calls.is_empty() {
        let calls: Vec<Value> = calls
            .into_iter()
            .map(|(id, name, arguments)| {
                json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
            })
            .collect();
        m.insert("tool_calls".into(), Value::Array(calls));
    }
    Value::Object(m)
}

/// A whole `chat.completion` with one choice.
pub(crate) fn chat_completion(
    id: Value,
    model: Value,
    message: Value,
    finish: &str,
    counts: Option<Counts>,
) -> Value {
    let mut out = json!({
        "id": id,
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    });
    if let Some(c) = counts {
        out["usage"] = c.to_chat();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks one event against the promise of [`StreamDecoder::lite`]: whatever it reads, `push`
    /// makes exactly that of the event and leaves the decoder as it was. Then feeds the event to
    /// `push`, as the relay would have, so that later events meet the state it leaves.
    fn lite_agrees<D: StreamDecoder + Clone + std::fmt::Debug>(
        decoder: &mut D,
        event: Option<&str>,
        data: &str,
    ) -> Option<String> {
        // Only Responses events carry a sequence number the relay keeps.
        let numbered = std::any::type_name::<D>().contains("responses");
        let lite = decoder.lite(event, data);
        let before = format!("{decoder:?}");
        let value = serde_json::from_str::<Value>(data).ok();
        if let Some(lite) = &lite {
            let value = value.as_ref().expect("lite read an event that is not JSON");
            assert!(value.is_object(), "lite read a non-object: {data}");
            let mut probe = decoder.clone();
            let decoded = probe.push(event, value);
            assert_eq!(decoded.end, None, "{data}");
            assert_eq!(
                format!("{probe:?}"),
                before,
                "lite skipped a state change: {data}"
            );
            match &lite.event {
                LiteEvent::Inert => assert!(decoded.chunks.is_empty(), "{data}"),
                LiteEvent::Text(text) => {
                    assert_eq!(decoded.chunks.len(), 1, "{data}");
                    let choice = &decoded.chunks[0]["choices"][0];
                    assert_eq!(choice["delta"], json!({"content": text.as_ref()}), "{data}");
                    assert_eq!(choice["finish_reason"], Value::Null, "{data}");
                    assert_eq!(choice["index"], 0, "{data}");
                    assert!(decoded.chunks[0].get("usage").is_none(), "{data}");
                }
            }
            let sequence = value.get("sequence_number").and_then(Value::as_u64);
            assert_eq!(lite.sequence, sequence.filter(|_| numbered), "{data}");
        }
        if let Some(value) = &value {
            decoder.push(event, value);
        }
        lite.map(|l| format!("{:?}", l.event))
    }

    /// Events of both dialects built from parts that exercise every branch of `lite`: known and
    /// unknown types, in the payload or only in the SSE name, every shape of delta, sequence
    /// numbers of every JSON type, escapes, and payloads that are not objects.
    fn event_strategy() -> impl proptest::strategy::Strategy<Value = (Option<String>, String)> {
        use proptest::prelude::*;
        let types = prop::sample::select(vec![
            "content_block_delta",
            "content_block_start",
            "content_block_stop",
            "message_start",
            "message_delta",
            "message_stop",
            "ping",
            "error",
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.output_item.done",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.refusal.delta",
            "response.reasoning_text.delta",
            "response.function_call_arguments.delta",
            "response.completed",
            "response.failed",
            "something.new",
            "",
        ]);
        let deltas = prop::sample::select(vec![
            None,
            Some("null"),
            Some(r#""""#),
            Some(r#""plain ""#),
            Some(r#""an \"escaped\" \u00e9""#),
            Some("5"),
            Some("[]"),
            Some(r#"{"type":"text_delta","text":"hi "}"#),
            Some(r#"{"type":"text_delta","text":""}"#),
            Some(r#"{"type":"text_delta"}"#),
            Some(r#"{"type":"text_delta","text":7}"#),
            Some(r#"{"type":"thinking_delta","thinking":"hm"}"#),
            Some(r#"{"type":"input_json_delta","partial_json":"{\"a\""}"#),
            Some(r#"{"type":"signature_delta","signature":"x"}"#),
            Some(r#"{"stop_reason":"end_turn"}"#),
        ]);
        let sequences = prop::sample::select(vec![
            None,
            Some("3"),
            Some("-1"),
            Some("2.5"),
            Some(r#""4""#),
        ]);
        let extras = prop::sample::select(vec![
            "",
            r#","index":0"#,
            r#","output_index":0,"item":{"type":"message","id":"m"}"#,
            r#","response":{"id":"resp_1","model":"m","status":"completed","output":[]}"#,
            r#","message":{"id":"msg_1","model":"m","usage":{"input_tokens":3}}"#,
            r#","content_block":{"type":"text","text":""}"#,
        ]);
        (
            types,
            prop::option::of(prop::sample::select(vec![
                "content_block_delta",
                "response.output_text.delta",
                "ping",
            ])),
            any::<bool>(),
            deltas,
            sequences,
            extras,
            prop::sample::select(vec!["object", "array", "broken"]),
        )
            .prop_map(|(ty, name, typed, delta, seq, extra, shape)| {
                let mut fields = Vec::new();
                if typed {
                    fields.push(format!(r#""type":"{ty}""#));
                }
                if let Some(d) = delta {
                    fields.push(format!(r#""delta":{d}"#));
                }
                if let Some(n) = seq {
                    fields.push(format!(r#""sequence_number":{n}"#));
                }
                let body = format!("{{{}{extra}}}", fields.join(","));
                let body = body.replacen("{,", "{", 1);
                let data = match shape {
                    "object" => body,
                    "array" => format!("[{body}]"),
                    _ => body[..body.len() - 1].to_owned(),
                };
                (
                    name.map(str::to_owned).or(typed.then(|| ty.to_owned())),
                    data,
                )
            })
    }

    proptest::proptest! {
        #[test]
        fn what_lite_reads_is_what_push_makes(
            events in proptest::collection::vec(event_strategy(), 1..12),
        ) {
            let mut messages = messages::Decoder::new();
            let mut responses = responses::Decoder::new();
            for (event, data) in &events {
                lite_agrees(&mut messages, event.as_deref(), data);
                lite_agrees(&mut responses, event.as_deref(), data);
            }
        }
    }

    #[test]
    fn a_whole_answers_usage_is_read_as_its_chat_view_carries_it() {
        let messages = |usage: &str| {
            format!(
                r#"{{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{{"type":"text","text":"hi"}}],"stop_reason":"end_turn"{usage}}}"#
            )
        };
        let responses = |usage: &str| {
            format!(
                r#"{{"id":"resp_1","object":"response","status":"completed","model":"m","output":[{{"type":"message","role":"assistant","content":[{{"type":"output_text","text":"hi"}}]}}]{usage}}}"#
            )
        };
        let usages = [
            "",
            r#","usage":null"#,
            r#","usage":7"#,
            r#","usage":{}"#,
            r#","usage":{"input_tokens":10,"output_tokens":4}"#,
            r#","usage":{"input_tokens":10,"cache_read_input_tokens":90,"cache_creation_input_tokens":5,"output_tokens":4}"#,
            r#","usage":{"input_tokens":100,"input_tokens_details":{"cached_tokens":80},"output_tokens":9,"output_tokens_details":{"reasoning_tokens":3}}"#,
        ];
        let mut with_usage = 0;
        for usage in usages {
            for (wire, body) in [
                (Api::Messages, messages(usage)),
                (Api::Responses, responses(usage)),
            ] {
                let view = response_chat_view(wire, body.as_bytes()).expect("a chat view");
                let want = crate::usage::usage_in_value(&view);
                assert_eq!(
                    response_usage(wire, body.as_bytes()),
                    want,
                    "{wire:?} {body}"
                );
                with_usage += usize::from(want.is_some());
            }
        }
        assert!(with_usage >= 8, "the cases carry usage: {with_usage}");
        assert_eq!(response_chat_view(Api::Chat, b"{}"), None);
        assert_eq!(response_usage(Api::Messages, b"not json"), None);
    }

    #[test]
    fn the_commonest_events_are_read_lite() {
        let mut m = messages::Decoder::new();
        let start = r#"{"type":"message_start","message":{"id":"msg_1","model":"m","usage":{"input_tokens":3}}}"#;
        assert_eq!(lite_agrees(&mut m, Some("message_start"), start), None);
        let delta = r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a \"b\""}}"#;
        assert_eq!(
            lite_agrees(&mut m, Some("content_block_delta"), delta).as_deref(),
            Some(r#"Text("a \"b\"")"#)
        );
        assert_eq!(
            lite_agrees(&mut m, Some("ping"), r#"{"type":"ping"}"#).as_deref(),
            Some("Inert")
        );
        let mut r = responses::Decoder::new();
        let created = r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","model":"m","error":null}}"#;
        assert_eq!(
            lite_agrees(&mut r, None, created),
            None,
            "the start is read whole"
        );
        assert_eq!(
            lite_agrees(&mut r, None, &created.replace("created", "in_progress")).as_deref(),
            Some("Inert"),
            "after the start, a lifecycle event says nothing new"
        );
        let delta = r#"{"type":"response.output_text.delta","sequence_number":4,"item_id":"m","output_index":0,"content_index":0,"delta":"This ","logprobs":[]}"#;
        assert_eq!(
            r.lite(None, delta),
            Some(Lite {
                event: LiteEvent::Text(Cow::Borrowed("This ")),
                sequence: Some(4)
            })
        );
    }

    #[test]
    fn event_names_are_read_from_raw_frames() {
        assert_eq!(
            event_name(b"event: message_start\ndata: {}\n\n"),
            Some("message_start")
        );
        assert_eq!(event_name(b"event:ping\r\ndata: {}\r\n\r\n"), Some("ping"));
        assert_eq!(event_name(b"data: {}\n\n"), None);
        assert_eq!(event_name(b"event: \xff\n\n"), None);
    }

    #[test]
    fn user_ids_outside_deepseeks_alphabet_are_hashed_stably() {
        assert_eq!(user_id("user_1-A").as_deref(), Some("user_1-A"));
        let json = r#"{"device_id":"d","session_id":"s"}"#;
        let hashed = user_id(json).unwrap();
        assert_eq!(hashed.len(), 34);
        assert!(
            hashed
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        );
        assert_eq!(user_id(json), Some(hashed));
        assert_eq!(user_id(&"a".repeat(513)).unwrap().len(), 34);
        assert_eq!(user_id(""), None);
    }

    proptest::proptest! {
        /// The usage made from counts is what reading their chat object back gives.
        #[test]
        fn usage_from_counts_is_their_chat_objects(
            prompt in 0u64..1 << 40,
            cached in 0u64..1 << 40,
            completion in 0u64..1 << 40,
            cache_write in 0u64..1 << 20,
            reasoning in 0u64..1 << 20,
        ) {
            let c = Counts { prompt, cached, completion, cache_write, reasoning };
            proptest::prop_assert_eq!(
                Some(c.usage()),
                crate::usage::usage_in_value(&json!({ "usage": c.to_chat() }))
            );
        }
    }

    #[test]
    fn json_bytes_are_what_display_writes() {
        let v = json!({"a": "tab\t \"quote\" é \u{1}", "n": [1, -2.5, null, true], "o": {}});
        assert_eq!(json_bytes(&v), v.to_string().as_bytes());
    }

    #[test]
    fn canonical_usage_reads_back_through_usage_of() {
        let c = Counts {
            prompt: 100,
            cached: 60,
            completion: 7,
            cache_write: 30,
            reasoning: 3,
        };
        let v = c.to_chat();
        assert_eq!(v["prompt_cache_miss_tokens"], 40);
        assert_eq!(Counts::from_chat(&v), Some(c));
        let deepseek =
            json!({"prompt_tokens": 10, "completion_tokens": 2, "prompt_cache_hit_tokens": 4});
        assert_eq!(Counts::from_chat(&deepseek).unwrap().cached, 4);
        assert_eq!(Counts::from_chat(&json!("x")), None);
    }
}
