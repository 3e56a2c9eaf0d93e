//! The audit log's hash chain, as pure functions.
//!
//! Every entry carries the hash of the one before it; its own hash covers its sequence
//! number, time, actor, action, subject, detail and that previous hash. Editing,
//! removing or reordering any entry breaks every hash after it, and [`verify`] names
//! the first entry at fault.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The previous hash of the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// One entry of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// 1, 2, 3, ... with no gaps.
    pub seq: i64,
    /// When, ms since the Unix epoch.
    pub at_unix_ms: i64,
    /// Who: an API key's name, or `payrules` for the service itself.
    pub actor: String,
    /// What happened, e.g. `payment.decided`, `rules.loaded`.
    pub action: String,
    /// What it happened to: a payment id, a rule-set version.
    pub subject: String,
    /// The facts of it, as a JSON object.
    pub detail: String,
    /// The hash of the entry before, hex.
    #[serde(serialize_with = "as_hex")]
    #[schema(value_type = String)]
    pub prev_hash: [u8; 32],
    /// This entry's hash, hex.
    #[serde(serialize_with = "as_hex")]
    #[schema(value_type = String)]
    pub hash: [u8; 32],
}

fn as_hex<S: serde::Serializer>(bytes: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&crate::registry::hex(bytes))
}

/// The hash of an entry with these fields. Strings are length-prefixed, so no two
/// different entries hash the same bytes.
pub fn entry_hash(
    prev_hash: &[u8; 32],
    seq: i64,
    at_unix_ms: i64,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"payrules-audit-v1");
    hasher.update(prev_hash);
    hasher.update(seq.to_be_bytes());
    hasher.update(at_unix_ms.to_be_bytes());
    for text in [actor, action, subject, detail] {
        hasher.update((text.len() as u64).to_be_bytes());
        hasher.update(text.as_bytes());
    }
    hasher.finalize().into()
}

/// Where the chain breaks and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("audit entry {seq}: {reason}")]
pub struct ChainBreak {
    /// The first entry at fault.
    pub seq: i64,
    /// What is wrong with it.
    pub reason: String,
}

/// Walks a chain from its start: checks that sequence numbers run 1, 2, 3 without gaps,
/// that each entry names the previous one's hash, and that each hash is its content's.
/// Returns the number of entries and the last hash.
pub struct Verifier {
    expected_seq: i64,
    prev_hash: [u8; 32],
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            expected_seq: 1,
            prev_hash: GENESIS,
        }
    }
}

impl Verifier {
    /// A verifier at the start of the chain.
    pub fn new() -> Self {
        Verifier::default()
    }

    /// Checks the next entry.
    pub fn check(&mut self, entry: &AuditEntry) -> Result<(), ChainBreak> {
        let fault = |reason: String| ChainBreak {
            seq: entry.seq,
            reason,
        };
        if entry.seq != self.expected_seq {
            return Err(ChainBreak {
                seq: self.expected_seq,
                reason: format!(
                    "missing: the entry after {} is numbered {}",
                    self.expected_seq - 1,
                    entry.seq
                ),
            });
        }
        if entry.prev_hash != self.prev_hash {
            return Err(fault(
                "its previous hash is not the hash of the entry before it".to_owned(),
            ));
        }
        let hash = entry_hash(
            &entry.prev_hash,
            entry.seq,
            entry.at_unix_ms,
            &entry.actor,
            &entry.action,
            &entry.subject,
            &entry.detail,
        );
        if hash != entry.hash {
            return Err(fault(
                "its content does not match its hash (edited after it was written)".to_owned(),
            ));
        }
        self.expected_seq += 1;
        self.prev_hash = hash;
        Ok(())
    }

    /// How many entries checked so far.
    pub fn entries(&self) -> i64 {
        self.expected_seq - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let detail = format!("{{\"n\":{seq}}}");
                let hash = entry_hash(
                    &prev,
                    seq,
                    1000 + seq,
                    "checkout",
                    "payment.decided",
                    "pay_1",
                    &detail,
                );
                let entry = AuditEntry {
                    seq,
                    at_unix_ms: 1000 + seq,
                    actor: "checkout".into(),
                    action: "payment.decided".into(),
                    subject: "pay_1".into(),
                    detail,
                    prev_hash: prev,
                    hash,
                };
                prev = hash;
                entry
            })
            .collect()
    }

    fn first_break(entries: &[AuditEntry]) -> Option<ChainBreak> {
        let mut verifier = Verifier::new();
        entries.iter().find_map(|e| verifier.check(e).err())
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(first_break(&chain(5)), None);
    }

    #[test]
    fn an_edited_entry_is_named() {
        let mut entries = chain(5);
        entries[2].detail = "{\"n\":99}".into();
        assert_eq!(first_break(&entries).unwrap().seq, 3);
    }

    #[test]
    fn an_edited_entry_with_a_recomputed_hash_breaks_the_next_one() {
        let mut entries = chain(5);
        let e = &mut entries[2];
        e.actor = "mallory".into();
        e.hash = entry_hash(
            &e.prev_hash,
            e.seq,
            e.at_unix_ms,
            &e.actor,
            &e.action,
            &e.subject,
            &e.detail,
        );
        assert_eq!(first_break(&entries).unwrap().seq, 4);
    }

    #[test]
    fn a_removed_entry_is_named() {
        let mut entries = chain(5);
        entries.remove(1);
        let found = first_break(&entries).unwrap();
        assert_eq!(found.seq, 2);
        assert!(found.reason.contains("missing"), "{found}");
    }

    #[test]
    fn strings_are_length_prefixed() {
        let a = entry_hash(&GENESIS, 1, 1, "ab", "c", "", "");
        let b = entry_hash(&GENESIS, 1, 1, "a", "bc", "", "");
        assert_ne!(a, b);
    }
}
