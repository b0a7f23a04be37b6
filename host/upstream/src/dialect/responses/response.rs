//! Whole Response objects: built from a `chat.completion` (also the `response` the stream's
//! lifecycle events carry), and read back as one.

use serde_json::{Map, Value, json};

use super::Echo;
use super::reasoning;
use crate::dialect::{Answer, Counts, assistant_message, chat_completion, str_at, type_of};

/// How a response ended, from chat's finish reason: (`status`, `incomplete_details`, `error`).
pub(crate) fn outcome(finish: Option<&str>) -> (&'static str, Value, Value) {
    match finish {
        Some("length") => (
            "incomplete",
            json!({"reason": "max_output_tokens"}),
            Value::Null,
        ),
        Some("content_filter") => (
            "incomplete",
            json!({"reason": "content_filter"}),
            Value::Null,
        ),
        // DeepSeek stopped generating for its own reasons: the answer is cut, say so.
        Some(reason @ ("insufficient_system_resource" | "aborted")) => (
            "failed",
            Value::Null,
            json!({"code": "server_error", "message": format!("the model stopped early ({reason})")}),
        ),
        _ => ("completed", Value::Null, Value::Null),
    }
}

/// The id of the item at `output_index` of response `response_id` (`rs_`, `msg_` or `fc_`):
/// derived, so the stream and a later replay of it name items alike.
pub(crate) fn item_id(prefix: &str, response_id: &str, output_index: usize) -> String {
    let base = response_id.strip_prefix("resp_").unwrap_or(response_id);
    format!("{prefix}_{base}_{output_index}")
}

/// A finished reasoning item. The text is also sealed in `encrypted_content`, which is all Codex
/// sends back.
pub(crate) fn reasoning_item(id: &str, text: &str) -> Value {
    json!({"id": id, "type": "reasoning", "summary": [],
           "content": [{"type": "reasoning_text", "text": text}],
           "encrypted_content": reasoning::seal(text)})
}

pub(crate) fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

pub(crate) fn message_item(id: &str, status: &str, content: Vec<Value>) -> Value {
    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
}

/// A function_call item; a tool flattened out of a namespace gets its namespace back.
pub(crate) fn function_item(
    echo: &Echo,
    id: &str,
    status: &str,
    call_id: &str,
    chat_name: &str,
    arguments: &str,
) -> Value {
    let (namespace, name) = echo.call_name(chat_name);
    let mut item = json!({"id": id, "type": "function_call", "status": status,
                          "arguments": arguments, "call_id": call_id, "name": name});
    if let Some(ns) = namespace {
        item["namespace"] = json!(ns);
    }
    item
}

/// A Responses `usage` object (all five fields, which the SDK types require).
pub(crate) fn usage(c: Counts) -> Value {
    json!({
        "input_tokens": c.prompt,
        "input_tokens_details": {"cached_tokens": c.cached.min(c.prompt)},
        "output_tokens": c.completion,
        "output_tokens_details": {"reasoning_tokens": c.reasoning},
        "total_tokens": c.prompt.saturating_add(c.completion),
    })
}

/// A Response object with every field the SDKs' types require.
pub(crate) struct Snapshot<'a> {
    pub echo: &'a Echo,
    pub id: &'a str,
    pub created_at: u64,
    pub status: &'a str,
    pub output: Vec<Value>,
    pub usage: Value,
    pub error: Value,
    pub incomplete_details: Value,
}

impl Snapshot<'_> {
    pub fn build(self) -> Value {
        let mut r = Map::new();
        r.insert("id".into(), json!(self.id));
        r.insert("object".into(), json!("response"));
        r.insert("created_at".into(), json!(self.created_at));
        r.insert("status".into(), json!(self.status));
        r.insert("background".into(), json!(false));
        r.insert("error".into(), self.error);
        r.insert("incomplete_details".into(), self.incomplete_details);
        r.insert("previous_response_id".into(), Value::Null);
        r.insert("output".into(), Value::Array(self.output));
        r.insert("usage".into(), self.usage);
        self.echo.fill(&mut r);
        Value::Object(r)
    }
}

/// A `chat.completion` as a Response object: output items reasoning, message, then one
/// function_call per tool call; the status from the finish reason.
pub fn response_from_chat(completion: &Value, echo: &Echo, id: &str, created_at: u64) -> Value {
    let a = Answer::of(completion);
    let (status, incomplete_details, error) = outcome(a.finish.as_deref());
    let mut output = Vec::new();
    if !a.reasoning.is_empty() {
        output.push(reasoning_item(
            &item_id("rs", id, output.len()),
            &a.reasoning,
        ));
    }
    // An answer with no tool calls always has its message, even an empty one.
    if !a.text.is_empty() || a.calls.is_empty() {
        let item = message_item(
            &item_id("msg", id, output.len()),
            "completed",
            vec![output_text(&a.text)],
        );
        output.push(item);
    }
    for (call_id, name, arguments) in &a.calls {
        let item_id = item_id("fc", id, output.len());
        output.push(function_item(
            echo,
            &item_id,
            "completed",
            call_id,
            name,
            arguments,
        ));
    }
    Snapshot {
        echo,
        id,
        created_at,
        status,
        output,
        usage: usage(a.counts.unwrap_or_default()),
        error,
        incomplete_details,
    }
    .build()
}

/// Canonical counts of a Responses `usage` object.
pub(crate) fn counts(u: &Value) -> Counts {
    let n = |path: &[&str]| crate::dialect::u64_at(u, path);
    Counts {
        prompt: n(&["input_tokens"]),
        cached: n(&["input_tokens_details", "cached_tokens"]),
        completion: n(&["output_tokens"]),
        cache_write: 0,
        reasoning: n(&["output_tokens_details", "reasoning_tokens"]),
    }
}

/// Chat's finish reason for a Response's status (`tool_calls` if it called a tool).
pub(crate) fn finish_reason(response: &Value, called: bool) -> &'static str {
    match str_at(response, "status") {
        Some("incomplete") => {
            match response
                .get("incomplete_details")
                .and_then(|d| str_at(d, "reason"))
            {
                Some("content_filter") => "content_filter",
                _ => "length",
            }
        }
        _ if called => "tool_calls",
        _ => "stop",
    }
}

/// A Response object as a `chat.completion` (the canonical view of a Responses upstream's
/// answer, for usage and the cache). Custom tool calls become tool calls with arguments
/// `{"input": <input>}`, as in requests.
pub fn response_to_chat(response: &Value) -> Value {
    let mut text = String::new();
    let mut reasoning_text = String::new();
    let mut calls = Vec::new();
    for item in response
        .get("output")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match type_of(item) {
            "reasoning" => reasoning_text.push_str(&item_reasoning(item)),
            "message" => {
                for part in item
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    text.extend(str_at(part, "text").or_else(|| str_at(part, "refusal")));
                }
            }
            "function_call" => calls.push((
                str_at(item, "call_id").unwrap_or_default().to_owned(),
                str_at(item, "name").unwrap_or_default().to_owned(),
                str_at(item, "arguments").unwrap_or_default().to_owned(),
            )),
            "custom_tool_call" => calls.push((
                str_at(item, "call_id").unwrap_or_default().to_owned(),
                str_at(item, "name").unwrap_or_default().to_owned(),
                json!({"input": item.get("input").cloned().unwrap_or(json!(""))}).to_string(),
            )),
            _ => {}
        }
    }
    let finish = finish_reason(response, !calls.is_empty());
    chat_completion(
        response.get("id").cloned().unwrap_or(Value::Null),
        response.get("model").cloned().unwrap_or(Value::Null),
        assistant_message(text, reasoning_text, calls),
        finish,
        response.get("usage").filter(|u| u.is_object()).map(counts),
    )
}

/// A reasoning output item's text: raw reasoning, else ours sealed, else its summaries.
pub(crate) fn item_reasoning(item: &Value) -> String {
    let texts = |key: &str| -> String {
        item.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| str_at(c, "text"))
            .collect()
    };
    let content = texts("content");
    if !content.is_empty() {
        return content;
    }
    if let Some(t) = str_at(item, "encrypted_content").and_then(reasoning::open) {
        return t;
    }
    texts("summary")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons_become_statuses() {
        let echo = Echo::default();
        let done = |finish: &str| {
            let c = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": finish}]});
            response_from_chat(&c, &echo, "resp_1", 7)
        };
        assert_eq!(done("stop")["status"], "completed");
        let r = done("length");
        assert_eq!(r["status"], "incomplete");
        assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
        let r = done("insufficient_system_resource");
        assert_eq!(r["status"], "failed");
        assert_eq!(r["error"]["code"], "server_error");
        assert_eq!(r["store"], false);
        assert_eq!(r["usage"]["output_tokens_details"]["reasoning_tokens"], 0);
    }
}
