//! Server-sent events, split into whole frames as they arrive.
//!
//! The gateway forwards events frame by frame, never byte ranges that cut a frame, so that when an
//! upstream fails mid-stream the error event it appends is always well-formed. Keep-alive comments
//! (`: keep-alive`, DeepSeek's way of holding a stream open) are recognised so they never count as
//! the first real event or reset the idle timer.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use bytes::{Bytes, BytesMut};
use memchr::memmem::Finder;
use serde::de::IgnoredAny;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A `data:` event with a JSON payload.
    Data,
    /// `data: [DONE]`, the OpenAI end-of-stream marker.
    Done,
    /// A `data:` event whose payload is an error object (`{"error": ...}`).
    Error,
    /// Only comments or blank fields: a keep-alive.
    KeepAlive,
}

/// One complete frame: its raw bytes (terminator included) and its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseFrame {
    pub raw: Bytes,
    pub kind: FrameKind,
}

impl SseFrame {
    /// The payload of the frame's `data:` lines, joined with `\n` as the SSE spec says.
    pub fn data(&self) -> Cow<'_, str> {
        payload(&self.raw)
    }
}

/// The payload of a raw frame's `data:` lines, joined with `\n` as the SSE spec says. A frame of
/// one `data:` line, nearly every frame (Messages and Responses put an `event:` line before it),
/// is read in place; the others are copied.
pub fn payload(raw: &[u8]) -> Cow<'_, str> {
    let mut only = None;
    for line in lines(raw) {
        if let Some(rest) = line.strip_prefix(b"data:") {
            if only.is_some() {
                return Cow::Owned(joined_payload(raw));
            }
            only = Some(rest.strip_prefix(b" ").unwrap_or(rest));
        }
    }
    match only.map(std::str::from_utf8) {
        Some(Ok(line)) => Cow::Borrowed(line),
        None => Cow::Borrowed(""),
        Some(Err(_)) => Cow::Owned(joined_payload(raw)),
    }
}

/// The lines of `raw`, as `raw.split` at every `\n` and `\r` gives them (empty ones included),
/// found with `memchr`: every event is split into lines twice (its kind, its payload), and a
/// byte-at-a-time split was a tenth of a stream's instructions (`BENCHMARKS.md`).
fn lines(raw: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr2_iter(b'\n', b'\r', raw)
        .map(Some)
        .chain(std::iter::once(None))
        .map(move |end| {
            let end = end.unwrap_or(raw.len());
            let line = &raw[start..end];
            start = end + 1;
            line
        })
}

fn joined_payload(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::new();
    for line in text.split(['\n', '\r']) {
        if let Some(rest) = line.strip_prefix("data:") {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(rest.strip_prefix(' ').unwrap_or(rest));
        }
    }
    out
}

/// Accumulates bytes and yields complete frames.
#[derive(Debug, Default)]
pub struct SseSplitter {
    buf: BytesMut,
}

impl SseSplitter {
    /// Adds bytes received from upstream.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes held that do not yet form a complete frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, if the buffer holds one.
    pub fn next_frame(&mut self) -> Option<SseFrame> {
        let end = frame_end(&self.buf)?;
        let raw = self.buf.split_to(end).freeze();
        let kind = classify(&raw);
        Some(SseFrame { raw, kind })
    }
}

/// Index just past the first frame terminator (a blank line: `\n\n`, `\r\n\r\n` or `\r\r`). Only
/// line ends are looked at.
fn frame_end(buf: &[u8]) -> Option<usize> {
    memchr::memchr2_iter(b'\n', b'\r', buf).find_map(|i| {
        let next = |k: usize| buf.get(i + k).copied();
        match buf[i] {
            b'\n' if next(1) == Some(b'\n') => Some(i + 2),
            b'\r' if next(1) == Some(b'\n') && next(2) == Some(b'\r') && next(3) == Some(b'\n') => {
                Some(i + 4)
            }
            b'\r' if next(1) == Some(b'\r') => Some(i + 2),
            _ => None,
        }
    })
}

fn classify(raw: &[u8]) -> FrameKind {
    let mut has_data = false;
    let mut payload_start: Option<&[u8]> = None;
    for line in lines(raw) {
        if let Some(rest) = line.strip_prefix(b"data:") {
            has_data = true;
            if payload_start.is_none() {
                payload_start = Some(rest.strip_prefix(b" ").unwrap_or(rest));
            }
        }
    }
    if !has_data {
        return FrameKind::KeepAlive;
    }
    let payload = payload_start.unwrap_or_default();
    let trimmed = payload.trim_ascii();
    if trimmed == b"[DONE]" {
        FrameKind::Done
    } else if trimmed.is_empty() {
        FrameKind::KeepAlive
    } else if trimmed.starts_with(b"{\"error\"") || is_error_object(raw) {
        FrameKind::Error
    } else {
        FrameKind::Data
    }
}

/// Whether the frame's payload is a JSON object with a top-level `error` member. Only payloads
/// that mention `"error"` at all are parsed.
fn is_error_object(frame: &[u8]) -> bool {
    // Built once: building the searcher for every event cost more than the search.
    static ERROR: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"error\""));
    if ERROR.find(frame).is_none() {
        return false;
    }
    // Only the top level's keys are read, the values skipped unbuilt: a Responses lifecycle event
    // carries `"error": null` inside its `response`, and building its whole tree to find that out
    // cost more than relaying it.
    let data = payload(frame);
    serde_json::from_str::<HashMap<Cow<'_, str>, IgnoredAny>>(&data)
        .is_ok_and(|top| top.contains_key("error"))
}

/// An SSE frame carrying an OpenAI-style error object, ending a stream that failed mid-way.
pub fn error_frame(message: &str, code: &str) -> Bytes {
    let body =
        serde_json::json!({"error": {"message": message, "type": "upstream_error", "code": code}});
    Bytes::from(format!("data: {body}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[&[u8]]) -> Vec<SseFrame> {
        let mut s = SseSplitter::default();
        let mut out = Vec::new();
        for chunk in input {
            s.push(chunk);
            while let Some(f) = s.next_frame() {
                out.push(f);
            }
        }
        out
    }

    #[test]
    fn only_a_top_level_error_member_makes_an_error_event() {
        let kinds: Vec<FrameKind> = [
            &b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"error\":null}}\n\n"[..],
            b"data: [\"error\"]\n\n",
            b"data: {\"type\":\"x\",\"error\":null}\n\n",
            b"data: {\"error\":1,\"error\":2}\n\n",
        ]
        .iter()
        .map(|raw| classify(raw))
        .collect();
        assert_eq!(
            kinds,
            [
                FrameKind::Data,
                FrameKind::Data,
                FrameKind::Error,
                FrameKind::Error
            ]
        );
    }

    #[test]
    fn a_one_line_frame_is_read_in_place() {
        let raw = b"data: {\"a\":1}\n\n";
        assert!(matches!(payload(raw), Cow::Borrowed("{\"a\":1}")));
        assert_eq!(payload(b"data: a\ndata: b\n\n"), "a\nb");
        assert_eq!(payload(b"event: x\ndata: y\n\n"), "y");
        assert_eq!(payload(b"data: \xff\n\n"), "\u{fffd}");
    }

    proptest::proptest! {
        /// Read in place or copied, the payload is the same.
        #[test]
        fn the_fast_payload_is_the_joined_one(
            lines in proptest::collection::vec("(data: ?|event: |: |id: )?[a-z{}\"\\r\u{e9}]{0,6}", 0..4),
            end in "(\n|\r\n|\n\n|\r\n\r\n|)",
        ) {
            let raw = lines.join("\n") + &end;
            proptest::prop_assert_eq!(payload(raw.as_bytes()), joined_payload(raw.as_bytes()));
        }
    }

    /// The byte-at-a-time scan `frame_end` replaced.
    fn frame_end_by_bytes(buf: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < buf.len() {
            match buf[i] {
                b'\n' if buf.get(i + 1) == Some(&b'\n') => return Some(i + 2),
                b'\r'
                    if buf.get(i + 1) == Some(&b'\n')
                        && buf.get(i + 2) == Some(&b'\r')
                        && buf.get(i + 3) == Some(&b'\n') =>
                {
                    return Some(i + 4);
                }
                b'\r' if buf.get(i + 1) == Some(&b'\r') => return Some(i + 2),
                _ => i += 1,
            }
        }
        None
    }

    proptest::proptest! {
        /// Lines and frame ends found with `memchr` are those a byte-at-a-time scan finds.
        #[test]
        fn lines_and_frame_ends_are_found_as_byte_scans_find_them(
            raw in proptest::collection::vec(proptest::sample::select(&b"ab:\n\r d"[..]), 0..40),
        ) {
            let split: Vec<&[u8]> = raw.split(|b| *b == b'\n' || *b == b'\r').collect();
            proptest::prop_assert_eq!(lines(&raw).collect::<Vec<_>>(), split);
            proptest::prop_assert_eq!(frame_end(&raw), frame_end_by_bytes(&raw));
        }
    }

    #[test]
    fn frames_split_across_chunks_are_reassembled() {
        let f = frames(&[b"data: {\"a\"", b":1}\n", b"\ndata: [DONE]\n\n"]);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].raw, &b"data: {\"a\":1}\n\n"[..]);
        assert_eq!(f[0].kind, FrameKind::Data);
        assert_eq!(f[0].data(), "{\"a\":1}");
        assert_eq!(f[1].kind, FrameKind::Done);
    }

    #[test]
    fn keep_alives_errors_and_crlf_are_recognised() {
        let f = frames(&[
            b": keep-alive\n\n",
            b"data: {\"error\":{\"message\":\"overloaded\"}}\r\n\r\n",
            b"event: ping\ndata:\n\n",
        ]);
        assert_eq!(
            f.iter().map(|f| f.kind).collect::<Vec<_>>(),
            [FrameKind::KeepAlive, FrameKind::Error, FrameKind::KeepAlive]
        );
        let f = frames(&[
            b"data: {\"choices\":[],\n",
            b"data: \"error\":{\"x\":1}}\n\n",
        ]);
        assert_eq!(
            f[0].kind,
            FrameKind::Error,
            "multi-line data is joined before parsing"
        );
        let f = frames(&[
            b"data: {\"choices\":[{\"delta\":{\"content\":\"the \\\"error\\\" word\"}}]}\n\n",
        ]);
        assert_eq!(
            f[0].kind,
            FrameKind::Data,
            "content that mentions error is data"
        );
    }

    #[test]
    fn an_incomplete_frame_is_held_back() {
        let mut s = SseSplitter::default();
        s.push(b"data: {\"partial\":");
        assert!(s.next_frame().is_none());
        assert_eq!(s.pending(), 17);
    }

    #[test]
    fn error_frames_are_valid_json_events() {
        let f = frames(&[&error_frame("cut \"off\"", "stream_interrupted")]);
        assert_eq!(f[0].kind, FrameKind::Error);
        let v: serde_json::Value = serde_json::from_str(&f[0].data()).unwrap();
        assert_eq!(v["error"]["code"], "stream_interrupted");
    }
}
