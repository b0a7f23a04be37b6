//! Rebuilds a complete `chat.completion` from the chunks of a stream, so a streamed response can
//! be cached and later served to either kind of client.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

#[derive(Default)]
struct ToolCall {
    id: Option<Value>,
    kind: Option<Value>,
    name: String,
    arguments: String,
}

#[derive(Default)]
struct Choice {
    role: Option<String>,
    content: String,
    has_content: bool,
    reasoning: String,
    tool_calls: BTreeMap<u64, ToolCall>,
    finish_reason: Option<Value>,
}

/// Accumulates stream chunks.
#[derive(Default)]
pub struct Assembler {
    id: Option<Value>,
    model: Option<Value>,
    created: Option<Value>,
    fingerprint: Option<Value>,
    choices: BTreeMap<u64, Choice>,
    usage: Option<Value>,
    broken: bool,
}

impl Assembler {
    /// Adds one chunk's JSON payload. A chunk that does not parse poisons the result.
    pub fn push(&mut self, data: &str) {
        match serde_json::from_str::<Value>(data) {
            Ok(chunk) => self.push_value(&chunk),
            Err(_) => self.broken = true,
        }
    }

    /// Adds one chunk already parsed (or translated from another dialect).
    pub fn push_value(&mut self, chunk: &Value) {
        for (slot, field) in [
            (&mut self.id, "id"),
            (&mut self.model, "model"),
            (&mut self.created, "created"),
            (&mut self.fingerprint, "system_fingerprint"),
        ] {
            if slot.is_none() {
                *slot = chunk.get(field).filter(|v| !v.is_null()).cloned();
            }
        }
        if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(usage.clone());
        }
        for c in chunk
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(0);
            let choice = self.choices.entry(index).or_default();
            if let Some(f) = c.get("finish_reason").filter(|f| !f.is_null()) {
                choice.finish_reason = Some(f.clone());
            }
            let Some(delta) = c.get("delta") else {
                continue;
            };
            if let Some(role) = delta.get("role").and_then(Value::as_str) {
                choice.role = Some(role.to_owned());
            }
            if let Some(text) = delta.get("content").and_then(Value::as_str) {
                choice.content.push_str(text);
                choice.has_content = true;
            }
            if let Some(text) = delta.get("reasoning_content").and_then(Value::as_str) {
                choice.reasoning.push_str(text);
            }
            for call in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let i = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                let acc = choice.tool_calls.entry(i).or_default();
                if acc.id.is_none() {
                    acc.id = call.get("id").filter(|v| !v.is_null()).cloned();
                }
                if acc.kind.is_none() {
                    acc.kind = call.get("type").filter(|v| !v.is_null()).cloned();
                }
                if let Some(f) = call.get("function") {
                    if let Some(n) = f.get("name").and_then(Value::as_str) {
                        acc.name.push_str(n);
                    }
                    if let Some(a) = f.get("arguments").and_then(Value::as_str) {
                        acc.arguments.push_str(a);
                    }
                }
            }
        }
    }

    /// Adds text to choice 0's content: what [`Self::push_value`] does with a content-only
    /// chunk once an earlier chunk gave the id and model.
    pub fn push_content(&mut self, text: &str) {
        let choice = self.choices.entry(0).or_default();
        choice.content.push_str(text);
        choice.has_content = true;
    }

    /// The assembled completion, if the stream was whole: parsable chunks and every choice with
    /// a finish reason.
    pub fn finish(self) -> Option<Value> {
        if self.broken
            || self.choices.is_empty()
            || self.choices.values().any(|c| c.finish_reason.is_none())
        {
            return None;
        }
        let choices: Vec<Value> = self
            .choices
            .into_iter()
            .map(|(index, c)| {
                let mut message = Map::new();
                message.insert("role".into(), Value::String(c.role.unwrap_or_else(|| "assistant".into())));
                message.insert("content".into(), if c.has_content || c.tool_calls.is_empty() { Value::String(c.content) } else { Value::Null });
                if !c.reasoning.is_empty() {
                    message.insert("reasoning_content".into(), Value::String(c.reasoning));
                }
                if !c.tool_calls.is_empty() {
                    let calls: Vec<Value> = c
                        .tool_calls
                        .into_values()
                        .map(|t| {
                            json!({"id": t.id.unwrap_or(Value::Null), "type": t.kind.unwrap_or_else(|| json!("function")),
                                   "function": {"name": t.name, "arguments": t.arguments}})
                        })
                        .collect();
                    message.insert("tool_calls".into(), Value::Array(calls));
                }
                json!({"index": index, "message": message, "finish_reason": c.finish_reason})
            })
            .collect();
        let mut out = json!({
            "id": self.id.unwrap_or_else(|| json!("chatcmpl-switchyard-cache")),
            "object": "chat.completion",
            "created": self.created.unwrap_or(json!(0)),
            "model": self.model.unwrap_or(Value::Null),
            "choices": choices,
        });
        if let Some(fp) = self.fingerprint {
            out["system_fingerprint"] = fp;
        }
        if let Some(usage) = self.usage {
            out["usage"] = usage;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_tool_calls_and_usage_are_reassembled() {
        let mut a = Assembler::default();
        for chunk in [
            r#"{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"lo","reasoning_content":"think"}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"read","arguments":"{\"pa"}}]}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"th\":1}"}}]}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#,
        ] {
            a.push(chunk);
        }
        let v = a.finish().unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "m");
        let m = &v["choices"][0]["message"];
        assert_eq!(m["content"], "Hello");
        assert_eq!(m["reasoning_content"], "think");
        assert_eq!(m["tool_calls"][0]["function"]["arguments"], "{\"path\":1}");
        assert_eq!(m["tool_calls"][0]["id"], "call_1");
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(v["usage"]["completion_tokens"], 4);
    }

    #[test]
    fn an_unfinished_or_garbled_stream_yields_nothing() {
        let mut a = Assembler::default();
        a.push(r#"{"choices":[{"index":0,"delta":{"content":"partial"}}]}"#);
        assert!(a.finish().is_none(), "no finish reason: the stream was cut");
        let mut a = Assembler::default();
        a.push(r#"{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}"#);
        a.push("not json");
        assert!(a.finish().is_none());
    }
}
