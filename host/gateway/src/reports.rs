//! What the admin API and the console report of the gateway's state, as JSON (never a key or
//! secret).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::config::PolicySource;
use crate::services::Services;

/// `GET /admin/policies` (the console's Policies page starts from it).
pub(crate) fn policies(shared: &Services) -> Value {
    let snapshot = shared.live.snapshot.load();
    let state = shared.live.reload_state.lock();
    let mut names: Vec<&String> = snapshot.config.policies.keys().collect();
    names.extend(
        state
            .policies
            .keys()
            .filter(|n| !snapshot.config.policies.contains_key(*n)),
    );
    let list: Vec<Value> = names
        .into_iter()
        .map(|name| {
            let loaded = snapshot.policies.get(name);
            let path = match snapshot.config.policies.get(name) {
                Some(PolicySource::File(p)) => p.display().to_string(),
                Some(PolicySource::Builtin(b)) => format!("builtin:{b}"),
                None => String::new(),
            };
            let tenants: Vec<&str> = snapshot
                .tenants
                .values()
                .filter(|t| &t.config.policy == name)
                .map(|t| &*t.name)
                .collect();
            let status = state.policies.get(name).cloned().unwrap_or_default();
            json!({
                "name": name,
                "path": path,
                "hash": loaded.map(|p| p.compiled.hash().to_string()),
                "header": loaded.and_then(|p| p.header.to_str().ok().map(str::to_owned)),
                "size_bytes": loaded.map(|p| p.compiled.size()),
                "loaded_at": loaded.map(|p| seconds(p.loaded_at)),
                "compiled_from_cache": loaded.map(|p| p.compiled.from_cache()),
                "contract": loaded.map(|p| p.compiled.contract().as_str()),
                "tenants": tenants,
                "last_reload": status,
            })
        })
        .collect();
    let tenants = serde_json::to_value(shared.sandbox.quarantine.report()).unwrap_or_default();
    json!({"generation": state.generation, "policies": list, "tenant_policy_health": tenants})
}

/// `GET /admin/learning`.
pub(crate) fn learning(shared: &Services) -> Value {
    use std::sync::atomic::Ordering::Relaxed;
    let l = &shared.learning;
    let snapshot = shared.live.snapshot.load();
    let stores: serde_json::Map<String, Value> = snapshot
        .tenants
        .keys()
        .map(|t| {
            let entries = l.store(&t.as_str().into()).entries();
            let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
            let bytes: usize = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
            (t.clone(), json!({"keys": keys, "bytes": bytes}))
        })
        .collect();
    json!({
        "outcome_calls": l.calls.load(Relaxed),
        "outcome_failures": l.failures.load(Relaxed),
        "outcomes_dropped": l.dropped.load(Relaxed),
        "stores": stores,
    })
}

/// `GET /admin/config`.
pub(crate) fn config(shared: &Services) -> Value {
    let snapshot = shared.live.snapshot.load();
    let state = shared.live.reload_state.lock();
    let last = state.last_attempt.as_ref().map(|(at, report)| {
        json!({"at": seconds(*at), "trigger": report.trigger, "outcome": report.outcome})
    });
    json!({
        "origin": snapshot.config.origin,
        "hash": snapshot.config.hash,
        "loaded_at": state.config_loaded_at.map(seconds),
        "generation": state.generation,
        "tenants": snapshot.tenants.keys().collect::<Vec<_>>(),
        "upstreams": snapshot.upstreams.keys().collect::<Vec<_>>(),
        "last_reload": last,
        "last_error": state.config_error,
    })
}

fn seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
