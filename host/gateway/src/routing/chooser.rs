//! Which upstreams serve each target, in what order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use switchyard_upstream::{Breakers, Health, PlannedTarget, TargetLimits, UpstreamClient};

use crate::config::UpstreamChoice;
use crate::live::snapshot::Snapshot;

/// The rendezvous score of `upstream` for a conversation: XXH3-64 over the tenant, a zero byte,
/// the conversation key (little-endian) and the upstream's name. A fixed, documented algorithm,
/// so every replica and every build sends a conversation to the same upstream.
pub(crate) fn affinity_score(tenant: &str, conversation: u64, upstream: &str) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(tenant.as_bytes());
    h.update(&[0]);
    h.update(&conversation.to_le_bytes());
    h.update(upstream.as_bytes());
    h.digest()
}

/// How to order the upstreams that serve the same model.
pub(crate) struct Chooser<'a> {
    pub choice: UpstreamChoice,
    /// The conversation's opening, for prefix affinity.
    pub prefix_key: u64,
    pub tenant: &'a str,
    /// Shared rotation counter, for round-robin.
    pub round_robin: &'a AtomicU64,
    pub breakers: &'a Breakers,
    /// The upstream that served the conversation's last turn, if the host knows it.
    pub last_upstream: Option<Arc<str>>,
}

impl Chooser<'_> {
    /// Orders `serving` for `model`: the conversation's last upstream first when the decision
    /// keeps it there, else the preferred one (by the configured choice); upstreams whose
    /// circuit is open last.
    fn order(&self, model: &str, serving: &mut [Arc<UpstreamClient>], keep_conversation: bool) {
        if serving.len() > 1 {
            match self.choice {
                UpstreamChoice::First => {}
                UpstreamChoice::RoundRobin => {
                    let n =
                        self.round_robin.fetch_add(1, Ordering::Relaxed) as usize % serving.len();
                    serving.rotate_left(n);
                }
                UpstreamChoice::PrefixAffinity => {
                    // Rendezvous hashing: each replica, and each reload, agrees on the winner,
                    // and adding an upstream moves only the conversations it wins.
                    let score = |u: &Arc<UpstreamClient>| {
                        affinity_score(self.tenant, self.prefix_key, &u.name)
                    };
                    serving.sort_by_key(|u| std::cmp::Reverse(score(u)));
                }
            }
        }
        if keep_conversation
            && let Some(last) = &self.last_upstream
            && let Some(i) = serving.iter().position(|u| u.name == *last)
        {
            serving[..=i].rotate_right(1);
        }
        serving.sort_by_key(|u| self.breakers.health(&u.name, model) == Health::Unavailable);
    }
}

/// A model on a specific upstream: the one named, or the first in config order that serves it.
pub(super) fn resolve(
    snapshot: &Snapshot,
    model: &str,
    upstream: Option<&str>,
    chooser: &Chooser<'_>,
    limits: TargetLimits,
    keep_conversation: bool,
) -> Result<Vec<PlannedTarget>, String> {
    let context_window = snapshot
        .config
        .models
        .get(model)
        .map(|m| m.context_window)
        .ok_or_else(|| format!("unknown model `{model}`"))?;
    let target = |client: &Arc<UpstreamClient>| PlannedTarget {
        model: model.to_owned(),
        upstream: client.clone(),
        context_window,
        limits,
    };
    if let Some(name) = upstream {
        let client = snapshot
            .upstreams
            .get(name)
            .filter(|u| u.serves(model))
            .ok_or_else(|| format!("upstream `{name}` does not serve `{model}`"))?;
        return Ok(vec![target(client)]);
    }
    let mut serving: Vec<Arc<UpstreamClient>> = snapshot
        .upstreams
        .values()
        .filter(|u| u.serves(model))
        .cloned()
        .collect();
    if serving.is_empty() {
        return Err(format!("no upstream serves `{model}`"));
    }
    chooser.order(model, &mut serving, keep_conversation);
    Ok(serving.iter().map(target).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_scores_are_pinned() {
        // A test vector: a different algorithm (or a std hasher that changed) fails here.
        let expected = xxhash_rust::xxh3::xxh3_64(b"acme\0\x2a\0\0\0\0\0\0\0primary");
        assert_eq!(affinity_score("acme", 42, "primary"), expected);
        assert_eq!(affinity_score("acme", 42, "primary"), PINNED);
        assert_ne!(
            affinity_score("acme", 42, "primary"),
            affinity_score("acme", 42, "secondary")
        );
    }

    const PINNED: u64 = 442_937_133_419_285_891;
}
