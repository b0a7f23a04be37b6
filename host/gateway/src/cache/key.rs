//! Cache keys: the SHA-256 of the tenant, the model that serves the response, and the request as
//! it is sent upstream (overrides applied), canonicalised, with only the transport fields
//! removed (`stream`, `stream_options`). Every other field, including any field a future client
//! sends, is part of the key, so nothing semantic can be forgotten; entries never cross tenants.
//!
//! A Messages or Responses request is keyed on the client's own body and its dialect (a
//! passed-through upstream sees every field of it), and its entry is still a chat completion,
//! replayed in the client's dialect.
//!
//! The canonical body is hashed once per request; each model of the route then costs one more
//! hash of that digest, not another serialisation of the body.

use bytes::Bytes;
use serde_json::Value;
use sha2::{Digest, Sha256};
use switchyard_upstream::chat::{ChatRequest, Overrides};
use switchyard_upstream::dialect::Api;

use crate::live::tenant::Tenant;
use crate::routing::RoutePlan;

/// Request fields that only say how to deliver the response, not what it is.
const TRANSPORT_FIELDS: &[&str] = &["stream", "stream_options"];

/// A cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey([u8; 32]);

impl CacheKey {
    #[cfg(test)]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        CacheKey(bytes)
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// The keys of one request, for any model of its route.
#[derive(Debug, Clone)]
pub(crate) struct CacheKeys {
    tenant: std::sync::Arc<str>,
    /// SHA-256 of the canonical body, without its model.
    body: [u8; 32],
}

impl CacheKeys {
    /// The keys of a request as `plan` sends it, when the plan reads or writes the cache:
    /// `original` is the client's body when it spoke a dialect other than chat.
    pub fn for_plan(
        tenant: &Tenant,
        original: Option<(Api, &Bytes)>,
        chat: &ChatRequest,
        plan: &RoutePlan,
    ) -> Option<CacheKeys> {
        let (api, body) = original.unwrap_or((Api::Chat, &chat.body));
        (plan.cache_reads() || plan.cache_writes())
            .then(|| Self::new(&tenant.name, api, body, &plan.overrides))
            .flatten()
    }

    /// The keys of `body`, a request in `api`, with `overrides` applied, for `tenant`; `None` if
    /// the body is not a JSON object (the parser accepted it, so this does not happen).
    pub fn new(
        tenant: &std::sync::Arc<str>,
        api: Api,
        body: &Bytes,
        overrides: &Overrides,
    ) -> Option<CacheKeys> {
        let mut body: Value = serde_json::from_slice(body).ok()?;
        let obj = body.as_object_mut()?;
        for field in TRANSPORT_FIELDS {
            obj.remove(*field);
        }
        obj.remove("model");
        if let Some(effort) = &overrides.reasoning_effort {
            obj.insert("reasoning_effort".into(), Value::String(effort.clone()));
        }
        if let Some(cap) = overrides.max_output_tokens {
            let field = match api {
                Api::Responses => "max_output_tokens",
                Api::Chat if obj.contains_key("max_completion_tokens") => "max_completion_tokens",
                _ => "max_tokens",
            };
            let current = obj.get(field).and_then(Value::as_u64);
            obj.insert(
                field.into(),
                Value::from(current.map_or(cap, |c| c.min(cap))),
            );
        }
        // serde_json's map is ordered by key, so this serialisation is canonical; the dialect
        // comes first, so the same JSON in two dialects never shares an entry.
        let mut canonical = api.label().as_bytes().to_vec();
        canonical.push(0);
        serde_json::to_writer(&mut canonical, &body).ok()?;
        Some(CacheKeys {
            tenant: tenant.clone(),
            body: Sha256::digest(&canonical).into(),
        })
    }

    /// The key for the response `model` serves.
    pub fn for_model(&self, model: &str) -> CacheKey {
        let mut h = Sha256::new();
        h.update(self.tenant.as_bytes());
        h.update([0]);
        h.update(model.as_bytes());
        h.update([0]);
        h.update(self.body);
        CacheKey(h.finalize().into())
    }

    /// Each model of the route once, in the route's order, with its key.
    pub fn in_route_order<'p>(&self, plan: &'p RoutePlan) -> Vec<(&'p str, CacheKey)> {
        let mut out: Vec<(&str, CacheKey)> = Vec::new();
        for t in &plan.targets {
            if !out.iter().any(|(m, _)| *m == t.model) {
                out.push((&t.model, self.for_model(&t.model)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn chat(body: &str) -> ChatRequest {
        ChatRequest::parse(Bytes::from(body.to_owned()), 100).unwrap()
    }

    fn key(tenant: &str, model: &str, body: &str, o: &Overrides) -> CacheKey {
        CacheKeys::new(&tenant.into(), Api::Chat, &chat(body).body, o)
            .unwrap()
            .for_model(model)
    }

    #[test]
    fn dialects_never_share_entries() {
        let body = Bytes::from_static(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":5}"#,
        );
        let o = Overrides::default();
        let tenant: std::sync::Arc<str> = "t".into();
        let chat = CacheKeys::new(&tenant, Api::Chat, &body, &o).unwrap();
        let messages = CacheKeys::new(&tenant, Api::Messages, &body, &o).unwrap();
        assert_ne!(chat.for_model("m"), messages.for_model("m"));
    }

    #[test]
    fn the_key_ignores_transport_fields_and_key_order_but_not_content() {
        let o = Overrides::default();
        let body =
            r#"{"model":"auto","messages":[{"role":"user","content":"hi"}],"temperature":0}"#;
        let a = key("t", "m", body, &o);
        let b = key(
            "t",
            "m",
            r#"{"temperature":0,"stream":true,"stream_options":{"include_usage":true},"messages":[{"content":"hi","role":"user"}],"model":"other"}"#,
            &o,
        );
        assert_eq!(
            a, b,
            "stream flags, key order and the requested alias do not matter"
        );
        let c = key(
            "t",
            "m",
            r#"{"model":"auto","messages":[{"role":"user","content":"hi"}],"temperature":1}"#,
            &o,
        );
        assert_ne!(a, c, "every other field matters");
        let d = key(
            "t",
            "m",
            r#"{"model":"auto","messages":[{"role":"user","content":"hi"}],"temperature":0,"some_new_field":1}"#,
            &o,
        );
        assert_ne!(a, d, "including fields the gateway has never heard of");
        assert_ne!(
            a,
            key("other-tenant", "m", body, &o),
            "tenants never share entries"
        );
        assert_ne!(a, key("t", "m2", body, &o), "nor models");
        let capped = Overrides {
            max_output_tokens: Some(10),
            ..Overrides::default()
        };
        assert_ne!(
            a,
            key("t", "m", body, &capped),
            "overrides change what is asked upstream"
        );
    }
}
