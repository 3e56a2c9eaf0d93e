//! Rule sets kept by version beside the store: a copy of every set that went live, so an
//! operator can make one live again at once (a rollback: the files are here, the compiled
//! code is in the code cache) and a restart can start from the last set that went live
//! when the rules directory does not load (`payrules serve --from-last-good`).
//!
//! `payrules-rule-sets/VERSION/` holds the files of the set whose version (the sha256 over
//! its rules, manifests, lists and policy) names it; `LAST_LIVE` names the last one that
//! went live. A copy is written aside (`VERSION.new`), loaded, and renamed into place only
//! if it loads as that version: a change landing in the rules directory during the copy
//! makes it differ, and the copy is dropped (the reload that change triggers keeps its
//! own). A canary's set is kept too, without being marked live ([`KeptSets::store`]). The
//! [`KEPT_SETS_MAX`] sets most recently live (or kept) stay; a directory's
//! modification time says when its set was last live.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::{LoadError, RuleSet};
use crate::runtime::Runtime;

/// How many rule sets are kept (the most recently live; the live one always).
pub const KEPT_SETS_MAX: usize = 16;
/// The file naming the last set that went live.
const LAST_LIVE_FILE: &str = "LAST_LIVE";

/// Whether `text` has the form of a rule-set version: 64 lower-case hex digits (so it
/// is safe as a file name).
pub fn is_version(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The kept rule sets, in their directory.
#[derive(Debug)]
pub struct KeptSets {
    dir: PathBuf,
}

impl KeptSets {
    /// The kept sets in `dir` (created, owner-only: it holds code the host will run).
    pub fn open(dir: &Path) -> std::io::Result<KeptSets> {
        std::fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(KeptSets {
            dir: dir.to_owned(),
        })
    }

    /// Where they are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory holding `version`, if it is kept.
    pub fn path_of(&self, version: &str) -> Option<PathBuf> {
        let path = self.dir.join(version);
        (is_version(version) && path.is_dir()).then_some(path)
    }

    /// The rule `name` of the kept set `version`, as its files say: its manifest and the
    /// sha256 of its component; `Ok(None)` when that set has no such rule (or is not
    /// kept). What a rule's page compares the live rule with.
    pub fn rule(
        &self,
        version: &str,
        name: &str,
    ) -> Result<Option<(super::manifest::Manifest, String)>, LoadError> {
        let Some(dir) = self.path_of(version) else {
            return Ok(None);
        };
        let root = dir
            .canonicalize()
            .map_err(|e| LoadError::new(&dir, format!("cannot read it: {e}")))?;
        let manifest_path = dir.join(format!("{name}.toml"));
        let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if name.is_empty() || !name.bytes().all(plain) || !manifest_path.is_file() {
            return Ok(None);
        }
        let text = super::read_bytes(&root, &manifest_path, super::TEXT_FILE_BYTES_MAX)?;
        let text =
            String::from_utf8(text).map_err(|_| LoadError::new(&manifest_path, "not UTF-8"))?;
        let manifest = super::manifest::Manifest::parse(name, &text)
            .map_err(|e| LoadError::new(&manifest_path, e))?;
        let component_path = dir.join(&manifest.component);
        let component = super::read_bytes(&root, &component_path, super::COMPONENT_BYTES_MAX)?;
        let version = super::hex(&Sha256::digest(&component));
        Ok(Some((manifest, version)))
    }

    /// The last set that went live, if one is kept.
    pub fn last_live(&self) -> Option<PathBuf> {
        let version = std::fs::read_to_string(self.dir.join(LAST_LIVE_FILE)).ok()?;
        self.path_of(version.trim())
    }

    /// The kept versions, the most recently live first.
    pub fn versions(&self) -> Vec<String> {
        let mut kept: Vec<(SystemTime, String)> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let meta = entry.metadata().ok()?;
                if !(is_version(&name) && meta.is_dir()) {
                    return None;
                }
                Some((meta.modified().ok()?, name))
            })
            .collect();
        kept.sort_by(|a, b| b.cmp(a));
        kept.into_iter().map(|(_, version)| version).collect()
    }

    /// Keeps `set`, loaded from `from`, as the last set that went live (see
    /// [`KeptSets::store`]).
    pub fn keep(&self, from: &Path, set: &RuleSet, runtime: &Runtime) -> Result<(), String> {
        self.store(from, set, runtime)?;
        self.mark_live(&set.version).map_err(|e| e.to_string())?;
        self.prune();
        Ok(())
    }

    /// Keeps `set`, loaded from `from`, without marking it live (a canary's set, so that
    /// its decisions can be reproduced): copied (once per version) and checked to load as
    /// `set`'s version. Older sets beyond [`KEPT_SETS_MAX`] are removed.
    pub fn store(&self, from: &Path, set: &RuleSet, runtime: &Runtime) -> Result<(), String> {
        let version = &set.version;
        if self.path_of(version).is_none() {
            let target = self.dir.join(version);
            let staging = self.dir.join(format!("{version}.new"));
            let copied = (|| {
                let _ = std::fs::remove_dir_all(&staging);
                copy_dir(from, &staging).map_err(|e| format!("copying: {e}"))?;
                // The same content as the live set, whose vectors passed: the version says so.
                let copy = RuleSet::load_untested(&staging, runtime, Some(set))
                    .map_err(|e| e.to_string())?;
                if copy.version != *version {
                    return Err("the directory changed while it was copied".to_owned());
                }
                std::fs::rename(&staging, &target).map_err(|e| e.to_string())
            })();
            if let Err(error) = copied {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(error);
            }
        }
        self.prune();
        Ok(())
    }

    /// Records that the kept `version` went live (again).
    pub fn mark_live(&self, version: &str) -> std::io::Result<()> {
        let path = self.path_of(version).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{version} is not kept"),
            )
        })?;
        std::fs::File::open(&path)?.set_modified(SystemTime::now())?;
        let staging = self.dir.join(format!("{LAST_LIVE_FILE}.new"));
        std::fs::write(&staging, version)?;
        std::fs::rename(&staging, self.dir.join(LAST_LIVE_FILE))
    }

    /// Removes the sets beyond the [`KEPT_SETS_MAX`] most recently live.
    fn prune(&self) {
        for version in self.versions().into_iter().skip(KEPT_SETS_MAX) {
            if let Err(error) = std::fs::remove_dir_all(self.dir.join(&version)) {
                tracing::warn!(%version, "cannot remove a kept rule set: {error}");
            }
        }
    }
}

/// Copies the rules directory `from` into `to` (created), as the loader sees it:
/// symlinks followed (a Kubernetes ConfigMap mount is `x.toml -> ..data/x.toml`), only
/// regular files and directories that resolve inside `from`, hidden entries (`..data`,
/// `..2026_11_26_...`) left out since what they hold is copied through the links.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    let root = from.canonicalize()?;
    copy_within(&root, from, to)
}

fn copy_within(root: &Path, from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(resolved) = entry.path().canonicalize() else {
            continue;
        };
        if !resolved.starts_with(root) {
            continue;
        }
        let kind = std::fs::metadata(&resolved)?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_within(root, &resolved, &target)?;
        } else if kind.is_file() {
            std::fs::copy(&resolved, target)?;
        }
    }
    Ok(())
}
