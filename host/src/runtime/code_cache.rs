//! Compiled components kept on disk by content, so a component seen before (at a
//! restart, a rollback, in a shadow set) is loaded, not compiled.
//!
//! A file per component: `SHA256-ENGINE.cwasm`, the component's sha256 and a hash of the
//! engine's compatibility (another wasmtime or other settings make other files). Files
//! are written aside and renamed into place, so a reader never sees half of one. The
//! directory is bounded: after each file kept, the least recently used files (by mtime,
//! which a load from the cache refreshes) are removed until the rest fit in the bound;
//! the most recently used file always stays. A removed file only costs a compile the
//! next time its component is loaded; a component already loaded keeps running (its code
//! is mapped, and an unlinked file stays readable while mapped).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use wasmtime::Engine;
use wasmtime::component::Component;

/// A `.partial` file older than this is what a crash left behind mid-write.
const PARTIAL_ABANDONED_AFTER: Duration = Duration::from_secs(3600);

/// The directory of compiled code.
pub(super) struct CodeCache {
    dir: PathBuf,
    bytes_max: u64,
    engine_hash: u64,
}

impl CodeCache {
    /// Opens (creating, owner-only) `dir`, bounded to `bytes_max`, for `engine`'s code,
    /// and trims it to the bound (which may have been lowered since it was filled).
    pub(super) fn open(dir: &Path, bytes_max: u64, engine: &Engine) -> std::io::Result<CodeCache> {
        std::fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let cache = CodeCache {
            dir: dir.to_owned(),
            bytes_max,
            engine_hash: hasher.finish(),
        };
        cache.evict();
        Ok(cache)
    }

    /// The file of a component.
    pub(super) fn path(&self, wasm: &[u8]) -> PathBuf {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(wasm);
        let name: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        self.dir
            .join(format!("{name}-{:016x}.cwasm", self.engine_hash))
    }

    /// The compiled component from `path`, if there and loadable; marks it used.
    #[allow(unsafe_code)]
    pub(super) fn load(engine: &Engine, path: &Path) -> Option<Component> {
        if !path.is_file() {
            return None;
        }
        // SAFETY: `deserialize_file` trusts the file to be wasmtime's own output. It is:
        // only `keep` writes this directory (owner-only, beside the store, under the same
        // trust as the store), and wasmtime checks the header and that the file was made
        // by a compatible engine, refusing anything else — which is then recompiled.
        match unsafe { Component::deserialize_file(engine, path) } {
            Ok(component) => {
                // Used now: the last to be evicted. Failing to say so only makes it older.
                let _ =
                    std::fs::File::open(path).and_then(|file| file.set_modified(SystemTime::now()));
                Some(component)
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), "compiled code not reusable, compiling again: {error:#}");
                None
            }
        }
    }

    /// Keeps a compiled component at `path` (written aside, then renamed into place), then
    /// trims the directory to its bound.
    pub(super) fn keep(&self, path: &Path, component: &Component) {
        let written = component
            .serialize()
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                let partial = path.with_extension("partial");
                std::fs::write(&partial, bytes)
                    .and_then(|()| std::fs::rename(&partial, path))
                    .map_err(|e| e.to_string())
            });
        if let Err(error) = written {
            tracing::warn!(path = %path.display(), "cannot keep compiled code: {error}");
        }
        self.evict();
    }

    /// Removes the least recently used files beyond the bound (never the most recently
    /// used one), and `.partial` files abandoned by a crash.
    fn evict(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        let mut files: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            match path.extension().and_then(|e| e.to_str()) {
                Some("cwasm") => files.push((modified, meta.len(), path)),
                Some("partial")
                    if now.duration_since(modified).unwrap_or_default()
                        > PARTIAL_ABANDONED_AFTER =>
                {
                    remove(&path);
                }
                _ => {}
            }
        }
        files.sort_by_key(|(modified, _, _)| std::cmp::Reverse(*modified));
        let mut kept = 0u64;
        for (index, (_, len, path)) in files.iter().enumerate() {
            kept = kept.saturating_add(*len);
            if index > 0 && kept > self.bytes_max {
                remove(path);
            }
        }
    }
}

fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => tracing::debug!(path = %path.display(), "compiled code evicted"),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::warn!(path = %path.display(), "cannot evict compiled code: {error}");
        }
    }
}
