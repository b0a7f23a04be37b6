//! Chat-completion chunks as a Responses event stream, in the canonical order the SDK
//! accumulators and Codex expect: `response.created`, `response.in_progress`, then each output
//! item opened (`output_item.added`, plus `content_part.added` for text) before its deltas and
//! closed with its `.done` events, then exactly one terminal event. Every event has an `event:`
//! line and a `sequence_number` counting from 0.
//!
//! Reasoning streams as `response.reasoning_text.*` on a `reasoning_text` content part: raw
//! chain of thought, which is what DeepSeek produces (and what its own Responses endpoint emits);
//! openai-node's strict accumulator accepts those events (it throws on any it does not know), so
//! the summary events are not needed.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{Value, json};

use super::Echo;
use super::response::{
    Snapshot, function_item, item_id, message_item, outcome, output_text, reasoning_item, usage,
};
use crate::dialect::{
    CallPhase, Counts, StreamEncoder, StreamedCall, file_call, first_choice, frame, str_at,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Reasoning,
    Message,
    /// The tool call at this chat `tool_calls[].index`.
    Call(u64),
}

#[derive(Debug)]
struct Open {
    kind: Kind,
    output_index: usize,
    id: String,
    /// The text, or the arguments, so far.
    text: String,
}

/// Encodes one response; see the module docs.
#[derive(Debug)]
pub struct Encoder {
    echo: Echo,
    id: String,
    created_at: u64,
    seq: u64,
    started: bool,
    done: bool,
    open: Option<Open>,
    /// Finished output items.
    output: Vec<Value>,
    calls: BTreeMap<u64, StreamedCall>,
    counts: Option<Counts>,
    finish: Option<String>,
    has_message: bool,
    has_call: bool,
}

impl Encoder {
    /// An encoder for response `id` (`resp_…`), created at `created_at` (unix seconds).
    pub fn new(echo: Echo, id: String, created_at: u64) -> Self {
        Encoder {
            echo,
            id,
            created_at,
            seq: 0,
            started: false,
            done: false,
            open: None,
            output: Vec::new(),
            calls: BTreeMap::new(),
            counts: None,
            finish: None,
            has_message: false,
            has_call: false,
        }
    }

    fn emit(&mut self, out: &mut Vec<Bytes>, ty: &str, mut data: Value) {
        data["type"] = json!(ty);
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        out.push(frame(ty, &data));
    }

    fn snapshot(&self, status: &str, error: Value, incomplete: Value, usage: Value) -> Value {
        Snapshot {
            echo: &self.echo,
            id: &self.id,
            created_at: self.created_at,
            status,
            output: self.output.clone(),
            usage,
            error,
            incomplete_details: incomplete,
        }
        .build()
    }

    fn start(&mut self, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        let r = self.snapshot("in_progress", Value::Null, Value::Null, Value::Null);
        self.emit(out, "response.created", json!({ "response": r }));
        self.emit(out, "response.in_progress", json!({ "response": r }));
    }

    /// Makes `kind` the open item (closing another).
    fn ensure(&mut self, kind: Kind, out: &mut Vec<Bytes>) {
        if self.open.as_ref().is_some_and(|o| o.kind == kind) {
            return;
        }
        self.close(out);
        let output_index = self.output.len();
        let (id, item) = match kind {
            Kind::Reasoning => {
                let id = item_id("rs", &self.id, output_index);
                let item = json!({"id": id, "type": "reasoning", "summary": [], "content": []});
                (id, item)
            }
            Kind::Message => {
                self.has_message = true;
                let id = item_id("msg", &self.id, output_index);
                (id.clone(), message_item(&id, "in_progress", Vec::new()))
            }
            Kind::Call(k) => {
                self.has_call = true;
                let id = item_id("fc", &self.id, output_index);
                let c = self.calls.entry(k).or_default();
                c.phase = CallPhase::Open;
                let call_id = c.id.clone().unwrap_or_else(|| format!("call_{k}"));
                let name = c.name.clone().unwrap_or_default();
                let item = function_item(&self.echo, &id, "in_progress", &call_id, &name, "");
                (id, item)
            }
        };
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": output_index, "item": item}),
        );
        let part = match kind {
            Kind::Reasoning => Some(json!({"type": "reasoning_text", "text": ""})),
            Kind::Message => Some(output_text("")),
            Kind::Call(_) => None,
        };
        if let Some(part) = part {
            self.emit(
                out,
                "response.content_part.added",
                json!({"item_id": id, "output_index": output_index, "content_index": 0, "part": part}),
            );
        }
        self.open = Some(Open {
            kind,
            output_index,
            id,
            text: String::new(),
        });
    }

    /// Appends `delta` to the open item and sends it.
    fn delta(&mut self, delta: &str, out: &mut Vec<Bytes>) {
        let Some(open) = self.open.as_mut() else {
            return;
        };
        open.text.push_str(delta);
        let (ty, data) = match open.kind {
            Kind::Reasoning => (
                "response.reasoning_text.delta",
                json!({"item_id": open.id, "output_index": open.output_index, "content_index": 0, "delta": delta}),
            ),
            Kind::Message => (
                "response.output_text.delta",
                json!({"item_id": open.id, "output_index": open.output_index, "content_index": 0,
                       "delta": delta, "logprobs": []}),
            ),
            Kind::Call(_) => (
                "response.function_call_arguments.delta",
                json!({"item_id": open.id, "output_index": open.output_index, "delta": delta}),
            ),
        };
        self.emit(out, ty, data);
    }

    fn close(&mut self, out: &mut Vec<Bytes>) {
        let Some(Open {
            kind,
            output_index,
            id,
            text,
        }) = self.open.take()
        else {
            return;
        };
        let at = json!({"item_id": id, "output_index": output_index});
        let with = |mut v: Value, extra: Value| {
            if let (Some(m), Value::Object(e)) = (v.as_object_mut(), extra) {
                m.extend(e);
            }
            v
        };
        let item = match kind {
            Kind::Reasoning => {
                let part = json!({"type": "reasoning_text", "text": text});
                self.emit(
                    out,
                    "response.reasoning_text.done",
                    with(at.clone(), json!({"content_index": 0, "text": text})),
                );
                self.emit(
                    out,
                    "response.content_part.done",
                    with(at, json!({"content_index": 0, "part": part})),
                );
                reasoning_item(&id, &text)
            }
            Kind::Message => {
                self.emit(
                    out,
                    "response.output_text.done",
                    with(
                        at.clone(),
                        json!({"content_index": 0, "text": text, "logprobs": []}),
                    ),
                );
                self.emit(
                    out,
                    "response.content_part.done",
                    with(at, json!({"content_index": 0, "part": output_text(&text)})),
                );
                message_item(&id, "completed", vec![output_text(&text)])
            }
            Kind::Call(k) => {
                self.emit(
                    out,
                    "response.function_call_arguments.done",
                    with(at, json!({"arguments": text})),
                );
                let c = self.calls.entry(k).or_default();
                c.phase = CallPhase::Closed;
                let call_id = c.id.clone().unwrap_or_else(|| format!("call_{k}"));
                let name = c.name.clone().unwrap_or_default();
                function_item(&self.echo, &id, "completed", &call_id, &name, &text)
            }
        };
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": output_index, "item": item}),
        );
        self.output.push(item);
    }

    fn open_call(&mut self, k: u64, out: &mut Vec<Bytes>) {
        self.ensure(Kind::Call(k), out);
        let pending = self
            .calls
            .get_mut(&k)
            .map(|c| std::mem::take(&mut c.pending))
            .unwrap_or_default();
        if !pending.is_empty() {
            self.delta(&pending, out);
        }
    }

    fn call_delta(&mut self, call: &Value, out: &mut Vec<Bytes>) {
        let (k, args) = file_call(&mut self.calls, call);
        let c = self.calls.entry(k).or_default();
        match c.phase {
            // Another call's item is open since: this fragment has nowhere to go.
            CallPhase::Closed => {}
            CallPhase::Open => {
                if !args.is_empty() {
                    self.delta(args, out);
                }
            }
            CallPhase::Pending => {
                c.pending.push_str(args);
                if c.id.is_some() && c.name.is_some() {
                    self.open_call(k, out);
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
        self.start(out);
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
            self.ensure(Kind::Reasoning, out);
            self.delta(r, out);
        }
        if let Some(t) = str_at(delta, "content").filter(|s| !s.is_empty()) {
            self.ensure(Kind::Message, out);
            self.delta(t, out);
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.call_delta(call, out);
        }
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        self.start(out);
        self.close(out);
        let pending: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| c.phase == CallPhase::Pending)
            .map(|(k, _)| *k)
            .collect();
        for k in pending {
            self.open_call(k, out);
            self.close(out);
        }
        // As in a whole response: an answer without tool calls always has its message.
        if !self.has_message && !self.has_call {
            self.ensure(Kind::Message, out);
            self.close(out);
        }
        let (status, incomplete, error) = outcome(self.finish.as_deref());
        let ty = match status {
            "incomplete" => "response.incomplete",
            "failed" => "response.failed",
            _ => "response.completed",
        };
        let r = self.snapshot(
            status,
            error,
            incomplete,
            usage(self.counts.unwrap_or_default()),
        );
        self.emit(out, ty, json!({ "response": r }));
        self.done = true;
    }

    fn fail(&mut self, message: &str, code: &str, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        // The SDK accumulators need `response.created` before anything else.
        self.start(out);
        self.done = true;
        let error = json!({"code": code, "message": message});
        let usage = self.counts.map_or(Value::Null, usage);
        let r = self.snapshot("failed", error, Value::Null, usage);
        self.emit(out, "response.failed", json!({ "response": r }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_run_through_the_terminal_event() {
        let mut e = Encoder::new(Echo::default(), "resp_1".into(), 1);
        let mut out = Vec::new();
        e.push(&json!({"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "length"}]}), &mut out);
        e.finish(&mut out);
        let last = String::from_utf8_lossy(out.last().unwrap()).into_owned();
        assert!(last.starts_with("event: response.incomplete\n"), "{last}");
        assert!(last.contains(&format!("\"sequence_number\":{}", out.len() - 1)));
    }

    #[test]
    fn a_cut_stream_fails_with_its_code() {
        let mut e = Encoder::new(Echo::default(), "resp_1".into(), 1);
        let mut out = Vec::new();
        e.fail("upstream went away", "stream_interrupted", &mut out);
        assert_eq!(out.len(), 3);
        let last = String::from_utf8_lossy(&out[2]).into_owned();
        assert!(last.starts_with("event: response.failed\n"));
        assert!(last.contains(r#""code":"stream_interrupted""#));
    }
}
