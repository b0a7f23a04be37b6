//! Watching the config and policy files, debounced, wherever they live.
//!
//! The directories holding the files are watched, not the files: editors and deploy tools replace
//! files (write-to-temp-then-rename, delete-and-recreate) and Kubernetes swaps a `..data` symlink
//! to a new directory, none of which a watch on the old inode would see. Any event in those
//! directories asks for a reload; the reload itself decides from content hashes whether anything
//! changed, so an editor's burst of events (or an unrelated file) costs one cheap no-op check.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify_debouncer_full::notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use tokio::sync::mpsc;

use super::Live;
use super::reload::{self, Trigger, watched_files};

fn directories(files: &[PathBuf]) -> BTreeSet<PathBuf> {
    files
        .iter()
        .filter_map(|f| {
            let dir = f.parent()?;
            Some(if dir.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                dir.to_path_buf()
            })
        })
        .collect()
}

/// Watches the current snapshot's files until the process ends, reloading on change, and
/// follows the set of files as reloads change it.
pub fn spawn(shared: Arc<Live>, debounce: Duration) {
    tokio::spawn(async move {
        let (tx, mut rx) = mpsc::unbounded_channel::<()>();
        let mut watching = BTreeSet::new();
        let mut debouncer = None;
        loop {
            let dirs = directories(&watched_files(&shared));
            if dirs != watching || debouncer.is_none() {
                let events = tx.clone();
                let created = new_debouncer(debounce, None, move |result: DebounceEventResult| {
                    if result.is_ok_and(|events| !events.is_empty()) {
                        let _ = events.send(());
                    }
                });
                match created {
                    Ok(mut d) => {
                        for dir in &dirs {
                            if let Err(e) = d.watch(dir, RecursiveMode::NonRecursive) {
                                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory; changes there need SIGHUP or /admin/reload");
                            }
                        }
                        tracing::debug!(dirs = ?dirs, "watching for config and policy changes");
                        debouncer = Some(d);
                        watching = dirs;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "file watching unavailable; reload with SIGHUP or /admin/reload")
                    }
                }
            }
            if rx.recv().await.is_none() {
                return;
            }
            // Coalesce events that arrived while we were busy.
            while rx.try_recv().is_ok() {}
            reload::reload(&shared, Trigger::FileChange).await;
        }
    });
}
