//! An Anthropic Messages request as a chat-completions request (the `/v1/messages` front door).

use serde_json::{Map, Value, json};

use crate::dialect::{TranslateError, str_at, type_of, user_id};

type Result<T> = std::result::Result<T, TranslateError>;

/// Translates a Messages request body to a chat-completions body. See `docs/dialects.md` for
/// every field; anything not listed there is dropped.
pub fn request_to_chat(body: &Value) -> Result<Value> {
    let body = body
        .as_object()
        .ok_or_else(|| TranslateError::body("request body must be a JSON object"))?;
    let mut out = Map::new();
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::at("model", "is required and must be a string"))?;
    out.insert("model".into(), json!(model));
    let max_tokens = body
        .get("max_tokens")
        .ok_or_else(|| TranslateError::at("max_tokens", "is required"))?
        .as_u64()
        .ok_or_else(|| TranslateError::at("max_tokens", "must be a non-negative integer"))?;
    out.insert("max_tokens".into(), json!(max_tokens));

    let mut messages = Vec::new();
    if let Some(system) = body.get("system").filter(|s| !s.is_null()) {
        let text = system_text(system, "system")?;
        if !text.is_empty() {
            messages.push(json!({"role": "system", "content": text}));
        }
    }
    let items = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::at("messages", "is required and must be an array"))?;
    for (i, m) in items.iter().enumerate() {
        let role = str_at(m, "role").unwrap_or_default();
        let content = m.get("content").unwrap_or(&Value::Null);
        match role {
            "user" => user_turn(i, content, &mut messages)?,
            "assistant" => messages.push(assistant_turn(i, content)?),
            "system" => {
                let text = system_text(content, &format!("messages[{i}].content"))?;
                if !text.is_empty() {
                    messages.push(json!({"role": "system", "content": text}));
                }
            }
            _ => {
                return Err(TranslateError::at(
                    format!("messages[{i}].role"),
                    "must be \"user\", \"assistant\" or \"system\"",
                ));
            }
        }
    }
    out.insert("messages".into(), Value::Array(messages));

    if let Some(stop) = body.get("stop_sequences").and_then(Value::as_array)
        && !stop.is_empty()
    {
        out.insert("stop".into(), Value::Array(stop.clone()));
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = body.get(key).filter(|v| v.is_number()) {
            out.insert(key.into(), v.clone());
        }
    }
    tools(body, &mut out)?;
    thinking(body, &mut out);
    if let Some(user) = body
        .get("metadata")
        .and_then(|m| str_at(m, "user_id"))
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

/// A system prompt (a string, or text blocks joined by blank lines: Claude Code sends three).
fn system_text(v: &Value, param: &str) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => Ok(blocks
            .iter()
            .filter(|b| type_of(b) == "text")
            .filter_map(|b| str_at(b, "text"))
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n\n")),
        _ => Err(TranslateError::at(
            param,
            "must be a string or an array of text blocks",
        )),
    }
}

fn blocks(i: usize, content: &Value) -> Result<&[Value]> {
    content.as_array().map(Vec::as_slice).ok_or_else(|| {
        TranslateError::at(
            format!("messages[{i}].content"),
            "must be a string or an array of content blocks",
        )
    })
}

/// A user turn: its `tool_result` blocks first, as `tool` messages (chat wants them right after
/// the assistant's tool calls), then one user message with the rest. Images inside tool results
/// open that user message, since a chat `tool` message carries text only.
fn user_turn(i: usize, content: &Value, out: &mut Vec<Value>) -> Result<()> {
    if let Value::String(s) = content {
        out.push(json!({"role": "user", "content": s}));
        return Ok(());
    }
    let mut parts = Vec::new();
    let mut result_images = Vec::new();
    for (j, b) in blocks(i, content)?.iter().enumerate() {
        let path = format!("messages[{i}].content[{j}]");
        match type_of(b) {
            "text" => parts.push(text_part(str_at(b, "text").unwrap_or_default())),
            "image" => parts.push(image_part(b, &path)?),
            "document" => parts.push(text_part(&document_text(b, &path)?)),
            "tool_result" => out.push(tool_message(b, &path, &mut result_images)?),
            // thinking, server tool results, search results, container uploads: nothing chat
            // can say in a user turn.
            _ => {}
        }
    }
    result_images.extend(parts);
    let parts = result_images;
    match parts.as_slice() {
        [] => {}
        [only] if type_of(only) == "text" => {
            out.push(
                json!({"role": "user", "content": only.get("text").cloned().unwrap_or_default()}),
            );
        }
        _ => out.push(json!({"role": "user", "content": parts})),
    }
    Ok(())
}

fn text_part(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

/// An image block as a chat `image_url` part (base64 data becomes a data URL).
pub(super) fn image_part(b: &Value, path: &str) -> Result<Value> {
    let source = b.get("source").unwrap_or(&Value::Null);
    let url = match type_of(source) {
        "base64" => {
            let media = str_at(source, "media_type").ok_or_else(|| {
                TranslateError::at(format!("{path}.source.media_type"), "is required")
            })?;
            let data = str_at(source, "data")
                .ok_or_else(|| TranslateError::at(format!("{path}.source.data"), "is required"))?;
            format!("data:{media};base64,{data}")
        }
        "url" => str_at(source, "url")
            .ok_or_else(|| TranslateError::at(format!("{path}.source.url"), "is required"))?
            .to_owned(),
        _ => {
            return Err(TranslateError::at(
                format!("{path}.source"),
                "only base64 and url image sources can be translated (file references cannot)",
            ));
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// A plain-text document as text (its title as a header line). PDFs and files cannot be carried.
fn document_text(b: &Value, path: &str) -> Result<String> {
    let source = b.get("source").unwrap_or(&Value::Null);
    let body = match type_of(source) {
        "text" => str_at(source, "data").unwrap_or_default().to_owned(),
        "content" => match source.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(inner)) => inner
                .iter()
                .filter(|c| type_of(c) == "text")
                .filter_map(|c| str_at(c, "text"))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        },
        _ => {
            return Err(TranslateError::at(
                path,
                "PDF and file documents cannot be sent to this model; send the text instead",
            ));
        }
    };
    Ok(match str_at(b, "title").filter(|t| !t.is_empty()) {
        Some(title) => format!("{title}\n{body}"),
        None => body,
    })
}

/// A `tool_result` block as a chat `tool` message; its images go to `images`.
fn tool_message(b: &Value, path: &str, images: &mut Vec<Value>) -> Result<Value> {
    let id = str_at(b, "tool_use_id")
        .ok_or_else(|| TranslateError::at(format!("{path}.tool_use_id"), "is required"))?;
    let mut text = match b.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(inner)) => {
            let mut texts = Vec::new();
            for (k, c) in inner.iter().enumerate() {
                match type_of(c) {
                    "text" => texts.push(str_at(c, "text").unwrap_or_default()),
                    "image" => images.push(image_part(c, &format!("{path}.content[{k}]"))?),
                    _ => {}
                }
            }
            texts.join("\n")
        }
        _ => String::new(),
    };
    // Chat has no error flag on a tool result; say it in the text so the model still knows.
    if b.get("is_error").and_then(Value::as_bool) == Some(true) {
        text.insert_str(0, "Error: ");
    }
    Ok(json!({"role": "tool", "tool_call_id": id, "content": text}))
}

/// An assistant turn: text blocks joined, thinking as `reasoning_content` (DeepSeek needs earlier
/// reasoning sent back when tools are in play), tool_use as `tool_calls`.
fn assistant_turn(i: usize, content: &Value) -> Result<Value> {
    if let Value::String(s) = content {
        return Ok(json!({"role": "assistant", "content": s}));
    }
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for (j, b) in blocks(i, content)?.iter().enumerate() {
        match type_of(b) {
            "text" => text.push_str(str_at(b, "text").unwrap_or_default()),
            "thinking" => reasoning.push_str(str_at(b, "thinking").unwrap_or_default()),
            "tool_use" => {
                let path = format!("messages[{i}].content[{j}]");
                let id = str_at(b, "id")
                    .ok_or_else(|| TranslateError::at(format!("{path}.id"), "is required"))?;
                let name = str_at(b, "name")
                    .ok_or_else(|| TranslateError::at(format!("{path}.name"), "is required"))?;
                let arguments = match b.get("input") {
                    None | Some(Value::Null) => "{}".to_owned(),
                    Some(input) => input.to_string(),
                };
                calls.push((id.to_owned(), name.to_owned(), arguments));
            }
            // redacted_thinking (opaque to any other model), server_tool_use and server tool
            // results (run by Anthropic's servers), anything else: dropped.
            _ => {}
        }
    }
    Ok(crate::dialect::assistant_message(text, reasoning, calls))
}

/// `tools`, `tool_choice` and `disable_parallel_tool_use`. Server tools (a `type` other than
/// `custom`) run on Anthropic's side and are dropped; with no client tool left, the choice goes
/// too (chat upstreams refuse a tool choice without tools).
fn tools(body: &Map<String, Value>, out: &mut Map<String, Value>) -> Result<()> {
    let mut functions = Vec::new();
    for (i, t) in body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !matches!(t.get("type").and_then(Value::as_str), None | Some("custom")) {
            continue;
        }
        let name = str_at(t, "name")
            .ok_or_else(|| TranslateError::at(format!("tools[{i}].name"), "is required"))?;
        let mut f = Map::new();
        f.insert("name".into(), json!(name));
        if let Some(d) = str_at(t, "description") {
            f.insert("description".into(), json!(d));
        }
        let schema = t
            .get("input_schema")
            .filter(|s| s.is_object())
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        f.insert("parameters".into(), schema);
        if let Some(strict) = t.get("strict").filter(|s| s.is_boolean()) {
            f.insert("strict".into(), strict.clone());
        }
        functions.push(json!({"type": "function", "function": f}));
    }
    if functions.is_empty() {
        return Ok(());
    }
    out.insert("tools".into(), Value::Array(functions));
    let Some(choice) = body.get("tool_choice").filter(|c| c.is_object()) else {
        return Ok(());
    };
    let mapped = match type_of(choice) {
        "auto" => Some(json!("auto")),
        "any" => Some(json!("required")),
        "none" => Some(json!("none")),
        "tool" => {
            let name = str_at(choice, "name")
                .ok_or_else(|| TranslateError::at("tool_choice.name", "is required"))?;
            Some(json!({"type": "function", "function": {"name": name}}))
        }
        _ => None,
    };
    if let Some(m) = mapped {
        out.insert("tool_choice".into(), m);
    }
    if choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        == Some(true)
    {
        out.insert("parallel_tool_calls".into(), json!(false));
    }
    Ok(())
}

/// `output_config.effort` (or, failing that, a `budget_tokens`) → `reasoning_effort`; thinking
/// `disabled` → `reasoning_effort: "none"`. Only the standard field is sent: DeepSeek's own
/// `thinking` switch (on by default there) would make OpenAI's chat API, a frontier fallback,
/// refuse the request.
fn thinking(body: &Map<String, Value>, out: &mut Map<String, Value>) {
    let thinking = body.get("thinking").unwrap_or(&Value::Null);
    let enabled = match type_of(thinking) {
        "enabled" | "adaptive" => Some(true),
        "disabled" => Some(false),
        _ => None,
    };
    let effort = body
        .get("output_config")
        .and_then(|c| str_at(c, "effort"))
        .and_then(|e| match e {
            "low" | "medium" | "high" => Some(e),
            // Chat's scale tops out at high (OpenAI's), which DeepSeek reads as its own high.
            "xhigh" | "max" => Some("high"),
            _ => None,
        })
        .or_else(|| {
            let budget = thinking.get("budget_tokens").and_then(Value::as_u64)?;
            (enabled == Some(true)).then_some(match budget {
                0..=4096 => "low",
                4097..=16384 => "medium",
                _ => "high",
            })
        });
    match (effort, enabled) {
        (Some(e), _) => {
            out.insert("reasoning_effort".into(), json!(e));
        }
        (None, Some(false)) => {
            out.insert("reasoning_effort".into(), json!("none"));
        }
        (None, _) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_tokens_is_required() {
        let err = request_to_chat(&json!({"model": "m", "messages": []})).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("max_tokens"));
    }

    #[test]
    fn tool_results_come_before_the_rest_of_the_turn() {
        let chat = request_to_chat(&json!({"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "and then"},
                {"type": "tool_result", "tool_use_id": "t1", "is_error": true, "content": [
                    {"type": "text", "text": "boom"},
                    {"type": "image", "source": {"type": "url", "url": "https://x/i.png"}}]}]}]}))
        .unwrap();
        assert_eq!(
            chat["messages"],
            json!([
                {"role": "tool", "tool_call_id": "t1", "content": "Error: boom"},
                {"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "https://x/i.png"}},
                    {"type": "text", "text": "and then"}]}
            ])
        );
    }

    #[test]
    fn pdfs_and_file_images_are_refused_with_their_path() {
        let pdf = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "AA"}}]}]});
        assert_eq!(
            request_to_chat(&pdf).unwrap_err().param.as_deref(),
            Some("messages[0].content[0]")
        );
        let file = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "file", "file_id": "f"}}]}]});
        assert_eq!(
            request_to_chat(&file).unwrap_err().param.as_deref(),
            Some("messages[0].content[0].source")
        );
    }

    #[test]
    fn effort_comes_from_output_config_or_the_budget() {
        let base = |extra: Value| {
            let mut b = json!({"model": "m", "max_tokens": 5, "messages": []});
            for (k, v) in extra.as_object().unwrap() {
                b[k] = v.clone();
            }
            request_to_chat(&b).unwrap()
        };
        let c = base(json!({"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}}));
        assert_eq!(
            (c.get("thinking"), &c["reasoning_effort"]),
            (None, &json!("high")),
            "only the standard field: OpenAI's chat API refuses DeepSeek's switch"
        );
        let c = base(json!({"thinking": {"type": "enabled", "budget_tokens": 8000}}));
        assert_eq!(c["reasoning_effort"], "medium");
        let c = base(json!({"thinking": {"type": "disabled", "budget_tokens": 8000}}));
        assert_eq!(c["reasoning_effort"], "none");
        let c = base(json!({"thinking": {"type": "adaptive"}}));
        assert_eq!(c.get("reasoning_effort"), None, "the upstream's default");
    }
}
