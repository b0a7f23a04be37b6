//! An on-disk cache of compiled policy components, so a restart (or a rollback to a version seen
//! before) does not pay Cranelift again.
//!
//! Entries are keyed by the component's SHA-256 and the engine's compatibility hash (wasmtime
//! version and compilation settings). Loading a compiled artifact skips validation, so it must be
//! one we wrote ourselves: every entry carries an HMAC-SHA-256 over its key and contents, made
//! with a random secret kept in the cache directory (mode 0600, in a 0700 directory). A file that
//! fails the check, or that is not owned by this user, is ignored and recompiled.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::hash::PolicyHash;

type HmacSha256 = Hmac<Sha256>;
const KEY_FILE: &str = "artifact.key";
const TAG_LEN: usize = 32;

/// A directory of compiled components.
#[derive(Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    key: [u8; 32],
}

impl std::fmt::Debug for ArtifactCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactCache")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl ArtifactCache {
    /// Opens (creating if needed) a cache directory and its secret.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let key_path = dir.join(KEY_FILE);
        let key = match std::fs::read(&key_path) {
            Ok(bytes) if bytes.len() == 32 && owned_by_us(&key_path) => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                key
            }
            _ => {
                let mut key = [0u8; 32];
                std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut key)?;
                let tmp = dir.join(format!("{KEY_FILE}.{}", std::process::id()));
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)?;
                f.write_all(&key)?;
                f.sync_all()?;
                std::fs::rename(&tmp, &key_path)?;
                // Another process may have won the race: use whatever is there now.
                let on_disk = std::fs::read(&key_path)?;
                if on_disk.len() == 32 {
                    key.copy_from_slice(&on_disk);
                }
                key
            }
        };
        Ok(ArtifactCache {
            dir: dir.to_path_buf(),
            key,
        })
    }

    fn entry_name(engine: &Engine, hash: &PolicyHash) -> String {
        // `precompile_compatibility_hash` feeds a `Hasher`; SHA-256 behind that interface keeps
        // the entry name stable across toolchains (std's `DefaultHasher` may change).
        let mut h = Sha256Hasher::default();
        engine.precompile_compatibility_hash().hash(&mut h);
        env!("CARGO_PKG_VERSION").hash(&mut h);
        format!(
            "{hash}-{}.cwasm",
            &hex::encode(sha2::Digest::finalize(h.0))[..16]
        )
    }

    fn mac(&self, name: &str, payload: &[u8]) -> HmacSha256 {
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(name.as_bytes());
        mac.update(payload);
        mac
    }

    /// The compiled component for `hash`, if a valid entry exists.
    pub fn load(&self, engine: &Engine, hash: &PolicyHash) -> Option<Component> {
        let name = Self::entry_name(engine, hash);
        let path = self.dir.join(&name);
        if !owned_by_us(&path) {
            return None;
        }
        let bytes = std::fs::read(&path).ok()?;
        if bytes.len() < TAG_LEN {
            return None;
        }
        let (tag, payload) = bytes.split_at(TAG_LEN);
        // `verify_slice` compares in constant time.
        if self.mac(&name, payload).verify_slice(tag).is_err() {
            tracing::warn!(path = %path.display(), "ignoring a compiled artifact that fails its integrity check");
            return None;
        }
        #[allow(
            unsafe_code,
            reason = "deserialising an artifact whose HMAC proves we serialised it"
        )]
        // SAFETY: `Component::deserialize` trusts its input to be a compiled artifact produced by a
        // compatible engine. The HMAC above, keyed with a secret only this cache's owner can read,
        // proves these exact bytes were written by `store` after `Component::serialize`; wasmtime
        // itself rejects artifacts from an incompatible engine version or configuration.
        let component = unsafe { Component::deserialize(engine, payload) };
        component.ok()
    }

    /// Stores a compiled component under `hash`. Failures only cost a recompile later.
    pub fn store(&self, engine: &Engine, hash: &PolicyHash, component: &Component) {
        let Ok(payload) = component.serialize() else {
            return;
        };
        let name = Self::entry_name(engine, hash);
        let tag: [u8; TAG_LEN] = self.mac(&name, &payload).finalize().into_bytes().into();
        let tmp = self.dir.join(format!(
            "{name}.{}.{}.tmp",
            std::process::id(),
            fastrand_suffix()
        ));
        let result = (|| -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&tag)?;
            f.write_all(&payload)?;
            f.sync_all()?;
            std::fs::rename(&tmp, self.dir.join(&name))
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(error = %e, dir = %self.dir.display(), "could not write a compiled artifact");
        }
    }
}

fn owned_by_us(path: &Path) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    // `/proc/self` belongs to the process's effective user: a safe way to learn our uid.
    let Ok(me) = std::fs::metadata("/proc/self") else {
        return false;
    };
    meta.is_file() && meta.uid() == me.uid() && meta.mode() & 0o022 == 0
}

/// A suffix that keeps concurrent writers' temporary files apart.
fn fastrand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A `Hasher` that feeds SHA-256, for values that can only be hashed through `Hash`.
#[derive(Default)]
struct Sha256Hasher(sha2::Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        sha2::Digest::update(&mut self.0, bytes);
    }

    fn finish(&self) -> u64 {
        let digest = sha2::Digest::finalize(self.0.clone());
        u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
    }
}
