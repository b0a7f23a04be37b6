//! Builds the body sent upstream by splicing the fields that change into the client's bytes.
//!
//! A 4 MB prompt is never re-serialised: the output is a list of `Bytes` slices of the original
//! body (reference-counted, no copy) with the new `model` and any overrides between them.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::request::ChatRequest;

/// Changes to apply on top of the client's body for one attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Replaces (or sets) `reasoning_effort`.
    pub reasoning_effort: Option<String>,
    /// Caps the completion length: lowers the client's value, or sets `max_tokens`.
    pub max_output_tokens: Option<u64>,
    /// For streams: make sure `stream_options.include_usage` is true so the final chunk carries
    /// usage for accounting.
    pub force_stream_usage: bool,
}

/// A request body made of slices; implements [`http_body::Body`] with an exact length.
#[derive(Debug, Clone, Default)]
pub struct SplicedBody {
    chunks: Vec<Bytes>,
    len: u64,
}

impl SplicedBody {
    /// Total length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `body` with each `(range, replacement)` applied (an empty range inserts).
    pub fn from_edits(body: &Bytes, mut edits: Vec<(std::ops::Range<usize>, Bytes)>) -> Self {
        edits.sort_by_key(|(range, _)| (range.start, range.end));
        let mut chunks = Vec::with_capacity(edits.len() * 2 + 1);
        let mut pos = 0;
        for (range, replacement) in edits {
            if range.start > pos {
                chunks.push(body.slice(pos..range.start));
            }
            chunks.push(replacement);
            pos = pos.max(range.end);
        }
        if pos < body.len() {
            chunks.push(body.slice(pos..));
        }
        let len = chunks.iter().map(|c| c.len() as u64).sum();
        SplicedBody { chunks, len }
    }

    /// A body that is `bytes` as they are.
    pub fn whole(bytes: Bytes) -> Self {
        let len = bytes.len() as u64;
        SplicedBody {
            chunks: vec![bytes],
            len,
        }
    }

    /// The body as one contiguous buffer (tests and diagnostics).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.len as usize);
        for c in &self.chunks {
            out.extend_from_slice(c);
        }
        Bytes::from(out)
    }
}

impl Body for SplicedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.chunks.is_empty() {
            return Poll::Ready(None);
        }
        let chunk = self.chunks.remove(0);
        self.len -= chunk.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

/// `s` as a JSON string literal (serialising a `str` cannot fail).
fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// The body for one upstream attempt: `model` set to `provider_model`, plus `overrides`.
pub fn rewrite(req: &ChatRequest, provider_model: &str, overrides: &Overrides) -> SplicedBody {
    // (range in the original body, replacement); an empty range inserts.
    let mut edits: Vec<(std::ops::Range<usize>, Bytes)> = Vec::with_capacity(4);
    edits.push((
        req.model.span.clone(),
        Bytes::from(json_string(provider_model)),
    ));
    let at = req.insert_at..req.insert_at;

    if let Some(effort) = &overrides.reasoning_effort {
        match &req.reasoning_effort {
            Some(located) => edits.push((located.span.clone(), Bytes::from(json_string(effort)))),
            None => edits.push((
                at.clone(),
                Bytes::from(format!("\"reasoning_effort\":{},", json_string(effort))),
            )),
        }
    }
    if let Some(cap) = overrides.max_output_tokens {
        match &req.max_tokens {
            Some((_, located)) if located.value <= cap => {}
            Some((_, located)) => edits.push((located.span.clone(), Bytes::from(cap.to_string()))),
            None => edits.push((at.clone(), Bytes::from(format!("\"max_tokens\":{cap},")))),
        }
    }
    if overrides.force_stream_usage && req.stream {
        match &req.stream_options {
            Some(opts) if opts.value == Some(true) => {}
            // Replace the whole object: the client's other stream options are only `include_usage`
            // and `include_obfuscation`, and usage reporting is what we need here.
            Some(opts) => edits.push((
                opts.span.clone(),
                Bytes::from_static(b"{\"include_usage\":true}"),
            )),
            None => edits.push((
                at,
                Bytes::from_static(b"\"stream_options\":{\"include_usage\":true},"),
            )),
        }
    }
    SplicedBody::from_edits(&req.body, edits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: &str) -> ChatRequest {
        ChatRequest::parse(Bytes::from(body.to_owned()), 100).unwrap()
    }

    fn json(b: &SplicedBody) -> serde_json::Value {
        serde_json::from_slice(&b.to_bytes()).unwrap()
    }

    #[test]
    fn only_the_model_changes_by_default_and_other_bytes_are_untouched() {
        let body =
            r#"{"model":"auto","messages":[{"role":"user","content":"hi"}],"temperature":0.70000}"#;
        let out = rewrite(&req(body), "deepseek-v4-flash", &Overrides::default());
        assert_eq!(
            out.to_bytes(),
            r#"{"model":"deepseek-v4-flash","messages":[{"role":"user","content":"hi"}],"temperature":0.70000}"#
        );
        assert_eq!(out.len(), out.to_bytes().len() as u64);
    }

    #[test]
    fn overrides_replace_or_insert_fields() {
        let body = r#"{"model":"auto","messages":[{"role":"user","content":"hi"}],"max_tokens":5000,"stream":true}"#;
        let o = Overrides {
            reasoning_effort: Some("high".into()),
            max_output_tokens: Some(100),
            force_stream_usage: true,
        };
        let v = json(&rewrite(&req(body), "m", &o));
        assert_eq!(v["model"], "m");
        assert_eq!(v["reasoning_effort"], "high");
        assert_eq!(v["max_tokens"], 100);
        assert_eq!(v["stream_options"]["include_usage"], true);

        let body = r#"{"model":"auto","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":50,"reasoning_effort":"xhigh","stream":true,"stream_options":{"include_usage":false}}"#;
        let v = json(&rewrite(&req(body), "m", &o));
        assert_eq!(v["max_completion_tokens"], 50, "a smaller client cap stays");
        assert!(v.get("max_tokens").is_none());
        assert_eq!(v["reasoning_effort"], "high");
        assert_eq!(v["stream_options"]["include_usage"], true);
    }

    #[test]
    fn stream_usage_is_not_forced_on_non_streaming_requests() {
        let body = r#"{"model":"auto","messages":[{"role":"user","content":"hi"}]}"#;
        let o = Overrides {
            force_stream_usage: true,
            ..Default::default()
        };
        assert!(
            json(&rewrite(&req(body), "m", &o))
                .get("stream_options")
                .is_none()
        );
    }

    #[test]
    fn model_names_are_escaped() {
        let body = r#"{"model":"auto","messages":[{"role":"user","content":"hi"}]}"#;
        let v = json(&rewrite(&req(body), "we\"ird", &Overrides::default()));
        assert_eq!(v["model"], "we\"ird");
    }
}
