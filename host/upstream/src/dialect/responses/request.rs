//! A stateless OpenAI Responses request as a chat-completions request (the `/v1/responses` door).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::echo::chat_tools;
use super::reasoning;
use crate::dialect::{TranslateError, assistant_message, str_at, type_of, user_id};

type Result<T> = std::result::Result<T, TranslateError>;

/// Translates a Responses request body to a chat-completions body. See `docs/dialects.md`.
pub fn request_to_chat(body: &Value) -> Result<Value> {
    let body = body
        .as_object()
        .ok_or_else(|| TranslateError::body("request body must be a JSON object"))?;
    refuse_state(body)?;
    let mut out = Map::new();
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::at("model", "is required and must be a string"))?;
    out.insert("model".into(), json!(model));

    let tools = body.get("tools").and_then(Value::as_array);
    let (functions, namespaced) = chat_tools(tools.map_or(&[], Vec::as_slice));
    let chat_name: BTreeMap<(&str, &str), &str> = namespaced
        .iter()
        .map(|(chat, (ns, name))| ((ns.as_str(), name.as_str()), chat.as_str()))
        .collect();

    let mut conv = Conversation::default();
    if let Some(instructions) = body.get("instructions").and_then(Value::as_str)
        && !instructions.is_empty()
    {
        conv.out
            .push(json!({"role": "system", "content": instructions}));
    }
    match body.get("input") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => conv.out.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                conv.item(i, item, &chat_name)?;
            }
            conv.flush();
        }
        Some(_) => {
            return Err(TranslateError::at(
                "input",
                "must be a string or an array of input items",
            ));
        }
    }
    if conv.out.is_empty() {
        // Named in the client's terms: chat's parser would blame `messages`.
        return Err(TranslateError::at(
            "input",
            "is required: a string or at least one input item (or `instructions`)",
        ));
    }
    out.insert("messages".into(), Value::Array(conv.out));

    if !functions.is_empty() {
        out.insert("tools".into(), Value::Array(functions));
        let choice = match body.get("tool_choice") {
            Some(Value::String(s)) if matches!(s.as_str(), "auto" | "none" | "required") => {
                Some(json!(s))
            }
            Some(c @ Value::Object(_)) if type_of(c) == "function" => {
                let name = str_at(c, "name")
                    .ok_or_else(|| TranslateError::at("tool_choice.name", "is required"))?;
                let name = str_at(c, "namespace")
                    .and_then(|ns| chat_name.get(&(ns, name)).copied())
                    .unwrap_or(name);
                Some(json!({"type": "function", "function": {"name": name}}))
            }
            // Choices of dropped tools (custom, hosted, allowed_tools): let the model decide.
            Some(Value::String(_) | Value::Object(_)) => Some(json!("auto")),
            _ => None,
        };
        if let Some(c) = choice {
            out.insert("tool_choice".into(), c);
        }
        if let Some(p) = body.get("parallel_tool_calls").filter(|p| p.is_boolean()) {
            out.insert("parallel_tool_calls".into(), p.clone());
        }
    }
    if let Some(effort) = body.get("reasoning").and_then(|r| str_at(r, "effort")) {
        out.insert("reasoning_effort".into(), json!(effort));
    }
    if let Some(max) = body.get("max_output_tokens").and_then(Value::as_u64) {
        out.insert("max_tokens".into(), json!(max));
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = body.get(key).filter(|v| v.is_number()) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(format) = body.get("text").and_then(|t| t.get("format")) {
        match type_of(format) {
            "json_object" => {
                out.insert("response_format".into(), json!({"type": "json_object"}));
            }
            "json_schema" => {
                let mut schema = Map::new();
                for key in ["name", "description", "schema", "strict"] {
                    if let Some(v) = format.get(key).filter(|v| !v.is_null()) {
                        schema.insert(key.into(), v.clone());
                    }
                }
                out.insert(
                    "response_format".into(),
                    json!({"type": "json_schema", "json_schema": schema}),
                );
            }
            _ => {}
        }
    }
    if let Some(user) = ["safety_identifier", "user"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_str))
        .and_then(user_id)
    {
        out.insert("user".into(), json!(user));
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), json!(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(Value::Object(out))
}

/// The gateway keeps no state between requests: refuse what would need it.
fn refuse_state(body: &Map<String, Value>) -> Result<()> {
    let set = |k: &str| body.get(k).is_some_and(|v| !v.is_null());
    if set("previous_response_id") {
        return Err(TranslateError::at(
            "previous_response_id",
            "this gateway is stateless: send the whole conversation in `input`",
        ));
    }
    if set("conversation") {
        return Err(TranslateError::at(
            "conversation",
            "this gateway is stateless: send the whole conversation in `input`",
        ));
    }
    // Absent `store` means true at OpenAI, but clients that omit it do not rely on storage, and
    // Codex sends false anyway; only an explicit true is refused.
    if body.get("store").and_then(Value::as_bool) == Some(true) {
        return Err(TranslateError::at(
            "store",
            "responses are not stored by this gateway; send store: false",
        ));
    }
    if body.get("background").and_then(Value::as_bool) == Some(true) {
        return Err(TranslateError::at(
            "background",
            "background responses need stored state, which this gateway does not keep",
        ));
    }
    Ok(())
}

/// The assistant message being built from consecutive output items.
#[derive(Default)]
struct Assistant {
    text: String,
    reasoning: String,
    calls: Vec<(String, String, String)>,
}

#[derive(Default)]
struct Conversation {
    out: Vec<Value>,
    assistant: Option<Assistant>,
    /// Reasoning waiting for the assistant output it preceded.
    reasoning: String,
    /// Images from tool outputs, sent as a user message after the tool messages (chat tool
    /// messages carry text only).
    images: Vec<Value>,
}

impl Conversation {
    fn flush_assistant(&mut self) {
        if let Some(a) = self.assistant.take() {
            self.out
                .push(assistant_message(a.text, a.reasoning, a.calls));
        }
    }

    fn flush_images(&mut self) {
        if !self.images.is_empty() {
            let parts = std::mem::take(&mut self.images);
            self.out.push(json!({"role": "user", "content": parts}));
        }
    }

    fn flush(&mut self) {
        self.flush_assistant();
        self.flush_images();
    }

    fn assistant(&mut self) -> &mut Assistant {
        let pending = &mut self.reasoning;
        self.assistant.get_or_insert_with(|| Assistant {
            reasoning: std::mem::take(pending),
            ..Assistant::default()
        })
    }

    fn item(&mut self, i: usize, item: &Value, names: &BTreeMap<(&str, &str), &str>) -> Result<()> {
        let path = format!("input[{i}]");
        let call_id = || {
            str_at(item, "call_id")
                .ok_or_else(|| TranslateError::at(format!("{path}.call_id"), "is required"))
        };
        match type_of(item) {
            "" | "message" => self.message(&path, item)?,
            "function_call" => {
                let id = call_id()?.to_owned();
                let name = str_at(item, "name")
                    .ok_or_else(|| TranslateError::at(format!("{path}.name"), "is required"))?;
                let name = str_at(item, "namespace")
                    .and_then(|ns| names.get(&(ns, name)).copied())
                    .unwrap_or(name)
                    .to_owned();
                let arguments = match item.get("arguments") {
                    Some(Value::String(s)) => s.clone(),
                    None | Some(Value::Null) => String::new(),
                    Some(other) => other.to_string(),
                };
                self.flush_images();
                self.assistant().calls.push((id, name, arguments));
            }
            "custom_tool_call" => {
                let id = call_id()?.to_owned();
                let name = str_at(item, "name").unwrap_or_default().to_owned();
                let input = item.get("input").cloned().unwrap_or(json!(""));
                self.flush_images();
                self.assistant()
                    .calls
                    .push((id, name, json!({ "input": input }).to_string()));
            }
            "function_call_output" | "custom_tool_call_output" => {
                let id = call_id()?.to_owned();
                self.flush_assistant();
                let text = match item.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => {
                        let mut texts = Vec::new();
                        for (j, p) in parts.iter().enumerate() {
                            match type_of(p) {
                                "input_image" => self
                                    .images
                                    .push(image_part(p, &format!("{path}.output[{j}]"))?),
                                _ => texts.extend(str_at(p, "text")),
                            }
                        }
                        texts.concat()
                    }
                    Some(Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                };
                self.out
                    .push(json!({"role": "tool", "tool_call_id": id, "content": text}));
            }
            "reasoning" => {
                let text = reasoning_text(item);
                self.flush_images();
                if self
                    .assistant
                    .as_ref()
                    .is_some_and(|a| !a.text.is_empty() || !a.calls.is_empty())
                {
                    self.flush_assistant();
                }
                match &mut self.assistant {
                    Some(a) => a.reasoning.push_str(&text),
                    None => self.reasoning.push_str(&text),
                }
            }
            // item_reference (needs stored state), web_search_call and other hosted-tool items:
            // nothing a chat upstream can use.
            _ => {}
        }
        Ok(())
    }

    fn message(&mut self, path: &str, item: &Value) -> Result<()> {
        let content = item.get("content").unwrap_or(&Value::Null);
        let role = str_at(item, "role").unwrap_or_default();
        match role {
            "assistant" => {
                self.flush_images();
                if self.assistant.as_ref().is_some_and(|a| !a.calls.is_empty()) {
                    self.flush_assistant();
                }
                let text: String = texts(content, path)?.concat();
                self.assistant().text.push_str(&text);
            }
            "system" | "developer" => {
                self.flush();
                let text = texts(content, path)?.join("\n\n");
                if !text.is_empty() {
                    self.out.push(json!({"role": "system", "content": text}));
                }
            }
            "user" => {
                self.flush();
                self.reasoning.clear();
                let content = match content {
                    Value::String(s) => json!(s),
                    Value::Array(parts) => {
                        let mut out = Vec::new();
                        for (j, p) in parts.iter().enumerate() {
                            let ppath = format!("{path}.content[{j}]");
                            match type_of(p) {
                                "input_text" | "output_text" | "text" => out.push(
                                    json!({"type": "text", "text": str_at(p, "text").unwrap_or_default()}),
                                ),
                                "input_image" => out.push(image_part(p, &ppath)?),
                                "input_file" => return Err(file_refused(&ppath)),
                                _ => {}
                            }
                        }
                        match out.as_slice() {
                            [only] if type_of(only) == "text" => only["text"].clone(),
                            _ => Value::Array(out),
                        }
                    }
                    _ => return Err(bad_content(path)),
                };
                self.out.push(json!({"role": "user", "content": content}));
            }
            _ => {
                return Err(TranslateError::at(
                    format!("{path}.role"),
                    "must be user, assistant, system or developer",
                ));
            }
        }
        Ok(())
    }
}

/// The text of a message's content: a string, or its text, output_text and refusal parts.
fn texts<'a>(content: &'a Value, path: &str) -> Result<Vec<&'a str>> {
    match content {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(parts) => {
            let mut out = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                match type_of(p) {
                    "input_file" => return Err(file_refused(&format!("{path}.content[{j}]"))),
                    "refusal" => out.extend(str_at(p, "refusal")),
                    _ => out.extend(str_at(p, "text")),
                }
            }
            Ok(out)
        }
        _ => Err(bad_content(path)),
    }
}

fn bad_content(path: &str) -> TranslateError {
    TranslateError::at(
        format!("{path}.content"),
        "must be a string or an array of content parts",
    )
}

fn file_refused(path: &str) -> TranslateError {
    TranslateError::at(
        path,
        "input_file parts cannot be sent to this model; send the text instead",
    )
}

/// An `input_image` part as a chat `image_url` part.
fn image_part(p: &Value, path: &str) -> Result<Value> {
    let url = str_at(p, "image_url").ok_or_else(|| {
        TranslateError::at(
            format!("{path}.image_url"),
            "is required (file_id images cannot be translated)",
        )
    })?;
    let mut image = Map::new();
    image.insert("url".into(), json!(url));
    if let Some(d) = str_at(p, "detail").filter(|d| matches!(*d, "low" | "high" | "auto")) {
        image.insert("detail".into(), json!(d));
    }
    Ok(json!({"type": "image_url", "image_url": image}))
}

/// A reasoning item's text: its `reasoning_text` content, else what the gateway sealed in its
/// `encrypted_content` (Codex echoes `content: null`), else nothing (summaries are not the
/// reasoning itself, and another server's blob is opaque).
fn reasoning_text(item: &Value) -> String {
    let content: String = item
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| str_at(c, "text"))
        .collect();
    if !content.is_empty() {
        return content;
    }
    str_at(item, "encrypted_content")
        .and_then(reasoning::open)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_refused_but_absent_store_is_fine() {
        for (body, param) in [
            (
                json!({"model": "m", "previous_response_id": "resp_1"}),
                "previous_response_id",
            ),
            (
                json!({"model": "m", "conversation": "conv_1"}),
                "conversation",
            ),
            (json!({"model": "m", "store": true}), "store"),
            (json!({"model": "m", "background": true}), "background"),
        ] {
            assert_eq!(
                request_to_chat(&body).unwrap_err().param.as_deref(),
                Some(param)
            );
        }
        assert!(
            request_to_chat(&json!({"model": "m", "input": "hi", "previous_response_id": null}))
                .is_ok()
        );
    }

    #[test]
    fn output_items_fold_into_one_assistant_message() {
        let chat = request_to_chat(&json!({"model": "m", "input": [
            {"role": "user", "content": "hi"},
            {"type": "reasoning", "id": "rs_1", "summary": [], "content": null,
             "encrypted_content": reasoning::seal("thought")},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "calling"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "one"},
            {"type": "function_call_output", "call_id": "c2", "output": [
                {"type": "input_text", "text": "two"}, {"type": "input_image", "image_url": "data:image/png;base64,AA"}]},
        ]}))
        .unwrap();
        let m = chat["messages"].as_array().unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(m[1]["content"], "calling");
        assert_eq!(m[1]["reasoning_content"], "thought");
        assert_eq!(m[1]["tool_calls"][1]["id"], "c2");
        assert_eq!(m[3]["content"], "two");
        assert_eq!(m[4]["content"][0]["type"], "image_url");
    }
}
