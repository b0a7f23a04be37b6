//! Relaying a server-sent-event stream from an upstream to the client.
//!
//! Two phases, split by the commit point:
//! - [`start`] reads until the first substantive event (content, a tool call, a finish reason or
//!   usage). Keep-alive comments are dropped; lifecycle events that say nothing yet (a role-only
//!   first delta) are held back. A failure here, an event that is not JSON included, is an
//!   ordinary attempt failure: the fallback loop tries the next target and the client has seen
//!   nothing.
//! - [`into_body`] forwards the held frames and every later frame as soon as it is complete. A
//!   cut here (broken connection, no event for the idle timeout, an upstream error event, or a
//!   stream that just stops before its end: no finish reason, no `[DONE]`) ends the stream with an
//!   SSE error event and no `[DONE]`, so the client can tell a cut stream from a finished one.
//!   When the tenant opted in and a later target of the route can continue an answer
//!   ([`Resumer`]), the cut is resumed instead: that target gets the conversation plus the text
//!   delivered so far and streams only what follows, so the client reads one continuous answer,
//!   no content twice. After the commit point an event that is not JSON is dropped and counted,
//!   never passed on (strict clients fail on it).
//!
//! The upstream's events are read in its own dialect (its `wire`): chat completions, Anthropic
//! Messages or Responses. When the client asked in the same dialect the events pass through as
//! they came; otherwise each is decoded into chat chunks and encoded again in the client's
//! dialect ([`ClientStream::Encode`]). Either way the commit point, usage, the output delivered,
//! the assembled copy for the cache and the end of the stream are judged on the chat view.
//!
//! Resuming needs the host to write the client's dialect itself: a chat client's stream, or a
//! stream already translated. A Messages or Responses stream passed through from an upstream of
//! the same dialect is not resumed (it ends with the error event). Every byte relayed goes
//! through the key redactor first.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, stream};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use memchr::memmem::Finder;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::time::{Instant, timeout_at};

use crate::attempt::AttemptSummary;
use crate::chat::assemble::Assembler;
use crate::dialect::{self, Api, Lite, LiteEvent, StreamDecoder, StreamEncoder};
use crate::failure::{FailureClass, UpstreamFailure, error_message};
use crate::redact::Redactor;
use crate::sse::{FrameKind, SseFrame, SseSplitter, error_frame, payload};
use crate::usage::{Usage, usage_in_value, usage_of};

/// Continues a cut answer on a later target of the route: the fallback loop's `Resumer`, which
/// knows the route and the request; the relay only asks (a trait, so neither module imports the
/// other).
pub trait Resume: Send {
    /// Whether a later target can still continue the answer.
    fn possible(&self) -> bool;
    /// The model and upstream streaming now.
    fn current(&self) -> &(String, std::sync::Arc<str>);
    /// Every resumption attempt so far, in order.
    fn attempts(&self) -> &[AttemptSummary];
    /// Asks the next target to continue after `prefix` (the text delivered so far).
    fn resume<'a>(
        &'a mut self,
        prefix: &'a str,
        delivered_tokens: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Resumed, String>> + Send + 'a>>;
}

/// A stream that continues the answer on another target.
pub struct Resumed {
    pub start: StreamStart,
    /// Whitespace taken off the end of the prefix (an Anthropic prefill may not end in it); the
    /// client already has it, so it is taken off the start of the continuation.
    pub trimmed: String,
}

/// Told once how a relayed stream ended: when it ends, or when the client goes away and the body
/// is dropped unfinished. The gateway's implementation settles the request (cost, cache, log).
pub trait StreamFinish: Send + 'static {
    fn finish(self, end: StreamEnd);
}

/// How a relayed stream ended, reported once when it ends or the client goes away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEnd {
    /// Usage from the final chunk of the last target's stream, if it sent it.
    pub usage: Option<Usage>,
    /// Data events forwarded.
    pub events: u64,
    /// How it ended.
    pub outcome: StreamOutcome,
    /// The whole response as one `chat.completion`, when assembling was asked for and the stream
    /// completed on the target that started it.
    pub assembled: Option<serde_json::Value>,
    /// Output tokens the host estimates the last target delivered (content, reasoning, tool
    /// arguments; about four bytes a token), for charging a stream that ended without usage.
    pub delivered_tokens: u64,
    /// Events dropped because they were not JSON.
    pub malformed: u64,
    /// The earlier targets of a resumed stream, in order, each cut after delivering part of the
    /// answer. Empty unless the stream was resumed.
    pub resumed: Vec<Segment>,
    /// The target that streamed last, when the stream was resumed: `(model, upstream)`.
    pub last_target: Option<(String, Arc<str>)>,
    /// Every attempt to resume the stream, in order.
    pub resume_attempts: Vec<AttemptSummary>,
}

/// The part of a resumed answer one target delivered before its stream was cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub model: String,
    pub upstream: Arc<str>,
    /// Usage, if the target reported it before the cut.
    pub usage: Option<Usage>,
    /// Output tokens it delivered, estimated.
    pub delivered_tokens: u64,
    /// Why its stream ended early.
    pub cut: String,
}

/// The ways a committed stream ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamOutcome {
    /// `[DONE]` (or the dialect's end event) arrived, or the upstream closed cleanly after a
    /// finish reason.
    Completed,
    /// The upstream failed mid-stream; the client got an error event.
    Failed(String),
    /// The upstream stopped sending before its answer ended, without saying so (no finish
    /// reason, no end event); the client got an error event.
    Truncated(String),
    /// The output passed what the request's budget reservation covers (hard budgets); the
    /// client got a `budget_exceeded` error event.
    BudgetExceeded(String),
    /// The client went away first.
    ClientGone,
}

impl StreamOutcome {
    /// The log's and the metrics' name for it.
    pub fn label(&self) -> &'static str {
        match self {
            StreamOutcome::Completed => "completed",
            StreamOutcome::Failed(_) => "failed",
            StreamOutcome::Truncated(_) => "truncated",
            StreamOutcome::BudgetExceeded(_) => "budget-exceeded",
            StreamOutcome::ClientGone => "client-gone",
        }
    }
}

/// One upstream event held back before the commit point.
struct Held {
    raw: Bytes,
    /// Its chat view, for dialects other than chat (chat frames are parsed only when needed).
    chunks: Option<Vec<Value>>,
    /// The event ended the stream (a short answer can be whole before it is committed).
    end: Option<dialect::StreamEnd>,
    /// A Responses event's `sequence_number`.
    sequence: Option<u64>,
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
    /// When the attempt that started it must be over (the upstream's request timeout).
    attempt_deadline: Option<Instant>,
}

impl StreamStart {
    /// The dialect the upstream streams in.
    pub fn wire(&self) -> Api {
        self.wire
    }

    /// The stream must end by `deadline`, the attempt's own (its request timeout bounds the
    /// whole stream, not only its start).
    pub(crate) fn until(mut self, deadline: Instant) -> Self {
        self.attempt_deadline = Some(deadline);
        self
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

/// A non-chat event decoded from its whole tree, with its `sequence_number` (Responses); `None`
/// when its data is not JSON.
fn decode(
    decoder: &mut dyn StreamDecoder,
    event: Option<&str>,
    data: &str,
) -> Option<(dialect::Decoded, Option<u64>)> {
    let value = serde_json::from_str::<Value>(data).ok()?;
    let sequence = value.get("sequence_number").and_then(Value::as_u64);
    Some((decoder.push(event, &value), sequence))
}

/// The start of an event that is not JSON, for the failure that names it.
fn excerpt(frame: &SseFrame, redactor: &Redactor) -> String {
    let data: String = frame.data().chars().take(60).collect();
    redactor.redact(&data)
}

/// Timing rules for a committed stream, and what it may deliver.
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
    /// Hard budgets: the output tokens the request's reservation covers. The stream is ended with
    /// a `budget_exceeded` error event before it delivers more.
    pub output_budget: Option<u64>,
}

/// Reads up to the first substantive event, within `first_event_deadline`.
pub async fn start(
    wire: Api,
    response: http::Response<Incoming>,
    first_event_deadline: Instant,
    redactor: &Redactor,
) -> Result<StreamStart, UpstreamFailure> {
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !content_type.is_some_and(|ct| ct.contains("text/event-stream")) {
        return Err(UpstreamFailure::new(
            FailureClass::Broken,
            format!(
                "expected an event stream, got content-type {}",
                content_type.unwrap_or("(none)")
            ),
        ));
    }
    let mut body = response.into_body();
    let mut splitter = SseSplitter::default();
    let mut held = Vec::new();
    let mut decoder = decoder_for(wire);
    let not_json = |frame: &SseFrame| {
        UpstreamFailure::new(
            FailureClass::StreamError,
            format!(
                "upstream sent an event that is not JSON: {}",
                excerpt(frame, redactor)
            ),
        )
    };
    loop {
        while let Some(frame) = splitter.next_frame() {
            if let Some(dec) = decoder.as_deref_mut() {
                if frame.kind == FrameKind::KeepAlive {
                    continue;
                }
                let data = frame.data();
                let event = dialect::event_name(&frame.raw);
                // A lifecycle event is held as it is, read from a few borrowed fields.
                if let Some(Lite {
                    event: LiteEvent::Inert,
                    sequence,
                }) = dec.lite(event, &data)
                {
                    drop(data);
                    held.push(Held {
                        raw: frame.raw,
                        chunks: Some(Vec::new()),
                        end: None,
                        sequence,
                    });
                    continue;
                }
                let Some((decoded, sequence)) = decode(dec, event, &data) else {
                    return Err(not_json(&frame));
                };
                drop(data);
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
                    sequence,
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
                        attempt_deadline: None,
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
                    let Ok(chunk) = serde_json::from_str::<Value>(&frame.data()) else {
                        return Err(not_json(&frame));
                    };
                    if !chunk.is_object() {
                        return Err(not_json(&frame));
                    }
                    let substantive = chunk_is_substantive(&chunk);
                    let usage = usage_in_value(&chunk);
                    held.push(Held {
                        raw: frame.raw,
                        chunks: None,
                        end: None,
                        sequence: None,
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
                            attempt_deadline: None,
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
/// How many times the upstream connection's task is let run, with no chunk ready, before the
/// chunks gathered so far leave. A burst's eleven events left in 12 writes with none and with
/// one, and in 3 with three or more (`BENCHMARKS.md`).
const GATHER_YIELDS: u32 = 3;
/// A stream whose chunks come one per read is tried for a burst again after this many reads.
const REPROBE_AFTER: u32 = 16;

/// Whether a stream's chunks come in bursts, which decides whether gathering them waits for
/// the upstream connection's task: a stream of tokens that each arrive alone would pay for
/// the yields on every event and gather nothing.
#[derive(Debug)]
struct Gather {
    bursty: bool,
    reads_alone: u32,
}

impl Default for Gather {
    fn default() -> Self {
        Gather {
            bursty: true,
            reads_alone: 0,
        }
    }
}

impl Gather {
    fn probe(&self) -> bool {
        self.bursty || self.reads_alone >= REPROBE_AFTER
    }

    /// After a read: whether it waited for more chunks, and whether waiting caught one.
    fn learn(&mut self, waited: bool, caught: bool) {
        if waited {
            self.bursty = caught;
            self.reads_alone = 0;
        } else {
            self.reads_alone += 1;
        }
    }
}

/// Gives the worker thread to the tasks this one woke, once: it wakes itself and is pending, so
/// the runtime queues it behind them. (`tokio::task::yield_now` defers the wake-up until the
/// worker has run out of other work, which under load can be dozens of tasks later.)
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

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
#[cfg(test)]
fn is_substantive(frame: &SseFrame) -> bool {
    serde_json::from_str::<Value>(&frame.data()).is_ok_and(|v| chunk_is_substantive(&v))
}

/// Whether a parsed chunk carries something the client must see.
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
    // Most events carry no usage: skip the JSON parse for them. The searcher is built once:
    // building it for every event cost more than the search.
    static USAGE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"usage\""));
    USAGE.find(&frame.raw)?;
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

/// The fields of a chat chunk the meter reads, borrowed (a passed-through chunk is read this far
/// and no further).
#[derive(Deserialize, Default)]
struct LiteChunk<'a> {
    #[serde(borrow, default)]
    choices: Option<Vec<LiteChoice<'a>>>,
}

/// Any JSON object (its fields unread): a chunk whose shape the meter does not know is still
/// well-formed.
#[derive(Deserialize)]
struct AnyObject {}

#[derive(Deserialize)]
struct LiteChoice<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    delta: Option<LiteDelta<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct LiteDelta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<&'a RawValue>,
    #[serde(borrow, default)]
    function_call: Option<&'a RawValue>,
}

/// What the client has been given of the answer: its size (for charging a stream without usage
/// and for hard budgets) and, while a resumption may still be asked for, its text.
#[derive(Debug, Default)]
struct Meter {
    /// Choice 0's content so far, over every target (the prefix a resumption sends).
    text: String,
    /// Output bytes (content, reasoning, refusal, tool arguments) of the current target.
    bytes: u64,
    /// Output bytes of the targets before it.
    earlier_bytes: u64,
    /// The largest `completion_tokens` the current target reported.
    reported: u64,
    /// A finish reason arrived.
    finished: bool,
    /// The answer has parts a prefix cannot carry: a tool call, or another choice.
    unresumable: bool,
}

/// Estimated tokens in `bytes` of output: about four bytes each, as the host estimates input.
fn tokens_of(bytes: u64) -> u64 {
    bytes.div_ceil(4)
}

/// The output tokens the host estimates a whole `chat.completion` holds (content, reasoning,
/// refusal, tool calls), for charging a response that came without usage.
pub fn completion_output_tokens(completion: &Value) -> u64 {
    let choices = completion.get("choices").and_then(Value::as_array);
    let bytes: usize = choices
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("message"))
        .map(|m| {
            let text = |k: &str| m.get(k).and_then(Value::as_str).map_or(0, str::len);
            let calls = m
                .get("tool_calls")
                .filter(|v| !v.is_null())
                .map_or(0, |v| v.to_string().len());
            text("content") + text("reasoning_content") + text("refusal") + calls
        })
        .sum();
    tokens_of(bytes as u64)
}

impl Meter {
    fn tokens(&self) -> u64 {
        tokens_of(self.bytes).max(self.reported)
    }

    fn total_tokens(&self) -> u64 {
        tokens_of(self.earlier_bytes) + self.tokens()
    }

    /// What one chunk adds, read from a passed-through chat chunk.
    fn lite(chunk: &LiteChunk<'_>) -> Added {
        let mut added = Added::default();
        for c in chunk.choices.iter().flatten() {
            let index = c.index.unwrap_or(0);
            if c.finish_reason.is_some_and(|f| f.get() != "null") {
                added.finished = true;
            }
            let Some(d) = &c.delta else { continue };
            let mut text_bytes = 0;
            for s in [&d.reasoning_content, &d.refusal].into_iter().flatten() {
                text_bytes += s.len() as u64;
            }
            for raw in [d.tool_calls, d.function_call].into_iter().flatten() {
                if raw.get() != "null" {
                    text_bytes += raw.get().len() as u64;
                    added.unresumable = true;
                }
            }
            if let Some(content) = &d.content {
                text_bytes += content.len() as u64;
                if index == 0 {
                    added.text.push_str(content);
                } else if !content.is_empty() {
                    added.unresumable = true;
                }
            }
            if index != 0 && text_bytes > 0 {
                added.unresumable = true;
            }
            added.bytes += text_bytes;
        }
        added
    }

    /// What one chunk adds, read from a parsed (or translated) chat chunk.
    fn value(chunk: &Value) -> Added {
        let mut added = Added::default();
        let choices = chunk.get("choices").and_then(Value::as_array);
        for c in choices.into_iter().flatten() {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(0);
            if c.get("finish_reason").is_some_and(|f| !f.is_null()) {
                added.finished = true;
            }
            let Some(d) = c.get("delta") else { continue };
            let text = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or_default();
            let mut bytes = (text("reasoning_content").len() + text("refusal").len()) as u64;
            for k in ["tool_calls", "function_call"] {
                if let Some(v) = d.get(k).filter(|v| !v.is_null()) {
                    bytes += v.to_string().len() as u64;
                    added.unresumable = true;
                }
            }
            let content = text("content");
            bytes += content.len() as u64;
            if index == 0 {
                added.text.push_str(content);
            } else if bytes > 0 {
                added.unresumable = true;
            }
            added.bytes += bytes;
        }
        added
    }

    fn add(&mut self, added: Added, usage: Option<Usage>) {
        self.bytes += added.bytes;
        self.text.push_str(&added.text);
        self.finished |= added.finished;
        self.unresumable |= added.unresumable;
        if let Some(u) = usage {
            self.reported = self.reported.max(u.completion_tokens);
        }
    }

    /// The current target was cut; the next one's output is counted on its own.
    fn next_target(&mut self) {
        self.earlier_bytes += self.bytes;
        self.bytes = 0;
        self.reported = 0;
        self.finished = false;
    }
}

/// What one chunk adds to the answer.
#[derive(Debug, Default)]
struct Added {
    bytes: u64,
    text: String,
    finished: bool,
    unresumable: bool,
}

/// Calls its finisher exactly once: when the stream ends, or when it is dropped unfinished.
struct EndGuard<F: StreamFinish> {
    on_end: Option<F>,
    usage: Option<Usage>,
    events: u64,
    assembler: Option<Assembler>,
    malformed: u64,
    delivered_tokens: u64,
    resumed: Vec<Segment>,
    last_target: Option<(String, Arc<str>)>,
    resume_attempts: Vec<AttemptSummary>,
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
                delivered_tokens: self.delivered_tokens,
                malformed: self.malformed,
                resumed: std::mem::take(&mut self.resumed),
                last_target: self.last_target.take(),
                resume_attempts: std::mem::take(&mut self.resume_attempts),
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

/// Why a committed stream is ending before its answer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CutKind {
    /// The connection broke, no event came for the idle timeout, or the attempt's own time ran
    /// out: another target may continue.
    Broken,
    /// The upstream said it failed (an error event).
    UpstreamError,
    /// It stopped without saying so.
    Truncated,
    /// The request's deadline passed, or the gateway is shutting down: nothing more is tried.
    Final,
}

/// A cut waiting to be resumed or reported.
struct Cut {
    kind: CutKind,
    reason: String,
    code: &'static str,
    /// The upstream's own error event, passed on (redacted) when the client reads its dialect.
    frame: Option<Bytes>,
}

struct RelayState<F: StreamFinish> {
    queue: VecDeque<Bytes>,
    body: Incoming,
    splitter: SseSplitter,
    limits: RelayLimits,
    /// When the current attempt must be over.
    attempt_deadline: Option<Instant>,
    last_event: Instant,
    done: bool,
    /// A body result read ahead while gathering ready chunks, handled on the next turn.
    read_ahead: Option<Option<Result<Frame<Bytes>, hyper::Error>>>,
    gather: Gather,
    guard: EndGuard<F>,
    redactor: Redactor,
    wire: Api,
    decoder: Option<Box<dyn StreamDecoder>>,
    client: ClientStream,
    /// The last `sequence_number` of a Responses stream passed through, so the error event that
    /// ends a cut one continues the count.
    sequence: Option<u64>,
    meter: Meter,
    /// A cut to resume or report before anything else is read.
    cut: Option<Cut>,
    resumer: Option<Box<dyn Resume>>,
    /// The id of the answer's first chunk: a resumed target's chunks carry it too.
    answer_id: Option<Value>,
    /// Set while a resumed target's stream has not yet sent substantive content: its role-only
    /// opening is dropped, and `trimmed` is taken off the start of its content.
    lead_in: Option<String>,
}

impl<F: StreamFinish> RelayState<F> {
    /// One chat chunk of the response: into the meter, the assembled copy, the usage, and
    /// (translating) the client's dialect. Returns false when the chunk was not delivered (the
    /// budget ran out).
    fn chunk(&mut self, chunk: &Value) -> bool {
        let mut chunk = Cow::Borrowed(chunk);
        if let Some(trimmed) = self.lead_in.take() {
            if !chunk_is_substantive(&chunk) {
                self.lead_in = Some(trimmed);
                return true;
            }
            strip_leading(chunk.to_mut(), &trimmed);
        }
        if self.resumed() {
            if let Some(id) = self.answer_id.as_ref().filter(|id| !id.is_null())
                && let Some(obj) = chunk.to_mut().as_object_mut()
            {
                obj.insert("id".into(), id.clone());
            }
        } else if self.answer_id.is_none() {
            self.answer_id = Some(chunk.get("id").cloned().unwrap_or(Value::Null));
        }
        let added = Meter::value(&chunk);
        let usage = usage_in_value(&chunk);
        if !self.within_budget(&added) {
            return false;
        }
        self.meter.add(added, usage);
        if let Some(a) = &mut self.guard.assembler {
            a.push_value(&chunk);
        }
        if let Some(u) = usage {
            self.guard.usage = Some(u);
        }
        if let ClientStream::Encode(encoder) = &mut self.client {
            let mut out = Vec::new();
            encoder.push(&chunk, &mut out);
            self.queue.extend(out);
        }
        true
    }

    fn resumed(&self) -> bool {
        !self.guard.resumed.is_empty()
    }

    /// Whether `added` still fits the hard budget; if not the stream ends here.
    fn within_budget(&mut self, added: &Added) -> bool {
        let Some(budget) = self.limits.output_budget else {
            return true;
        };
        let after = tokens_of(self.meter.earlier_bytes + self.meter.bytes + added.bytes);
        if after <= budget {
            return true;
        }
        self.end(Cut {
            kind: CutKind::Final,
            reason: format!(
                "the output reached the {budget} tokens this request's budget reservation covers"
            ),
            code: "budget_exceeded",
            frame: None,
        });
        false
    }

    /// The upstream finished its answer.
    fn complete(&mut self) {
        if let ClientStream::Encode(encoder) = &mut self.client {
            let mut out = Vec::new();
            encoder.finish(&mut out);
            self.queue.extend(out);
        }
        self.done = true;
        self.settle_meter();
        self.guard.finish(StreamOutcome::Completed);
    }

    fn settle_meter(&mut self) {
        self.guard.delivered_tokens = self.meter.tokens();
    }

    /// The stream is cut: resumed on the next turn when it can be, else ended.
    fn cut(&mut self, kind: CutKind, reason: String, code: &'static str, frame: Option<Bytes>) {
        self.cut = Some(Cut {
            kind,
            reason,
            code,
            frame,
        });
    }

    /// Whether the answer so far can be continued elsewhere: a later target can, and the client
    /// reads a stream the host writes.
    fn resumable(&self, cut: &Cut) -> bool {
        cut.kind != CutKind::Final
            && self.resumer.as_ref().is_some_and(|r| r.possible())
            && !self.meter.unresumable
            && !self.meter.text.is_empty()
            && matches!(
                self.client,
                ClientStream::Encode(_) | ClientStream::Pass { client: Api::Chat }
            )
    }

    /// Resumes the cut on a later target, or ends the stream with it.
    async fn settle_cut(&mut self, cut: Cut) {
        let mut cut = cut;
        if self.resumable(&cut)
            && let Some(resumer) = self.resumer.as_mut()
        {
            let current = resumer.current().clone();
            let result = resumer
                .resume(&self.meter.text, self.meter.total_tokens())
                .await;
            self.guard.resume_attempts = resumer.attempts().to_vec();
            match result {
                Ok(resumed) => {
                    self.guard.resumed.push(Segment {
                        model: current.0,
                        upstream: current.1,
                        usage: self.guard.usage.take(),
                        delivered_tokens: self.meter.tokens(),
                        cut: cut.reason,
                    });
                    self.guard.last_target = Some(resumer.current().clone());
                    // A resumed answer comes from two models: it is never cached.
                    self.guard.assembler = None;
                    self.meter.next_target();
                    let start = resumed.start;
                    self.body = start.body;
                    self.splitter = start.splitter;
                    self.decoder = start.decoder;
                    self.wire = start.wire;
                    self.attempt_deadline = start.attempt_deadline;
                    self.read_ahead = None;
                    self.last_event = Instant::now();
                    self.lead_in = Some(resumed.trimmed);
                    if let ClientStream::Pass { client: Api::Chat } = self.client {
                        // From here the host writes the chat stream itself, from the chat view.
                        self.client = ClientStream::Encode(Box::new(
                            crate::chat::encode::Encoder::new(!self.limits.strip_usage_chunks),
                        ));
                    }
                    self.release(start.held);
                    return;
                }
                Err(why) => {
                    cut.reason = format!("{} (not resumed: {why})", cut.reason);
                }
            }
        }
        self.end(cut);
    }

    /// Ends a committed stream that was cut, with an error event in the client's dialect (the
    /// upstream's own, when it sent one and the client reads its dialect).
    fn end(&mut self, cut: Cut) {
        let Cut {
            kind,
            reason,
            code,
            frame,
        } = cut;
        let status_like = if code == "budget_exceeded" { 429 } else { 502 };
        match &mut self.client {
            ClientStream::Encode(encoder) => {
                let mut out = Vec::new();
                encoder.fail(&reason, code, &mut out);
                self.queue.extend(out);
            }
            ClientStream::Pass { .. } if frame.is_some() => {
                self.queue.extend(frame);
            }
            ClientStream::Pass { client: Api::Chat } => {
                self.queue.push_back(error_frame(&reason, code));
            }
            ClientStream::Pass {
                client: Api::Messages,
            } => self
                .queue
                .push_back(dialect::messages::stream_error_frame(status_like, &reason)),
            ClientStream::Pass {
                client: Api::Responses,
            } => {
                let event = serde_json::json!({
                    "type": "error",
                    "sequence_number": self.sequence.map_or(0, |n| n + 1),
                    "code": code,
                    "message": reason,
                    "param": null,
                });
                self.queue
                    .push_back(Bytes::from(format!("event: error\ndata: {event}\n\n")));
            }
        }
        self.done = true;
        self.settle_meter();
        let outcome = match (kind, code) {
            (_, "budget_exceeded") => StreamOutcome::BudgetExceeded(reason),
            (CutKind::Truncated, _) => StreamOutcome::Truncated(reason),
            _ => StreamOutcome::Failed(reason),
        };
        self.guard.finish(outcome);
    }

    /// An event that is not JSON after the commit point: dropped and counted.
    fn malformed(&mut self) {
        self.guard.malformed += 1;
    }

    /// Handles one complete upstream frame after the commit point.
    fn take(&mut self, frame: SseFrame) {
        if frame.kind == FrameKind::KeepAlive {
            // A comment is valid SSE in every dialect; it keeps the client's connection warm.
            self.queue.push_back(frame.raw);
            return;
        }
        // A passed-through event that only adds text or changes nothing is read from a few
        // borrowed fields, while nothing needs the chat view built (no resumed target, no lead-in
        // to trim, the answer's id already taken from an earlier chunk).
        let lite_allowed = matches!(self.client, ClientStream::Pass { .. })
            && self.lead_in.is_none()
            && !self.resumed()
            && self.answer_id.is_some();
        if let Some(decoder) = self.decoder.as_deref_mut() {
            self.last_event = Instant::now();
            let data = frame.data();
            let event = dialect::event_name(&frame.raw);
            if lite_allowed && let Some(lite) = decoder.lite(event, &data) {
                if self.wire == Api::Responses
                    && let Some(n) = lite.sequence
                {
                    self.sequence = Some(n);
                }
                self.guard.events += 1;
                if let LiteEvent::Text(text) = &lite.event
                    && !self.pass_text(text)
                {
                    return;
                }
                self.queue.push_back(frame.raw.clone());
                return;
            }
            let Some((decoded, sequence)) = decode(decoder, event, &data) else {
                self.malformed();
                return;
            };
            if self.wire == Api::Responses
                && let Some(n) = sequence
            {
                self.sequence = Some(n);
            }
            self.guard.events += 1;
            let failed = matches!(decoded.end, Some(dialect::StreamEnd::Failed(_)));
            if !failed && matches!(self.client, ClientStream::Pass { .. }) {
                let added = decoded.chunks.iter().map(|c| Meter::value(c).bytes).sum();
                if !self.within_budget(&Added {
                    bytes: added,
                    ..Added::default()
                }) {
                    return;
                }
                self.queue.push_back(frame.raw.clone());
            }
            for chunk in &decoded.chunks {
                if !self.chunk(chunk) {
                    return;
                }
            }
            match decoded.end {
                None => {}
                Some(dialect::StreamEnd::Completed) => self.complete(),
                Some(dialect::StreamEnd::Failed(message)) => {
                    let message = self.redactor.redact(&message);
                    let passing = matches!(self.client, ClientStream::Pass { .. });
                    self.cut(
                        CutKind::UpstreamError,
                        format!("upstream error event: {message}"),
                        "upstream_error",
                        passing.then_some(frame.raw),
                    );
                }
            }
            return;
        }
        match frame.kind {
            FrameKind::KeepAlive => {}
            FrameKind::Done => {
                if self.lead_in.is_some() && self.resumed() {
                    // A resumed target that ended before saying anything is cut too.
                    self.cut(
                        CutKind::Truncated,
                        "the resumed stream ended before any content".into(),
                        "stream_interrupted",
                        None,
                    );
                    return;
                }
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
                self.cut(
                    CutKind::UpstreamError,
                    format!("upstream error event: {message}"),
                    "upstream_error",
                    passing.then_some(frame.raw),
                );
            }
            FrameKind::Data => {
                self.last_event = Instant::now();
                if let ClientStream::Encode(_) = self.client {
                    match serde_json::from_str::<Value>(&frame.data()) {
                        Ok(chunk) if chunk.is_object() => {
                            self.guard.events += 1;
                            self.chunk(&chunk);
                        }
                        _ => self.malformed(),
                    }
                    return;
                }
                if self.pass_chat(frame) {
                    self.guard.events += 1;
                }
            }
        }
    }

    /// A passed-through event's text delta ([`LiteEvent::Text`]): what [`Self::chunk`] does with
    /// the chat chunk the decoder would have made of it, a content-only delta of choice 0, once
    /// the answer's id is known. Returns false when the budget ran out (the stream ends here).
    fn pass_text(&mut self, text: &str) -> bool {
        let added = Added {
            bytes: text.len() as u64,
            text: text.to_owned(),
            ..Added::default()
        };
        if !self.within_budget(&added) {
            return false;
        }
        self.meter.add(added, None);
        if let Some(a) = &mut self.guard.assembler {
            a.push_content(text);
        }
        true
    }

    /// A chat data event passed through: metered, assembled and queued, unless it is not JSON,
    /// is a usage-only chunk the client did not ask for, or passes the budget. Returns whether it
    /// was queued.
    fn pass_chat(&mut self, frame: SseFrame) -> bool {
        let data = frame.data();
        let lite = match serde_json::from_str::<LiteChunk<'_>>(&data) {
            Ok(lite) => lite,
            // JSON of a shape the meter does not know (a provider's own fields): passed on.
            Err(_) if serde_json::from_str::<AnyObject>(&data).is_ok() => LiteChunk::default(),
            Err(_) => {
                self.malformed();
                return false;
            }
        };
        let added = Meter::lite(&lite);
        let usage = usage_in(&frame);
        if self.answer_id.is_none() {
            let id = serde_json::from_str::<Value>(&data)
                .ok()
                .and_then(|v| v.get("id").cloned());
            self.answer_id = Some(id.unwrap_or(Value::Null));
        }
        if !self.within_budget(&added) {
            return false;
        }
        self.meter.add(added, usage);
        self.guard.assemble(&frame.raw);
        if let Some(u) = usage {
            self.guard.usage = Some(u);
            if self.limits.strip_usage_chunks && is_usage_only(&frame) {
                return false;
            }
        }
        self.queue.push_back(frame.raw);
        true
    }

    /// The upstream closed the connection after whole events.
    fn closed(&mut self) {
        if self.wire == Api::Chat && self.meter.finished {
            // A finish reason came, only `[DONE]` did not: the answer is whole, and the client
            // is told so the way it expects.
            if matches!(self.client, ClientStream::Pass { .. }) {
                self.queue
                    .push_back(Bytes::from_static(b"data: [DONE]\n\n"));
            }
            self.complete();
        } else {
            self.cut(
                CutKind::Truncated,
                "upstream closed the stream before its answer ended (no finish reason or end event)"
                    .into(),
                "stream_truncated",
                None,
            );
        }
    }

    /// The events held back before the commit, now part of the response.
    fn release(&mut self, held: Vec<Held>) {
        for h in held {
            if self.done {
                return;
            }
            match h.chunks {
                Some(chunks) => {
                    if self.wire == Api::Responses
                        && let Some(n) = h.sequence
                    {
                        self.sequence = Some(n);
                    }
                    if matches!(self.client, ClientStream::Pass { .. }) {
                        self.queue.push_back(h.raw);
                    }
                    for chunk in &chunks {
                        if !self.chunk(chunk) {
                            return;
                        }
                    }
                    if h.end == Some(dialect::StreamEnd::Completed) {
                        self.complete();
                    }
                }
                None => match &self.client {
                    ClientStream::Pass { .. } => {
                        self.pass_chat(SseFrame {
                            raw: h.raw,
                            kind: FrameKind::Data,
                        });
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

/// Takes `trimmed` (whitespace the client already has) off the start of a resumed target's
/// first content.
fn strip_leading(chunk: &mut Value, trimmed: &str) {
    if trimmed.is_empty() {
        return;
    }
    let Some(content) = chunk
        .pointer_mut("/choices/0/delta/content")
        .filter(|c| c.is_string())
    else {
        return;
    };
    if let Some(rest) = content.as_str().and_then(|c| c.strip_prefix(trimmed)) {
        *content = rest.into();
    }
}

/// The response body for a committed stream, read by the client as `client` says; `resumer`,
/// when the tenant opted in, continues a cut answer on a later target. `on_end` is told once how
/// it ended.
pub fn into_body<F: StreamFinish>(
    start: StreamStart,
    limits: RelayLimits,
    redactor: Redactor,
    client: ClientStream,
    resumer: Option<Box<dyn Resume>>,
    on_end: F,
) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + 'static>
{
    let assembler = limits.assemble.then(Assembler::default);
    let mut state = RelayState {
        queue: VecDeque::with_capacity(start.held.len()),
        body: start.body,
        splitter: start.splitter,
        attempt_deadline: start.attempt_deadline,
        limits,
        last_event: Instant::now(),
        done: false,
        read_ahead: None,
        gather: Gather::default(),
        guard: EndGuard {
            on_end: Some(on_end),
            usage: start.usage,
            events: start.events,
            assembler,
            malformed: 0,
            delivered_tokens: 0,
            resumed: Vec::new(),
            last_target: None,
            resume_attempts: Vec::new(),
        },
        redactor,
        wire: start.wire,
        decoder: start.decoder,
        client,
        sequence: None,
        meter: Meter::default(),
        cut: None,
        resumer,
        answer_id: None,
        lead_in: None,
    };
    state.release(start.held);
    StreamBody::new(stream::unfold(state, |mut s| async move {
        loop {
            if !s.queue.is_empty() {
                let out = s.redactor.redact_bytes(coalesce(&mut s.queue));
                return Some((Ok(Frame::data(out)), s));
            }
            if s.done {
                return None;
            }
            if let Some(cut) = s.cut.take() {
                s.settle_cut(cut).await;
                continue;
            }
            // Handle every complete frame already buffered.
            while !s.done
                && s.cut.is_none()
                && let Some(frame) = s.splitter.next_frame()
            {
                s.take(frame);
            }
            if !s.queue.is_empty() || s.done || s.cut.is_some() {
                continue;
            }
            let attempt_deadline = s.attempt_deadline.unwrap_or(s.limits.deadline);
            let wake = (s.last_event + s.limits.idle)
                .min(s.limits.deadline)
                .min(attempt_deadline);
            let mut drain = s.limits.drain_expired.clone();
            let next = match s.read_ahead.take() {
                Some(ready) => Some(Ok(ready)),
                None => tokio::select! {
                    next = timeout_at(wake, s.body.frame()) => Some(next),
                    _ = drain.wait_for(|expired| *expired) => None,
                },
            };
            let Some(next) = next else {
                s.cut(
                    CutKind::Final,
                    "the gateway is shutting down and its drain deadline has passed".to_owned(),
                    "server_shutting_down",
                    None,
                );
                continue;
            };
            let (kind, failure) = match next {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        s.splitter.push(&data);
                    }
                    // The upstream's chunks that arrived in the same read are taken too, so
                    // they leave in one write (bounded, so a fast stream still flows out in
                    // pieces). The upstream connection's task hands the body over a chunk at a
                    // time, each once this task has taken the one before: with none ready, it
                    // is let run a few times before the chunks gathered so far leave.
                    let allowed = if s.gather.probe() { GATHER_YIELDS } else { 0 };
                    let (mut idle, mut caught) = (0, false);
                    while s.splitter.pending() < READ_AHEAD_BYTES {
                        match s.body.frame().now_or_never() {
                            Some(Some(Ok(frame))) => {
                                if let Ok(data) = frame.into_data() {
                                    s.splitter.push(&data);
                                }
                                caught |= idle > 0;
                                idle = 0;
                            }
                            Some(other) => {
                                s.read_ahead = Some(other);
                                break;
                            }
                            None if idle < allowed => {
                                YieldOnce(false).await;
                                idle += 1;
                            }
                            None => break,
                        }
                    }
                    s.gather.learn(allowed > 0, caught);
                    continue;
                }
                Ok(None) if s.splitter.pending() == 0 => {
                    s.closed();
                    continue;
                }
                Ok(None) => (
                    CutKind::Broken,
                    "upstream closed the stream in the middle of an event".to_owned(),
                ),
                Ok(Some(Err(e))) => (
                    CutKind::Broken,
                    format!(
                        "upstream stream broke: {}",
                        s.redactor.redact(&e.to_string())
                    ),
                ),
                Err(_) if Instant::now() >= s.limits.deadline => (
                    CutKind::Final,
                    "request deadline reached mid-stream".to_owned(),
                ),
                Err(_) if Instant::now() >= attempt_deadline => (
                    CutKind::Broken,
                    "the upstream's request timeout passed mid-stream".to_owned(),
                ),
                Err(_) => (
                    CutKind::Broken,
                    format!("no stream event for {} ms", s.limits.idle.as_millis()),
                ),
            };
            s.cut(kind, failure, "stream_interrupted", None);
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
            !is_substantive(&frame("not json")),
            "an event that is not JSON never commits a stream"
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

    #[test]
    fn the_meter_reads_text_finish_and_what_a_prefix_cannot_carry() {
        let lite = |s: &str| {
            let chunk: LiteChunk<'_> = serde_json::from_str(s).unwrap();
            Meter::lite(&chunk)
        };
        let a = lite(r#"{"choices":[{"index":0,"delta":{"content":"Hello"}}]}"#);
        assert_eq!((a.bytes, a.text.as_str(), a.finished), (5, "Hello", false));
        let a = lite(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#);
        assert!(a.finished && a.bytes == 0);
        let a = lite(r#"{"choices":[{"index":0,"delta":{},"finish_reason":null}]}"#);
        assert!(!a.finished);
        let a = lite(
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}"#,
        );
        assert!(a.unresumable && a.bytes > 0);
        let a = lite(r#"{"choices":[{"index":1,"delta":{"content":"x"}}]}"#);
        assert!(a.unresumable);
        // The same reading from a parsed chunk.
        let v: Value =
            serde_json::from_str(r#"{"choices":[{"index":0,"delta":{"content":"Hé"}}]}"#).unwrap();
        let a = Meter::value(&v);
        assert_eq!((a.bytes, a.text.as_str()), (3, "Hé"));
        assert_eq!(tokens_of(9), 3);
    }

    #[test]
    fn only_what_is_not_a_json_object_counts_as_malformed() {
        let reads = |s: &str| {
            serde_json::from_str::<LiteChunk<'_>>(s).is_ok()
                || serde_json::from_str::<AnyObject>(s).is_ok()
        };
        for fine in [
            r#"{"choices":null}"#,
            r#"{"provider_event":{"x":1}}"#,
            r#"{"choices":[{"delta":{"content":[{"type":"text"}]}}]}"#,
        ] {
            assert!(reads(fine), "{fine}");
        }
        for bad in ["this is not json", r#""a string""#, "{not json", "12"] {
            assert!(!reads(bad), "{bad}");
        }
    }

    #[test]
    fn a_whole_completions_output_is_estimated_from_its_text() {
        let v: Value = serde_json::from_str(
            r#"{"choices":[{"message":{"role":"assistant","content":"12345678","reasoning_content":"abcd"}}]}"#,
        )
        .unwrap();
        assert_eq!(completion_output_tokens(&v), 3);
        assert_eq!(completion_output_tokens(&Value::Null), 0);
    }

    #[test]
    fn a_resumed_targets_first_content_loses_the_whitespace_the_client_has() {
        let mut v: Value =
            serde_json::from_str(r#"{"choices":[{"index":0,"delta":{"content":" world"}}]}"#)
                .unwrap();
        strip_leading(&mut v, " ");
        assert_eq!(v["choices"][0]["delta"]["content"], "world");
        strip_leading(&mut v, "\n");
        assert_eq!(v["choices"][0]["delta"]["content"], "world", "only a match");
    }
}
