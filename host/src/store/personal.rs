//! Personal data at rest: sealed in the store, readable only with a key the database does
//! not hold.
//!
//! What a payment says about people — names, accounts, addresses, remittance text, and the
//! names a screening rule matched, which its decision's reasons quote — is written to the
//! store sealed with AES-256-GCM (`ring`, as rustls uses): the payment, its decision, a
//! shadow set's decision, a reviewer's note and an ISO 20022 status report. What the
//! service searches and counts by stays clear: ids, amounts, currencies, statuses, rule-set
//! versions, the names of the rules that fired.
//!
//! **Keys.** Each UTC day has its own **data key** (id `d` + the date), made a day ahead,
//! kept in the store's `data_keys` table **wrapped** (AES-256-GCM) by a **master key**
//! that is not in the database: a file or an environment variable the service reads at
//! start, as the audit keys are (`ID HEX` lines; the first wraps). A copy of the database
//! without the master key reads as ciphertext. Rotating the master key is adding a new one
//! at the head of the file: at the next start every data key is wrapped again by it, and
//! the old one can then be dropped. A day's key is what retention will erase: without
//! it, that day's sealed rows cannot be read by anyone (crypto-shredding), while the
//! audit chain, which keeps only their hashes, still verifies.
//!
//! **Binding.** Each sealed value is bound (AES-GCM's associated data) to the row and
//! column it was written for (`payment:<id>`, `decision:<id>`, ...): a value moved to
//! another row does not open.
//!
//! A sealed value is text: `pd1.<data key id>.<base64url of nonce, ciphertext, tag>`. A
//! stored value without the prefix was written before sealing (JSON starts with `{`, XML
//! with `<`) and is read as it is.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use super::StoreError;
use super::audit_keys::{KeyKind, add_key_to, load_keys, parse_keys};

/// The prefix of a sealed value.
const SEALED_PREFIX: &str = "pd1.";
/// The associated data of a sealed value starts with this; the row's context follows.
const SEAL_DOMAIN: &str = "payrules-personal-data-v1|";
/// The associated data of a wrapped data key starts with this; its id follows.
const WRAP_DOMAIN: &str = "payrules-data-key-v1|";
/// A day in milliseconds.
const DAY_MS: i64 = 86_400_000;
/// How many days ahead data keys are made (today's and tomorrow's), so that every host
/// holds a day's key before the day starts.
const DAYS_AHEAD: i64 = 1;

const MASTER: KeyKind = KeyKind {
    noun: "master key",
    header: "# payrules master keys: `ID HEX` per line. The first wraps the store's data keys;\n\
             # keep the others until a start has wrapped every data key again. Keep this file\n\
             # outside the store and its backups.\n",
};

/// The master keys: id and 32-byte secret each; the first wraps.
#[derive(Clone)]
pub struct MasterKeys {
    keys: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secrets are never printed.
        f.debug_struct("MasterKeys")
            .field("ids", &self.ids())
            .finish()
    }
}

impl MasterKeys {
    /// Reads keys from text: one `ID HEX` a line (or separated by `;`); the first wraps.
    /// `source` names where the text came from, for errors (never the text itself).
    pub fn parse(text: &str, source: &str) -> Result<MasterKeys, String> {
        parse_keys(text, source, &MASTER).map(|keys| MasterKeys { keys })
    }

    /// Reads a key file, refusing one that others than its owner may read or write.
    pub fn load(path: &Path) -> Result<MasterKeys, String> {
        load_keys(path, &MASTER).map(|keys| MasterKeys { keys })
    }

    /// Adds a new key at the head of the key file (creating it, mode 0600): it wraps the
    /// data keys from the next start. Returns its id.
    pub fn add_key(path: &Path) -> Result<String, String> {
        add_key_to(path, &MASTER)
    }

    /// The ids, the wrapping key's first.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|(id, _)| id.as_str()).collect()
    }

    fn key(&self, id: &str) -> Option<LessSafeKey> {
        self.keys
            .iter()
            .find(|(known, _)| known == id)
            .map(|(_, secret)| aead_key(secret))
    }
}

fn aead_key(secret: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, secret)
            .unwrap_or_else(|e| unreachable!("AES-256-GCM takes a 32-byte key: {e}")),
    )
}

/// `plaintext` sealed: a fresh random nonce, then the ciphertext and its tag.
fn seal_bytes(key: &LessSafeKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)
        .map_err(|e| StoreError::failed(format!("no randomness for a nonce: {e}")))?;
    let mut sealed = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(plaintext);
    let mut tail = sealed.split_off(NONCE_LEN);
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut tail,
    )
    .map_err(|_| StoreError::failed("sealing failed"))?;
    sealed.extend_from_slice(&tail);
    Ok(sealed)
}

/// What [`seal_bytes`] made, opened; `None` if it does not open (another key, another
/// row, or altered).
fn open_bytes(key: &LessSafeKey, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buffer = ciphertext.to_vec();
    let opened = key.open_in_place(nonce, Aad::from(aad), &mut buffer).ok()?;
    let length = opened.len();
    buffer.truncate(length);
    Some(buffer)
}

/// A data key as the store keeps it: wrapped by a master key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedKey {
    /// `d` + the UTC date it seals (`d2026-11-27`).
    pub id: String,
    /// That date, as days since 1970-01-01.
    pub day: i64,
    /// The master key that wraps it.
    pub master_key_id: String,
    /// Nonce, the wrapped key and its tag.
    pub wrapped: Vec<u8>,
    /// When it was made, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// When it was erased at the end of its retention (its wrapped key then empty).
    pub erased_at_ms: Option<i64>,
}

/// The id of the data key of UTC day `day` (days since 1970-01-01).
pub fn data_key_id(day: i64) -> String {
    let date = crate::runtime::utc_date(day.saturating_mul(DAY_MS));
    format!("d{:04}-{:02}-{:02}", date.year, date.month, date.day)
}

/// A data key as held: unwrapped, or known to be erased.
enum DataKey {
    Held(Arc<LessSafeKey>),
    Erased,
}

/// Seals and opens personal data with the store's data keys, as loaded and unwrapped.
pub struct PersonalData {
    master: MasterKeys,
    /// Data key id → the day it seals and the key.
    keys: RwLock<HashMap<String, (i64, DataKey)>>,
}

impl std::fmt::Debug for PersonalData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonalData")
            .field("master", &self.master)
            .finish_non_exhaustive()
    }
}

/// A [`PersonalData`] to share between a store's readers and its writer.
pub type Sealer = Arc<PersonalData>;

impl PersonalData {
    /// Seals and opens with the data keys these master keys unwrap (none loaded yet:
    /// [`PersonalData::absorb`] the store's).
    pub fn new(master: MasterKeys) -> Sealer {
        Arc::new(PersonalData {
            master,
            keys: RwLock::new(HashMap::new()),
        })
    }

    /// Unwraps and holds the data keys not held yet. A key no master key listed
    /// unwraps is an error naming it: the service must not start unable to read (or
    /// wrongly write) what it stored.
    pub fn absorb(&self, rows: &[WrappedKey]) -> Result<(), String> {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let mut first_fault = None;
        for row in rows {
            if row.erased_at_ms.is_some() {
                keys.insert(row.id.clone(), (row.day, DataKey::Erased));
                continue;
            }
            if keys.contains_key(&row.id) {
                continue;
            }
            // A key that does not unwrap leaves the others to load (a host mid-rotation
            // keeps what it can read), and is the error.
            match self.unwrap_key(row) {
                Ok(secret) => {
                    let key = Arc::new(aead_key(&secret));
                    keys.insert(row.id.clone(), (row.day, DataKey::Held(key)));
                }
                Err(fault) => {
                    first_fault.get_or_insert(fault);
                }
            }
        }
        first_fault.map_or(Ok(()), Err)
    }

    /// A data key's secret, unwrapped by the master key that wrapped it.
    fn unwrap_key(&self, row: &WrappedKey) -> Result<[u8; 32], String> {
        let master = self.master.key(&row.master_key_id).ok_or_else(|| {
            format!(
                "data key {} is wrapped by master key {}, which is not among the master \
                 keys given ({}): list it (after the new one, while rotating)",
                row.id,
                row.master_key_id,
                self.master.ids().join(", ")
            )
        })?;
        let aad = format!("{WRAP_DOMAIN}{}", row.id);
        open_bytes(&master, aad.as_bytes(), &row.wrapped)
            .and_then(|secret| <[u8; 32]>::try_from(secret).ok())
            .ok_or_else(|| {
                format!(
                    "data key {} does not unwrap with master key {}: the key file has \
                     another secret under that id, or the row was altered",
                    row.id, row.master_key_id
                )
            })
    }

    /// New data keys for the days from `now_unix_ms`'s through [`DAYS_AHEAD`] after it
    /// that none is held for, wrapped by the first master key: the store inserts each
    /// unless a key of that id is there already (another host's), then absorbs what it
    /// holds.
    pub fn to_make(&self, now_unix_ms: i64) -> Result<Vec<WrappedKey>, StoreError> {
        let today = now_unix_ms.div_euclid(DAY_MS);
        let held = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let mut made = Vec::new();
        for day in today..=today + DAYS_AHEAD {
            let id = data_key_id(day);
            if held.contains_key(&id) {
                continue;
            }
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret)
                .map_err(|e| StoreError::failed(format!("no randomness for a data key: {e}")))?;
            made.push(self.wrap(&id, day, &secret, now_unix_ms)?);
        }
        Ok(made)
    }

    /// The data keys among `rows` wrapped by a master key other than the first, wrapped
    /// again by the first (a rotation): the store writes them back.
    pub fn to_rewrap(&self, rows: &[WrappedKey]) -> Result<Vec<WrappedKey>, StoreError> {
        let first = &self.master.keys[0].0;
        let mut rewrapped = Vec::new();
        for row in rows
            .iter()
            .filter(|row| row.master_key_id != *first && row.erased_at_ms.is_none())
        {
            // One that does not unwrap is named by `absorb`; it is left as it is.
            if let Ok(secret) = self.unwrap_key(row) {
                rewrapped.push(self.wrap(&row.id, row.day, &secret, row.created_at_ms)?);
            }
        }
        Ok(rewrapped)
    }

    fn wrap(
        &self,
        id: &str,
        day: i64,
        secret: &[u8; 32],
        created_at_ms: i64,
    ) -> Result<WrappedKey, StoreError> {
        let (master_id, master) = &self.master.keys[0];
        let aad = format!("{WRAP_DOMAIN}{id}");
        Ok(WrappedKey {
            id: id.to_owned(),
            day,
            master_key_id: master_id.clone(),
            wrapped: seal_bytes(&aead_key(master), aad.as_bytes(), secret)?,
            created_at_ms,
            erased_at_ms: None,
        })
    }

    /// `plaintext` sealed for `context` (the row and column it is written to) under the
    /// data key of the day of `now_unix_ms` — or, if that one is not held (a clock far
    /// ahead of the keys made), the latest held before it.
    pub fn seal(
        &self,
        context: &str,
        plaintext: &str,
        now_unix_ms: i64,
    ) -> Result<String, StoreError> {
        let today = now_unix_ms.div_euclid(DAY_MS);
        let todays = data_key_id(today);
        let (id, key) = {
            let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
            // Today's key, looked up; only without it are the keys (one a day of the
            // retention period) searched for the latest before today.
            if let Some((_, DataKey::Held(key))) = keys.get(&todays) {
                (todays, Arc::clone(key))
            } else {
                keys.iter()
                    .filter_map(|(id, (day, key))| match key {
                        DataKey::Held(key) if *day <= today => Some((id, *day, key)),
                        _ => None,
                    })
                    .max_by_key(|(_, day, _)| *day)
                    .map(|(id, _, key)| (id.clone(), Arc::clone(key)))
                    .ok_or_else(|| {
                        StoreError::failed("no data key is held to seal personal data")
                    })?
            }
        };
        let aad = format!("{SEAL_DOMAIN}{context}");
        let sealed = seal_bytes(&key, aad.as_bytes(), plaintext.as_bytes())?;
        Ok(format!(
            "{SEALED_PREFIX}{id}.{}",
            URL_SAFE_NO_PAD.encode(sealed)
        ))
    }

    /// A stored value opened: sealed for `context`, or written before sealing (read as it
    /// is).
    pub fn open(&self, context: &str, stored: &str) -> Result<String, StoreError> {
        let Some(sealed) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(stored.to_owned());
        };
        let (id, body) = sealed.split_once('.').ok_or_else(|| {
            StoreError::failed(format!("{context}: a sealed value without its key id"))
        })?;
        let key = {
            let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
            match keys.get(id) {
                Some((_, DataKey::Held(key))) => Some(Arc::clone(key)),
                Some((_, DataKey::Erased)) => {
                    return Err(StoreError::Erased {
                        data_key: id.to_owned(),
                    });
                }
                None => None,
            }
        };
        let key = key.ok_or_else(|| {
            StoreError::failed(format!(
                "{context}: sealed with data key {id}, which this store does not hold (erased, \
                 or made by another host since the last look: retry)"
            ))
        })?;
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|e| {
            StoreError::failed(format!("{context}: a sealed value that is not base64: {e}"))
        })?;
        let aad = format!("{SEAL_DOMAIN}{context}");
        let opened = open_bytes(&key, aad.as_bytes(), &bytes).ok_or_else(|| {
            StoreError::failed(format!(
                "{context}: the sealed value does not open with data key {id}: it was altered, \
                 or moved from another row"
            ))
        })?;
        String::from_utf8(opened).map_err(|e| {
            StoreError::failed(format!(
                "{context}: opened to bytes that are not UTF-8: {e}"
            ))
        })
    }
}

/// The contexts sealed values are bound to: the row and the column.
pub mod context {
    /// A payment's canonical JSON.
    pub fn payment(payment_id: &str) -> String {
        format!("payment:{payment_id}")
    }
    /// A payment's decision, as the live rule set made it.
    pub fn decision(payment_id: &str) -> String {
        format!("decision:{payment_id}")
    }
    /// A shadow rule set's decision of a payment.
    pub fn shadow(payment_id: &str, shadow_version: &str) -> String {
        format!("shadow:{shadow_version}:{payment_id}")
    }
    /// A reviewer's note on a held payment.
    pub fn note(payment_id: &str) -> String {
        format!("note:{payment_id}")
    }
    /// The status report of a message a principal sent.
    pub fn report(principal: &str, message_id: &str) -> String {
        format!("report:{principal}:{message_id}")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn master(secret: u8) -> MasterKeys {
        MasterKeys::parse(
            &format!("m{secret} {}", format!("{secret:02x}").repeat(32)),
            "test",
        )
        .unwrap()
    }

    const NOW: i64 = 1_795_000_000_000;

    fn ready(master: MasterKeys) -> (Sealer, Vec<WrappedKey>) {
        let sealer = PersonalData::new(master);
        let made = sealer.to_make(NOW).unwrap();
        sealer.absorb(&made).unwrap();
        (sealer, made)
    }

    #[test]
    fn sealed_text_opens_for_its_row_only_and_hides_the_plaintext() {
        let (sealer, made) = ready(master(1));
        assert_eq!(made.len(), 2, "today's key and tomorrow's");
        assert_eq!(made[0].id, data_key_id(NOW / DAY_MS));
        assert!(made[0].id.starts_with("d2026-"), "{}", made[0].id);
        let name = r#"{"debtor":{"name":"Ana María Quintero"}}"#;
        let sealed = sealer.seal(&context::payment("p1"), name, NOW).unwrap();
        assert!(!sealed.contains("Quintero"), "{sealed}");
        assert!(
            sealed.starts_with(&format!("pd1.{}.", made[0].id)),
            "{sealed}"
        );
        assert_eq!(sealer.open(&context::payment("p1"), &sealed).unwrap(), name);
        // Moved to another row, or to another column of the same row: it does not open.
        let moved = sealer.open(&context::payment("p2"), &sealed).unwrap_err();
        assert!(
            moved.to_string().contains("moved from another row"),
            "{moved}"
        );
        assert!(sealer.open(&context::decision("p1"), &sealed).is_err());
        // One bit flipped: refused.
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 3;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert!(sealer.open(&context::payment("p1"), &altered).is_err());
        // Two seals of one text differ (fresh nonces).
        assert_ne!(
            sealer.seal(&context::payment("p1"), name, NOW).unwrap(),
            sealed
        );
        // What was written before sealing reads as it is.
        assert_eq!(sealer.open("payment:p0", "{\"a\":1}").unwrap(), "{\"a\":1}");
    }

    #[test]
    fn a_data_key_needs_its_master_key_and_a_rotation_wraps_again() {
        let (sealer, made) = ready(master(1));
        let sealed = sealer
            .seal(&context::note("p1"), "called the debtor", NOW)
            .unwrap();

        // Another process with the wrong master key: refused, naming the key.
        let stranger = PersonalData::new(master(2));
        let refused = stranger.absorb(&made).unwrap_err();
        assert!(
            refused.contains("master key m1") && refused.contains("not among"),
            "{refused}"
        );
        // The same id with another secret: refused as not unwrapping.
        let impostor = PersonalData::new(
            MasterKeys::parse(&format!("m1 {}", "02".repeat(32)), "test").unwrap(),
        );
        assert!(
            impostor
                .absorb(&made)
                .unwrap_err()
                .contains("does not unwrap")
        );
        // Nothing to read without the data key.
        assert!(stranger.open(&context::note("p1"), &sealed).is_err());

        // Rotation: m3 first, m1 kept; the keys are wrapped again by m3, and then m1 can go.
        let rotated = MasterKeys::parse(
            &format!("m3 {};m1 {}", "03".repeat(32), "01".repeat(32)),
            "test",
        )
        .unwrap();
        let both = PersonalData::new(rotated);
        both.absorb(&made).unwrap();
        let rewrapped = both.to_rewrap(&made).unwrap();
        assert_eq!(rewrapped.len(), made.len());
        assert!(rewrapped.iter().all(|k| k.master_key_id == "m3"));
        let only_new = PersonalData::new(master(3));
        only_new.absorb(&rewrapped).unwrap();
        assert_eq!(
            only_new.open(&context::note("p1"), &sealed).unwrap(),
            "called the debtor"
        );
        assert!(both.to_rewrap(&rewrapped).unwrap().is_empty());

        // A host still on the old file, once another made a key with the new one: it
        // names the key it cannot unwrap and keeps every key it can.
        let newer = PersonalData::new(master(3));
        let mut later_key = newer.to_make(NOW + 5 * DAY_MS).unwrap();
        later_key.truncate(1);
        let old_file = PersonalData::new(master(1));
        let mut mixed = later_key.clone();
        mixed.extend(made.iter().cloned());
        let fault = old_file.absorb(&mixed).unwrap_err();
        assert!(fault.contains(&later_key[0].id), "{fault}");
        assert_eq!(
            old_file.open(&context::note("p1"), &sealed).unwrap(),
            "called the debtor"
        );
    }

    #[test]
    fn an_erased_key_opens_nothing_and_is_not_made_again() {
        let (sealer, mut made) = ready(master(1));
        let sealed = sealer.seal(&context::payment("p1"), "Ana", NOW).unwrap();
        // The store's tombstone, read again by the process that held the key.
        made[0].erased_at_ms = Some(NOW);
        made[0].wrapped.clear();
        sealer.absorb(&made).unwrap();
        let erased = sealer.open(&context::payment("p1"), &sealed).unwrap_err();
        assert!(matches!(erased, StoreError::Erased { .. }), "{erased}");
        // Another process reading it: the same.
        let other = PersonalData::new(master(1));
        other.absorb(&made).unwrap();
        assert!(matches!(
            other.open(&context::payment("p1"), &sealed),
            Err(StoreError::Erased { .. })
        ));
        assert!(
            other.to_make(NOW).unwrap().is_empty(),
            "an erased day's key is not made again"
        );
        assert!(other.to_rewrap(&made).unwrap().is_empty());
    }

    #[test]
    fn keys_are_made_a_day_ahead_and_sealing_uses_the_days_key() {
        let (sealer, _) = ready(master(1));
        assert!(sealer.to_make(NOW).unwrap().is_empty(), "held already");
        let tomorrow = NOW + DAY_MS;
        let sealed = sealer.seal("payment:p", "x", tomorrow).unwrap();
        assert!(sealed.starts_with(&format!("pd1.{}.", data_key_id(tomorrow / DAY_MS))));
        // Far ahead of the keys made: the latest held seals.
        let later = sealer.seal("payment:p", "x", NOW + 10 * DAY_MS).unwrap();
        assert!(later.starts_with(&format!("pd1.{}.", data_key_id(tomorrow / DAY_MS))));
        // Before any key: refused rather than written in clear.
        let empty = PersonalData::new(master(1));
        assert!(empty.seal("payment:p", "x", NOW).is_err());
    }
}
