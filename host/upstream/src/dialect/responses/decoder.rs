//! A Responses event stream as chat-completion chunks.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::response::{counts, finish_reason, item_reasoning};
use crate::dialect::{
    Decoded, Lite, LiteEvent, StreamDecoder, StreamEnd, chat_chunk, lite_object, lite_type, str_at,
    type_of,
};

/// Decodes one response's events; see [`StreamDecoder`].
#[derive(Debug, Default, Clone)]
pub struct Decoder {
    id: Value,
    model: Value,
    started: bool,
    /// Output index → chat tool-call index, and item id → the same.
    by_index: BTreeMap<u64, u64>,
    by_item: BTreeMap<String, u64>,
    calls: u64,
    /// Calls whose `output_item.added` already had the whole arguments (deltas ignored).
    whole: BTreeSet<u64>,
    /// Custom tool calls still open: their input streams inside `{"input":"…"}`.
    custom: BTreeSet<u64>,
    /// Output indices announced by `output_item.added`.
    added: BTreeSet<u64>,
}

/// The inside of a JSON string literal for `s` (no quotes), to stream a string into arguments.
fn escaped(s: &str) -> String {
    let quoted = Value::String(s.to_owned()).to_string();
    quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or_default()
        .to_owned()
}

impl Decoder {
    pub fn new() -> Self {
        Decoder::default()
    }

    fn chunk(&self, delta: Value) -> Value {
        chat_chunk(&self.id, &self.model, delta, None)
    }

    fn call_chunk(
        &self,
        k: u64,
        id: Option<&Value>,
        name: Option<&Value>,
        arguments: &str,
    ) -> Value {
        let mut call = json!({"index": k, "function": {"arguments": arguments}});
        if let Some(id) = id {
            call["id"] = id.clone();
            call["type"] = json!("function");
        }
        if let Some(name) = name {
            call["function"]["name"] = name.clone();
        }
        self.chunk(json!({ "tool_calls": [call] }))
    }

    /// The chat call index of the item an event is about.
    fn call_of(&self, data: &Value) -> Option<u64> {
        data.get("output_index")
            .and_then(Value::as_u64)
            .and_then(|i| self.by_index.get(&i))
            .or_else(|| str_at(data, "item_id").and_then(|id| self.by_item.get(id)))
            .copied()
    }

    fn new_call(&mut self, data: &Value, item: &Value) -> u64 {
        let k = self.calls;
        self.calls += 1;
        if let Some(i) = data.get("output_index").and_then(Value::as_u64) {
            self.by_index.insert(i, k);
        }
        if let Some(id) = str_at(item, "id") {
            self.by_item.insert(id.to_owned(), k);
        }
        k
    }

    /// An item announced as it starts (`output_item.added`): tool calls open here.
    fn added(&mut self, data: &Value, item: &Value, d: &mut Decoded) {
        let call_id = item.get("call_id");
        match type_of(item) {
            "function_call" => {
                let k = self.new_call(data, item);
                let args = str_at(item, "arguments").unwrap_or_default();
                if !args.is_empty() {
                    self.whole.insert(k);
                }
                d.chunks
                    .push(self.call_chunk(k, call_id, item.get("name"), args));
            }
            "custom_tool_call" => {
                let k = self.new_call(data, item);
                let input = str_at(item, "input").unwrap_or_default();
                if !input.is_empty() {
                    self.whole.insert(k);
                }
                self.custom.insert(k);
                let start = format!("{{\"input\":\"{}", escaped(input));
                d.chunks
                    .push(self.call_chunk(k, call_id, item.get("name"), &start));
            }
            _ => {}
        }
    }

    /// A whole item seen only when done (or only in the final response): all of it at once.
    fn whole_item(&mut self, data: &Value, item: &Value, d: &mut Decoded) {
        match type_of(item) {
            "reasoning" => {
                let text = item_reasoning(item);
                if !text.is_empty() {
                    d.chunks
                        .push(self.chunk(json!({ "reasoning_content": text })));
                }
            }
            "message" => {
                let text: String = item
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|p| str_at(p, "text").or_else(|| str_at(p, "refusal")))
                    .collect();
                if !text.is_empty() {
                    d.chunks.push(self.chunk(json!({ "content": text })));
                }
            }
            "function_call" => {
                let k = self.new_call(data, item);
                let args = str_at(item, "arguments").unwrap_or_default();
                d.chunks
                    .push(self.call_chunk(k, item.get("call_id"), item.get("name"), args));
            }
            "custom_tool_call" => {
                let k = self.new_call(data, item);
                let args = json!({"input": item.get("input").cloned().unwrap_or(json!(""))});
                let args = args.to_string();
                d.chunks
                    .push(self.call_chunk(k, item.get("call_id"), item.get("name"), &args));
            }
            _ => {}
        }
    }

    fn terminal(&mut self, response: &Value, d: &mut Decoded) {
        if self.added.is_empty() {
            // Nothing was streamed item by item: the final response is all there is.
            for item in response
                .get("output")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                self.whole_item(&Value::Null, item, d);
            }
        }
        let mut c = chat_chunk(
            &self.id,
            &self.model,
            json!({}),
            Some(finish_reason(response, self.calls > 0)),
        );
        if let Some(u) = response.get("usage").filter(|u| u.is_object()) {
            c["usage"] = counts(u).to_chat();
        }
        d.chunks.push(c);
        d.end = Some(StreamEnd::Completed);
    }
}

/// The fields of a Responses event [`StreamDecoder::lite`] reads; the rest is skipped unbuilt.
#[derive(Deserialize)]
struct LiteEventFields<'a> {
    #[serde(rename = "type", borrow, default)]
    ty: Option<Cow<'a, str>>,
    #[serde(default)]
    sequence_number: Option<u64>,
    #[serde(borrow, default)]
    delta: Option<&'a RawValue>,
}

/// A JSON string, borrowed when it has no escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl StreamDecoder for Decoder {
    fn lite<'a>(&self, event: Option<&str>, data: &'a str) -> Option<Lite<'a>> {
        let fields: LiteEventFields<'a> = lite_object(data)?;
        let event = match lite_type(&fields.ty, event) {
            "response.output_text.delta" | "response.refusal.delta" => {
                // `push` reads only a string delta, and makes nothing of an empty one.
                match fields
                    .delta
                    .and_then(|raw| serde_json::from_str::<Text<'a>>(raw.get()).ok())
                {
                    Some(Text(text)) if !text.is_empty() => LiteEvent::Text(text),
                    _ => LiteEvent::Inert,
                }
            }
            "response.created" | "response.in_progress" | "response.queued" if !self.started => {
                return None;
            }
            // Every type `push` acts on.
            "response.output_item.added"
            | "response.output_item.done"
            | "response.reasoning_text.delta"
            | "response.reasoning_summary_text.delta"
            | "response.function_call_arguments.delta"
            | "response.custom_tool_call_input.delta"
            | "response.completed"
            | "response.incomplete"
            | "response.failed"
            | "error" => return None,
            // Lifecycle events after the start, `*.done` events that repeat what the deltas said,
            // and types added later.
            _ => LiteEvent::Inert,
        };
        Some(Lite {
            event,
            sequence: fields.sequence_number,
        })
    }

    fn push(&mut self, event: Option<&str>, data: &Value) -> Decoded {
        let mut d = Decoded::default();
        let ty = match type_of(data) {
            "" => event.unwrap_or_default(),
            t => t,
        };
        let text_delta = || str_at(data, "delta").filter(|t| !t.is_empty());
        match ty {
            "response.created" | "response.in_progress" | "response.queued" if !self.started => {
                self.started = true;
                let r = data.get("response").unwrap_or(&Value::Null);
                self.id = r.get("id").cloned().unwrap_or(Value::Null);
                self.model = r.get("model").cloned().unwrap_or(Value::Null);
                d.chunks.push(self.chunk(json!({"role": "assistant"})));
            }
            "response.output_item.added" => {
                if let Some(i) = data.get("output_index").and_then(Value::as_u64) {
                    self.added.insert(i);
                }
                let item = data.get("item").unwrap_or(&Value::Null);
                self.added(data, item, &mut d);
            }
            "response.output_item.done" => {
                let item = data.get("item").unwrap_or(&Value::Null);
                let index = data.get("output_index").and_then(Value::as_u64);
                match index {
                    Some(i) if !self.added.contains(&i) => {
                        self.added.insert(i);
                        self.whole_item(data, item, &mut d);
                    }
                    _ => {
                        if let Some(k) = self.call_of(data).filter(|k| self.custom.remove(k)) {
                            d.chunks.push(self.call_chunk(k, None, None, "\"}"));
                        }
                    }
                }
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                if let Some(t) = text_delta() {
                    d.chunks.push(self.chunk(json!({ "content": t })));
                }
            }
            "response.reasoning_text.delta" | "response.reasoning_summary_text.delta" => {
                if let Some(t) = text_delta() {
                    d.chunks.push(self.chunk(json!({ "reasoning_content": t })));
                }
            }
            "response.function_call_arguments.delta" => {
                if let (Some(k), Some(t)) = (self.call_of(data), text_delta())
                    && !self.whole.contains(&k)
                {
                    d.chunks.push(self.call_chunk(k, None, None, t));
                }
            }
            "response.custom_tool_call_input.delta" => {
                if let (Some(k), Some(t)) = (self.call_of(data), text_delta())
                    && !self.whole.contains(&k)
                    && self.custom.contains(&k)
                {
                    d.chunks.push(self.call_chunk(k, None, None, &escaped(t)));
                }
            }
            "response.completed" | "response.incomplete" => {
                let r = data.get("response").unwrap_or(&Value::Null);
                self.terminal(r, &mut d);
            }
            "response.failed" => {
                let message = data
                    .get("response")
                    .and_then(|r| r.get("error"))
                    .and_then(|e| str_at(e, "message"))
                    .unwrap_or("the upstream response failed");
                d.end = Some(StreamEnd::Failed(message.to_owned()));
            }
            "error" => {
                let message = str_at(data, "message")
                    .or_else(|| data.get("error").and_then(|e| str_at(e, "message")))
                    .unwrap_or("upstream stream error");
                d.end = Some(StreamEnd::Failed(message.to_owned()));
            }
            _ => {}
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_tool_input_streams_as_a_json_string() {
        let mut dec = Decoder::new();
        let mut args = String::new();
        for (ty, data) in [
            (
                "response.output_item.added",
                json!({"output_index": 0, "item": {"id": "ctc_1", "type": "custom_tool_call", "call_id": "c", "name": "apply_patch", "input": ""}}),
            ),
            (
                "response.custom_tool_call_input.delta",
                json!({"output_index": 0, "item_id": "ctc_1", "delta": "*** Begin \"Patch\"\n"}),
            ),
            (
                "response.output_item.done",
                json!({"output_index": 0, "item": {"type": "custom_tool_call"}}),
            ),
        ] {
            for c in dec.push(Some(ty), &data).chunks {
                args.push_str(
                    c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                        .as_str()
                        .unwrap(),
                );
            }
        }
        let parsed: Value = serde_json::from_str(&args).unwrap();
        assert_eq!(parsed, json!({"input": "*** Begin \"Patch\"\n"}));
    }

    #[test]
    fn a_bare_completed_event_still_yields_the_answer() {
        let mut dec = Decoder::new();
        let d = dec.push(
            None,
            &json!({"type": "response.completed", "response": {"status": "completed",
            "output": [{"type": "message", "content": [{"type": "output_text", "text": "hello"}]}],
            "usage": {"input_tokens": 3, "output_tokens": 2}}}),
        );
        assert_eq!(d.chunks[0]["choices"][0]["delta"]["content"], "hello");
        assert_eq!(d.chunks[1]["choices"][0]["finish_reason"], "stop");
        assert_eq!(d.chunks[1]["usage"]["total_tokens"], 5);
        assert_eq!(d.end, Some(StreamEnd::Completed));
        let f = dec.push(
            None,
            &json!({"type": "response.failed", "response": {"error": {"message": "boom"}}}),
        );
        assert_eq!(f.end, Some(StreamEnd::Failed("boom".into())));
    }
}
