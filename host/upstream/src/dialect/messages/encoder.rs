//! Chat-completion chunks as an Anthropic Messages event stream.
//!
//! Anthropic's blocks are strictly sequential (start, deltas, stop, then the next), while a chat
//! stream just interleaves fields of one delta; each change of kind closes the open block and
//! opens the next. A tool call opens its block once its id and name are known; argument
//! fragments that arrive earlier wait for that. A fragment for a tool call whose block is already
//! closed (a provider interleaving two calls' arguments) is dropped: no provider does this.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{Value, json};

use super::{stop_reason, stream_error_frame, usage};
use crate::dialect::{
    CallPhase, Counts, StreamEncoder, StreamedCall, file_call, first_choice, frame, str_at,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Thinking,
    Text,
    /// The tool call at this chat `tool_calls[].index`.
    Tool(u64),
}

/// Encodes one response; see the module docs.
#[derive(Debug)]
pub struct Encoder {
    id: String,
    model: String,
    started: bool,
    done: bool,
    /// The open block: its index in the message's content, and what it is.
    open: Option<(u64, Block)>,
    next_index: u64,
    calls: BTreeMap<u64, StreamedCall>,
    counts: Option<Counts>,
    finish: Option<String>,
}

impl Encoder {
    /// An encoder for message `id` (`msg_…`) answered by `model`.
    pub fn new(id: String, model: String) -> Self {
        Encoder {
            id,
            model,
            started: false,
            done: false,
            open: None,
            next_index: 0,
            calls: BTreeMap::new(),
            counts: None,
            finish: None,
        }
    }

    fn emit(out: &mut Vec<Bytes>, ty: &str, mut data: Value) {
        data["type"] = json!(ty);
        out.push(frame(ty, &data));
    }

    /// `message_start` (with the input usage, if the first chunk has it) and a `ping`, once.
    fn start(&mut self, chunk: Option<&Value>, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        let counts = chunk
            .and_then(|c| c.get("usage"))
            .and_then(Counts::from_chat)
            .map(|c| Counts { completion: 0, ..c })
            .unwrap_or_default();
        let message = json!({
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage(counts),
        });
        Self::emit(out, "message_start", json!({ "message": message }));
        // Keeps the connection visibly alive while a reasoning model thinks; SDKs skip it.
        Self::emit(out, "ping", json!({}));
    }

    fn close(&mut self, out: &mut Vec<Bytes>) {
        let Some((index, block)) = self.open.take() else {
            return;
        };
        match block {
            // Anthropic sends the signature just before the stop; clients echo it back as is.
            Block::Thinking => self.delta(
                index,
                json!({"type": "signature_delta", "signature": ""}),
                out,
            ),
            Block::Tool(k) => {
                if let Some(c) = self.calls.get_mut(&k) {
                    c.phase = CallPhase::Closed;
                }
            }
            Block::Text => {}
        }
        Self::emit(out, "content_block_stop", json!({ "index": index }));
    }

    fn delta(&self, index: u64, delta: Value, out: &mut Vec<Bytes>) {
        Self::emit(
            out,
            "content_block_delta",
            json!({"index": index, "delta": delta}),
        );
    }

    /// Makes `block` the open block (closing another), and returns its index.
    fn ensure(&mut self, block: Block, out: &mut Vec<Bytes>) -> u64 {
        if let Some((index, open)) = self.open
            && open == block
        {
            return index;
        }
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        let content_block = match block {
            Block::Thinking => json!({"type": "thinking", "thinking": "", "signature": ""}),
            Block::Text => json!({"type": "text", "text": ""}),
            Block::Tool(k) => {
                let c = self.calls.entry(k).or_default();
                c.phase = CallPhase::Open;
                json!({"type": "tool_use",
                       "id": c.id.clone().unwrap_or_else(|| format!("toolu_{k}")),
                       "name": c.name.clone().unwrap_or_default(), "input": {}})
            }
        };
        Self::emit(
            out,
            "content_block_start",
            json!({"index": index, "content_block": content_block}),
        );
        self.open = Some((index, block));
        index
    }

    /// Opens tool call `k`'s block and sends the arguments it buffered.
    fn open_tool(&mut self, k: u64, out: &mut Vec<Bytes>) {
        let index = self.ensure(Block::Tool(k), out);
        let pending = self
            .calls
            .get_mut(&k)
            .map(|c| std::mem::take(&mut c.pending))
            .unwrap_or_default();
        if !pending.is_empty() {
            self.delta(
                index,
                json!({"type": "input_json_delta", "partial_json": pending}),
                out,
            );
        }
    }

    fn tool_delta(&mut self, call: &Value, out: &mut Vec<Bytes>) {
        let (k, args) = file_call(&mut self.calls, call);
        let c = self.calls.entry(k).or_default();
        match c.phase {
            CallPhase::Closed => {}
            CallPhase::Open => {
                if !args.is_empty()
                    && let Some((index, _)) = self.open
                {
                    self.delta(
                        index,
                        json!({"type": "input_json_delta", "partial_json": args}),
                        out,
                    );
                }
            }
            CallPhase::Pending => {
                c.pending.push_str(args);
                if c.id.is_some() && c.name.is_some() {
                    self.open_tool(k, out);
                }
            }
        }
    }
}

impl StreamEncoder for Encoder {
    fn push(&mut self, chunk: &Value, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        self.start(Some(chunk), out);
        if let Some(c) = chunk.get("usage").and_then(Counts::from_chat) {
            self.counts = Some(c);
        }
        let Some(choice) = first_choice(chunk) else {
            return;
        };
        if let Some(f) = str_at(choice, "finish_reason") {
            self.finish = Some(f.to_owned());
        }
        let Some(delta) = choice.get("delta") else {
            return;
        };
        if let Some(r) = str_at(delta, "reasoning_content").filter(|s| !s.is_empty()) {
            let index = self.ensure(Block::Thinking, out);
            self.delta(index, json!({"type": "thinking_delta", "thinking": r}), out);
        }
        if let Some(t) = str_at(delta, "content").filter(|s| !s.is_empty()) {
            let index = self.ensure(Block::Text, out);
            self.delta(index, json!({"type": "text_delta", "text": t}), out);
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.tool_delta(call, out);
        }
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        self.start(None, out);
        self.close(out);
        let pending: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| c.phase == CallPhase::Pending)
            .map(|(k, _)| *k)
            .collect();
        for k in pending {
            self.open_tool(k, out);
            self.close(out);
        }
        let delta =
            json!({"stop_reason": stop_reason(self.finish.as_deref()), "stop_sequence": null});
        let usage = usage(self.counts.unwrap_or_default());
        Self::emit(
            out,
            "message_delta",
            json!({"delta": delta, "usage": usage}),
        );
        Self::emit(out, "message_stop", json!({}));
        self.done = true;
    }

    fn fail(&mut self, message: &str, code: &str, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        self.done = true;
        // Claude Code retries any mid-stream error without streaming; the type only labels it.
        let overloaded = ["timeout", "idle", "overload", "shutting_down", "rate_limit"]
            .iter()
            .any(|k| code.contains(k));
        out.push(stream_error_frame(
            if overloaded { 529 } else { 500 },
            message,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(frames: &[Bytes]) -> Vec<String> {
        frames
            .iter()
            .map(|f| crate::dialect::event_name(f).unwrap_or_default().to_owned())
            .collect()
    }

    #[test]
    fn reasoning_text_and_a_tool_call_become_three_blocks() {
        let mut e = Encoder::new("msg_1".into(), "m".into());
        let mut out = Vec::new();
        for chunk in [
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "think"}}]}),
            json!({"choices": [{"index": 0, "delta": {"content": "hi"}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\""}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": ":1}"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 4, "completion_tokens": 2}}),
        ] {
            e.push(&chunk, &mut out);
        }
        e.finish(&mut out);
        e.finish(&mut out);
        assert_eq!(
            events(&out),
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let text = String::from_utf8_lossy(&out[10]);
        assert!(text.contains(r#""partial_json":"{\"a\":1}""#), "{text}");
        let delta = String::from_utf8_lossy(&out[12]);
        assert!(
            delta.contains(r#""stop_reason":"tool_use""#) && delta.contains(r#""input_tokens":4"#)
        );
    }

    #[test]
    fn a_cut_stream_ends_with_an_error_event_only() {
        let mut e = Encoder::new("msg_1".into(), "m".into());
        let mut out = Vec::new();
        e.push(
            &json!({"choices": [{"index": 0, "delta": {"content": "par"}}]}),
            &mut out,
        );
        e.fail("idle timeout", "stream_interrupted", &mut out);
        e.finish(&mut out);
        assert_eq!(events(&out).last().map(String::as_str), Some("error"));
        assert!(String::from_utf8_lossy(out.last().unwrap()).contains("api_error"));
        assert_eq!(
            events(&out).iter().filter(|e| *e == "message_stop").count(),
            0
        );
    }
}
