//! Watching a rules directory (notify), debounced; and the directory of a file that is
//! read again when it changes (the listener's TLS certificate).
//!
//! Editors and copy tools change a directory in several steps: write a temporary file,
//! rename it into place, touch a manifest, then a list. The watcher waits until the
//! directory has been quiet for a settle time before it reports one change, so a reload
//! sees the steps together. A file still being written when the directory falls quiet
//! only makes a candidate that fails to load (and changes nothing live); the write's
//! next step is another change, and the next reload sees the whole file.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

/// How long the directory must be quiet before a change is reported.
pub const SETTLE_MS_DEFAULT: u64 = 50;

/// A running watch; dropping it stops watching.
pub struct DirectoryWatch {
    _watcher: RecommendedWatcher,
}

/// Watches `dir` (and its subdirectories, for lists) and calls `changed` once per burst
/// of changes, after `settle` of quiet, on a thread of its own.
pub fn watch(
    dir: &Path,
    settle: Duration,
    changed: impl Fn() + Send + 'static,
) -> notify::Result<DirectoryWatch> {
    watch_in(dir, RecursiveMode::Recursive, settle, changed)
}

/// Watches `files` (each through its directory, so a file replaced by a rename or a
/// mounted secret's swapped `..data` link is seen) and calls `changed` once per burst of
/// changes in which their content changed: other files of those directories (a log, a
/// database beside a config) call nothing.
pub fn watch_contents(
    files: &[std::path::PathBuf],
    settle: Duration,
    changed: impl Fn() + Send + Sync + 'static,
) -> notify::Result<Vec<DirectoryWatch>> {
    use std::sync::{Arc, Mutex, PoisonError};
    let files: Arc<Vec<std::path::PathBuf>> = Arc::new(files.to_vec());
    let contents = |files: &[std::path::PathBuf]| -> Vec<Option<Vec<u8>>> {
        files.iter().map(|file| std::fs::read(file).ok()).collect()
    };
    let last = Arc::new(Mutex::new(contents(&files)));
    let changed = Arc::new(changed);
    let mut dirs: Vec<std::path::PathBuf> = files
        .iter()
        .map(|file| crate::config::store_dir(file))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs.iter()
        .map(|dir| {
            let (files, last, changed) =
                (Arc::clone(&files), Arc::clone(&last), Arc::clone(&changed));
            watch_in(dir, RecursiveMode::NonRecursive, settle, move || {
                let now = contents(&files);
                let mut last = last.lock().unwrap_or_else(PoisonError::into_inner);
                if *last != now {
                    *last = now;
                    changed();
                }
            })
        })
        .collect()
}

fn watch_in(
    dir: &Path,
    mode: RecursiveMode,
    settle: Duration,
    changed: impl Fn() + Send + 'static,
) -> notify::Result<DirectoryWatch> {
    let shown = dir.display().to_string();
    let (events, bursts) = mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            // Reads and opens change nothing.
            Ok(event) if matches!(event.kind, EventKind::Access(_)) => {}
            Ok(_) => {
                let _ = events.send(());
            }
            Err(error) => tracing::warn!("watching {shown}: {error}"),
        }
    })?;
    watcher.watch(dir, mode)?;
    std::thread::Builder::new()
        .name("payrules-watch".into())
        .spawn(move || {
            // Ends when the watcher (and with it the sender) is dropped.
            while bursts.recv().is_ok() {
                loop {
                    match bursts.recv_timeout(settle) {
                        Ok(()) => continue,
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
                changed();
            }
        })
        .map_err(|e| notify::Error::generic(&e.to_string()))?;
    Ok(DirectoryWatch { _watcher: watcher })
}
