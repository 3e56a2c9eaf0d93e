//! Named lists: sanctions lists, blocklists, scheme participant directories.
//!
//! A rule's manifest names the files under `[lists]`; the registry reads them, this
//! module indexes them once, and the `lists` capability answers rules from the index:
//! `contains` by exact id, `fuzzy-match` by party-name similarity (the normalisation and
//! measure of the `payrules-names` crate, which the rule SDK shares).
//!
//! Two file formats:
//! - `.csv`, in the spirit of the OFAC SDN file: a header row with at least `id` and
//!   `name`; optional `aliases` (separated by `;`) and `program`. Other columns are
//!   ignored.
//! - anything else: one id per line; blank lines and lines starting with `#` are skipped.

mod index;
/// The SDN-sized list the screening benchmark generates, for the index's tests.
#[cfg(test)]
#[path = "../../benches/fixtures/sdn_like.rs"]
mod sdn_like;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use payrules_names::{Name, normalize};

use index::{NameIndex, Watch};

/// The largest list file payrules reads.
pub const LIST_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The most results one `fuzzy-match` returns, whatever the rule asks.
pub const FUZZY_RESULTS_MAX: usize = 16;

/// The longest name `fuzzy-match` screens, in characters. A payment's party names are at
/// most 140 (ISO 20022 `Max140Text`); the bound keeps a rule from making the host do
/// unbounded work outside the rule's own deadline with a made-up name.
pub const FUZZY_NAME_CHARS_MAX: usize = 1_024;

/// How much the answers one list remembers may weigh, in bytes (the names asked about and
/// the matches found): about 8 MiB per list, replaced with the list.
pub const MEMO_BYTES_MAX: u64 = 8 * 1024 * 1024;

/// Why a list file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// Over [`LIST_BYTES_MAX`].
    #[error("the list is {0} bytes, more than the {LIST_BYTES_MAX} allowed")]
    TooLarge(usize),
    /// A CSV list without the `id` or `name` column.
    #[error("the CSV header has no {0:?} column")]
    MissingColumn(&'static str),
    /// A malformed CSV record.
    #[error("line {line}: {message}")]
    Csv {
        /// 1-based line.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A CSV record with an empty id or name.
    #[error("line {0}: the id and the name must not be empty")]
    EmptyField(u64),
}

/// Why `fuzzy-match` has no answer. Either stops the rule that asked (its failure policy
/// applies): the host does bounded work for a rule.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unscreened {
    /// A name longer than [`FUZZY_NAME_CHARS_MAX`] characters was asked about.
    #[error(
        "a name of {0} characters was screened; the host screens at most {FUZZY_NAME_CHARS_MAX}"
    )]
    NameTooLong(usize),
    /// The deadline passed before the look-up was done: the host stopped working for the
    /// rule when the rule's own time was up.
    #[error("the rule's deadline passed while the host was screening a name of {0} characters")]
    DeadlinePassed(usize),
}

/// Refuses a name over [`FUZZY_NAME_CHARS_MAX`] characters.
fn screenable(name: &str) -> Result<(), Unscreened> {
    let chars = name.chars().count();
    if chars > FUZZY_NAME_CHARS_MAX {
        return Err(Unscreened::NameTooLong(chars));
    }
    Ok(())
}

/// One entry of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its id (the SDN entity number, a routing number, a BIC...).
    pub id: String,
    /// Its primary name.
    pub name: String,
    /// Its program or category; empty if none.
    pub program: String,
}

/// A name or alias of an entry, as written and prepared for matching.
#[derive(Debug)]
struct IndexedName {
    entry: usize,
    text: String,
}

/// One fuzzy-match result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListMatch {
    /// The entry.
    pub entry: Entry,
    /// The name or alias that matched best.
    pub matched_name: String,
    /// 0..=1000.
    pub similarity: u16,
}

/// A loaded, indexed list.
#[derive(Debug, Default)]
pub struct NamedList {
    entries: Vec<Entry>,
    ids: HashSet<String>,
    names: Vec<IndexedName>,
    /// `names`, normalised and prepared for scoring (same positions).
    prepared: Vec<Name>,
    /// Finds the names that may reach a threshold (positions in `names`).
    index: NameIndex,
    /// Answers already given.
    memo: Memo,
}

/// What a rule asked `fuzzy-match`, as remembered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Asked {
    name: Box<str>,
    min_similarity: u16,
    max_results: usize,
}

/// What a rule asks, borrowed: hashes as [`Asked`] does, so a look-up allocates nothing.
#[derive(Hash)]
struct Asking<'a> {
    name: &'a str,
    min_similarity: u16,
    max_results: usize,
}

impl quick_cache::Equivalent<Asked> for Asking<'_> {
    fn equivalent(&self, asked: &Asked) -> bool {
        *self.name == *asked.name
            && self.min_similarity == asked.min_similarity
            && self.max_results == asked.max_results
    }
}

/// An answer's weight: its bytes, and a little for the bookkeeping.
#[derive(Clone, Debug)]
struct Bytes;

impl quick_cache::Weighter<Asked, Arc<[ListMatch]>> for Bytes {
    fn weight(&self, asked: &Asked, matches: &Arc<[ListMatch]>) -> u64 {
        let matched: usize = matches
            .iter()
            .map(|m| {
                m.entry.id.len()
                    + m.entry.name.len()
                    + m.entry.program.len()
                    + m.matched_name.len()
                    + 96
            })
            .sum();
        u64::try_from(asked.name.len() + matched + 64).unwrap_or(u64::MAX)
    }
}

/// A list's answers to `fuzzy-match`, by what was asked. The same counterparties come back
/// payment after payment (a supplier paid each month, a payroll's employees), and a list
/// never changes once loaded (a new version is a new list, with an empty memo), so an
/// answer stays true. Bounded by [`MEMO_BYTES_MAX`]; the eviction (S3-FIFO) keeps the
/// names asked about again over a stream of names asked once.
struct Memo(quick_cache::sync::Cache<Asked, Arc<[ListMatch]>, Bytes>);

impl Default for Memo {
    fn default() -> Memo {
        // The estimate of how many answers fit sizes the shards and the record of names
        // recently evicted (S3-FIFO's ghosts); nothing is allocated until used.
        let answers_estimated = 32_768;
        Memo(quick_cache::sync::Cache::with_weighter(
            answers_estimated,
            MEMO_BYTES_MAX,
            Bytes,
        ))
    }
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memo")
            .field("answers", &self.0.len())
            .field("bytes", &self.0.weight())
            .finish()
    }
}

impl NamedList {
    /// Reads a list; `csv` chooses the CSV format, else one id per line.
    pub fn parse(bytes: &[u8], csv: bool) -> Result<NamedList, ListError> {
        if bytes.len() > LIST_BYTES_MAX {
            return Err(ListError::TooLarge(bytes.len()));
        }
        let mut list = NamedList::default();
        if csv {
            list.read_csv(bytes)?;
        } else {
            for line in String::from_utf8_lossy(bytes).lines() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                list.push(line.to_owned(), line.to_owned(), String::new(), &[]);
            }
        }
        list.index = NameIndex::build(&list.prepared);
        Ok(list)
    }

    fn read_csv(&mut self, bytes: &[u8]) -> Result<(), ListError> {
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
        let csv_error = |error: csv::Error| ListError::Csv {
            line: error.position().map_or(0, csv::Position::line),
            message: error.to_string(),
        };
        let headers = reader.headers().map_err(csv_error)?.clone();
        let column = |name: &str| {
            headers
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(name))
        };
        let id_column = column("id").ok_or(ListError::MissingColumn("id"))?;
        let name_column = column("name").ok_or(ListError::MissingColumn("name"))?;
        let aliases_column = column("aliases");
        let program_column = column("program");
        for record in reader.records() {
            let record = record.map_err(csv_error)?;
            let line = record.position().map_or(0, csv::Position::line);
            let field = |index: Option<usize>| {
                index
                    .and_then(|i| record.get(i))
                    .map(str::trim)
                    .unwrap_or("")
            };
            let (id, name) = (field(Some(id_column)), field(Some(name_column)));
            if id.is_empty() || name.is_empty() {
                return Err(ListError::EmptyField(line));
            }
            let aliases: Vec<&str> = field(aliases_column)
                .split(';')
                .map(str::trim)
                .filter(|alias| !alias.is_empty())
                .collect();
            self.push(
                id.to_owned(),
                name.to_owned(),
                field(program_column).to_owned(),
                &aliases,
            );
        }
        Ok(())
    }

    fn push(&mut self, id: String, name: String, program: String, aliases: &[&str]) {
        let entry = self.entries.len();
        self.ids.insert(id.clone());
        for text in std::iter::once(name.as_str()).chain(aliases.iter().copied()) {
            let normalized = normalize(text);
            if normalized.is_empty() {
                continue;
            }
            self.names.push(IndexedName {
                entry,
                text: text.to_owned(),
            });
            self.prepared.push(Name::new(&normalized));
        }
        self.entries.push(Entry { id, name, program });
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the list has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether an entry has exactly this id.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// The entries whose name or an alias resembles `name` at least `min_similarity`
    /// (0..=1000), best first, one result per entry, at most `max_results`
    /// (capped at [`FUZZY_RESULTS_MAX`]). Ties go to the entry listed first. A name over
    /// [`FUZZY_NAME_CHARS_MAX`] characters is refused. Every entry that reaches the
    /// threshold is considered (the index only skips names that cannot), and the answer
    /// is remembered for the next time the same name is asked about in the same way.
    ///
    /// The look-up stops with no answer once `deadline` has passed (checked about every
    /// 0.1 ms of work): the rule's own deadline, when the host looks up for a rule. A
    /// look-up that is stopped is not remembered.
    pub fn fuzzy_match(
        &self,
        name: &str,
        min_similarity: u16,
        max_results: usize,
        deadline: Option<Instant>,
    ) -> Result<Vec<ListMatch>, Unscreened> {
        screenable(name)?;
        let max_results = max_results.min(FUZZY_RESULTS_MAX);
        let asking = Asking {
            name,
            min_similarity,
            max_results,
        };
        if let Some(answer) = self.memo.0.get(&asking) {
            return Ok(answer.to_vec());
        }
        let answer = self.fuzzy_match_unremembered(name, min_similarity, max_results, deadline)?;
        let asked = Asked {
            name: name.into(),
            min_similarity,
            max_results,
        };
        self.memo.0.insert(asked, Arc::from(answer.as_slice()));
        Ok(answer)
    }

    /// [`NamedList::fuzzy_match`] without the answers it remembers: what a name asked
    /// about for the first time costs (benchmarks, tests).
    pub fn fuzzy_match_unremembered(
        &self,
        name: &str,
        min_similarity: u16,
        max_results: usize,
        deadline: Option<Instant>,
    ) -> Result<Vec<ListMatch>, Unscreened> {
        screenable(name)?;
        let query = Name::new(&normalize(name));
        if query.is_empty() {
            return Ok(Vec::new());
        }
        let watch = Watch::new(deadline);
        let stopped = || Unscreened::DeadlinePassed(name.chars().count());
        let candidates = self.index.candidates(&query, min_similarity, &watch);
        // Measuring a name costs about its letters times the query's, and names are short.
        let work = query.letters().len();
        // Best similarity per entry: (entry, similarity, name). Candidates come in the
        // order of the names, so an entry's names are consecutive; the first best wins.
        let mut ranked: Vec<(usize, u16, usize)> = Vec::new();
        for index in candidates {
            if watch.spend(work) {
                return Err(stopped());
            }
            let index = index as usize;
            let score = query.similarity(&self.prepared[index]);
            if score < min_similarity {
                continue;
            }
            let entry = self.names[index].entry;
            match ranked.last_mut() {
                Some(best) if best.0 == entry => {
                    if score > best.1 {
                        *best = (entry, score, index);
                    }
                }
                _ => ranked.push((entry, score, index)),
            }
        }
        if watch.passed() {
            return Err(stopped());
        }
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(ranked
            .into_iter()
            .take(max_results.min(FUZZY_RESULTS_MAX))
            .map(|(entry, similarity, index)| ListMatch {
                entry: self.entries[entry].clone(),
                matched_name: self.names[index].text.clone(),
                similarity,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDN: &str = "id,name,type,program,aliases\n\
        7001,\"KIM, Jong Un\",individual,DPRK,\"KIM Jong-un; Kim Cheong-un\"\n\
        7002,AL-QAIDA,entity,SDGT,\"AL QAEDA; The Base\"\n\
        7003,BANCO NACIONAL DE CUBA,entity,CUBA,\"BNC; National Bank of Cuba\"\n";

    fn sdn() -> NamedList {
        NamedList::parse(SDN.as_bytes(), true).expect("sample list parses")
    }

    #[test]
    fn exact_names_and_aliases_match_fully() {
        let list = sdn();
        let matches = list.fuzzy_match("Kim Jong-Un", 900, 5, None).unwrap();
        assert_eq!(matches.len(), 1);
        assert_eq!(matches[0].entry.id, "7001");
        assert_eq!(matches[0].similarity, 1000);
        assert_eq!(matches[0].entry.program, "DPRK");
        let matches = list
            .fuzzy_match("National Bank of Cuba", 900, 5, None)
            .unwrap();
        assert_eq!(matches[0].entry.id, "7003");
        assert_eq!(matches[0].matched_name, "National Bank of Cuba");
    }

    #[test]
    fn spelling_variants_match_below_the_maximum() {
        let matches = sdn().fuzzy_match("Al Qaidah", 850, 5, None).unwrap();
        assert_eq!(matches.first().map(|m| m.entry.id.as_str()), Some("7002"));
        assert!(matches[0].similarity < 1000);
    }

    #[test]
    fn unrelated_names_do_not_match() {
        assert!(
            sdn()
                .fuzzy_match("Maria Gonzalez Lopez", 700, 5, None)
                .unwrap()
                .is_empty()
        );
        assert!(sdn().fuzzy_match("Ltd.", 0, 5, None).unwrap().is_empty());
    }

    #[test]
    fn results_are_capped() {
        let mut csv = String::from("id,name\n");
        for i in 0..40 {
            csv.push_str(&format!("{i},Acme Trading {i}\n"));
        }
        let list = NamedList::parse(csv.as_bytes(), true).expect("parses");
        assert_eq!(
            list.fuzzy_match("Acme Trading", 0, 255, None)
                .unwrap()
                .len(),
            FUZZY_RESULTS_MAX
        );
    }

    #[test]
    fn text_lists_hold_one_id_per_line() {
        let list = NamedList::parse(b"# FedNow participants\n021000021\n\n121000248\n", false)
            .expect("parses");
        assert_eq!(list.len(), 2);
        assert!(list.contains("021000021"));
        assert!(!list.contains("# FedNow participants"));
        assert!(!list.contains("999999999"));
    }

    #[test]
    fn a_csv_without_an_id_column_is_refused() {
        let error = NamedList::parse(b"name\nX\n", true).expect_err("no id column");
        assert!(matches!(error, ListError::MissingColumn("id")));
    }

    /// The example rules' sanctions list, as shipped.
    fn example_list() -> NamedList {
        let csv = include_str!("../../../examples/rules/lists/sdn-sample.csv");
        NamedList::parse(csv.as_bytes(), true).expect("the example list parses")
    }

    /// The best match's entry id and similarity for a name.
    fn best(list: &NamedList, name: &str) -> Option<(String, u16)> {
        list.fuzzy_match(name, 0, 1, None)
            .expect("a short name is screened")
            .into_iter()
            .next()
            .map(|m| (m.entry.id, m.similarity))
    }

    /// Ways a listed name or alias has been written to slip past screening (issue 16,
    /// defect 1). Each must still score as a strong match (the example rule rejects at
    /// 930) against the right entry.
    #[test]
    fn evasions_of_listed_names_are_caught() {
        let evasions = [
            ("1001", "Kim Jong-Un"),
            ("1001", "Kim\u{200B} Jong\u{200B}-Un"),
            (
                "1001",
                "K\u{200B}i\u{200B}m J\u{200B}o\u{200B}n\u{200B}g-U\u{200B}n",
            ),
            ("1001", "Ki\u{00AD}m Jo\u{00AD}ng Un"),
            ("1001", "Kim\u{2060}Jong\u{2060}Un"),
            ("1001", "K\u{FEFF}im J\u{200D}ong U\u{200C}n"),
            ("1001", "\u{202E}Kim Jong Un\u{202C}"),
            ("1001", "K.i.m J.o.n.g-U.n"),
            ("1001", "K i m J o n g U n"),
            ("1001", "K-I-M J-O-N-G U-N"),
            ("1001", "KimJongUn"),
            ("1001", "K_i_m_J_o_n_g_U_n"),
            // Cyrillic and Greek look-alikes.
            ("1001", "\u{041A}im J\u{043E}ng Un"),
            ("1001", "\u{041A}\u{0406}\u{041C} Jong Un"),
            ("1001", "\u{039A}im Jong Un"),
            // Fullwidth and mathematical letters.
            (
                "1001",
                "\u{FF2B}\u{FF49}\u{FF4D} \u{FF2A}\u{FF4F}\u{FF4E}\u{FF47} \u{FF35}\u{FF4E}",
            ),
            ("1001", "\u{1D40A}im Jong Un"),
            // Aliases, disguised.
            ("1001", "Kim Che\u{200B}ong-un"),
            ("1002", "A.L. Q.A.E.D.A"),
            ("1002", "\u{0410}l Q\u{0430}ed\u{0430}"),
            ("1005", "B a n k  M e l l i"),
            ("1008", "H\u{0456}zb\u{0430}llah"),
            (
                "1012",
                "W\u{00AD}a\u{00AD}g\u{00AD}n\u{00AD}e\u{00AD}r G\u{0072}oup",
            ),
            ("1015", "M\u{00FC}ller, H\u{200B}einz-Dieter"),
        ];
        let list = example_list();
        for (id, name) in evasions {
            let found = best(&list, name);
            assert!(
                matches!(&found, Some((found_id, similarity)) if found_id == id && *similarity >= 930),
                "{name:?} ({}) should match entry {id} strongly, found {found:?}",
                name.escape_unicode()
            );
        }
    }

    /// A listed name with its first letter changed (issue 15: the look-up before the index
    /// only scored names with a word of the same initial as the query's, so these were
    /// never scored) is found at the example rule's review threshold.
    #[test]
    fn a_listed_name_with_its_first_letter_changed_is_found() {
        let list = example_list();
        for (id, name) in [
            ("1008", "Xizballah"),
            ("1009", "Gamas"),
            ("1020", "Kosoboronexport"),
        ] {
            let found = list.fuzzy_match(name, 850, 3, None).expect("screened");
            assert_eq!(
                found.first().map(|m| m.entry.id.as_str()),
                Some(id),
                "{name:?} should be held for review against entry {id}, found {found:?}"
            );
        }
    }

    /// Names that must not match anything on the example list at the review threshold
    /// (850): the fixes above must not make ordinary names look listed.
    #[test]
    fn ordinary_names_do_not_match() {
        let ordinary = [
            "Maria Gonzalez Lopez",
            "Kimberly Jones",
            "Jonathan Kimball",
            "Bank of Ireland",
            "Mueller Logistics GmbH",
            "J. R. R. Tolkien",
            "Hans Meier",
            "Acme Trading Co., Ltd.",
            "\u{0418}\u{0432}\u{0430}\u{043D} \u{041F}\u{0435}\u{0442}\u{0440}\u{043E}\u{0432}",
            "\u{5C71}\u{7530}\u{592A}\u{90CE}",
            "Nordic Timber AB",
            "Kim Lee",
        ];
        let list = example_list();
        for name in ordinary {
            let found = list.fuzzy_match(name, 850, 1, None).expect("screened");
            assert!(found.is_empty(), "{name:?} matched {found:?}");
        }
    }

    use super::sdn_like;

    /// What `fuzzy_match` must answer, by scoring every name on the list.
    fn every_name_scored(list: &NamedList, name: &str, min: u16, max: usize) -> Vec<ListMatch> {
        let query = Name::new(&normalize(name));
        let mut best: Vec<Option<(u16, usize)>> = vec![None; list.entries.len()];
        for (index, prepared) in list.prepared.iter().enumerate() {
            let score = query.similarity(prepared);
            let slot = &mut best[list.names[index].entry];
            if !query.is_empty() && score >= min && slot.is_none_or(|(best, _)| score > best) {
                *slot = Some((score, index));
            }
        }
        let mut ranked: Vec<(usize, u16, usize)> = best
            .into_iter()
            .enumerate()
            .filter_map(|(entry, found)| found.map(|(score, index)| (entry, score, index)))
            .collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked
            .into_iter()
            .take(max)
            .map(|(entry, similarity, index)| ListMatch {
                entry: list.entries[entry].clone(),
                matched_name: list.names[index].text.clone(),
                similarity,
            })
            .collect()
    }

    /// Queries near the listed names the way payments get them wrong or disguise them.
    fn variants(name: &str, seed: usize) -> Vec<String> {
        let chars: Vec<char> = name.chars().collect();
        let at = 1 + seed % (chars.len() - 2);
        let mut dropped = chars.clone();
        dropped.remove(at);
        let mut swapped = chars.clone();
        swapped.swap(at, at + 1);
        let mut first_changed = chars.clone();
        first_changed[0] = if chars[0] == 'O' { 'U' } else { 'O' };
        let words: Vec<&str> = name.split([' ', ',']).filter(|w| !w.is_empty()).collect();
        let mut reversed = words.clone();
        reversed.reverse();
        vec![
            name.to_owned(),
            dropped.into_iter().collect(),
            swapped.into_iter().collect(),
            first_changed.into_iter().collect(),
            reversed.join(" "),
            words.concat(),
            format!("{name} Holding"),
            words.first().copied().unwrap_or(name).to_owned(),
        ]
    }

    /// The index answers exactly what scoring every name answers, on a list the size of
    /// OFAC's SDN list, for listed names written wrongly, unlisted names, and at the
    /// thresholds rules use.
    #[test]
    fn the_index_finds_what_scoring_every_name_finds() {
        let (csv, entries) = sdn_like::generate(sdn_like::ENTRIES);
        let list = NamedList::parse(csv.as_bytes(), true).expect("the generated list parses");
        let mut queries: Vec<String> = vec![
            "Muster Maschinenbau GmbH".into(),
            "Van Dijk Onderdelen B.V.".into(),
            "Maria Gonzalez Lopez".into(),
            "Mohammad Ali".into(),
            "Trading".into(),
        ];
        for (seed, (name, aliases)) in entries.iter().enumerate().step_by(997) {
            queries.extend(variants(name, seed));
            queries.extend(
                aliases
                    .first()
                    .map(|alias| variants(alias, seed + 1))
                    .into_iter()
                    .flatten(),
            );
        }
        let mut matched = 0;
        for query in &queries {
            // Every name at the lowest threshold, ranked; each threshold's answer is a prefix
            // of those above it.
            let every = every_name_scored(&list, query, 700, usize::MAX);
            for min in [700, 850, 930] {
                let found = list
                    .fuzzy_match(query, min, FUZZY_RESULTS_MAX, None)
                    .expect("short");
                let expected: Vec<ListMatch> = every
                    .iter()
                    .filter(|m| m.similarity >= min)
                    .take(FUZZY_RESULTS_MAX)
                    .cloned()
                    .collect();
                assert_eq!(found, expected, "{query:?} at {min}");
                matched += usize::from(!found.is_empty());
            }
        }
        // The comparison is about names that match, not only about empty answers.
        assert!(
            matched > queries.len(),
            "{matched} of {} answers had a match",
            queries.len() * 3
        );
    }

    /// A rule cannot make the host work for it past its deadline: long names asked about at
    /// low thresholds of an SDN-sized list (every name, or most, measured: hundreds of
    /// milliseconds each without a deadline) stop at the deadline with no answer, which
    /// is not remembered.
    #[test]
    fn a_look_up_stops_at_the_deadline() {
        let (csv, _) = sdn_like::generate(sdn_like::ENTRIES);
        let list = NamedList::parse(csv.as_bytes(), true).expect("the generated list parses");
        let words: String = (0..FUZZY_NAME_CHARS_MAX)
            .map(|i| format!("m{} ", i % 10))
            .collect();
        let words: String = words.chars().take(FUZZY_NAME_CHARS_MAX).collect();
        let one_word = "m".repeat(FUZZY_NAME_CHARS_MAX);
        for (name, min) in [(&words, 0), (&words, 300), (&one_word, 1), (&one_word, 300)] {
            let started = Instant::now();
            let deadline = started + std::time::Duration::from_millis(5);
            let answer = list.fuzzy_match(name, min, FUZZY_RESULTS_MAX, Some(deadline));
            let took = started.elapsed();
            assert_eq!(
                answer,
                Err(Unscreened::DeadlinePassed(FUZZY_NAME_CHARS_MAX)),
                "at {min}"
            );
            // The bound itself, with a wide margin for a loaded machine: the look-up
            // stops within about 0.1 ms of work past the deadline.
            assert!(took.as_millis() < 200, "at {min}: stopped after {took:?}");
        }
        // A deadline already gone stops even a look-up that would be quick.
        assert_eq!(
            list.fuzzy_match("Mohammad Ali", 850, 3, Some(Instant::now())),
            Err(Unscreened::DeadlinePassed(12))
        );
        // Nothing stopped was remembered: asked with time enough, the name has its answer.
        let answer = list
            .fuzzy_match("Mohammad Ali", 850, 3, None)
            .expect("no deadline");
        assert_eq!(answer, every_name_scored(&list, "Mohammad Ali", 850, 3));
        assert!(!answer.is_empty(), "the name has matches on the list");
    }

    /// The index also answers the shipped list's evasions and ordinary names as scoring
    /// every name does, at the example rule's thresholds.
    #[test]
    fn the_index_finds_what_scoring_every_name_finds_on_the_example_list() {
        let list = example_list();
        for name in [
            "Kim Jong-Un",
            "K.i.m J.o.n.g-U.n",
            "KimJongUn",
            "Usama Bin Ladin",
            "Al Qaidah",
            "Bank of Ireland",
            "Ramzan Kadyrov",
            "Heinz Mueller",
        ] {
            for min in [2, 500, 850, 930] {
                assert_eq!(
                    list.fuzzy_match(name, min, FUZZY_RESULTS_MAX, None)
                        .expect("short"),
                    every_name_scored(&list, name, min, FUZZY_RESULTS_MAX),
                    "{name:?} at {min}"
                );
            }
        }
    }

    /// An answer remembered is the answer: the same as working it out, for the same name
    /// asked the same way, and a different one when the threshold or the number of results
    /// asked for differ.
    #[test]
    fn a_remembered_answer_is_the_answer_to_the_same_question() {
        let list = example_list();
        let asked = [
            ("Kim Jong Eum", 850, 3),
            ("Kim Jong Eum", 1000, 3),
            ("Iran Bank", 600, 16),
            ("Iran Bank", 600, 1),
            ("Muster Maschinenbau GmbH", 850, 3),
        ];
        for (name, min, max) in asked {
            let worked_out = list
                .fuzzy_match_unremembered(name, min, max, None)
                .expect("short");
            assert_eq!(
                list.fuzzy_match(name, min, max, None).expect("short"),
                worked_out
            );
            assert_eq!(
                list.fuzzy_match(name, min, max, None).expect("short"),
                worked_out,
                "remembered"
            );
        }
        assert_eq!(
            list.memo.0.len(),
            asked.len(),
            "each question remembered once"
        );
        assert!(
            list.fuzzy_match("Iran Bank", 600, 16, None)
                .expect("short")
                .len()
                > 1
        );
        assert_eq!(
            list.fuzzy_match("Iran Bank", 600, 1, None)
                .expect("short")
                .len(),
            1
        );
        assert_eq!(
            list.fuzzy_match("Kim Jong Eum", 850, 3, None)
                .expect("short")
                .len(),
            1
        );
        assert!(
            list.fuzzy_match("Kim Jong Eum", 1000, 3, None)
                .expect("short")
                .is_empty()
        );
        // A name past the bound is refused before it is looked up or remembered.
        let long = "x".repeat(FUZZY_NAME_CHARS_MAX + 1);
        assert!(list.fuzzy_match(&long, 850, 3, None).is_err());
        assert_eq!(list.memo.0.len(), asked.len());
    }

    /// A stream of names each asked about once (a flood of made-up names) does not grow
    /// what a list remembers past its bound.
    #[test]
    fn what_a_list_remembers_is_bounded() {
        let list = example_list();
        let filler = "Made Up Trading ".repeat(60);
        for index in 0..10_000 {
            list.fuzzy_match(&format!("{index} {filler}"), 850, 3, None)
                .expect("screened");
        }
        let remembered = list.memo.0.weight();
        assert!(
            remembered <= MEMO_BYTES_MAX,
            "{remembered} bytes remembered"
        );
        assert!(
            remembered > MEMO_BYTES_MAX / 2,
            "{remembered} bytes: the memo was used"
        );
    }

    #[test]
    fn a_name_past_the_bound_is_refused_not_screened() {
        let long = "Kim Jong Un ".repeat(FUZZY_NAME_CHARS_MAX / 12 + 1);
        let error = sdn()
            .fuzzy_match(&long, 850, 3, None)
            .expect_err("too long");
        assert_eq!(error, Unscreened::NameTooLong(long.chars().count()));
        let at_bound: String = long.chars().take(FUZZY_NAME_CHARS_MAX).collect();
        assert!(sdn().fuzzy_match(&at_bound, 850, 3, None).is_ok());
    }
}
