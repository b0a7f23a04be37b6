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

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, stream};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use tokio::time::{Instant, timeout_at};

use crate::chat::assemble::Assembler;
use crate::failure::{FailureClass, UpstreamFailure, error_message};
use crate::redact::Redactor;
use crate::sse::{FrameKind, SseFrame, SseSplitter, error_frame, payload};
use crate::usage::{Usage, usage_of};

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

/// A stream past its first substantive event, ready to be relayed.
pub struct StreamStart {
    held: VecDeque<Bytes>,
    body: Incoming,
    splitter: SseSplitter,
    usage: Option<Usage>,
    events: u64,
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
    let mut held = VecDeque::new();
    loop {
        while let Some(frame) = splitter.next_frame() {
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
                    held.push_back(frame.raw);
                    if substantive {
                        let events = held.len() as u64;
                        return Ok(StreamStart {
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
}

/// The response body for a committed stream. `on_end` is told once how it ended.
pub fn into_body<F: StreamFinish>(
    start: StreamStart,
    limits: RelayLimits,
    redactor: Redactor,
    on_end: F,
) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + 'static>
{
    let assembler = limits.assemble.then(Assembler::default);
    let mut state = RelayState {
        queue: start.held,
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
    };
    // The frames held back before the commit are part of the response too.
    for raw in &state.queue {
        state.guard.assemble(raw);
    }
    StreamBody::new(stream::unfold(state, |mut s| async move {
        loop {
            if !s.queue.is_empty() {
                return Some((Ok(Frame::data(coalesce(&mut s.queue))), s));
            }
            if s.done {
                return None;
            }
            // Forward every complete frame already buffered.
            while let Some(frame) = s.splitter.next_frame() {
                match frame.kind {
                    FrameKind::KeepAlive => s.queue.push_back(frame.raw),
                    FrameKind::Done => {
                        s.queue.push_back(frame.raw);
                        s.done = true;
                        s.guard.finish(StreamOutcome::Completed);
                        break;
                    }
                    FrameKind::Error => {
                        let message = s.redactor.redact(&error_message(frame.data().as_bytes()));
                        s.queue.push_back(frame.raw);
                        s.done = true;
                        s.guard.finish(StreamOutcome::Failed(format!(
                            "upstream error event: {message}"
                        )));
                        break;
                    }
                    FrameKind::Data => {
                        s.last_event = Instant::now();
                        s.guard.assemble(&frame.raw);
                        if let Some(u) = usage_in(&frame) {
                            s.guard.usage = Some(u);
                            if s.limits.strip_usage_chunks && is_usage_only(&frame) {
                                continue;
                            }
                        }
                        s.guard.events += 1;
                        s.queue.push_back(frame.raw);
                    }
                }
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
                let failure =
                    "the gateway is shutting down and its drain deadline has passed".to_owned();
                s.queue
                    .push_back(error_frame(&failure, "server_shutting_down"));
                s.done = true;
                s.guard.finish(StreamOutcome::Failed(failure));
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
                    // Closed cleanly after whole events but without `[DONE]`: pass on what it sent.
                    s.done = true;
                    s.guard.finish(StreamOutcome::Completed);
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
            s.queue
                .push_back(error_frame(&failure, "stream_interrupted"));
            s.done = true;
            s.guard.finish(StreamOutcome::Failed(failure));
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
