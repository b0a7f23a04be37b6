use super::*;

fn parse(body: &str) -> Result<ChatRequest, ParseError> {
    ChatRequest::parse(Bytes::from(body.to_owned()), 1000)
}

fn invalid_param(body: &str) -> String {
    match parse(body) {
        Err(ParseError::Invalid { param, .. }) => param,
        other => panic!("expected an invalid-field error for {body}, got {other:?}"),
    }
}

#[test]
fn a_plain_request_is_summarised() {
    let body = r#"{"model":"auto","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello there, \"friend\"\n!"}],"stream":true,"max_tokens":100,"reasoning_effort":"high","metadata":{"Tier":"pro","n":3}}"#;
    let r = parse(body).unwrap();
    assert_eq!(r.model.value, "auto");
    assert_eq!(&body[r.model.span.clone()], "\"auto\"");
    assert!(r.stream);
    assert_eq!(r.max_output_tokens(), Some(100));
    assert_eq!(
        r.max_tokens.as_ref().map(|(f, _)| *f),
        Some(MaxTokensField::MaxTokens)
    );
    assert_eq!(
        r.reasoning_effort.as_ref().map(|l| l.value.as_str()),
        Some("high")
    );
    assert_eq!(
        &body[r.reasoning_effort.as_ref().unwrap().span.clone()],
        "\"high\""
    );
    assert_eq!(r.stats.message_count, 2);
    assert_eq!(r.stats.last_user_excerpt, "Hello there, \"friend\"\n!");
    assert_eq!(
        r.stats.metadata_hints,
        vec![("tier".to_string(), "pro".to_string())]
    );
    assert_eq!(r.insert_at, 1);
    assert!(r.stats.estimated_input_tokens > 8 && r.stats.estimated_input_tokens < 30);
}

#[test]
fn agent_depth_tools_and_images_are_counted() {
    let body = r#"{"model":"m","tools":[{"type":"function","function":{"name":"read"}},{"type":"function","function":{"name":"write"}}],
      "messages":[{"role":"user","content":[{"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"data:..."}}]},
      {"role":"assistant","content":null,"tool_calls":[{"id":"1"},{"id":"2"}]},{"role":"tool","content":"ok"},
      {"role":"assistant","tool_calls":[{"id":"3"}]}]}"#;
    let r = parse(body).unwrap();
    assert_eq!(r.stats.tools_offered, 2);
    assert_eq!(r.stats.tool_calls_so_far, 3);
    assert!(r.stats.has_images);
    assert_eq!(r.stats.last_user_excerpt, "what is this?");
    assert!(r.stats.estimated_input_tokens >= TOKENS_PER_IMAGE);
}

#[test]
fn the_excerpt_is_bounded_and_cut_on_a_character_boundary() {
    let long = "é".repeat(5000);
    let body = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{long}"}}]}}"#);
    let r = parse(&body).unwrap();
    assert!(r.stats.last_user_excerpt.len() <= EXCERPT_BYTES);
    assert!(r.stats.last_user_excerpt.len() >= EXCERPT_BYTES - 1);
    assert!(r.stats.last_user_excerpt.chars().all(|c| c == 'é'));
    assert_eq!(
        r.stats.estimated_input_tokens,
        (long.len() as u64).div_ceil(4) + 4
    );
}

#[test]
fn json_string_prefix_decodes_escapes_and_surrogate_pairs() {
    assert_eq!(
        json_string_prefix(r#""a\tb\\c\/d\u00e9\ud83d\ude00""#, 100),
        "a\tb\\c/dé😀"
    );
    assert_eq!(json_string_prefix(r#""\ud83d""#, 100), "\u{FFFD}");
    assert_eq!(json_string_prefix(r#""abcdef""#, 3), "abc");
    assert_eq!(json_string_prefix(r#""ééé""#, 3), "é");
}

proptest::proptest! {
    /// The prefix is what a full JSON decode gives, cut at `max` bytes on a character boundary,
    /// whatever mix of plain runs, escapes and multi-byte characters the string holds.
    #[test]
    fn json_string_prefix_is_a_bounded_full_decode(
        text in "[a-zé😀\"\\\n\t\u{1}/ ]{0,64}",
        max in 0usize..80,
    ) {
        let literal = serde_json::to_string(&text).unwrap();
        let mut expected = String::new();
        for c in text.chars() {
            if expected.len() + c.len_utf8() > max {
                break;
            }
            expected.push(c);
        }
        proptest::prop_assert_eq!(json_string_prefix(&literal, max), expected);
    }
}

#[test]
fn malformed_bodies_are_refused() {
    for body in [
        "",
        "   ",
        "not json",
        "[1,2]",
        "{\"model\":",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]} trailing",
    ] {
        assert!(
            matches!(parse(body), Err(ParseError::Malformed(_))),
            "{body:?}"
        );
    }
    let bad_utf8 = Bytes::from_static(b"{\"model\":\"\xff\",\"messages\":[]}");
    assert!(
        matches!(ChatRequest::parse(bad_utf8, 10), Err(ParseError::Malformed(m)) if m.contains("UTF-8"))
    );
}

#[test]
fn deeply_nested_json_is_refused_without_overflowing_the_stack() {
    let deep = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],"extra":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(matches!(parse(&deep), Err(ParseError::Malformed(m)) if m.contains("deeper")));
    let ok = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],"extra":{}{}}}"#,
        "[".repeat(90),
        "]".repeat(90)
    );
    assert!(parse(&ok).is_ok());
    // Brackets inside strings (escaped quotes included) do not count.
    let text = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"\"{}"}}]}}"#,
        "[".repeat(500)
    );
    assert!(parse(&text).is_ok());
}

#[test]
fn wrong_types_in_known_fields_name_the_field() {
    let msgs = r#""messages":[{"role":"user","content":"x"}]"#;
    assert_eq!(invalid_param(&format!(r#"{{{msgs}}}"#)), "model");
    assert_eq!(invalid_param(&format!(r#"{{"model":5,{msgs}}}"#)), "model");
    assert_eq!(invalid_param(&format!(r#"{{"model":"",{msgs}}}"#)), "model");
    assert_eq!(invalid_param(r#"{"model":"m"}"#), "messages");
    assert_eq!(invalid_param(r#"{"model":"m","messages":[]}"#), "messages");
    assert_eq!(
        invalid_param(r#"{"model":"m","messages":"hi"}"#),
        "messages"
    );
    assert_eq!(
        invalid_param(r#"{"model":"m","messages":[{"content":"x"}]}"#),
        "messages[0]"
    );
    assert_eq!(
        invalid_param(r#"{"model":"m","messages":[{"role":"user","content":"x"},{"role":7}]}"#),
        "messages[1].role"
    );
    assert_eq!(
        invalid_param(r#"{"model":"m","messages":[{"role":"user","content":5}]}"#),
        "messages[0].content"
    );
    assert_eq!(
        invalid_param(&format!(r#"{{"model":"m",{msgs},"stream":"yes"}}"#)),
        "stream"
    );
    assert_eq!(
        invalid_param(&format!(r#"{{"model":"m",{msgs},"max_tokens":-1}}"#)),
        "max_tokens"
    );
    assert_eq!(
        invalid_param(&format!(
            r#"{{"model":"m",{msgs},"max_completion_tokens":1.5}}"#
        )),
        "max_completion_tokens"
    );
    assert_eq!(
        invalid_param(&format!(r#"{{"model":"m",{msgs},"reasoning_effort":3}}"#)),
        "reasoning_effort"
    );
    assert_eq!(
        invalid_param(&format!(r#"{{"model":"m",{msgs},"tools":{{}}}}"#)),
        "tools"
    );
    assert_eq!(
        invalid_param(&format!(r#"{{"model":"m",{msgs},"stream_options":[]}}"#)),
        "stream_options"
    );
    assert_eq!(
        invalid_param(&format!(r#"{{"model":"m","model":"n",{msgs}}}"#)),
        "model"
    );
}

#[test]
fn too_many_messages_are_refused() {
    let many = [r#"{"role":"user","content":"x"}"#; 11].join(",");
    let body = format!(r#"{{"model":"m","messages":[{many}]}}"#);
    assert!(ChatRequest::parse(Bytes::from(body.clone()), 11).is_ok());
    assert!(
        matches!(ChatRequest::parse(Bytes::from(body), 10), Err(ParseError::Invalid { param, .. }) if param == "messages")
    );
}

#[test]
fn unknown_fields_and_nulls_pass() {
    let r = parse(r#" {"model":"m","messages":[{"role":"user","content":"x","name":"n"}],"temperature":0.2,"stream":null,"tools":null,"custom":{"a":[1]}}"#).unwrap();
    assert!(!r.stream);
    assert_eq!(r.stats.tools_offered, 0);
    assert_eq!(r.insert_at, 2);
}

#[test]
fn a_backslash_at_the_end_of_the_body_is_malformed_not_a_crash() {
    // Found by the property tests: an escape as the last byte of an unterminated string.
    assert!(matches!(
        parse("{\"model\":\"a\\"),
        Err(ParseError::Malformed(_))
    ));
    assert!(matches!(
        parse("{\"model\":\"\\"),
        Err(ParseError::Malformed(_))
    ));
}

/// The conversation key is XXH3-64 over a documented byte layout, so every replica and every
/// build of the gateway computes the same key for the same conversation (std's `DefaultHasher`
/// promises no such thing across Rust releases). Pinned by a test vector.
#[test]
fn the_conversation_key_is_a_pinned_xxh3_of_the_opening() {
    let body = r#"{"model":"auto","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}"#;
    let chat = ChatRequest::parse(Bytes::from(body), 100).unwrap();
    let expected = xxhash_rust::xxh3::xxh3_64(b"system\0\"You are terse.\"\0user\0\"hi\"\0");
    assert_eq!(chat.stats.prefix_key, expected);
    assert_eq!(chat.stats.prefix_key, PINNED_CONVERSATION_KEY);
    // Later turns of the same conversation keep the key.
    let next = r#"{"model":"auto","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},{"role":"user","content":"more"}]}"#;
    assert_eq!(
        ChatRequest::parse(Bytes::from(next), 100)
            .unwrap()
            .stats
            .prefix_key,
        expected
    );
}

const PINNED_CONVERSATION_KEY: u64 = 15_754_987_788_124_813_504;
