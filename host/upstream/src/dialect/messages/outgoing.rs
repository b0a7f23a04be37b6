//! A chat-completions request as an Anthropic Messages request, for an upstream that speaks only
//! Messages (Anthropic itself, as a frontier fallback).

use serde_json::{Map, Value, json};

use crate::dialect::{TranslateError, str_at, type_of};

type Result<T> = std::result::Result<T, TranslateError>;

/// `max_tokens` when the chat request sets none: Messages requires one, and 4096 is what every
/// Claude model accepts.
const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Thinking budgets for `reasoning_effort` low, medium and high.
const BUDGETS: [(&str, u64); 3] = [("low", 2048), ("medium", 8192), ("high", 24576)];

/// Translates a chat-completions body to a Messages body. See `docs/dialects.md`.
pub fn request_from_chat(chat: &Value) -> Result<Value> {
    let chat = chat
        .as_object()
        .ok_or_else(|| TranslateError::body("request body must be a JSON object"))?;
    let mut out = Map::new();
    let model = chat
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::at("model", "is required and must be a string"))?;
    out.insert("model".into(), json!(model));
    if chat.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err(TranslateError::at(
            "n",
            "this model returns one choice per request; send n: 1",
        ));
    }
    if let Some(format) = chat.get("response_format").map(type_of)
        && matches!(format, "json_object" | "json_schema")
    {
        return Err(TranslateError::at(
            "response_format",
            "JSON output modes cannot be translated for this model; describe the format in the prompt instead",
        ));
    }

    let items = chat
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::at("messages", "is required and must be an array"))?;
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut last_assistant_calls = false;
    for (i, m) in items.iter().enumerate() {
        let content = m.get("content").unwrap_or(&Value::Null);
        let (role, blocks) = match str_at(m, "role").unwrap_or_default() {
            "system" | "developer" => {
                let text = texts(content).join("\n\n");
                if !text.is_empty() {
                    system.push(text);
                }
                continue;
            }
            "user" => (
                "user",
                user_blocks(content, &format!("messages[{i}].content"))?,
            ),
            "assistant" => {
                let blocks = assistant_blocks(i, m)?;
                last_assistant_calls = blocks.iter().any(|b| type_of(b) == "tool_use");
                ("assistant", blocks)
            }
            "tool" => ("user", vec![tool_result(i, m)?]),
            _ => {
                return Err(TranslateError::at(
                    format!("messages[{i}].role"),
                    "must be system, developer, user, assistant or tool",
                ));
            }
        };
        if blocks.is_empty() {
            continue;
        }
        // Messages requires user and assistant turns to alternate: merge neighbours.
        match turns.last_mut() {
            Some((r, prev)) if *r == role => prev.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    // Anthropic rejects a final assistant turn (a prefill) that ends in whitespace.
    if let Some(("assistant", blocks)) = turns.last_mut()
        && let Some(Value::Object(last)) = blocks.last_mut()
        && let Some(Value::String(text)) = last.get_mut("text")
    {
        let trimmed = text.trim_end().len();
        text.truncate(trimmed);
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, blocks)| match blocks.as_slice() {
            [only] if type_of(only) == "text" => {
                json!({"role": role, "content": only.get("text").cloned().unwrap_or_default()})
            }
            _ => json!({"role": role, "content": blocks}),
        })
        .collect();
    if !system.is_empty() {
        out.insert("system".into(), json!(system.join("\n\n")));
    }
    out.insert("messages".into(), Value::Array(messages));

    let max_tokens = chat
        .get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| chat.get("max_tokens").and_then(Value::as_u64))
        .unwrap_or(DEFAULT_MAX_TOKENS);
    out.insert("max_tokens".into(), json!(max_tokens));
    let stop: Vec<Value> = match chat.get("stop") {
        Some(Value::String(s)) => vec![json!(s)],
        Some(Value::Array(list)) => list.iter().filter(|s| s.is_string()).cloned().collect(),
        _ => Vec::new(),
    };
    if !stop.is_empty() {
        out.insert("stop_sequences".into(), Value::Array(stop));
    }
    if let Some(t) = chat.get("temperature").filter(|t| t.is_number()) {
        // Chat's range is 0-2, Anthropic's 0-1.
        let clamped = match t.as_f64() {
            Some(f) if f > 1.0 => json!(1.0),
            _ => t.clone(),
        };
        out.insert("temperature".into(), clamped);
    }
    if let Some(p) = chat.get("top_p").filter(|p| p.is_number()) {
        out.insert("top_p".into(), p.clone());
    }
    let forced_tool = tools(chat, &mut out)?;
    thinking(
        chat,
        max_tokens,
        forced_tool || last_assistant_calls,
        &mut out,
    );
    if let Some(user) = chat
        .get("user")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
    {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    if let Some(stream) = chat.get("stream").filter(|s| s.is_boolean()) {
        out.insert("stream".into(), stream.clone());
    }
    Ok(Value::Object(out))
}

/// The texts of a chat content (a string, or the `text` of its parts).
fn texts(content: &Value) -> Vec<&str> {
    match content {
        Value::String(s) => vec![s.as_str()],
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| str_at(p, "text").or_else(|| str_at(p, "refusal")))
            .collect(),
        _ => Vec::new(),
    }
}

/// User content as blocks: text (empty text dropped: Anthropic refuses it) and images.
fn user_blocks(content: &Value, path: &str) -> Result<Vec<Value>> {
    let parts = match content {
        Value::String(s) if s.is_empty() => return Ok(Vec::new()),
        Value::String(s) => return Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(parts) => parts,
        Value::Null => return Ok(Vec::new()),
        _ => {
            return Err(TranslateError::at(
                path,
                "must be a string or an array of parts",
            ));
        }
    };
    let mut blocks = Vec::new();
    for (j, p) in parts.iter().enumerate() {
        match type_of(p) {
            "text" => {
                if let Some(t) = str_at(p, "text").filter(|t| !t.is_empty()) {
                    blocks.push(json!({"type": "text", "text": t}));
                }
            }
            "image_url" => blocks.push(image_block(p, &format!("{path}[{j}]"))?),
            "input_audio" | "file" => {
                return Err(TranslateError::at(
                    format!("{path}[{j}]"),
                    "audio and file parts cannot be translated for this model",
                ));
            }
            _ => {}
        }
    }
    Ok(blocks)
}

/// A chat `image_url` part as an image block: data URLs become base64 sources.
fn image_block(p: &Value, path: &str) -> Result<Value> {
    let url = match p.get("image_url") {
        Some(Value::String(u)) => u.as_str(),
        Some(obj) => str_at(obj, "url").unwrap_or_default(),
        None => "",
    };
    let bad = || {
        TranslateError::at(
            format!("{path}.image_url.url"),
            "must be an http(s) URL or a base64 data URL",
        )
    };
    if let Some(rest) = url.strip_prefix("data:") {
        let (media, data) = rest.split_once(";base64,").ok_or_else(bad)?;
        return Ok(
            json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}),
        );
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(bad())
}

/// An assistant message as blocks: its text, then one tool_use per tool call.
/// `reasoning_content` is dropped: Anthropic only accepts thinking it signed itself.
fn assistant_blocks(i: usize, m: &Value) -> Result<Vec<Value>> {
    let mut blocks = Vec::new();
    let text: String = texts(m.get("content").unwrap_or(&Value::Null)).concat();
    if !text.is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
    for (j, call) in m
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = format!("messages[{i}].tool_calls[{j}]");
        let id = str_at(call, "id")
            .ok_or_else(|| TranslateError::at(format!("{path}.id"), "is required"))?;
        let f = call.get("function").unwrap_or(&Value::Null);
        let name = str_at(f, "name")
            .ok_or_else(|| TranslateError::at(format!("{path}.function.name"), "is required"))?;
        let arguments = str_at(f, "arguments").unwrap_or_default();
        let input = if arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str::<Value>(arguments)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| {
                    TranslateError::at(
                        format!("{path}.function.arguments"),
                        "must be a JSON object encoded as a string",
                    )
                })?
        };
        blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    Ok(blocks)
}

/// A chat `tool` message as a tool_result block (text stays a string; parts become blocks).
fn tool_result(i: usize, m: &Value) -> Result<Value> {
    let id = str_at(m, "tool_call_id")
        .ok_or_else(|| TranslateError::at(format!("messages[{i}].tool_call_id"), "is required"))?;
    let content = match m.get("content") {
        Some(Value::String(s)) => json!(s),
        Some(c @ Value::Array(_)) => {
            Value::Array(user_blocks(c, &format!("messages[{i}].content"))?)
        }
        _ => json!(""),
    };
    Ok(json!({"type": "tool_result", "tool_use_id": id, "content": content}))
}

/// `tools` and `tool_choice`; returns whether the choice forces a tool (which Anthropic does not
/// allow together with thinking).
fn tools(chat: &Map<String, Value>, out: &mut Map<String, Value>) -> Result<bool> {
    let mut list = Vec::new();
    for (i, t) in chat
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if type_of(t) != "function" {
            continue;
        }
        let f = t.get("function").unwrap_or(&Value::Null);
        let name = str_at(f, "name").ok_or_else(|| {
            TranslateError::at(format!("tools[{i}].function.name"), "is required")
        })?;
        let mut tool = Map::new();
        tool.insert("name".into(), json!(name));
        if let Some(d) = str_at(f, "description") {
            tool.insert("description".into(), json!(d));
        }
        let schema = f
            .get("parameters")
            .filter(|p| p.is_object())
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        tool.insert("input_schema".into(), schema);
        if let Some(strict) = f.get("strict").filter(|s| s.is_boolean()) {
            tool.insert("strict".into(), strict.clone());
        }
        list.push(Value::Object(tool));
    }
    if list.is_empty() {
        return Ok(false);
    }
    out.insert("tools".into(), Value::Array(list));
    let mut choice = match chat.get("tool_choice") {
        Some(Value::String(s)) => match s.as_str() {
            "required" => Some(json!({"type": "any"})),
            "none" => Some(json!({"type": "none"})),
            _ => Some(json!({"type": "auto"})),
        },
        Some(c @ Value::Object(_)) => {
            let name = c.get("function").and_then(|f| str_at(f, "name"));
            name.map(|n| json!({"type": "tool", "name": n}))
        }
        _ => None,
    };
    if chat.get("parallel_tool_calls").and_then(Value::as_bool) == Some(false) {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if type_of(c) != "none" {
            c["disable_parallel_tool_use"] = json!(true);
        }
    }
    let forced = choice
        .as_ref()
        .is_some_and(|c| matches!(type_of(c), "any" | "tool"));
    if let Some(c) = choice {
        out.insert("tool_choice".into(), c);
    }
    Ok(forced)
}

/// `reasoning_effort` → extended thinking with a fixed budget, only where Anthropic accepts it:
/// the budget below `max_tokens`, no forced tool, and no unsigned tool-use turn to continue
/// (Anthropic wants that turn to open with its own signed thinking block, which a chat history
/// does not have). Thinking also rules out a custom temperature and a low top_p.
fn thinking(
    chat: &Map<String, Value>,
    max_tokens: u64,
    blocked: bool,
    out: &mut Map<String, Value>,
) {
    let effort = match chat.get("reasoning_effort").and_then(Value::as_str) {
        Some("minimal") => "low",
        Some("xhigh" | "max") => "high",
        Some(e) => e,
        None => return,
    };
    let Some(&(_, budget)) = BUDGETS.iter().find(|(e, _)| *e == effort) else {
        return;
    };
    if blocked || max_tokens <= budget {
        return;
    }
    out.insert(
        "thinking".into(),
        json!({"type": "enabled", "budget_tokens": budget}),
    );
    out.remove("temperature");
    if out
        .get("top_p")
        .and_then(Value::as_f64)
        .is_some_and(|p| p < 0.95)
    {
        out.remove("top_p");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_tool_and_consecutive_messages_are_folded() {
        let m = request_from_chat(&json!({"model": "claude", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "reasoning_content": "hmm",
             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "one"},
            {"role": "tool", "tool_call_id": "c2", "content": "two"},
            {"role": "developer", "content": [{"type": "text", "text": "late rule"}]},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        ], "stop": "END", "parallel_tool_calls": false,
           "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}))
        .unwrap();
        assert_eq!(m["system"], "be brief\n\nlate rule");
        assert_eq!(m["max_tokens"], 4096);
        assert_eq!(m["stop_sequences"], json!(["END"]));
        assert_eq!(
            m["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        let msgs = m["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[1]["content"][0]["input"], json!({"a": 1}));
        assert_eq!(msgs[1]["content"][1]["input"], json!({}));
        assert_eq!(
            msgs[2]["content"],
            json!([
                {"type": "tool_result", "tool_use_id": "c1", "content": "one"},
                {"type": "tool_result", "tool_use_id": "c2", "content": "two"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
            ])
        );
    }

    #[test]
    fn untranslatable_fields_are_refused() {
        let bad_args = json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
            {"id": "c", "function": {"name": "f", "arguments": "{not json"}}]}]});
        assert_eq!(
            request_from_chat(&bad_args).unwrap_err().param.as_deref(),
            Some("messages[0].tool_calls[0].function.arguments")
        );
        let n = json!({"model": "m", "messages": [], "n": 2});
        assert_eq!(
            request_from_chat(&n).unwrap_err().param.as_deref(),
            Some("n")
        );
        let rf = json!({"model": "m", "messages": [], "response_format": {"type": "json_object"}});
        assert_eq!(
            request_from_chat(&rf).unwrap_err().param.as_deref(),
            Some("response_format")
        );
    }

    #[test]
    fn effort_becomes_a_budget_only_where_anthropic_takes_it() {
        let req = |max: u64, choice: Value| {
            request_from_chat(
                &json!({"model": "m", "max_tokens": max, "reasoning_effort": "medium",
                "temperature": 0.2, "tool_choice": choice,
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "messages": [{"role": "user", "content": "x"}]}),
            )
            .unwrap()
        };
        let ok = req(10000, json!("auto"));
        assert_eq!(
            ok["thinking"],
            json!({"type": "enabled", "budget_tokens": 8192})
        );
        assert_eq!(ok.get("temperature"), None);
        assert_eq!(req(8192, json!("auto")).get("thinking"), None);
        let forced = req(10000, json!("required"));
        assert_eq!(forced.get("thinking"), None);
        assert_eq!(forced["temperature"], 0.2);
    }
}
