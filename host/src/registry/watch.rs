//! Watching a rules directory (notify), debounced; and files read again when their
//! content changes (the listener's TLS certificate, the config's API keys), polled.
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

/// How often the files of [`watch_contents`] are read again.
pub const FILE_POLL: Duration = Duration::from_millis(500);

/// A running watch of files; dropping it stops watching (within [`FILE_POLL`]).
pub struct FileWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for FileWatch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Reads `files` every [`FILE_POLL`] and calls `changed` once their content changed and
/// then stayed the same for `settle` (a file written in several steps is reported once,
/// whole). The content read is compared by its sha256: a private key is not kept.
///
/// Polled, not watched through their directories with inotify: a config file often sits
/// beside the SQLite store, and every commit's write to the store's WAL was an event the
/// watcher's two threads woke for — 7.4 % of the service's CPU under load (`perf`, the
/// load benchmark's layout) for files that change a few times a year. A file replaced
/// by a rename, or a mounted secret's swapped `..data` link, is read like any other.
pub fn watch_contents(
    files: &[std::path::PathBuf],
    settle: Duration,
    changed: impl Fn() + Send + 'static,
) -> std::io::Result<FileWatch> {
    use sha2::{Digest, Sha256};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let files = files.to_vec();
    let contents = move || -> Vec<Option<[u8; 32]>> {
        files
            .iter()
            .map(|file| {
                std::fs::read(file)
                    .ok()
                    .map(|bytes| Sha256::digest(&bytes).into())
            })
            .collect()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    std::thread::Builder::new()
        .name("payrules-files".into())
        .spawn(move || {
            let mut last = contents();
            loop {
                std::thread::sleep(FILE_POLL);
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let mut seen = contents();
                if seen == last {
                    continue;
                }
                loop {
                    std::thread::sleep(settle);
                    let again = contents();
                    if again == seen {
                        break;
                    }
                    seen = again;
                }
                last = seen;
                changed();
            }
        })?;
    Ok(FileWatch { stop })
}

/// Watches `dir` (and its subdirectories, for lists) and calls `changed` once per burst
/// of changes, after `settle` of quiet, on a thread of its own.
pub fn watch(
    dir: &Path,
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
    watcher.watch(dir, RecursiveMode::Recursive)?;
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::*;

    /// Waits up to 10 s for `done`.
    fn eventually(what: &str, done: impl Fn() -> bool) {
        let started = Instant::now();
        while !done() {
            assert!(started.elapsed() < Duration::from_secs(10), "{what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A file's change is reported once it is whole; a database written beside it all the
    /// while reports nothing, nor does the same content written again, nor anything after
    /// the watch is dropped.
    #[test]
    fn a_watched_file_is_reported_when_its_content_changes_and_only_then() {
        let dir = tempfile::tempdir().expect("a directory");
        let config = dir.path().join("payrules.toml");
        std::fs::write(&config, "a = 1\n").expect("written");
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let watch = watch_contents(
            std::slice::from_ref(&config),
            Duration::from_millis(20),
            move || {
                counted.fetch_add(1, Ordering::SeqCst);
            },
        )
        .expect("watching");
        let wal = dir.path().join("payrules.db-wal");
        let busy_until = Instant::now() + FILE_POLL * 3;
        while Instant::now() < busy_until {
            std::fs::write(&wal, b"a commit").expect("written");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::fs::write(&config, "a = 1\n").expect("the same again");
        std::thread::sleep(FILE_POLL * 2);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "nothing of the file changed"
        );

        // Replaced by a rename, as deployment tools do.
        let temporary = dir.path().join("payrules.toml.tmp");
        std::fs::write(&temporary, "a = 2\n").expect("written");
        std::fs::rename(&temporary, &config).expect("renamed");
        eventually("the change is reported", || {
            calls.load(Ordering::SeqCst) == 1
        });

        drop(watch);
        std::thread::sleep(FILE_POLL * 2);
        std::fs::write(&config, "a = 3\n").expect("written");
        std::thread::sleep(FILE_POLL * 3);
        assert_eq!(calls.load(Ordering::SeqCst), 1, "not watched any more");
    }
}
