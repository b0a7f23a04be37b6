//! An Anthropic Messages event stream as chat-completion chunks.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{counts, finish_reason};
use crate::dialect::{
    Counts, Decoded, Lite, LiteEvent, StreamDecoder, StreamEnd, chat_chunk, lite_object, lite_type,
    str_at, type_of,
};

/// Decodes one response's events; see [`StreamDecoder`].
#[derive(Debug, Default, Clone)]
pub struct Decoder {
    id: Value,
    model: Value,
    /// Usage from `message_start` (input and cache counts), updated by `message_delta`.
    usage: Option<Value>,
    /// Content-block index → chat tool-call index, for tool_use blocks.
    tools: BTreeMap<u64, u64>,
    /// Tool blocks whose start already carried the whole input (their deltas are ignored).
    whole: Vec<u64>,
    finished: bool,
}

impl Decoder {
    pub fn new() -> Self {
        Decoder::default()
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        chat_chunk(&self.id, &self.model, delta, finish)
    }

    /// The usage so far, merged with a newer (cumulative) Anthropic usage object.
    fn merge_usage(&mut self, newer: Option<&Value>) {
        let Some(Value::Object(newer)) = newer else {
            return;
        };
        let merged = self.usage.get_or_insert_with(|| json!({}));
        for (k, v) in newer {
            if !v.is_null() {
                merged[k.as_str()] = v.clone();
            }
        }
    }

    fn finish_chunk(&self, stop: Option<&str>) -> Value {
        let mut c = self.chunk(json!({}), Some(finish_reason(stop)));
        let counts: Counts = self.usage.as_ref().map(counts).unwrap_or_default();
        c["usage"] = counts.to_chat();
        c
    }
}

/// The fields of a Messages event [`StreamDecoder::lite`] reads; the rest is skipped unbuilt.
#[derive(Deserialize)]
struct LiteEventFields<'a> {
    #[serde(rename = "type", borrow, default)]
    ty: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    delta: Option<LiteDelta<'a>>,
}

#[derive(Deserialize)]
struct LiteDelta<'a> {
    #[serde(rename = "type", borrow, default)]
    ty: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

impl StreamDecoder for Decoder {
    fn lite<'a>(&self, event: Option<&str>, data: &'a str) -> Option<Lite<'a>> {
        let fields: LiteEventFields<'a> = lite_object(data)?;
        let event = match lite_type(&fields.ty, event) {
            "content_block_delta" => match fields.delta {
                // No delta, or one of a type chat cannot carry: nothing.
                None => LiteEvent::Inert,
                Some(delta) => match lite_type(&delta.ty, None) {
                    "text_delta" => match delta.text {
                        Some(text) if !text.is_empty() => LiteEvent::Text(text),
                        _ => LiteEvent::Inert,
                    },
                    "thinking_delta" | "input_json_delta" => return None,
                    _ => LiteEvent::Inert,
                },
            },
            "ping" | "content_block_stop" => LiteEvent::Inert,
            _ => return None,
        };
        Some(Lite {
            event,
            sequence: None,
        })
    }

    fn push(&mut self, event: Option<&str>, data: &Value) -> Decoded {
        let mut d = Decoded::default();
        let ty = match type_of(data) {
            "" => event.unwrap_or_default(),
            t => t,
        };
        match ty {
            "message_start" => {
                let m = data.get("message").unwrap_or(&Value::Null);
                self.id = m.get("id").cloned().unwrap_or(Value::Null);
                self.model = m.get("model").cloned().unwrap_or(Value::Null);
                self.merge_usage(m.get("usage"));
                d.chunks
                    .push(self.chunk(json!({"role": "assistant"}), None));
            }
            "content_block_start" => {
                let b = data.get("content_block").unwrap_or(&Value::Null);
                if type_of(b) == "tool_use" {
                    let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                    let k = self.tools.len() as u64;
                    self.tools.insert(index, k);
                    // Anthropic starts with `input: {}` and streams the rest; a server that puts
                    // the whole input here instead sends no deltas for it.
                    let arguments = match b.get("input") {
                        Some(Value::Object(m)) if !m.is_empty() => {
                            self.whole.push(index);
                            b["input"].to_string()
                        }
                        _ => String::new(),
                    };
                    d.chunks.push(self.chunk(
                        json!({"tool_calls": [{"index": k, "id": b.get("id").cloned().unwrap_or(Value::Null),
                            "type": "function", "function": {"name": b.get("name").cloned().unwrap_or(json!("")),
                            "arguments": arguments}}]}),
                        None,
                    ));
                }
            }
            "content_block_delta" => {
                let delta = data.get("delta").unwrap_or(&Value::Null);
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                let piece = match type_of(delta) {
                    "text_delta" => str_at(delta, "text")
                        .filter(|t| !t.is_empty())
                        .map(|t| json!({ "content": t })),
                    "thinking_delta" => str_at(delta, "thinking")
                        .filter(|t| !t.is_empty())
                        .map(|t| json!({ "reasoning_content": t })),
                    "input_json_delta" => match self.tools.get(&index) {
                        Some(k) if !self.whole.contains(&index) => str_at(delta, "partial_json")
                            .filter(|t| !t.is_empty())
                            .map(|t| json!({"tool_calls": [{"index": k, "function": {"arguments": t}}]})),
                        _ => None,
                    },
                    // signature_delta, citations_delta: nothing chat can carry.
                    _ => None,
                };
                if let Some(delta) = piece {
                    d.chunks.push(self.chunk(delta, None));
                }
            }
            "message_delta" => {
                self.merge_usage(data.get("usage"));
                let stop = data.get("delta").and_then(|x| str_at(x, "stop_reason"));
                d.chunks.push(self.finish_chunk(stop));
                self.finished = true;
            }
            "message_stop" => {
                if !self.finished {
                    d.chunks.push(self.finish_chunk(None));
                    self.finished = true;
                }
                d.end = Some(StreamEnd::Completed);
            }
            "error" => {
                let message = data
                    .get("error")
                    .and_then(|e| str_at(e, "message"))
                    .or_else(|| str_at(data, "message"))
                    .unwrap_or("upstream stream error");
                d.end = Some(StreamEnd::Failed(message.to_owned()));
            }
            // ping, content_block_stop, and event types added later.
            _ => {}
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_from_start_and_delta_is_merged_on_the_final_chunk() {
        let mut dec = Decoder::new();
        let start = dec.push(
            Some("message_start"),
            &json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude",
                "usage": {"input_tokens": 10, "cache_read_input_tokens": 90, "output_tokens": 1}}}),
        );
        assert_eq!(
            start.chunks[0]["choices"][0]["delta"],
            json!({"role": "assistant"})
        );
        assert!(start.chunks[0].get("usage").is_none());
        let end = dec.push(
            None,
            &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 42}}),
        );
        let u = &end.chunks[0]["usage"];
        assert_eq!(
            (u["prompt_tokens"].as_u64(), u["completion_tokens"].as_u64()),
            (Some(100), Some(42))
        );
        assert_eq!(u["prompt_cache_hit_tokens"], 90);
        let stop = dec.push(Some("message_stop"), &json!({"type": "message_stop"}));
        assert!(stop.chunks.is_empty());
        assert_eq!(stop.end, Some(StreamEnd::Completed));
        let err = dec.push(
            Some("error"),
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        );
        assert_eq!(err.end, Some(StreamEnd::Failed("Overloaded".into())));
    }
}
