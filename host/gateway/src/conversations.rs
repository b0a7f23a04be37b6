//! The host's record of each conversation: how many turns it has had, which model and upstream
//! served the last one, and how much of that turn's prompt the provider's cache served. A policy
//! reads it in its summary (contract 0.2) to keep a conversation where its prompt is cached; the
//! request context writes it when a turn ends.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use switchyard_policy::types::{Conversation, ConversationSource};
use switchyard_upstream::Usage;

/// Conversations remembered (most recently used kept).
const CAPACITY: u64 = 100_000;
/// A conversation untouched this long is forgotten (providers' prompt caches last minutes to
/// hours).
const IDLE: Duration = Duration::from_secs(2 * 3600);

/// Which conversation a request continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ConversationKey {
    pub key: u64,
    pub from_user: bool,
}

impl ConversationKey {
    /// The client's user id when it sent one (OpenAI `user`, Anthropic `metadata.user_id`),
    /// otherwise the hash of the conversation's opening.
    pub fn of(user: Option<&str>, prefix_key: u64) -> Self {
        match user.filter(|u| !u.is_empty()) {
            Some(u) => ConversationKey {
                key: xxhash_rust::xxh3::xxh3_64(u.as_bytes()),
                from_user: true,
            },
            None => ConversationKey {
                key: prefix_key,
                from_user: false,
            },
        }
    }
}

#[derive(Debug, Clone)]
struct Turn {
    turns: u32,
    model: Arc<str>,
    upstream: Arc<str>,
    cache_hit_ratio: Option<f32>,
    at: Instant,
}

/// Every tenant's conversations.
pub(crate) struct Conversations {
    turns: moka::sync::Cache<(Arc<str>, u64), Turn>,
}

impl std::fmt::Debug for Conversations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversations")
            .field("entries", &self.turns.entry_count())
            .finish()
    }
}

impl Default for Conversations {
    fn default() -> Self {
        Conversations {
            turns: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_idle(IDLE)
                .build(),
        }
    }
}

impl Conversations {
    /// What the host knows of `key` for `tenant`, as the policy sees it, and the upstream that
    /// served the last turn (for the chooser's conversation affinity): one look-up for both.
    pub fn view(
        &self,
        tenant: &Arc<str>,
        key: ConversationKey,
    ) -> (Conversation, Option<Arc<str>>) {
        let source = if key.from_user {
            ConversationSource::User
        } else {
            ConversationSource::Prefix
        };
        let turn = self.turns.get(&(tenant.clone(), key.key));
        let upstream = turn.as_ref().map(|t| t.upstream.clone());
        let view = match turn {
            None => Conversation {
                key: key.key,
                source,
                turns: 0,
                last_model: None,
                last_upstream: None,
                last_cache_hit_ratio: None,
                since_last_ms: None,
            },
            Some(t) => Conversation {
                key: key.key,
                source,
                turns: t.turns,
                last_model: Some(t.model.to_string()),
                last_upstream: Some(t.upstream.to_string()),
                last_cache_hit_ratio: t.cache_hit_ratio,
                since_last_ms: Some(t.at.elapsed().as_millis() as u64),
            },
        };
        (view, upstream)
    }

    /// Records a turn that `model` on `upstream` served.
    pub fn served(
        &self,
        tenant: &Arc<str>,
        key: u64,
        model: &str,
        upstream: &Arc<str>,
        usage: Option<Usage>,
    ) {
        let k = (tenant.clone(), key);
        let turns = self.turns.get(&k).map_or(0, |t| t.turns) + 1;
        let cache_hit_ratio = usage
            .filter(|u| u.prompt_tokens > 0)
            .map(|u| u.cached_prompt_tokens as f32 / u.prompt_tokens as f32);
        self.turns.insert(
            k,
            Turn {
                turns,
                model: model.into(),
                upstream: upstream.clone(),
                cache_hit_ratio,
                at: Instant::now(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_are_counted_per_tenant_and_key() {
        let c = Conversations::default();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let key = ConversationKey::of(None, 7);
        let (v, upstream) = c.view(&a, key);
        assert_eq!((v.turns, upstream), (0, None));
        let up: Arc<str> = "u1".into();
        c.served(
            &a,
            7,
            "m",
            &up,
            Some(Usage {
                prompt_tokens: 100,
                cached_prompt_tokens: 80,
                completion_tokens: 5,
            }),
        );
        let (v, upstream) = c.view(&a, key);
        assert_eq!(v.turns, 1);
        assert_eq!(v.last_upstream.as_deref(), Some("u1"));
        assert_eq!(upstream, Some(up), "the chooser's upstream is the policy's");
        assert_eq!(v.last_cache_hit_ratio, Some(0.8));
        assert_eq!(
            c.view(&b, key).0.turns,
            0,
            "tenants never see each other's conversations"
        );
        let user = ConversationKey::of(Some("alice"), 7);
        assert!(user.from_user);
        assert_ne!(user.key, 7);
    }
}
