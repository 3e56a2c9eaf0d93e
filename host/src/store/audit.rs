//! The audit log's hash chain, as pure functions.
//!
//! Every entry carries the hash of the one before it; its own hash covers its sequence
//! number, time, actor, action, subject, detail and that previous hash. Editing,
//! removing or reordering any entry breaks every hash after it. Each entry also carries a
//! MAC of its hash under an audit key kept outside the database ([`super::audit_keys`]),
//! so whoever can write the database cannot recompute the chain; checkpoints of the head,
//! kept outside it too, show entries removed from its end. [`Verifier`] checks all of it
//! and names the first entry at fault.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::audit_keys::{AuditKeys, Checkpoint, hex_32};
use super::{
    DECIDED, DecidedRow, EntryRow, PERSONAL_DATA_ERASED, REVIEW_EXPIRED, REVIEWED, ReviewedRow,
    Store, StoreError, Unopened, review_detail,
};

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
    /// The audit key that authenticated it; none for an entry written before payrules
    /// had audit keys.
    pub key_id: Option<String>,
    /// HMAC-SHA256 of `hash` under that key, hex.
    #[serde(serialize_with = "as_optional_hex")]
    #[schema(value_type = Option<String>)]
    pub mac: Option<Vec<u8>>,
}

fn as_hex<S: serde::Serializer>(bytes: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&crate::registry::hex(bytes))
}

fn as_optional_hex<S: serde::Serializer>(
    bytes: &Option<Vec<u8>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(bytes) => serializer.serialize_str(&crate::registry::hex(bytes)),
        None => serializer.serialize_none(),
    }
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
#[error("{}{reason}", if *seq > 0 { format!("audit entry {seq}: ") } else { String::new() })]
pub struct ChainBreak {
    /// The first entry at fault; 0 for a fault of no entry (a row with no entry).
    pub seq: i64,
    /// What is wrong with it.
    pub reason: String,
}

/// Walks a chain from its start: checks that sequence numbers run 1, 2, 3 without gaps,
/// that each entry names the previous one's hash, that each hash is its content's, that
/// each entry is authenticated by an audit key (entries written before payrules had audit
/// keys may open the chain, and are vouched for by the first authenticated entry, whose
/// hash covers theirs), and that the chain passes through every checkpoint and reaches
/// the last one.
pub struct Verifier<'k> {
    expected_seq: i64,
    prev_hash: [u8; 32],
    keys: &'k AuditKeys,
    checkpoints: BTreeMap<i64, [u8; 32]>,
    authenticated: i64,
    unauthenticated: i64,
}

/// What a verified chain holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Entries checked.
    pub entries: i64,
    /// Of which written before audit keys (at the chain's start).
    pub unauthenticated: i64,
    /// The newest checkpoint's entry, if any.
    pub last_checkpoint: Option<i64>,
}

impl<'k> Verifier<'k> {
    /// A verifier at the start of the chain, checking MACs with `keys` and the chain
    /// against `checkpoints` (each of which must itself be authentic).
    pub fn new(keys: &'k AuditKeys, checkpoints: &[Checkpoint]) -> Result<Self, ChainBreak> {
        let mut heads = BTreeMap::new();
        for checkpoint in checkpoints {
            let fault = |reason: String| ChainBreak {
                seq: checkpoint.seq,
                reason,
            };
            match keys.checkpoint_is_authentic(checkpoint) {
                None => {
                    return Err(fault(format!(
                        "its checkpoint is signed with key {}, which is not among the audit keys",
                        checkpoint.key_id
                    )));
                }
                Some(false) => {
                    return Err(fault(
                        "its checkpoint is not authentic (written or edited without the audit key)"
                            .to_owned(),
                    ));
                }
                Some(true) => {}
            }
            let hash = hex_32(&checkpoint.hash).unwrap_or_default();
            if heads
                .insert(checkpoint.seq, hash)
                .is_some_and(|other| other != hash)
            {
                return Err(fault("two checkpoints give it different hashes".to_owned()));
            }
        }
        Ok(Verifier {
            expected_seq: 1,
            prev_hash: GENESIS,
            keys,
            checkpoints: heads,
            authenticated: 0,
            unauthenticated: 0,
        })
    }

    /// Checks the next entry.
    pub fn check(&mut self, entry: &AuditEntry) -> Result<(), ChainBreak> {
        let fault = |reason: &str| ChainBreak {
            seq: entry.seq,
            reason: reason.to_owned(),
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
                "its previous hash is not the hash of the entry before it",
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
                "its content does not match its hash (edited after it was written)",
            ));
        }
        match (&entry.key_id, &entry.mac) {
            (Some(key_id), Some(mac)) => match self.keys.entry_is_authentic(key_id, &hash, mac) {
                None => {
                    return Err(fault(&format!(
                        "it is signed with key {key_id}, which is not among the audit keys"
                    )));
                }
                Some(false) => {
                    return Err(fault(
                        "its authentication code is wrong (written or rewritten without the audit key)",
                    ));
                }
                Some(true) => self.authenticated += 1,
            },
            _ if self.authenticated > 0 => {
                return Err(fault(
                    "it is not authenticated, yet entries before it are (written without the audit key)",
                ));
            }
            _ => self.unauthenticated += 1,
        }
        if let Some(expected) = self.checkpoints.get(&entry.seq)
            && *expected != hash
        {
            return Err(fault(
                "its hash is not the one its checkpoint recorded (rewritten since)",
            ));
        }
        self.expected_seq += 1;
        self.prev_hash = hash;
        Ok(())
    }

    /// Ends the walk: the chain must hold an authenticated entry (if it holds any) and
    /// reach the last checkpoint.
    pub fn finish(self) -> Result<Verified, ChainBreak> {
        let entries = self.expected_seq - 1;
        if let Some((&last, _)) = self.checkpoints.last_key_value()
            && last > entries
        {
            return Err(ChainBreak {
                seq: entries + 1,
                reason: format!(
                    "missing: the chain ends at entry {entries}, but a checkpoint records entry {last} (entries removed from its end)"
                ),
            });
        }
        if entries > 0 && self.authenticated == 0 {
            return Err(ChainBreak {
                seq: entries,
                reason: "no entry is authenticated by an audit key (a chain written without the key, or a store no payrules with audit keys has served)".to_owned(),
            });
        }
        if self.authenticated > 0 && self.checkpoints.is_empty() {
            return Err(ChainBreak {
                seq: entries,
                reason: "no checkpoint: whether entries were removed from the end cannot be told (the checkpoint file is missing or empty)".to_owned(),
            });
        }
        Ok(Verified {
            entries,
            unauthenticated: self.unauthenticated,
            last_checkpoint: self.checkpoints.last_key_value().map(|(seq, _)| *seq),
        })
    }
}

/// Checks a store's whole audit log against the audit keys and the checkpoints (see
/// [`Verifier`]), and both directions between the log and the rows it records: every
/// decided payment's entry has its row, stored exactly as it was decided (payment,
/// decision and the columns listings filter on), every review's entry its review, as
/// made, of the decision as stored; and every payment and review has its entry. Returns
/// what was verified, or the first fault. Blocking.
pub fn verify(
    store: &dyn Store,
    keys: &AuditKeys,
    checkpoints: &[Checkpoint],
) -> Result<Result<Verified, ChainBreak>, StoreError> {
    let mut verifier = match Verifier::new(keys, checkpoints) {
        Ok(verifier) => verifier,
        Err(fault) => return Ok(Err(fault)),
    };
    let mut found: Result<(), ChainBreak> = Ok(());
    let mut unreadable = None;
    // Data keys erased on the record, and those the rows need to have been.
    let mut erasures = std::collections::HashSet::new();
    let mut erased_keys_used = BTreeMap::new();
    store.for_each_audit_entry(&mut |entry, row| {
        if entry.action == PERSONAL_DATA_ERASED {
            erasures.insert(entry.subject.clone());
        }
        let checked = verifier.check(&entry).and_then(|()| {
            let fault = |reason: &str| ChainBreak {
                seq: entry.seq,
                reason: format!("payment {}: {reason}", entry.subject),
            };
            let unopened = match &row {
                Some(EntryRow::Decided(row)) => row.unopened.clone(),
                Some(EntryRow::Reviewed(row)) => row.unopened.clone(),
                None => None,
            };
            match unopened {
                Some(Unopened::Altered(reason)) => {
                    return Err(fault(&format!(
                        "its stored payment, decision or note does not open ({reason})"
                    )));
                }
                Some(Unopened::Erased(key)) => {
                    erased_keys_used
                        .entry(key)
                        .or_insert_with(|| entry.subject.clone());
                }
                None => {}
            }
            let differs = match (entry.action.as_str(), row) {
                (DECIDED, Some(EntryRow::Decided(row))) => decided_row_differs(&entry, &row),
                (DECIDED, _) => return Err(fault("the payment is missing from the store")),
                (REVIEWED | REVIEW_EXPIRED, Some(EntryRow::Reviewed(row))) => {
                    review_row_differs(&entry, &row)
                }
                (REVIEWED | REVIEW_EXPIRED, _) => {
                    return Err(fault("its review is missing from the store"));
                }
                _ => return Ok(()),
            };
            match differs {
                Ok(None) => Ok(()),
                Ok(Some(reason)) => Err(fault(reason)),
                Err(error) => {
                    unreadable = Some(error);
                    Ok(())
                }
            }
        });
        found = checked;
        found.is_ok() && unreadable.is_none()
    })?;
    if let Some(error) = unreadable {
        return Err(StoreError::failed(error));
    }
    if let Err(fault) = found {
        return Ok(Err(fault));
    }
    let verified = match verifier.finish() {
        Ok(verified) => verified,
        Err(fault) => return Ok(Err(fault)),
    };
    if let Some((key, payment)) = erased_keys_used
        .iter()
        .find(|(key, _)| !erasures.contains(*key))
    {
        return Ok(Err(ChainBreak {
            seq: 0,
            reason: format!(
                "payment {payment}: its data key {key} is erased with no audit entry (erased \
                 behind the service's back)"
            ),
        }));
    }
    if let Some(id) = store.first_payment_without_entry()? {
        return Ok(Err(ChainBreak {
            seq: 0,
            reason: format!(
                "payment {id} is stored with no audit entry (inserted behind the service's back)"
            ),
        }));
    }
    if let Some(id) = store.first_review_without_entry()? {
        return Ok(Err(ChainBreak {
            seq: 0,
            reason: format!(
                "the review of payment {id} is stored with no audit entry (inserted behind the \
                 service's back)"
            ),
        }));
    }
    Ok(Ok(verified))
}

/// Why a review's row is not what its audit entry recorded, if it is not: the reviewer,
/// the instant, the verdict, the reason, the note, whether payrules made it at the
/// deadline, and the decision it reviewed (which must be the one stored).
fn review_row_differs(
    entry: &AuditEntry,
    row: &ReviewedRow,
) -> Result<Option<&'static str>, String> {
    let detail: serde_json::Value = serde_json::from_str(&entry.detail)
        .map_err(|e| format!("audit entry {}: its detail is not JSON: {e}", entry.seq))?;
    let review = &row.review;
    if row.unopened.is_some() {
        // The note and the decision were erased with their day's key: what is left in
        // clear is checked.
        let agrees = detail["verdict"] == review.verdict.name()
            && detail["reason_code"] == serde_json::json!(review.reason_code)
            && detail["decision_sha256"] == review.decision_sha256.as_str()
            && entry.actor == review.reviewer
            && entry.at_unix_ms == review.reviewed_at_unix_ms
            && (entry.action == REVIEW_EXPIRED) == review.expired;
        return Ok((!agrees).then_some(
            "its review (verdict, reason, reviewer or instant) is not what was recorded",
        ));
    }
    if detail != review_detail(review)
        || entry.actor != review.reviewer
        || entry.at_unix_ms != review.reviewed_at_unix_ms
        || (entry.action == REVIEW_EXPIRED) != review.expired
    {
        return Ok(Some(
            "its review (verdict, reason, note, reviewer or instant) is not what was recorded",
        ));
    }
    if review.decision_sha256 != sha256_hex(&row.decision) {
        return Ok(Some("the decision it reviewed is not the one stored"));
    }
    Ok(None)
}

/// Why a decided payment's row is not what its audit entry recorded, if it is not.
fn decided_row_differs(
    entry: &AuditEntry,
    row: &DecidedRow,
) -> Result<Option<&'static str>, String> {
    let detail: serde_json::Value = serde_json::from_str(&entry.detail)
        .map_err(|e| format!("audit entry {}: its detail is not JSON: {e}", entry.seq))?;
    if row.unopened.is_some() {
        // The payment and decision were erased with their day's key: the clear columns
        // are checked (the amount, currency and end-to-end id were hashed with the payment).
        let agrees = row.submitted_by == entry.actor
            && detail["status"] == row.status.as_str()
            && detail["rule_set_version"] == row.rule_set_version.as_str();
        return Ok((!agrees).then_some(
            "a column of its row (submitter, status or rule set) is not what was decided",
        ));
    }
    if detail["payment_sha256"] != sha256_hex(&row.payment) {
        return Ok(Some("the stored payment is not the one decided"));
    }
    if detail["decision_sha256"] != sha256_hex(&row.decision) {
        return Ok(Some("the stored decision is not the one made"));
    }
    let payment: serde_json::Value = serde_json::from_str(&row.payment)
        .map_err(|e| format!("payment {}: not JSON: {e}", entry.subject))?;
    let agrees = row.submitted_by == entry.actor
        && detail["status"] == row.status.as_str()
        && detail["rule_set_version"] == row.rule_set_version.as_str()
        && payment["amount"] == row.amount.as_str()
        && payment["currency"] == row.currency.as_str()
        && payment["end_to_end_id"] == row.end_to_end_id.as_str();
    Ok((!agrees).then_some(
        "a column of its row (submitter, status, rule set, amount, currency or end-to-end id) \
         is not what was decided",
    ))
}

/// The sha256 of a text, hex: what a decision's entry records of its payment and decision.
pub fn sha256_hex(text: &str) -> String {
    crate::registry::hex(&Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> AuditKeys {
        AuditKeys::parse(&format!("k1 {}", "11".repeat(32)), "test").unwrap()
    }

    fn other_keys() -> AuditKeys {
        AuditKeys::parse(&format!("k1 {}", "22".repeat(32)), "test").unwrap()
    }

    /// Signs (or re-signs) an entry after its content changed: what the service does, and
    /// what an attacker with the key could do.
    fn seal(entry: &mut AuditEntry, prev: [u8; 32], keys: Option<&AuditKeys>) {
        entry.prev_hash = prev;
        entry.hash = entry_hash(
            &entry.prev_hash,
            entry.seq,
            entry.at_unix_ms,
            &entry.actor,
            &entry.action,
            &entry.subject,
            &entry.detail,
        );
        (entry.key_id, entry.mac) = match keys {
            Some(keys) => {
                let (id, mac) = keys.sign_entry(&entry.hash);
                (Some(id), Some(mac.to_vec()))
            }
            None => (None, None),
        };
    }

    fn chain_signed_by(n: i64, keys: Option<&AuditKeys>) -> Vec<AuditEntry> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let mut entry = AuditEntry {
                    seq,
                    at_unix_ms: 1000 + seq,
                    actor: "checkout".into(),
                    action: "payment.decided".into(),
                    subject: "pay_1".into(),
                    detail: format!("{{\"n\":{seq}}}"),
                    prev_hash: GENESIS,
                    hash: GENESIS,
                    key_id: None,
                    mac: None,
                };
                seal(&mut entry, prev, keys);
                prev = entry.hash;
                entry
            })
            .collect()
    }

    fn chain(n: i64) -> Vec<AuditEntry> {
        chain_signed_by(n, Some(&keys()))
    }

    /// Recomputes every hash from `from` (0-based) on, as an attacker who can write the
    /// database but has no audit key would.
    fn rechain(entries: &mut [AuditEntry], from: usize, keys: Option<&AuditKeys>) {
        for index in from..entries.len() {
            let prev = if index == 0 {
                GENESIS
            } else {
                entries[index - 1].hash
            };
            let mac = (entries[index].key_id.clone(), entries[index].mac.clone());
            seal(&mut entries[index], prev, keys);
            if keys.is_none() {
                // Keeps the old MAC, which no longer matches.
                (entries[index].key_id, entries[index].mac) = mac;
            }
        }
    }

    fn checkpoint(entries: &[AuditEntry], seq: i64) -> Checkpoint {
        keys().checkpoint(seq, &entries[usize::try_from(seq - 1).unwrap()].hash, 5000)
    }

    fn verify(entries: &[AuditEntry], checkpoints: &[Checkpoint]) -> Result<Verified, ChainBreak> {
        let keys = keys();
        let mut verifier = Verifier::new(&keys, checkpoints)?;
        for entry in entries {
            verifier.check(entry)?;
        }
        verifier.finish()
    }

    fn first_break(entries: &[AuditEntry]) -> Option<ChainBreak> {
        verify(entries, &[checkpoint(entries, 1)]).err()
    }

    #[test]
    fn an_intact_chain_verifies() {
        let entries = chain(5);
        let verified = verify(
            &entries,
            &[checkpoint(&entries, 3), checkpoint(&entries, 5)],
        );
        assert_eq!(
            verified,
            Ok(Verified {
                entries: 5,
                unauthenticated: 0,
                last_checkpoint: Some(5)
            })
        );
    }

    #[test]
    fn an_edited_entry_is_named() {
        let mut entries = chain(5);
        entries[2].detail = "{\"n\":99}".into();
        assert_eq!(first_break(&entries).unwrap().seq, 3);
    }

    #[test]
    fn an_edited_entry_with_every_later_hash_recomputed_is_named_by_its_mac() {
        let mut entries = chain(5);
        entries[2].actor = "mallory".into();
        rechain(&mut entries, 2, None);
        let found = first_break(&entries).unwrap();
        assert_eq!(found.seq, 3);
        assert!(found.reason.contains("authentication code"), "{found}");
    }

    #[test]
    fn a_chain_re_signed_with_another_key_is_refused() {
        let mut entries = chain(5);
        entries[1].detail = "{\"n\":0}".into();
        rechain(&mut entries, 1, Some(&other_keys()));
        let found = first_break(&entries).unwrap();
        assert_eq!(found.seq, 2);
        assert!(found.reason.contains("authentication code"), "{found}");
    }

    #[test]
    fn stripping_the_macs_from_the_end_is_refused() {
        let mut entries = chain(5);
        entries[3].detail = "{\"n\":0}".into();
        rechain(&mut entries, 3, None);
        for entry in &mut entries[3..] {
            (entry.key_id, entry.mac) = (None, None);
        }
        let found = first_break(&entries).unwrap();
        assert_eq!(found.seq, 4);
        assert!(found.reason.contains("not authenticated"), "{found}");
    }

    #[test]
    fn a_chain_with_no_mac_at_all_is_refused() {
        let entries = chain_signed_by(3, None);
        let found = verify(&entries, &[]).unwrap_err();
        assert!(
            found.reason.contains("no entry is authenticated"),
            "{found}"
        );
    }

    #[test]
    fn entries_from_before_audit_keys_are_vouched_for_by_the_first_signed_one() {
        let mut entries = chain_signed_by(3, None);
        let mut signed = chain(5);
        entries.extend(signed.drain(3..));
        rechain(&mut entries, 3, Some(&keys()));
        let verified = verify(&entries, &[checkpoint(&entries, 5)]).unwrap();
        assert_eq!(verified.unauthenticated, 3);
        // Rewriting one of them changes the hash the first signed entry covers.
        entries[0].actor = "mallory".into();
        rechain(&mut entries, 0, None);
        for entry in &mut entries[..3] {
            (entry.key_id, entry.mac) = (None, None);
        }
        assert_eq!(first_break(&entries).unwrap().seq, 4);
    }

    #[test]
    fn entries_removed_from_the_end_are_named_by_the_checkpoint() {
        let mut entries = chain(5);
        let checkpoints = [checkpoint(&entries, 5)];
        entries.truncate(3);
        let found = verify(&entries, &checkpoints).unwrap_err();
        assert_eq!(found.seq, 4);
        assert!(found.reason.contains("removed from its end"), "{found}");
    }

    #[test]
    fn a_forged_or_edited_checkpoint_is_refused() {
        let entries = chain(5);
        let mut forged = checkpoint(&entries, 5);
        forged.seq = 9;
        let found = verify(&entries, &[forged]).unwrap_err();
        assert!(found.reason.contains("not authentic"), "{found}");
        let foreign = other_keys().checkpoint(5, &entries[4].hash, 1);
        let found = verify(&entries, &[foreign]).unwrap_err();
        assert!(found.reason.contains("not authentic"), "{found}");
    }

    #[test]
    fn a_chain_that_diverges_from_a_checkpoint_is_named() {
        let mut entries = chain(5);
        let checkpoints = [checkpoint(&entries, 4)];
        entries[3].detail = "{\"n\":0}".into();
        // Even re-signed with the key, the entry differs from what was checkpointed.
        rechain(&mut entries, 3, Some(&keys()));
        let found = verify(&entries, &checkpoints).unwrap_err();
        assert_eq!(found.seq, 4);
        assert!(found.reason.contains("checkpoint"), "{found}");
    }

    #[test]
    fn signed_entries_with_no_checkpoint_are_refused() {
        let found = verify(&chain(2), &[]).unwrap_err();
        assert!(found.reason.contains("no checkpoint"), "{found}");
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

    #[test]
    fn key_files_are_parsed_with_errors_that_never_show_a_secret() {
        let secret = "ab".repeat(32);
        let keys = AuditKeys::parse(
            &format!("# rotated\nk2 {secret}\nk1 {}\n", "cd".repeat(32)),
            "f",
        )
        .unwrap();
        assert_eq!(keys.ids(), ["k2", "k1"]);
        assert_eq!(keys.signing_id(), "k2");
        for (text, expected) in [
            ("", "no audit key"),
            ("k1", "expected `ID HEX`"),
            ("k1 abcd", "64 hex digits"),
            (&format!("k/1 {secret}") as &str, "the id must be"),
            (&format!("k1 {secret}\nk1 {secret}"), "listed twice"),
        ] {
            let error = AuditKeys::parse(text, "f").unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(!error.contains(&secret), "{error}");
        }
    }
}
