//! The keys that authenticate the audit log, and the checkpoints of its head kept
//! outside the database.
//!
//! The hash chain alone shows an edit only to someone who trusts the last hash: whoever
//! can write the database can edit an entry and recompute every hash after it. So each
//! entry also carries an HMAC-SHA256 of its hash under an **audit key that is not in the
//! database** (a file or an environment variable the service reads at start), with the
//! key's id, so keys can be rotated: the first key signs, every key listed verifies.
//! Without the key, an entry cannot be written, edited or re-chained unseen.
//!
//! A MAC cannot show that entries were removed from the end. For that the writer appends
//! **checkpoints** (the head's sequence number and hash, authenticated the same way) to
//! a file outside the database, at most one per `checkpoint_interval_ms`, and logs each
//! one, so a copy also leaves with the logs. `payrules audit verify` checks the chain
//! against every checkpoint: the chain must reach the last one, with the same hash.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use hmac::Mac;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The largest audit key file or variable read.
const KEY_TEXT_BYTES_MAX: usize = 64 * 1024;
/// The largest checkpoint file `verify` reads (about a year of one a second).
const CHECKPOINT_FILE_BYTES_MAX: u64 = 8 * 1024 * 1024 * 1024;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The audit keys: id and 32-byte secret each; the first signs.
#[derive(Clone)]
pub struct AuditKeys {
    keys: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for AuditKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secrets are never printed.
        f.debug_struct("AuditKeys")
            .field("ids", &self.ids())
            .finish()
    }
}

impl AuditKeys {
    /// Reads keys from text: one `ID HEX` a line (or separated by `;`), 64 hex digits
    /// each; blank lines and `#` comments skipped; the first key signs. `source` names
    /// where the text came from, for errors (never the text itself).
    pub fn parse(text: &str, source: &str) -> Result<AuditKeys, String> {
        parse_keys(text, source, &AUDIT).map(|keys| AuditKeys { keys })
    }

    /// Reads a key file, refusing one that others than its owner may read or write.
    pub fn load(path: &Path) -> Result<AuditKeys, String> {
        load_keys(path, &AUDIT).map(|keys| AuditKeys { keys })
    }

    /// Adds a new key at the head of the key file (creating it, mode 0600): it signs from
    /// the next start; the keys after it still verify what they signed. Returns its id.
    pub fn add_key(path: &Path) -> Result<String, String> {
        add_key_to(path, &AUDIT)
    }

    /// The ids, the signing key's first.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|(id, _)| id.as_str()).collect()
    }

    /// The id of the key that signs.
    pub fn signing_id(&self) -> &str {
        &self.keys[0].0
    }

    fn mac(secret: &[u8; 32], domain: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(secret)
            .unwrap_or_else(|e| unreachable!("HMAC takes a key of any length: {e}"));
        mac.update(domain);
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The signing key's id and its MAC of an entry's hash.
    pub fn sign_entry(&self, hash: &[u8; 32]) -> (String, [u8; 32]) {
        let (id, secret) = &self.keys[0];
        (id.clone(), Self::mac(secret, ENTRY_DOMAIN, &[hash]))
    }

    /// Whether `mac` is key `key_id`'s MAC of an entry's hash (constant time); `None` if
    /// no key has that id.
    pub fn entry_is_authentic(&self, key_id: &str, hash: &[u8; 32], mac: &[u8]) -> Option<bool> {
        let secret = self.secret(key_id)?;
        Some(verify_mac(secret, ENTRY_DOMAIN, &[hash], mac))
    }

    fn secret(&self, key_id: &str) -> Option<&[u8; 32]> {
        self.keys
            .iter()
            .find(|(id, _)| id == key_id)
            .map(|(_, secret)| secret)
    }

    /// A checkpoint of the chain's head, signed.
    pub fn checkpoint(&self, seq: i64, hash: &[u8; 32], at_unix_ms: i64) -> Checkpoint {
        let (id, secret) = &self.keys[0];
        let mac = Self::mac(
            secret,
            CHECKPOINT_DOMAIN,
            &[&seq.to_be_bytes(), hash, &at_unix_ms.to_be_bytes()],
        );
        Checkpoint {
            seq,
            hash: crate::registry::hex(hash),
            at_unix_ms,
            key_id: id.clone(),
            mac: crate::registry::hex(&mac),
        }
    }

    /// Whether a checkpoint is authentic: `None` if its key is unknown.
    pub fn checkpoint_is_authentic(&self, checkpoint: &Checkpoint) -> Option<bool> {
        let secret = self.secret(&checkpoint.key_id)?;
        let (Some(hash), Some(mac)) = (hex_32(&checkpoint.hash), hex_32(&checkpoint.mac)) else {
            return Some(false);
        };
        Some(verify_mac(
            secret,
            CHECKPOINT_DOMAIN,
            &[
                &checkpoint.seq.to_be_bytes(),
                &hash,
                &checkpoint.at_unix_ms.to_be_bytes(),
            ],
            &mac,
        ))
    }
}

/// What a key file holds, for its messages and its header.
pub(crate) struct KeyKind {
    /// E.g. "audit key".
    pub(crate) noun: &'static str,
    /// The comment a new file starts with.
    pub(crate) header: &'static str,
}

const AUDIT: KeyKind = KeyKind {
    noun: "audit key",
    header: "# payrules audit keys: `ID HEX` per line. The first signs new audit entries;\n\
             # every key listed verifies what it signed. Keep this file outside the store.\n",
};

pub(crate) fn parse_keys(
    text: &str,
    source: &str,
    kind: &KeyKind,
) -> Result<Vec<(String, [u8; 32])>, String> {
    if text.len() > KEY_TEXT_BYTES_MAX {
        return Err(format!("{source}: more than {KEY_TEXT_BYTES_MAX} bytes"));
    }
    let mut keys: Vec<(String, [u8; 32])> = Vec::new();
    for (index, line) in text.split(['\n', ';']).enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("{source}: key {}", index + 1);
        let mut parts = line.split_whitespace();
        let (Some(id), Some(secret), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("{at}: expected `ID HEX` (an id and 64 hex digits)"));
        };
        let id_ok = id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(format!(
                "{at}: the id must be 1 to 64 letters, digits, '-' or '_'"
            ));
        }
        let secret = hex_32(secret)
            .ok_or_else(|| format!("{at} ({id}): the secret must be 64 hex digits (32 bytes)"))?;
        if keys.iter().any(|(known, _)| known == id) {
            return Err(format!("{at}: the id {id} is listed twice"));
        }
        keys.push((id.to_owned(), secret));
    }
    if keys.is_empty() {
        return Err(format!("{source}: no {} in it", kind.noun));
    }
    Ok(keys)
}

/// Reads a key file, refusing one that others than its owner may read or write.
pub(crate) fn load_keys(path: &Path, kind: &KeyKind) -> Result<Vec<(String, [u8; 32])>, String> {
    use std::os::unix::fs::PermissionsExt;
    let metadata =
        std::fs::metadata(path).map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{}: mode {:03o} lets others read or change the {}; \
                 allow its owner only (chmod 600)",
            path.display(),
            mode & 0o777,
            kind.noun
        ));
    }
    if metadata.len() > KEY_TEXT_BYTES_MAX as u64 {
        return Err(format!(
            "{}: more than {KEY_TEXT_BYTES_MAX} bytes",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
    parse_keys(&text, &path.display().to_string(), kind)
}

/// Adds a new key at the head of a key file (creating it, mode 0600); the keys after it
/// stay. Returns its id.
pub(crate) fn add_key_to(path: &Path, kind: &KeyKind) -> Result<String, String> {
    let existing = match std::fs::symlink_metadata(path) {
        Ok(_) => Some(load_keys(path, kind)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| format!("no randomness for a key: {e}"))?;
    let id = format!("k{}", super::now_unix_ms());
    let mut text = String::from(kind.header);
    text.push_str(&format!("{id} {}\n", crate::registry::hex(&secret)));
    for (old_id, old_secret) in existing.iter().flatten() {
        if *old_id == id {
            return Err(format!("a key {id} exists already; try again in a moment"));
        }
        text.push_str(&format!("{old_id} {}\n", crate::registry::hex(old_secret)));
    }
    write_private(path, text.as_bytes())?;
    Ok(id)
}

const ENTRY_DOMAIN: &[u8] = b"payrules-audit-entry-mac-v1";
const CHECKPOINT_DOMAIN: &[u8] = b"payrules-audit-checkpoint-v1";

fn verify_mac(secret: &[u8; 32], domain: &[u8], parts: &[&[u8]], expected: &[u8]) -> bool {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|e| unreachable!("HMAC takes a key of any length: {e}"));
    mac.update(domain);
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(expected).is_ok()
}

/// 64 hex digits as 32 bytes.
pub fn hex_32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = [0u8; 32];
    for (index, pair) in bytes.chunks_exact(2).enumerate() {
        out[index] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// Writes a file only its owner may read (mode 0600), replacing it atomically.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("new");
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    written.map_err(|e| format!("{}: cannot write it: {e}", path.display()))
}

/// The chain's head at an instant, authenticated: one line of the checkpoint file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The last entry's sequence number.
    pub seq: i64,
    /// Its hash, hex.
    pub hash: String,
    /// When the checkpoint was taken, ms since the Unix epoch.
    pub at_unix_ms: i64,
    /// The key that signed it.
    pub key_id: String,
    /// HMAC-SHA256 of seq, hash and instant, hex.
    pub mac: String,
}

/// The checkpoint file, as the writer appends to it.
pub struct CheckpointLog {
    path: PathBuf,
    file: std::fs::File,
    interval_ms: i64,
    last_at_ms: i64,
    last_seq: i64,
}

impl CheckpointLog {
    /// Opens (creating, mode 0600) the checkpoint file for appending. A last line cut
    /// short by a crash mid-write is cut off, so every line stays whole.
    pub fn open(path: &Path, interval_ms: u64) -> Result<CheckpointLog, String> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("{}: cannot open it: {e}", path.display()))?;
        cut_torn_tail(&file).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(CheckpointLog {
            path: path.to_owned(),
            file,
            interval_ms: i64::try_from(interval_ms).unwrap_or(i64::MAX),
            last_at_ms: i64::MIN,
            last_seq: 0,
        })
    }

    /// Appends a checkpoint of the head `seq`/`hash` if the last one is older than the
    /// interval (or `now` is forced) and the head has moved; fsyncs it and logs it.
    pub fn record(&mut self, keys: &AuditKeys, seq: i64, hash: &[u8; 32], force: bool) {
        let now = super::now_unix_ms();
        if seq == self.last_seq
            || (!force && now.saturating_sub(self.last_at_ms) < self.interval_ms)
        {
            return;
        }
        let checkpoint = keys.checkpoint(seq, hash, now);
        let line = match serde_json::to_string(&checkpoint) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!("cannot serialise an audit checkpoint: {e}");
                return;
            }
        };
        let written = writeln!(self.file, "{line}").and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.last_at_ms = now;
                self.last_seq = seq;
                tracing::info!(
                    target: "payrules::audit",
                    seq,
                    hash = %checkpoint.hash,
                    key_id = %checkpoint.key_id,
                    mac = %checkpoint.mac,
                    at_unix_ms = now,
                    "audit checkpoint"
                );
            }
            Err(e) => tracing::error!(
                file = %self.path.display(),
                "cannot append an audit checkpoint: {e}"
            ),
        }
    }
}

/// Cuts the file after its last newline (a checkpoint line is written in one `write`,
/// so only a crash leaves a line without one).
fn cut_torn_tail(file: &std::fs::File) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let length = file.metadata()?.len();
    if length == 0 {
        return Ok(());
    }
    let tail_start = length.saturating_sub(4096);
    let mut tail = Vec::new();
    let mut reader = file;
    reader.seek(SeekFrom::Start(tail_start))?;
    reader.take(4096).read_to_end(&mut tail)?;
    if tail.last() == Some(&b'\n') {
        return Ok(());
    }
    let keep = tail
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(tail_start, |at| tail_start + at as u64 + 1);
    tracing::warn!(
        bytes = length - keep,
        "cutting a torn last audit checkpoint line"
    );
    file.set_len(keep)
}

/// Reads a checkpoint file: one JSON checkpoint a line. An error names the line.
pub fn read_checkpoints(path: &Path) -> Result<Vec<Checkpoint>, String> {
    let metadata = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if metadata.len() > CHECKPOINT_FILE_BYTES_MAX {
        return Err(format!("{}: larger than verify reads", path.display()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // A last line with no newline was cut short by a crash mid-write (the service cuts it
    // off at its next start): it is not a checkpoint yet.
    let whole = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    whole
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|e| {
                format!(
                    "{} line {}: not a checkpoint: {e}",
                    path.display(),
                    index + 1
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> AuditKeys {
        AuditKeys::parse(&format!("k1 {}", "11".repeat(32)), "test").unwrap()
    }

    #[test]
    fn a_checkpoint_line_torn_by_a_crash_is_not_read_and_is_cut_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoints");
        let mut log = CheckpointLog::open(&path, 1).unwrap();
        log.record(&keys(), 1, &[1; 32], true);
        drop(log);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(br#"{"seq":2,"hash":"01"#).unwrap();
        assert_eq!(read_checkpoints(&path).unwrap().len(), 1);
        let mut log = CheckpointLog::open(&path, 1).unwrap();
        log.record(&keys(), 2, &[2; 32], true);
        let read = read_checkpoints(&path).unwrap();
        assert_eq!(read.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2]);
        assert!(
            read.iter()
                .all(|c| keys().checkpoint_is_authentic(c) == Some(true))
        );
    }

    #[test]
    fn a_key_file_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let first = AuditKeys::add_key(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = AuditKeys::load(&path).unwrap_err();
        assert!(error.contains("mode 644"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(AuditKeys::load(&path).unwrap().ids(), [first.as_str()]);
    }

    #[test]
    fn a_new_key_signs_and_the_old_one_still_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        AuditKeys::add_key(&path).unwrap();
        let old = AuditKeys::load(&path).unwrap();
        let (old_id, old_mac) = old.sign_entry(&[7; 32]);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let new_id = AuditKeys::add_key(&path).unwrap();
        let rotated = AuditKeys::load(&path).unwrap();
        assert_eq!(rotated.signing_id(), new_id);
        assert_eq!(rotated.ids(), [new_id.as_str(), old_id.as_str()]);
        assert_eq!(
            rotated.entry_is_authentic(&old_id, &[7; 32], &old_mac),
            Some(true)
        );
        assert_eq!(
            rotated.entry_is_authentic(&old_id, &[8; 32], &old_mac),
            Some(false)
        );
    }
}
