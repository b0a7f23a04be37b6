//! Token usage as providers report it, normalised so cache-hit tokens are never billed at the
//! cache-miss price.
//!
//! DeepSeek reports `prompt_cache_hit_tokens` and `prompt_cache_miss_tokens` at the top level of
//! `usage` (with `prompt_tokens` their sum); OpenAI reports `prompt_tokens_details.cached_tokens`.
//! Both are read; DeepSeek's fields win when present.

use serde::Deserialize;

/// Normalised usage of one response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// All input tokens.
    pub prompt_tokens: u64,
    /// Input tokens served from the provider's prompt cache (billed at the cache-hit price).
    pub cached_prompt_tokens: u64,
    /// Output tokens (reasoning included).
    pub completion_tokens: u64,
}

impl Usage {
    /// Input tokens billed at the cache-miss price.
    pub fn uncached_prompt_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_sub(self.cached_prompt_tokens)
    }
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_cache_hit_tokens: Option<u64>,
    #[serde(default)]
    prompt_cache_miss_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<WireDetails>,
}

#[derive(Deserialize)]
struct WireDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct WithUsage {
    #[serde(default)]
    usage: Option<WireUsage>,
}

impl From<WireUsage> for Usage {
    fn from(w: WireUsage) -> Self {
        let hit = w
            .prompt_cache_hit_tokens
            .or(w.prompt_tokens_details.and_then(|d| d.cached_tokens))
            .unwrap_or(0);
        let prompt = match (
            w.prompt_tokens,
            w.prompt_cache_hit_tokens,
            w.prompt_cache_miss_tokens,
        ) {
            (Some(p), _, _) => p,
            (None, Some(h), Some(m)) => h + m,
            _ => hit,
        };
        Usage {
            prompt_tokens: prompt,
            cached_prompt_tokens: hit.min(prompt),
            completion_tokens: w.completion_tokens.unwrap_or(0),
        }
    }
}

/// Usage from a JSON document (a chat completion, or one stream chunk's payload), if it has any.
pub fn usage_of(json: &[u8]) -> Option<Usage> {
    serde_json::from_slice::<WithUsage>(json)
        .ok()?
        .usage
        .map(Usage::from)
}

/// Usage from an already parsed document (a translated response or stream chunk).
pub fn usage_in_value(json: &serde_json::Value) -> Option<Usage> {
    usage_of_object(json.get("usage").filter(|u| !u.is_null())?)
}

/// Usage from an already parsed `usage` object itself.
pub(crate) fn usage_of_object(usage: &serde_json::Value) -> Option<Usage> {
    WireUsage::deserialize(usage).ok().map(Usage::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    #[test]
    fn deepseek_cache_fields_are_read() {
        let u = usage_of(br#"{"usage":{"prompt_tokens":1000,"completion_tokens":50,"prompt_cache_hit_tokens":800,"prompt_cache_miss_tokens":200}}"#).unwrap();
        assert_eq!(
            u,
            Usage {
                prompt_tokens: 1000,
                cached_prompt_tokens: 800,
                completion_tokens: 50
            }
        );
        assert_eq!(u.uncached_prompt_tokens(), 200);
    }

    #[test]
    fn openai_cached_tokens_are_read() {
        let u = usage_of(br#"{"usage":{"prompt_tokens":1000,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":640}}}"#).unwrap();
        assert_eq!(u.cached_prompt_tokens, 640);
    }

    #[test]
    fn deepseek_fields_win_and_hits_never_exceed_the_prompt() {
        let u = usage_of(br#"{"usage":{"prompt_cache_hit_tokens":30,"prompt_cache_miss_tokens":10,"prompt_tokens_details":{"cached_tokens":5}}}"#).unwrap();
        assert_eq!((u.prompt_tokens, u.cached_prompt_tokens), (40, 30));
        let u = usage_of(
            br#"{"usage":{"prompt_tokens":10,"prompt_tokens_details":{"cached_tokens":50}}}"#,
        )
        .unwrap();
        assert_eq!(u.cached_prompt_tokens, 10);
    }

    #[test]
    fn documents_without_usage_have_none() {
        assert_eq!(usage_of(br#"{"choices":[]}"#), None);
        assert_eq!(usage_of(br#"{"usage":null}"#), None);
        assert_eq!(usage_of(b"not json"), None);
    }

    proptest::proptest! {
        /// A parsed `usage` object reads as the same usage as its document's bytes do.
        #[test]
        fn a_parsed_usage_object_reads_as_its_bytes_do(
            fields in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "prompt_tokens",
                        "completion_tokens",
                        "prompt_cache_hit_tokens",
                        "prompt_cache_miss_tokens",
                        "prompt_tokens_details",
                        "total_tokens",
                    ]),
                    proptest::prop_oneof![
                        (0u64..1 << 40).prop_map(serde_json::Value::from),
                        (0u64..1000).prop_map(|n| serde_json::json!({ "cached_tokens": n })),
                        proptest::strategy::Just(serde_json::json!("7")),
                        proptest::strategy::Just(serde_json::Value::Null),
                        proptest::strategy::Just(serde_json::json!(-1)),
                    ],
                ),
                0..6,
            ),
        ) {
            let usage: serde_json::Map<String, serde_json::Value> =
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            let usage = serde_json::Value::Object(usage);
            let doc = serde_json::to_vec(&serde_json::json!({ "usage": usage })).unwrap();
            proptest::prop_assert_eq!(usage_of_object(&usage), usage_of(&doc));
        }
    }
}
