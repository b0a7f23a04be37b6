//! Parses a chat-completions body once: validates the fields the gateway relies on, records where
//! the fields it may rewrite sit in the body, and computes what the policy's summary needs.
//!
//! The body itself is never re-serialised: unknown fields pass through byte for byte, and the
//! rewrite module splices the few fields that change.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

/// Bytes of the last user message handed to a policy.
pub const EXCERPT_BYTES: usize = 2048;
/// Tokens assumed per image part (the request only carries a URL or base64 data).
const TOKENS_PER_IMAGE: u64 = 765;
/// Tokens of framing per message (role, separators).
const TOKENS_PER_MESSAGE: u64 = 4;
/// Deepest nesting of arrays and objects accepted anywhere in a body.
pub const MAX_DEPTH: usize = 100;
/// Most `metadata` entries read as routing hints.
const MAX_METADATA_HINTS: usize = 16;

/// Why a body was refused. Both become a 400 `invalid_request_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON, or not an object.
    #[error("{0}")]
    Malformed(String),
    /// A known field has the wrong type or value; `param` is its path (e.g. `messages[2].role`).
    #[error("{param}: {message}")]
    Invalid { param: String, message: String },
}

impl ParseError {
    fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        ParseError::Invalid {
            param: param.into(),
            message: message.into(),
        }
    }

    /// The request field at fault, if there is one.
    pub fn param(&self) -> Option<&str> {
        match self {
            ParseError::Invalid { param, .. } => Some(param),
            ParseError::Malformed(_) => None,
        }
    }
}

/// Which completion-length field the client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxTokensField {
    MaxTokens,
    MaxCompletionTokens,
}

/// A located field: its parsed value and the byte range of its JSON value in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    pub value: T,
    pub span: Range<usize>,
}

/// What the policy summary needs from the conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationStats {
    pub estimated_input_tokens: u64,
    pub message_count: u32,
    pub tools_offered: u32,
    pub tool_calls_so_far: u32,
    /// Messages after the last user message, system messages aside: 0 when the user has just
    /// spoken, more inside an agent's tool loop.
    pub messages_since_user: u32,
    pub has_images: bool,
    pub last_user_excerpt: String,
    /// String entries of `metadata`, keys lower-cased.
    pub metadata_hints: Vec<(String, String)>,
    /// The client's `user` (an end-user id), if it sent one.
    pub user: Option<String>,
    /// A hash of the conversation's opening (its first two messages, usually the system prompt
    /// and the first user turn): stable across the turns of one conversation, for routing it to
    /// the upstream whose prompt cache already holds it. See [`prefix_key`].
    pub prefix_key: u64,
}

/// A validated chat-completions request.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// The body as received.
    pub body: Bytes,
    pub model: Located<String>,
    pub stream: bool,
    /// `stream_options.include_usage` as sent, and where `stream_options` sits.
    pub stream_options: Option<Located<Option<bool>>>,
    pub max_tokens: Option<(MaxTokensField, Located<u64>)>,
    pub reasoning_effort: Option<Located<String>>,
    /// Offset just past the body's opening `{`, where new fields are inserted.
    pub insert_at: usize,
    pub stats: ConversationStats,
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    messages: Option<Vec<WireMessage<'a>>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(borrow, default)]
    stream_options: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_completion_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning_effort: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tools: Option<&'a RawValue>,
    #[serde(borrow, default)]
    metadata: Option<BTreeMap<String, &'a RawValue>>,
    #[serde(borrow, default)]
    user: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct WireMessage<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(default)]
    tool_calls: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    function_call: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct WirePart<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct WireStreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

impl ChatRequest {
    /// Parses and validates `body`. `max_messages` bounds the conversation length.
    pub fn parse(body: Bytes, max_messages: usize) -> Result<ChatRequest, ParseError> {
        let text = std::str::from_utf8(&body).map_err(|e| {
            ParseError::Malformed(format!(
                "request body is not valid UTF-8 (at byte {})",
                e.valid_up_to()
            ))
        })?;
        let Some(open) = text.find(|c: char| !c.is_ascii_whitespace()) else {
            return Err(ParseError::Malformed("request body is empty".into()));
        };
        if !text[open..].starts_with('{') {
            return Err(ParseError::Malformed(
                "request body must be a JSON object".into(),
            ));
        }
        if let Some(depth) = nesting_exceeds(text.as_bytes(), MAX_DEPTH) {
            return Err(ParseError::Malformed(format!(
                "request body nests arrays and objects deeper than {depth} levels"
            )));
        }
        let wire: Wire<'_> = serde_json::from_str(text).map_err(|e| describe_error(text, e))?;
        let base = text.as_ptr() as usize;
        let span = |raw: &RawValue| {
            let start = raw.get().as_ptr() as usize - base;
            start..start + raw.get().len()
        };

        let model_raw = wire
            .model
            .ok_or_else(|| ParseError::invalid("model", "is required"))?;
        let model: String = serde_json::from_str(model_raw.get())
            .map_err(|_| ParseError::invalid("model", "must be a string"))?;
        if model.is_empty() {
            return Err(ParseError::invalid("model", "must not be empty"));
        }
        let messages = wire
            .messages
            .ok_or_else(|| ParseError::invalid("messages", "is required"))?;
        if messages.is_empty() {
            return Err(ParseError::invalid(
                "messages",
                "must contain at least one message",
            ));
        }
        if messages.len() > max_messages {
            return Err(ParseError::invalid(
                "messages",
                format!(
                    "has {} entries; at most {max_messages} are accepted",
                    messages.len()
                ),
            ));
        }

        let stream_options = match wire.stream_options {
            None => None,
            Some(raw) => {
                let opts: WireStreamOptions = serde_json::from_str(raw.get())
                    .ok()
                    .filter(|_| raw.get().starts_with('{'))
                    .ok_or_else(|| {
                        ParseError::invalid(
                            "stream_options",
                            "must be an object with a boolean `include_usage`",
                        )
                    })?;
                Some(Located {
                    value: opts.include_usage,
                    span: span(raw),
                })
            }
        };
        let count = |raw: &RawValue, name: &str| -> Result<Located<u64>, ParseError> {
            let value = serde_json::from_str::<u64>(raw.get())
                .map_err(|_| ParseError::invalid(name, "must be a non-negative integer"))?;
            Ok(Located {
                value,
                span: span(raw),
            })
        };
        let max_tokens = match (wire.max_completion_tokens, wire.max_tokens) {
            (Some(raw), _) => Some((
                MaxTokensField::MaxCompletionTokens,
                count(raw, "max_completion_tokens")?,
            )),
            (None, Some(raw)) => Some((MaxTokensField::MaxTokens, count(raw, "max_tokens")?)),
            (None, None) => None,
        };
        let reasoning_effort = match wire.reasoning_effort {
            None => None,
            Some(raw) => {
                let value: String = serde_json::from_str(raw.get())
                    .map_err(|_| ParseError::invalid("reasoning_effort", "must be a string"))?;
                Some(Located {
                    value,
                    span: span(raw),
                })
            }
        };

        let mut stats = conversation_stats(&messages)?;
        if let Some(raw) = wire.tools.filter(|t| t.get() != "null") {
            let tools: Vec<IgnoredAny> = serde_json::from_str(raw.get())
                .map_err(|_| ParseError::invalid("tools", "must be an array"))?;
            stats.tools_offered = tools.len() as u32;
            // Tool definitions are part of the prompt: charge them at the text rate.
            stats.estimated_input_tokens += raw.get().len() as u64 / 4;
        }
        stats.user = wire
            .user
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
            .filter(|u| !u.is_empty() && u.len() <= 256);
        if let Some(entries) = wire.metadata {
            stats.metadata_hints = entries
                .into_iter()
                .filter_map(|(k, v)| {
                    let value: String = serde_json::from_str(v.get()).ok()?;
                    Some((k.to_ascii_lowercase(), value))
                })
                .take(MAX_METADATA_HINTS)
                .collect();
        }

        Ok(ChatRequest {
            model: Located {
                value: model,
                span: span(model_raw),
            },
            stream: wire.stream.unwrap_or(false),
            stream_options,
            max_tokens,
            reasoning_effort,
            insert_at: open + 1,
            stats,
            body,
        })
    }

    /// Whether the client asked for usage in its stream (`stream_options.include_usage`).
    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options.as_ref().and_then(|o| o.value) == Some(true)
    }

    /// The completion cap the client asked for.
    pub fn max_output_tokens(&self) -> Option<u64> {
        self.max_tokens.as_ref().map(|(_, l)| l.value)
    }
}

fn conversation_stats(messages: &[WireMessage<'_>]) -> Result<ConversationStats, ParseError> {
    let mut stats = ConversationStats {
        message_count: messages.len() as u32,
        ..Default::default()
    };
    stats.prefix_key = prefix_key(
        messages
            .iter()
            .take(2)
            .map(|m| (&*m.role, m.content.map_or("", RawValue::get))),
    );
    let mut text_bytes: u64 = 0;
    let mut images: u64 = 0;
    let mut last_user: Option<usize> = None;
    for (i, m) in messages.iter().enumerate() {
        if m.role == "user" {
            last_user = Some(i);
        }
        if m.role == "assistant" {
            stats.tool_calls_so_far += m.tool_calls.as_ref().map_or(0, |c| c.len()) as u32;
            stats.tool_calls_so_far += u32::from(m.function_call.is_some());
        }
        match m.content.map(RawValue::get) {
            None | Some("null") => {}
            Some(raw) if raw.starts_with('"') => text_bytes += raw.len() as u64 - 2,
            Some(raw) if raw.starts_with('[') => {
                let parts: Vec<WirePart<'_>> = serde_json::from_str(raw).map_err(|e| {
                    ParseError::invalid(
                        format!("messages[{i}].content"),
                        format!("invalid content part: {e}"),
                    )
                })?;
                for part in parts {
                    match part.kind.as_ref() {
                        "image_url" | "input_image" | "image" => images += 1,
                        _ => text_bytes += part.text.map_or(0, |t| t.get().len() as u64),
                    }
                }
            }
            Some(_) => {
                return Err(ParseError::invalid(
                    format!("messages[{i}].content"),
                    "must be a string, an array of content parts, or null",
                ));
            }
        }
    }
    stats.has_images = images > 0;
    stats.estimated_input_tokens = text_bytes.div_ceil(4)
        + images * TOKENS_PER_IMAGE
        + messages.len() as u64 * TOKENS_PER_MESSAGE;
    if let Some(i) = last_user {
        stats.last_user_excerpt = excerpt(messages[i].content)?;
    }
    stats.messages_since_user = messages[last_user.map_or(0, |i| i + 1)..]
        .iter()
        .filter(|m| !matches!(&*m.role, "system" | "developer"))
        .count() as u32;
    Ok(stats)
}

/// The conversation key of a conversation opening with `messages` (role, raw JSON of the
/// content): XXH3-64 (a fixed, documented algorithm, so every replica and every build agrees)
/// over each message's role, a zero byte, its content's JSON text as sent, and a zero byte.
pub fn prefix_key<'a>(messages: impl IntoIterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for (role, content) in messages {
        h.update(role.as_bytes());
        h.update(&[0]);
        h.update(content.as_bytes());
        h.update(&[0]);
    }
    h.digest()
}

/// The start of a message's text, unescaped, at most [`EXCERPT_BYTES`].
fn excerpt(content: Option<&RawValue>) -> Result<String, ParseError> {
    let Some(raw) = content.map(RawValue::get) else {
        return Ok(String::new());
    };
    if raw.starts_with('"') {
        return Ok(json_string_prefix(raw, EXCERPT_BYTES));
    }
    let mut out = String::new();
    if raw.starts_with('[') {
        let parts: Vec<WirePart<'_>> = serde_json::from_str(raw).unwrap_or_default();
        for text in parts.iter().filter_map(|p| p.text) {
            if out.len() >= EXCERPT_BYTES {
                break;
            }
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&json_string_prefix(text.get(), EXCERPT_BYTES - out.len()));
        }
    }
    Ok(out)
}

/// Whether arrays and objects nest deeper than `limit` anywhere in `json` (returns the limit).
///
/// serde_json skips unknown fields iteratively, without its recursion limit, so the host checks
/// nesting itself. Inside strings it jumps from quote to quote with `memchr`, so text-heavy
/// prompts cost little.
fn nesting_exceeds(json: &[u8], limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => {
                // Skip to the closing quote, stepping over escapes.
                i += 1;
                loop {
                    // An escape at the very end leaves nothing to scan: unterminated.
                    let rest = json.get(i..).unwrap_or_default();
                    match memchr::memchr2(b'"', b'\\', rest) {
                        None => return None, // unterminated: the parser reports it
                        Some(off) if json[i + off] == b'\\' => i += off + 2,
                        Some(off) => {
                            i += off;
                            break;
                        }
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Some(limit);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Unescapes the start of a JSON string literal (quotes included in `raw`) into at most `max`
/// bytes, without decoding the rest: a 4 MB prompt costs no more than a short one here.
pub fn json_string_prefix(raw: &str, max: usize) -> String {
    let inner = raw.strip_prefix('"').unwrap_or(raw);
    let mut out = String::with_capacity(max.min(inner.len()));
    let mut chars = inner.chars();
    let push = |out: &mut String, c: char| -> bool {
        if out.len() + c.len_utf8() > max {
            return false;
        }
        out.push(c);
        true
    };
    loop {
        // Copy the run up to the next quote or backslash in one go (most of a prompt), bounded by
        // `max` at a character boundary; only escapes go through the decoder below.
        let rest = chars.as_str();
        let run = memchr::memchr2(b'"', b'\\', rest.as_bytes()).unwrap_or(rest.len());
        let room = max - out.len();
        if run > room {
            let mut end = room;
            while !rest.is_char_boundary(end) {
                end -= 1;
            }
            out.push_str(&rest[..end]);
            return out;
        }
        out.push_str(&rest[..run]);
        chars = rest[run..].chars();
        let Some(c) = chars.next() else { break };
        let decoded = match c {
            '"' => break,
            '\\' => match chars.next() {
                Some('n') => '\n',
                Some('t') => '\t',
                Some('r') => '\r',
                Some('b') => '\u{8}',
                Some('f') => '\u{c}',
                Some('u') => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let unit = u32::from_str_radix(&hex, 16).unwrap_or(0xFFFD);
                    if (0xD800..0xDC00).contains(&unit) {
                        // A high surrogate: combine with the following `\uDC00`-`\uDFFF`.
                        let rest = chars.as_str();
                        let low = rest
                            .strip_prefix("\\u")
                            .and_then(|r| r.get(..4))
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .filter(|l| (0xDC00..0xE000).contains(l));
                        match low {
                            Some(low) => {
                                chars = rest[6..].chars();
                                char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
                                    .unwrap_or('\u{FFFD}')
                            }
                            None => '\u{FFFD}',
                        }
                    } else {
                        char::from_u32(unit).unwrap_or('\u{FFFD}')
                    }
                }
                Some(other) => other,
                None => break,
            },
            c => c,
        };
        if !push(&mut out, decoded) {
            break;
        }
    }
    out
}

/// Turns a serde error into a message that names the field, by re-parsing with path tracking
/// (only on the error path, so valid requests pay nothing for it).
fn describe_error(text: &str, err: serde_json::Error) -> ParseError {
    if err.is_syntax() || err.is_eof() {
        return ParseError::Malformed(format!("request body is not valid JSON: {err}"));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, Wire<'_>>(&mut de) {
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let message = inner.split(" at line ").next().unwrap_or(&inner).to_owned();
            let duplicate = message
                .strip_prefix("duplicate field `")
                .and_then(|r| r.split('`').next())
                .map(str::to_owned);
            match duplicate {
                Some(field) => ParseError::invalid(field, message),
                None if path.is_empty() || path == "." => ParseError::Malformed(message),
                None => ParseError::invalid(path, message),
            }
        }
        Ok(_) => ParseError::Malformed(err.to_string()),
    }
}

#[cfg(test)]
mod tests;
