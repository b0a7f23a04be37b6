//! A client body in the upstream's own dialect (Anthropic Messages to an Anthropic-speaking
//! upstream, Responses to a Responses-speaking one): sent as the client's bytes with the model
//! spliced in, like chat completions, so nothing the gateway does not understand is lost.

use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::chat::request::{Located, ParseError};
use crate::chat::{Overrides, SplicedBody};
use crate::dialect::Api;

/// The located fields of a Messages or Responses body that a splice may change.
#[derive(Debug, Clone)]
pub struct Original {
    pub api: Api,
    pub body: Bytes,
    model: Range<usize>,
    /// `max_tokens` (Messages) or `max_output_tokens` (Responses).
    max_tokens: Option<Located<u64>>,
    /// Offset just past the opening `{`.
    insert_at: usize,
    /// Client headers that belong to the body's dialect and go with it to an upstream that
    /// speaks it (`anthropic-beta`: the beta fields Claude Code's bodies use need it).
    pub forward: Vec<(&'static str, http::HeaderValue)>,
}

/// The client headers forwarded with a passed-through body, per dialect.
const FORWARDED: &[(Api, &str)] = &[(Api::Messages, "anthropic-beta")];

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_output_tokens: Option<&'a RawValue>,
}

fn span_of(text: &str, raw: &RawValue) -> Range<usize> {
    let start = raw.get().as_ptr() as usize - text.as_ptr() as usize;
    start..start + raw.get().len()
}

impl Original {
    /// Locates the fields of `body`, a request in `api` already validated by its translation.
    pub fn locate(api: Api, body: Bytes) -> Result<Original, ParseError> {
        let text = std::str::from_utf8(&body)
            .map_err(|_| ParseError::Malformed("request body is not valid UTF-8".into()))?;
        let wire: Wire<'_> = serde_json::from_str(text)
            .map_err(|e| ParseError::Malformed(format!("request body is not valid JSON: {e}")))?;
        let model = wire
            .model
            .filter(|m| m.get().starts_with('"'))
            .map(|m| span_of(text, m))
            .ok_or_else(|| ParseError::Invalid {
                param: "model".into(),
                message: "is required and must be a string".into(),
            })?;
        let limit = match api {
            Api::Responses => wire.max_output_tokens,
            _ => wire.max_tokens,
        };
        let max_tokens = limit.and_then(|raw| {
            let value = raw.get().parse::<u64>().ok()?;
            Some(Located {
                value,
                span: span_of(text, raw),
            })
        });
        let insert_at = text.find('{').map_or(0, |i| i + 1);
        Ok(Original {
            api,
            model,
            max_tokens,
            insert_at,
            body,
            forward: Vec::new(),
        })
    }

    /// Keeps the client headers of `headers` that travel with this dialect's bodies.
    pub fn forward_from(&mut self, headers: &http::HeaderMap) {
        for (api, name) in FORWARDED {
            if *api == self.api
                && let Some(value) = headers.get(*name)
            {
                self.forward.push((name, value.clone()));
            }
        }
    }

    /// Whether `overrides` can be applied by splicing. A reasoning-effort override cannot (each
    /// dialect nests it differently); the request is translated through chat instead.
    pub fn can_carry(&self, overrides: &Overrides) -> bool {
        overrides.reasoning_effort.is_none()
    }

    /// The body for one attempt: `model` set to `provider_model`, the output cap applied.
    pub fn splice(&self, provider_model: &str, overrides: &Overrides) -> SplicedBody {
        let mut edits: Vec<(Range<usize>, Bytes)> = vec![(
            self.model.clone(),
            Bytes::from(serde_json::to_string(provider_model).unwrap_or_default()),
        )];
        if let Some(cap) = overrides.max_output_tokens {
            let field = match self.api {
                Api::Responses => "max_output_tokens",
                _ => "max_tokens",
            };
            match &self.max_tokens {
                Some(located) if located.value <= cap => {}
                Some(located) => edits.push((located.span.clone(), Bytes::from(cap.to_string()))),
                None => edits.push((
                    self.insert_at..self.insert_at,
                    Bytes::from(format!("\"{field}\":{cap},")),
                )),
            }
        }
        SplicedBody::from_edits(&self.body, edits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spliced(api: Api, body: &str, model: &str, cap: Option<u64>) -> serde_json::Value {
        let original = Original::locate(api, Bytes::from(body.to_owned())).unwrap();
        let overrides = Overrides {
            max_output_tokens: cap,
            ..Overrides::default()
        };
        let out = original.splice(model, &overrides).to_bytes();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn the_model_is_replaced_and_everything_else_kept() {
        let v = spliced(
            Api::Messages,
            r#"{"model":"claude-opus-5-5","max_tokens":128000,"x-unknown":{"a":[1,2]}}"#,
            "deepseek-v4-pro",
            None,
        );
        assert_eq!(v["model"], "deepseek-v4-pro");
        assert_eq!(v["max_tokens"], 128000);
        assert_eq!(v["x-unknown"]["a"][1], 2);
    }

    #[test]
    fn the_output_cap_lowers_or_sets_the_dialects_own_field() {
        let v = spliced(
            Api::Messages,
            r#"{"model":"m","max_tokens":128000}"#,
            "p",
            Some(4096),
        );
        assert_eq!(v["max_tokens"], 4096);
        let v = spliced(
            Api::Responses,
            r#"{"model":"m","input":"hi"}"#,
            "p",
            Some(64),
        );
        assert_eq!(v["max_output_tokens"], 64);
        let v = spliced(
            Api::Responses,
            r#"{"model":"m","max_output_tokens":10}"#,
            "p",
            Some(64),
        );
        assert_eq!(v["max_output_tokens"], 10, "a lower client value stays");
    }

    #[test]
    fn a_body_without_a_string_model_is_refused() {
        let err = Original::locate(Api::Messages, Bytes::from_static(br#"{"model":3}"#));
        assert!(matches!(err, Err(ParseError::Invalid { param, .. }) if param == "model"));
    }
}
