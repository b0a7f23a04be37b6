//! Previous policy versions on disk, and the console's one-click rollback.
//!
//! "A previous version on disk" is a copy of a component the gateway had in service, kept under
//! `<server.artifact_cache_dir>/versions/<policy>/<sha256>.wasm`. The console's sampler copies
//! every file-based policy's bytes there when it sees a new version in service (checking that
//! the file still hashes to the version in service), and keeps the [`KEEP`] most recent per
//! policy. Built-in policies are in the binary and have no earlier version; with the artifact
//! cache off (`artifact_cache_dir = ""`) nothing is kept and rollback is unavailable.
//!
//! A rollback writes the chosen version's bytes over the policy's configured file (a temporary
//! file beside it, renamed over it) and reloads, so what serves is what is on disk, and a restart
//! or a replica reading the same file serves it too. If the reload refuses it (the config
//! changed since it served), the file is put back as it was and the refusal is returned.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use serde_json::{Value, json};
use switchyard_policy::PolicyHash;

use crate::config::PolicySource;
use crate::live::Live;
use crate::live::reload::{self, Trigger};
use crate::live::snapshot::Snapshot;

/// Versions kept per policy.
pub(crate) const KEEP: usize = 10;

/// The version history of every file-based policy.
#[derive(Default)]
pub(crate) struct Versions {
    /// `(policy, hash)` already copied (or found) on disk.
    kept: Mutex<HashSet<(String, String)>>,
    /// When each version was last seen in service by this process.
    served: Mutex<BTreeMap<(String, String), SystemTime>>,
    /// One rollback at a time.
    rolling: tokio::sync::Mutex<()>,
}

/// Why a rollback did not happen.
#[derive(Debug)]
pub(crate) struct Refused {
    pub status: http::StatusCode,
    pub message: String,
}

fn refused(status: http::StatusCode, message: impl Into<String>) -> Refused {
    Refused {
        status,
        message: message.into(),
    }
}

/// The directory of the versions of policy `name`, or `None` with the artifact cache off.
pub(crate) fn dir(snapshot: &Snapshot, name: &str) -> Option<PathBuf> {
    let base = snapshot.config.server.artifact_cache_dir.as_ref()?;
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    Some(base.join("versions").join(safe.trim_start_matches('.')))
}

/// The kept file of version `hash` (64 hex digits) of policy `name`.
pub(crate) fn file(snapshot: &Snapshot, name: &str, hash: &str) -> Option<PathBuf> {
    (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| dir(snapshot, name).map(|d| d.join(format!("{hash}.wasm"))))
        .flatten()
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    std::io::Write::write_all(&mut f, bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Replaces `path` with `bytes`: a temporary file beside it, renamed over it.
fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("policy.wasm");
    let tmp = path.with_file_name(format!(".{name}.rollback-{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

impl Versions {
    /// Copies each file-based policy's version in service to its history, once per version.
    pub fn remember(&self, snapshot: &Snapshot) {
        let now = SystemTime::now();
        for (name, policy) in &snapshot.policies {
            let hash = policy.compiled.hash().to_string();
            self.served.lock().insert((name.clone(), hash.clone()), now);
            let PolicySource::File(path) = &policy.source else {
                continue;
            };
            let key = (name.clone(), hash.clone());
            if self.kept.lock().contains(&key) {
                continue;
            }
            let Some(target) = file(snapshot, name, &hash) else {
                continue;
            };
            if !target.exists() {
                // The file may have changed since it was loaded: keep it only if it is this version.
                match std::fs::read(path) {
                    Ok(bytes) if PolicyHash::of(&bytes) == policy.compiled.hash() => {
                        if let Err(e) = write_private(&target, &bytes) {
                            tracing::warn!(policy = %name, error = %e, dir = %target.display(), "cannot keep the policy version for rollback");
                            continue;
                        }
                        self.prune(snapshot, name, &hash);
                    }
                    _ => continue,
                }
            }
            self.kept.lock().insert(key);
        }
    }

    /// Keeps the [`KEEP`] most recent versions of `name` (never `current`).
    fn prune(&self, snapshot: &Snapshot, name: &str, current: &str) {
        let Some(dir) = dir(snapshot, name) else {
            return;
        };
        let mut files = list_dir(&dir);
        files.sort_by_key(|f| std::cmp::Reverse(f.1));
        for (hash, _, path) in files.into_iter().skip(KEEP) {
            if hash != current {
                let _ = std::fs::remove_file(path);
                self.kept.lock().remove(&(name.to_owned(), hash));
            }
        }
    }

    /// Policy `name`'s kept versions, newest first.
    pub fn list(&self, snapshot: &Snapshot, name: &str) -> Vec<Value> {
        let current = snapshot
            .policies
            .get(name)
            .map(|p| p.compiled.hash().to_string());
        let Some(dir) = dir(snapshot, name) else {
            return Vec::new();
        };
        let mut files = list_dir(&dir);
        files.sort_by_key(|f| std::cmp::Reverse(f.1));
        let served = self.served.lock();
        files
            .into_iter()
            .map(|(hash, kept_at, path)| {
                let size = std::fs::metadata(&path).map_or(0, |m| m.len());
                let last_served = served
                    .get(&(name.to_owned(), hash.clone()))
                    .map(|t| crate::observe::recent::unix_ms(*t));
                json!({
                    "hash": hash,
                    "short": &hash[..12],
                    "size_bytes": size,
                    "kept_at_ms": crate::observe::recent::unix_ms(kept_at),
                    "last_served_ms": last_served,
                    "current": current.as_deref() == Some(hash.as_str()),
                })
            })
            .collect()
    }

    /// Puts version `hash` of policy `name` back in service (see the module's doc).
    pub async fn rollback(
        &self,
        live: &Arc<Live>,
        name: &str,
        hash: &str,
    ) -> Result<Value, Refused> {
        use http::StatusCode;
        let _turn = self.rolling.lock().await;
        let snapshot = live.snapshot.load_full();
        let path = match snapshot.config.policies.get(name) {
            Some(PolicySource::File(p)) => p.clone(),
            Some(PolicySource::Builtin(_)) => {
                return Err(refused(
                    StatusCode::CONFLICT,
                    format!(
                        "policy `{name}` is built into the binary: it has no earlier version on disk"
                    ),
                ));
            }
            None => {
                return Err(refused(
                    StatusCode::NOT_FOUND,
                    format!("no policy `{name}`"),
                ));
            }
        };
        let current = snapshot
            .policies
            .get(name)
            .map(|p| p.compiled.hash().to_string())
            .unwrap_or_default();
        if current == hash {
            return Err(refused(
                StatusCode::CONFLICT,
                format!(
                    "version {} is already in service",
                    &hash[..12.min(hash.len())]
                ),
            ));
        }
        let kept = file(&snapshot, name, hash).ok_or_else(|| {
            refused(
                StatusCode::NOT_FOUND,
                "no such version kept (is server.artifact_cache_dir off?)",
            )
        })?;
        let bytes = std::fs::read(&kept).map_err(|e| {
            refused(
                StatusCode::NOT_FOUND,
                format!("version {} is not on disk: {e}", &hash[..12]),
            )
        })?;
        if PolicyHash::of(&bytes).to_string() != hash {
            return Err(refused(
                StatusCode::CONFLICT,
                format!("{} does not hash to its name; not used", kept.display()),
            ));
        }
        // The version in service must be kept before it is replaced, to roll forward again.
        self.remember(&snapshot);
        let previous = std::fs::read(&path).ok();
        replace(&path, &bytes).map_err(|e| {
            refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot write {}: {e}", path.display()),
            )
        })?;
        let report = reload::reload(live, Trigger::Admin).await;
        let now = live.snapshot.load_full();
        let in_service = now
            .policies
            .get(name)
            .map(|p| p.compiled.hash().to_string())
            .unwrap_or_default();
        tracing::warn!(policy = %name, from = %&current[..12.min(current.len())], to = %&hash[..12], ok = in_service == hash, "console rollback");
        let report = serde_json::to_value(&report).unwrap_or_default();
        if in_service != hash {
            if let Some(previous) = previous {
                let _ = replace(&path, &previous);
            }
            return Err(refused(
                StatusCode::CONFLICT,
                format!(
                    "the reload refused version {}: {}; {} is as it was",
                    &hash[..12],
                    report["policy_errors"][name]
                        .as_str()
                        .unwrap_or("see the reload report"),
                    path.display()
                ),
            ));
        }
        self.remember(&now);
        Ok(json!({
            "policy": name,
            "from": current,
            "to": hash,
            "file": path.display().to_string(),
            "reload": report,
        }))
    }
}

/// The kept versions in `dir`: (hash, when kept, path).
fn list_dir(dir: &Path) -> Vec<(String, SystemTime, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let hash = path
                .file_name()?
                .to_str()?
                .strip_suffix(".wasm")?
                .to_owned();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let at = e.metadata().ok()?.modified().ok()?;
            Some((hash, at, path))
        })
        .collect()
}
