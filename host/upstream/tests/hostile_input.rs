//! Property tests of the request parser and the splice rewrite against hostile
//! input: arbitrary bytes, arbitrary JSON in every known field, mutations of valid requests.
//! Bounded in cases so they run in seconds in CI; `PROPTEST_CASES=100000` runs a long fuzz.

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{Value, json};
use switchyard_upstream::chat::request::{ChatRequest, EXCERPT_BYTES, json_string_prefix};
use switchyard_upstream::chat::{Overrides, rewrite};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    // No regression files in the source tree: a failure prints its minimal input instead.
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Arbitrary JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn messages() -> impl Strategy<Value = Value> {
    let content = prop_oneof![
        ".{0,200}".prop_map(Value::String),
        Just(Value::Null),
        json_value(),
        prop::collection::vec(
            prop_oneof![
                ".{0,50}".prop_map(|t| json!({"type": "text", "text": t})),
                Just(
                    json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}})
                ),
                json_value(),
            ],
            0..4
        )
        .prop_map(Value::Array),
    ];
    let role = prop_oneof![
        Just("user"),
        Just("assistant"),
        Just("system"),
        Just("tool")
    ];
    let message = (
        role,
        content,
        prop::option::of(prop::collection::vec(json_value(), 0..4)),
    )
        .prop_map(|(role, content, calls)| {
            let mut m = json!({"role": role, "content": content});
            if let Some(calls) = calls {
                m["tool_calls"] = Value::Array(calls);
            }
            m
        });
    prop_oneof![
        prop::collection::vec(message, 0..12).prop_map(Value::Array),
        json_value()
    ]
}

fn request() -> impl Strategy<Value = Value> {
    (
        prop_oneof![".{0,30}".prop_map(Value::String), json_value()],
        messages(),
        prop::option::of(json_value()),
        prop::option::of(prop_oneof![
            any::<u32>().prop_map(Value::from),
            json_value()
        ]),
        prop::option::of(json_value()),
        prop::option::of(json_value()),
    )
        .prop_map(|(model, messages, stream, max_tokens, tools, metadata)| {
            let mut r = json!({"model": model, "messages": messages});
            for (k, v) in [
                ("stream", stream),
                ("max_tokens", max_tokens),
                ("tools", tools),
                ("metadata", metadata),
            ] {
                if let Some(v) = v {
                    r[k] = v;
                }
            }
            r
        })
}

fn check_parsed(r: &ChatRequest) {
    assert!(r.stats.last_user_excerpt.len() <= EXCERPT_BYTES);
    assert!(!r.model.value.is_empty());
    assert!(r.stats.message_count >= 1);
    assert!(r.stats.metadata_hints.len() <= 16);
    // The spans point at the fields they describe.
    let text = std::str::from_utf8(&r.body).unwrap();
    assert_eq!(
        serde_json::from_str::<String>(&text[r.model.span.clone()]).unwrap(),
        r.model.value
    );
    // Rewriting for any model and overrides still yields valid JSON with that model.
    let overrides = Overrides {
        reasoning_effort: Some("high".into()),
        max_output_tokens: Some(7),
        force_stream_usage: true,
    };
    let out = rewrite(r, "some\"model", &overrides).to_bytes();
    let v: Value = serde_json::from_slice(&out).expect("the rewritten body is valid JSON");
    assert_eq!(v["model"], "some\"model");
    assert_eq!(v["reasoning_effort"], "high");
    // The gateway's cache key canonicalises the body as a JSON object: every parsed body is one.
    assert!(serde_json::from_slice::<serde_json::Map<String, Value>>(&r.body).is_ok());
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(r) = ChatRequest::parse(Bytes::from(bytes), 1000) {
            check_parsed(&r);
        }
    }

    #[test]
    fn arbitrary_values_in_known_fields_never_panic(req in request()) {
        let body = Bytes::from(serde_json::to_vec(&req).unwrap());
        if let Ok(r) = ChatRequest::parse(body, 1000) {
            check_parsed(&r);
        }
    }

    #[test]
    fn mutated_valid_requests_never_panic(
        text in ".{0,300}",
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
    ) {
        let valid = json!({"model": "auto", "stream": true, "max_tokens": 50,
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]});
        let mut bytes = serde_json::to_vec(&valid).unwrap();
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        if let Ok(r) = ChatRequest::parse(Bytes::from(bytes), 1000) {
            check_parsed(&r);
        }
    }

    #[test]
    fn the_excerpt_is_a_prefix_of_the_decoded_text(text in "\\PC{0,3000}") {
        let raw = serde_json::to_string(&text).unwrap();
        let prefix = json_string_prefix(&raw, EXCERPT_BYTES);
        prop_assert!(text.starts_with(&prefix));
        prop_assert!(prefix.len() <= EXCERPT_BYTES);
        prop_assert!(prefix.len() + 4 > EXCERPT_BYTES.min(text.len()), "cut no more than one character short");
    }
}
