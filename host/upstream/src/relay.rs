//! Relaying a server-sent-event stream from an upstream to the client.
//!
//! Two phases, split by the commit point:
//! - [`start`] reads until the first substantive event (content, a tool call, a finish reason or
//!   usage). Keep-alive comments are dropped; lifecycle events that say nothing yet (a role-only
//!   first delta) are held back. A failure here is an ordinary attempt failure: the fallback loop
//!   tries the next target and the client has seen nothing.
//! - [`into_body`] forwards the held frames and every later frame as soon as it is complete. A
//!   failure here (broken connection, idle timeout, deadline) ends the stream with an SSE error
//!   event and no `[DONE]`, so the client can tell a cut stream from a finished one; it is never
//!   retried, so no content is ever sent twice.
//!
//! The upstream's events are read in its own dialect (its `wire`): chat completions, Anthropic
//! Messages or Responses. When the client asked in the same dialect the events pass through as
//! they came; otherwise each is decoded into chat chunks and encoded again in the client's
//! dialect ([`ClientStream::Encode`]). Either way the commit point, usage, the assembled copy for
//! the cache and the end of the stream are judged on the chat view.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, stream};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use tokio::time::{Instant, timeout_at};

use serde_json::Value;

use crate::chat::assemble::Assembler;
use crate::dialect::{self, Api, StreamDecoder, StreamEncoder};
use crate::failure::{FailureClass, UpstreamFailure, error_message};
use crate::redact::Redactor;
use crate::sse::{FrameKind, SseFrame, SseSplitter, error_frame, payload};
use crate::usage::{Usage, usage_in_value, usage_of};

/// Told once how a relayed stream ended: when it ends, or when the client goes away and the body
/// is dropped unfinished. The gateway's implementation settles the request (cost, cache, log).
pub trait StreamFinish: Send + 'static {
    fn finish(self, end: StreamEnd);
}

/// How a relayed stream ended, reported once when it ends or the client goes away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEnd {
    /// Usage from the final chunk, if the upstream sent it.
    pub usage: Option<Usage>,
    /// Data events forwarded.
    pub events: u64,
    /// How it ended.
    pub outcome: StreamOutcome,
    /// The whole response as one `chat.completion`, when assembling was asked for and the stream
    /// completed.
    pub assembled: Option<serde_json::Value>,
}

/// The ways a committed stream ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamOutcome {
    /// `[DONE]` arrived (or the upstream closed cleanly after its last event).
    Completed,
    /// The upstream failed mid-stream; the client got an error event.
    Failed(String),
    /// The client went away first.
    ClientGone,
}

/// One upstream event held back before the commit point.
struct Held {
    raw: Bytes,
    /// Its chat view, for dialects other than chat (chat frames are parsed only when needed).
    chunks: Option<Vec<Value>>,
    /// The event ended the stream (a short answer can be whole before it is committed).
    end: Option<dialect::StreamEnd>,
}

/// A stream past its first substantive event, ready to be relayed.
pub struct StreamStart {
    wire: Api,
    decoder: Option<Box<dyn StreamDecoder>>,
    held: Vec<Held>,
    body: Incoming,
    splitter: SseSplitter,
    usage: Option<Usage>,
    events: u64,
}

impl StreamStart {
    /// The dialect the upstream streams in.
    pub fn wire(&self) -> Api {
        self.wire
    }
}

/// How the client reads a relayed stream.
pub enum ClientStream {
    /// In the upstream's own dialect, event for event. `client` is that dialect, for the error
    /// event that ends a cut stream.
    Pass { client: Api },
    /// Translated: each chat chunk is handed to the encoder of the client's dialect.
    Encode(Box<dyn StreamEncoder>),
}

/// The decoder of an upstream dialect's events; chat needs none.
fn decoder_for(wire: Api) -> Option<Box<dyn StreamDecoder>> {
    match wire {
        Api::Chat => None,
        Api::Messages => Some(Box::new(dialect::messages::Decoder::new())),
        Api::Responses => Some(Box::new(dialect::responses::Decoder::new())),
    }
}

/// The decoded view of one non-chat event, or why it could not be read.
fn decode(decoder: &mut dyn StreamDecoder, frame: &SseFrame) -> dialect::Decoded {
    let data = frame.data();
    match serde_json::from_str::<Value>(&data) {
        Ok(value) => decoder.push(dialect::event_name(&frame.raw), &value),
        Err(_) => dialect::Decoded {
            chunks: Vec::new(),
            end: Some(dialect::StreamEnd::Failed(
                "upstream sent an event that is not JSON".into(),
            )),
        },
    }
}

/// Timing rules for a committed stream.
#[derive(Debug, Clone)]
pub struct RelayLimits {
    /// Longest gap between data events (keep-alives do not count).
    pub idle: Duration,
    /// When the whole request must be over.
    pub deadline: Instant,
    /// Drop usage-only chunks: the gateway asked for usage, the client did not.
    pub strip_usage_chunks: bool,
    /// Reassemble the response (for the cache).
    pub assemble: bool,
    /// Turns true when a shutdown's drain deadline has passed: the stream is ended with an error
    /// event.
    pub drain_expired: tokio::sync::watch::Receiver<bool>,
}

/// Reads up to the first substantive event, within `first_event_deadline`.
pub async fn start(
    wire: Api,
    content_type: Option<&str>,
    mut body: Incoming,
    first_event_deadline: Instant,
    redactor: &Redactor,
) -> Result<StreamStart, UpstreamFailure> {
    if !content_type.is_some_and(|ct| ct.contains("text/event-stream")) {
        return Err(UpstreamFailure::new(
            FailureClass::Broken,
            format!(
                "expected an event stream, got content-type {}",
                content_type.unwrap_or("(none)")
            ),
        ));
    }
    let mut splitter = SseSplitter::default();
    let mut held = Vec::new();
    let mut decoder = decoder_for(wire);
    loop {
        while let Some(frame) = splitter.next_frame() {
            if let Some(dec) = decoder.as_deref_mut() {
                if frame.kind == FrameKind::KeepAlive {
                    continue;
                }
                let decoded = decode(dec, &frame);
                match decoded.end {
                    Some(dialect::StreamEnd::Failed(message)) => {
                        return Err(UpstreamFailure::new(
                            FailureClass::StreamError,
                            redactor.redact(&message),
                        ));
                    }
                    Some(dialect::StreamEnd::Completed)
                        if !held.iter().any(|h: &Held| {
                            h.chunks.iter().flatten().any(chunk_is_substantive)
                        }) && !decoded.chunks.iter().any(chunk_is_substantive) =>
                    {
                        return Err(UpstreamFailure::new(
                            FailureClass::StreamError,
                            "stream ended before any content",
                        ));
                    }
                    _ => {}
                }
                let substantive =
                    decoded.end.is_some() || decoded.chunks.iter().any(chunk_is_substantive);
                let usage = decoded.chunks.iter().rev().find_map(usage_in_value);
                held.push(Held {
                    raw: frame.raw,
                    chunks: Some(decoded.chunks),
                    end: decoded.end,
                });
                if substantive {
                    let events = held.len() as u64;
                    return Ok(StreamStart {
                        wire,
                        decoder,
                        held,
                        body,
                        splitter,
                        usage,
                        events,
                    });
                }
                continue;
            }
            match frame.kind {
                FrameKind::KeepAlive => {}
                FrameKind::Error => {
                    let message = redactor.redact(&error_message(frame.data().as_bytes()));
                    return Err(UpstreamFailure::new(FailureClass::StreamError, message));
                }
                FrameKind::Done => {
                    return Err(UpstreamFailure::new(
                        FailureClass::StreamError,
                        "stream ended before any content",
                    ));
                }
                FrameKind::Data => {
                    let substantive = is_substantive(&frame);
                    let usage = usage_in(&frame);
                    held.push(Held {
                        raw: frame.raw,
                        chunks: None,
                        end: None,
                    });
                    if substantive {
                        let events = held.len() as u64;
                        return Ok(StreamStart {
                            wire,
                            decoder,
                            held,
                            body,
                            splitter,
                            usage,
                            events,
                        });
                    }
                }
            }
        }
        match timeout_at(first_event_deadline, body.frame()).await {
            Err(_) => {
                return Err(UpstreamFailure::new(
                    FailureClass::Timeout,
                    "no stream event before the first-byte deadline",
                ));
            }
            Ok(None) => {
                return Err(UpstreamFailure::new(
                    FailureClass::StreamError,
                    "stream closed before its first event",
                ));
            }
            Ok(Some(Err(e))) => {
                return Err(UpstreamFailure::new(
                    FailureClass::Broken,
                    redactor.redact(&e.to_string()),
                ));
            }
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    splitter.push(&data);
                }
            }
        }
    }
}

/// How much already-arrived stream data is gathered into one write at most.
const READ_AHEAD_BYTES: usize = 64 << 10;

/// Joins the events that are ready into one body chunk: the client gets them in one write (one
/// system call and one HTTP chunk instead of one per event) as soon as they arrive, which is when
/// the upstream's read delivered them together anyway.
fn coalesce(queue: &mut VecDeque<Bytes>) -> Bytes {
    if queue.len() == 1 {
        return queue.pop_front().unwrap_or_default();
    }
    let mut joined = BytesMut::with_capacity(queue.iter().map(Bytes::len).sum());
    for chunk in queue.drain(..) {
        joined.extend_from_slice(&chunk);
    }
    joined.freeze()
}

/// Whether a data event carries something the client must see: content, reasoning, a tool call,
/// a finish reason or usage. A role-only first delta does not.
fn is_substantive(frame: &SseFrame) -> bool {
    let data = frame.data();
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&data) else {
        return true;
    };
    chunk_is_substantive(&v)
}

/// [`is_substantive`] for a parsed chunk.
fn chunk_is_substantive(v: &Value) -> bool {
    if v.get("usage").is_some_and(|u| !u.is_null()) {
        return true;
    }
    let Some(choices) = v.get("choices").and_then(|c| c.as_array()) else {
        return true;
    };
    choices.iter().any(|c| {
        let finish = c.get("finish_reason").is_some_and(|f| !f.is_null());
        let delta = c.get("delta");
        let has = |k: &str| {
            delta.and_then(|d| d.get(k)).is_some_and(|x| match x {
                serde_json::Value::String(s) => !s.is_empty(),
                serde_json::Value::Null => false,
                _ => true,
            })
        };
        finish
            || has("content")
            || has("reasoning_content")
            || has("tool_calls")
            || has("function_call")
            || has("refusal")
    })
}

fn usage_in(frame: &SseFrame) -> Option<Usage> {
    // Most events carry no usage: skip the JSON parse for them.
    memchr::memmem::find(&frame.raw, b"\"usage\"")?;
    usage_of(frame.data().as_bytes())
}

/// Whether a frame is a usage-only chunk (`"choices": []` plus usage).
fn is_usage_only(frame: &SseFrame) -> bool {
    let data = frame.data();
    serde_json::from_str::<serde_json::Value>(&data).is_ok_and(|v| {
        v.get("usage").is_some_and(|u| !u.is_null())
            && v.get("choices")
                .and_then(|c| c.as_array())
                .is_some_and(Vec::is_empty)
    })
}

/// Calls its finisher exactly once: when the stream ends, or when it is dropped unfinished.
struct EndGuard<F: StreamFinish> {
    on_end: Option<F>,
    usage: Option<Usage>,
    events: u64,
    assembler: Option<Assembler>,
}

impl<F: StreamFinish> EndGuard<F> {
    fn finish(&mut self, outcome: StreamOutcome) {
        if let Some(f) = self.on_end.take() {
            let assembled = match outcome {
                StreamOutcome::Completed => self.assembler.take().and_then(Assembler::finish),
                _ => None,
            };
            f.finish(StreamEnd {
                usage: self.usage,
                events: self.events,
                outcome,
                assembled,
            });
        }
    }

    fn assemble(&mut self, raw: &[u8]) {
        if let Some(a) = &mut self.assembler {
            a.push(&payload(raw));
        }
    }
}

impl<F: StreamFinish> Drop for EndGuard<F> {
    fn drop(&mut self) {
        self.finish(StreamOutcome::ClientGone);
    }
}

struct RelayState<F: StreamFinish> {
    queue: VecDeque<Bytes>,
    body: Incoming,
    splitter: SseSplitter,
    limits: RelayLimits,
    last_event: Instant,
    done: bool,
    /// A body result read ahead while gathering ready chunks, handled on the next turn.
    read_ahead: Option<Option<Result<Frame<Bytes>, hyper::Error>>>,
    guard: EndGuard<F>,
    redactor: Redactor,
    wire: Api,
    decoder: Option<Box<dyn StreamDecoder>>,
    client: ClientStream,
    /// The last `sequence_number` of a Responses stream passed through, so the error event that
    /// ends a cut one continues the count.
    sequence: Option<u64>,
}

impl<F: StreamFinish> RelayState<F> {
    /// One chat chunk of the response: into the assembled copy, the usage, and (translating) the
    /// client's dialect.
    fn chunk(&mut self, chunk: &Value) {
        if let Some(a) = &mut self.guard.assembler {
            a.push_value(chunk);
        }
        if let Some(u) = usage_in_value(chunk) {
            self.guard.usage = Some(u);
        }
        if let ClientStream::Encode(encoder) = &mut self.client {
            let mut out = Vec::new();
            encoder.push(chunk, &mut out);
            self.queue.extend(out);
        }
    }

    /// The upstream finished its answer.
    fn complete(&mut self) {
        if let ClientStream::Encode(encoder) = &mut self.client {
            let mut out = Vec::new();
            encoder.finish(&mut out);
            self.queue.extend(out);
        }
        self.done = true;
        self.guard.finish(StreamOutcome::Completed);
    }

    /// Ends a committed stream that failed, with an error event in the client's dialect unless
    /// the upstream's own (passed through) already said so.
    fn fail(&mut self, failure: String, code: &str, upstream_said_it: bool) {
        match &mut self.client {
            ClientStream::Encode(encoder) => {
                let mut out = Vec::new();
                encoder.fail(&failure, code, &mut out);
                self.queue.extend(out);
            }
            ClientStream::Pass { .. } if upstream_said_it => {}
            ClientStream::Pass { client: Api::Chat } => {
                self.queue.push_back(error_frame(&failure, code));
            }
            ClientStream::Pass {
                client: Api::Messages,
            } => self
                .queue
                .push_back(dialect::messages::stream_error_frame(502, &failure)),
            ClientStream::Pass {
                client: Api::Responses,
            } => {
                let event = serde_json::json!({
                    "type": "error",
                    "sequence_number": self.sequence.map_or(0, |n| n + 1),
                    "code": code,
                    "message": failure,
                    "param": null,
                });
                self.queue
                    .push_back(Bytes::from(format!("event: error\ndata: {event}\n\n")));
            }
        }
        self.done = true;
        self.guard.finish(StreamOutcome::Failed(failure));
    }

    /// Handles one complete upstream frame after the commit point.
    fn take(&mut self, frame: SseFrame) {
        if frame.kind == FrameKind::KeepAlive {
            // A comment is valid SSE in every dialect; it keeps the client's connection warm.
            self.queue.push_back(frame.raw);
            return;
        }
        if let Some(decoder) = self.decoder.as_deref_mut() {
            self.last_event = Instant::now();
            if self.wire == Api::Responses
                && let Some(n) = sequence_number(&frame)
            {
                self.sequence = Some(n);
            }
            let decoded = decode(decoder, &frame);
            self.guard.events += 1;
            if matches!(self.client, ClientStream::Pass { .. }) {
                self.queue.push_back(frame.raw);
            }
            for chunk in &decoded.chunks {
                self.chunk(chunk);
            }
            match decoded.end {
                None => {}
                Some(dialect::StreamEnd::Completed) => self.complete(),
                Some(dialect::StreamEnd::Failed(message)) => {
                    let message = self.redactor.redact(&message);
                    self.fail(
                        format!("upstream error event: {message}"),
                        "upstream_error",
                        true,
                    );
                }
            }
            return;
        }
        match frame.kind {
            FrameKind::KeepAlive => {}
            FrameKind::Done => {
                if matches!(self.client, ClientStream::Pass { .. }) {
                    self.queue.push_back(frame.raw);
                }
                self.complete();
            }
            FrameKind::Error => {
                let message = self
                    .redactor
                    .redact(&error_message(frame.data().as_bytes()));
                let passing = matches!(self.client, ClientStream::Pass { .. });
                if passing {
                    self.queue.push_back(frame.raw);
                }
                self.fail(
                    format!("upstream error event: {message}"),
                    "upstream_error",
                    passing,
                );
            }
            FrameKind::Data => {
                self.last_event = Instant::now();
                if let ClientStream::Encode(_) = self.client {
                    self.guard.events += 1;
                    match serde_json::from_str::<Value>(&frame.data()) {
                        Ok(chunk) => self.chunk(&chunk),
                        // Nothing to translate; the assembled copy is no longer whole.
                        Err(_) => self.guard.assemble(b"data: not json"),
                    }
                    return;
                }
                self.guard.assemble(&frame.raw);
                if let Some(u) = usage_in(&frame) {
                    self.guard.usage = Some(u);
                    if self.limits.strip_usage_chunks && is_usage_only(&frame) {
                        return;
                    }
                }
                self.guard.events += 1;
                self.queue.push_back(frame.raw);
            }
        }
    }

    /// The upstream closed the connection after whole events.
    fn closed(&mut self) {
        if self.wire == Api::Chat {
            // Closed cleanly without `[DONE]`: pass on what it sent.
            self.complete();
        } else {
            self.fail(
                "upstream closed the stream before its end event".into(),
                "stream_interrupted",
                false,
            );
        }
    }

    /// The events held back before the commit, now part of the response.
    fn release(&mut self, held: Vec<Held>) {
        for h in held {
            match h.chunks {
                Some(chunks) => {
                    if self.wire == Api::Responses
                        && let Some(n) = sequence_number(&SseFrame {
                            raw: h.raw.clone(),
                            kind: FrameKind::Data,
                        })
                    {
                        self.sequence = Some(n);
                    }
                    if matches!(self.client, ClientStream::Pass { .. }) {
                        self.queue.push_back(h.raw);
                    }
                    for chunk in &chunks {
                        self.chunk(chunk);
                    }
                    if h.end == Some(dialect::StreamEnd::Completed) {
                        self.complete();
                    }
                }
                None => match &self.client {
                    ClientStream::Pass { .. } => {
                        self.guard.assemble(&h.raw);
                        self.queue.push_back(h.raw);
                    }
                    ClientStream::Encode(_) => {
                        if let Ok(chunk) = serde_json::from_str::<Value>(&payload(&h.raw)) {
                            self.chunk(&chunk);
                        }
                    }
                },
            }
        }
    }
}

/// The `sequence_number` of a Responses event, read without a full parse when absent.
fn sequence_number(frame: &SseFrame) -> Option<u64> {
    memchr::memmem::find(&frame.raw, b"\"sequence_number\"")?;
    serde_json::from_str::<Value>(&frame.data())
        .ok()?
        .get("sequence_number")?
        .as_u64()
}

/// The response body for a committed stream, read by the client as `client` says. `on_end` is
/// told once how it ended.
pub fn into_body<F: StreamFinish>(
    start: StreamStart,
    limits: RelayLimits,
    redactor: Redactor,
    client: ClientStream,
    on_end: F,
) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + 'static>
{
    let assembler = limits.assemble.then(Assembler::default);
    let mut state = RelayState {
        queue: VecDeque::with_capacity(start.held.len()),
        body: start.body,
        splitter: start.splitter,
        limits,
        last_event: Instant::now(),
        done: false,
        read_ahead: None,
        guard: EndGuard {
            on_end: Some(on_end),
            usage: start.usage,
            events: start.events,
            assembler,
        },
        redactor,
        wire: start.wire,
        decoder: start.decoder,
        client,
        sequence: None,
    };
    state.release(start.held);
    StreamBody::new(stream::unfold(state, |mut s| async move {
        loop {
            if !s.queue.is_empty() {
                return Some((Ok(Frame::data(coalesce(&mut s.queue))), s));
            }
            if s.done {
                return None;
            }
            // Handle every complete frame already buffered.
            while !s.done
                && let Some(frame) = s.splitter.next_frame()
            {
                s.take(frame);
            }
            if !s.queue.is_empty() || s.done {
                continue;
            }
            let wake = (s.last_event + s.limits.idle).min(s.limits.deadline);
            let mut drain = s.limits.drain_expired.clone();
            let next = match s.read_ahead.take() {
                Some(ready) => Some(Ok(ready)),
                None => tokio::select! {
                    next = timeout_at(wake, s.body.frame()) => Some(next),
                    _ = drain.wait_for(|expired| *expired) => None,
                },
            };
            let Some(next) = next else {
                s.fail(
                    "the gateway is shutting down and its drain deadline has passed".to_owned(),
                    "server_shutting_down",
                    false,
                );
                continue;
            };
            let failure = match next {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        s.splitter.push(&data);
                    }
                    // The upstream's chunks that arrived in the same read are ready now: take
                    // them too, so they leave in one write (bounded, so a fast stream still
                    // flows out in pieces).
                    while s.splitter.pending() < READ_AHEAD_BYTES {
                        match s.body.frame().now_or_never() {
                            Some(Some(Ok(frame))) => {
                                if let Ok(data) = frame.into_data() {
                                    s.splitter.push(&data);
                                }
                            }
                            Some(other) => {
                                s.read_ahead = Some(other);
                                break;
                            }
                            None => break,
                        }
                    }
                    continue;
                }
                Ok(None) if s.splitter.pending() == 0 => {
                    s.closed();
                    continue;
                }
                Ok(None) => "upstream closed the stream in the middle of an event".to_owned(),
                Ok(Some(Err(e))) => format!(
                    "upstream stream broke: {}",
                    s.redactor.redact(&e.to_string())
                ),
                Err(_) if Instant::now() >= s.limits.deadline => {
                    "request deadline reached mid-stream".to_owned()
                }
                Err(_) => format!("no stream event for {} ms", s.limits.idle.as_millis()),
            };
            s.fail(failure, "stream_interrupted", false);
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(data: &str) -> SseFrame {
        SseFrame {
            raw: Bytes::from(format!("data: {data}\n\n")),
            kind: FrameKind::Data,
        }
    }

    #[test]
    fn role_only_deltas_are_not_substantive() {
        assert!(!is_substantive(&frame(
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#
        )));
        assert!(!is_substantive(&frame(
            r#"{"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}"#
        )));
        assert!(is_substantive(&frame(
            r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#
        )));
        assert!(is_substantive(&frame(
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0}]}}]}"#
        )));
        assert!(is_substantive(&frame(
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#
        )));
        assert!(is_substantive(&frame(
            r#"{"choices":[],"usage":{"prompt_tokens":1}}"#
        )));
        assert!(
            is_substantive(&frame("not json")),
            "unknown payloads are passed on, not held forever"
        );
    }

    #[test]
    fn usage_only_chunks_are_recognised() {
        assert!(is_usage_only(&frame(
            r#"{"choices":[],"usage":{"prompt_tokens":1}}"#
        )));
        assert!(!is_usage_only(&frame(
            r#"{"choices":[{"delta":{}}],"usage":{"prompt_tokens":1}}"#
        )));
        assert_eq!(
            usage_in(&frame(
                r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2}}"#
            ))
            .map(|u| u.prompt_tokens),
            Some(7)
        );
    }
}
