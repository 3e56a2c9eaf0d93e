//! Party-name normalisation and similarity for sanctions and blocklist screening.
//!
//! Used in two places that must agree: the payrules host, which indexes named lists and
//! answers `lists.fuzzy-match`, and the rule SDK, which gives rule authors the same
//! normalisation. Both read this crate, so a name a rule normalises is the name the host
//! matched.
//!
//! - [`normalize`] folds a name to a canonical form: accents removed, lower case,
//!   invisible characters dropped, letters from other scripts that look like Latin ones
//!   read as those (Unicode TR39 confusables), fullwidth and other compatibility forms
//!   read as plain letters, punctuation to spaces, letters written one by one joined
//!   into a word, legal-form words ("Ltd", "GmbH", "S.A.") dropped.
//! - [`similarity`] scores two normalised names 0..=1000, ignoring word order, with
//!   Jaro-Winkler per word so that transliteration variants ("Qaida" / "Qaeda") and
//!   typos still score high, and with the names' letters compared without their spaces
//!   so that "Kim Jong Un" and "KimJongUn" are the same name.
//! - [`disguises`] names the tricks a name is written with to slip past screening
//!   (invisible characters, look-alike letters of another script, compatibility forms,
//!   letters spaced out one by one): such a name is a finding in itself.
//!
//! Why each step exists: every one closes an evasion seen in a security review, where
//! "Kim Jong-Un" was caught and the same name with a zero-width space between its
//! letters, written "K.i.m J.o.n.g-U.n", or with a Cyrillic "о", was not.

use std::sync::OnceLock;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;
use unicode_security::{MixedScript, skeleton};

/// The highest similarity: the names are equal after normalisation.
pub const SIMILARITY_MAX: u16 = 1000;

/// Single letters in a row at or past which a name counts as spelled out letter by letter
/// ([`Disguise::SpacedLetters`]). Three initials ("J. R. R. Tolkien") are common; four
/// one-letter words in a row are not a way people write names.
pub const SPACED_LETTERS_MIN: usize = 4;

/// Legal-form and filler words that say nothing about who a party is. Compared after
/// normalisation, so "S.A." is "s a", joined as the letters of one word into "sa".
const IGNORED_WORDS: &[&str] = &[
    "ab",
    "ag",
    "as",
    "bv",
    "co",
    "company",
    "corp",
    "corporation",
    "gmbh",
    "inc",
    "incorporated",
    "jsc",
    "kg",
    "limited",
    "llc",
    "llp",
    "lp",
    "ltd",
    "nv",
    "oao",
    "ooo",
    "oy",
    "pjsc",
    "plc",
    "pte",
    "sa",
    "sarl",
    "spa",
    "srl",
    "the",
    "zao",
];

/// What one character of a name reads as.
enum Reading {
    /// Nothing: a default-ignorable code point (zero-width space, soft hyphen, word
    /// joiner, bidi controls, variation selectors, tags...).
    Invisible,
    /// This letter, lower-cased.
    Letters(char),
    /// Two letters ("ß" → "ss").
    Pair(char, char),
    /// A word separator.
    Separator,
}

/// Reads one character of a compatibility-decomposed name, accents already removed.
fn read(c: char) -> Reading {
    if c.is_ascii() {
        return if c.is_ascii_alphanumeric() {
            Reading::Letters(c.to_ascii_lowercase())
        } else {
            Reading::Separator
        };
    }
    match c {
        'ß' => return Reading::Pair('s', 's'),
        'æ' | 'Æ' => return Reading::Pair('a', 'e'),
        'œ' | 'Œ' => return Reading::Pair('o', 'e'),
        'þ' | 'Þ' => return Reading::Pair('t', 'h'),
        'ø' | 'Ø' => return Reading::Letters('o'),
        'ł' | 'Ł' => return Reading::Letters('l'),
        'đ' | 'Đ' => return Reading::Letters('d'),
        'ı' => return Reading::Letters('i'),
        _ => {}
    }
    if is_invisible(c) {
        return Reading::Invisible;
    }
    if let Some(latin) = latin_look_alike(c) {
        return Reading::Letters(latin);
    }
    if c.is_alphanumeric() {
        // A letter of another script that resembles no Latin one: kept, lower-cased (a
        // lower case of more than one character keeps its first, which is the letter).
        Reading::Letters(c.to_lowercase().next().unwrap_or(c))
    } else {
        Reading::Separator
    }
}

/// Whether `c` is a default-ignorable code point: drawn as nothing, so a name with one
/// reads as the name without it. (The TR39 skeleton drops exactly these.)
fn is_invisible(c: char) -> bool {
    let mut buffer = [0u8; 4];
    skeleton(c.encode_utf8(&mut buffer)).next().is_none()
}

/// The Latin letter `c` is confusable with (Unicode TR39 confusables), if exactly one:
/// the Cyrillic "о" reads as "o", the Greek "Κ" as "k". The lower case is compared with
/// lower-case Latin letters first, then the upper case with upper-case ones (a Cyrillic
/// "к" resembles no Latin lower-case letter, its upper case "К" is a "K").
fn latin_look_alike(c: char) -> Option<char> {
    let skeletons = latin_skeletons();
    let mut lower = c.to_lowercase();
    let mut upper = c.to_uppercase();
    let (Some(lower), None) = (lower.next(), lower.next()) else {
        return None;
    };
    let lower_skeleton = skeleton_of(lower);
    if let Some(index) = skeletons.lower.iter().position(|s| *s == lower_skeleton) {
        return Some(char::from(b'a' + u8::try_from(index).ok()?));
    }
    let (Some(upper), None) = (upper.next(), upper.next()) else {
        return None;
    };
    let upper_skeleton = skeleton_of(upper);
    let index = skeletons.upper.iter().position(|s| *s == upper_skeleton)?;
    Some(char::from(b'a' + u8::try_from(index).ok()?))
}

fn skeleton_of(c: char) -> String {
    let mut buffer = [0u8; 4];
    skeleton(c.encode_utf8(&mut buffer)).collect()
}

/// The TR39 skeletons of the Latin letters a..=z and A..=Z, computed once.
struct LatinSkeletons {
    lower: Vec<String>,
    upper: Vec<String>,
}

fn latin_skeletons() -> &'static LatinSkeletons {
    static SKELETONS: OnceLock<LatinSkeletons> = OnceLock::new();
    SKELETONS.get_or_init(|| LatinSkeletons {
        lower: ('a'..='z').map(skeleton_of).collect(),
        upper: ('A'..='Z').map(skeleton_of).collect(),
    })
}

/// The words of a name as read, before legal forms are dropped and letters joined.
fn raw_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut end_word = |word: &mut String| {
        if !word.is_empty() {
            words.push(std::mem::take(word));
        }
    };
    for c in name.nfkd() {
        if is_combining_mark(c) {
            continue;
        }
        match read(c) {
            Reading::Invisible => {}
            Reading::Letters(letter) => word.push(letter),
            Reading::Pair(first, second) => {
                word.push(first);
                word.push(second);
            }
            Reading::Separator => end_word(&mut word),
        }
    }
    end_word(&mut word);
    words
}

/// Folds a party name to its canonical form for comparison.
///
/// Compatibility decomposition (fullwidth "Ｋ" → "K") then removal of combining marks
/// takes accents off ("Müller" → "muller"); letters that do not decompose are spelled
/// out ("ß" → "ss", "Ø" → "o"); invisible characters are dropped, not read as spaces
/// ("K\u{200B}im" → "kim"); a letter of another script that looks like exactly one
/// Latin letter reads as it ("Кim" with a Cyrillic "К" → "kim"); anything but a letter
/// or digit separates words; two or more one-letter words in a row are one word
/// ("K.i.m" → "kim", "S.A." → "sa"); legal-form words and a lone single letter are
/// dropped; words are joined by one space. The result may be empty (a name made only of
/// punctuation or legal forms).
pub fn normalize(name: &str) -> String {
    let raw = raw_words(name);
    let mut words: Vec<String> = Vec::with_capacity(raw.len());
    let mut index = 0;
    while index < raw.len() {
        let run = raw[index..]
            .iter()
            .take_while(|word| word.chars().count() == 1)
            .count();
        let word = if run >= 2 {
            let joined = raw[index..index + run].concat();
            index += run;
            joined
        } else {
            index += 1;
            raw[index - 1].clone()
        };
        if word.chars().count() > 1 && !IGNORED_WORDS.contains(&word.as_str()) {
            words.push(word);
        }
    }
    words.join(" ")
}

/// A way a name is written to slip past screening.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Disguise {
    /// Characters drawn as nothing: zero-width spaces and joiners, soft hyphens, word
    /// joiners, bidirectional controls, variation selectors, tags.
    InvisibleCharacters,
    /// A word mixing letters of different scripts, such as a Cyrillic "о" among Latin
    /// letters.
    MixedScripts,
    /// Letters in compatibility forms: fullwidth ("Ｋｉｍ"), mathematical, circled or
    /// ligature letters.
    CompatibilityForms,
    /// Letters written one by one, spaced or dotted ("K i m J o n g"), at least
    /// [`SPACED_LETTERS_MIN`] in a row.
    SpacedLetters,
}

impl Disguise {
    /// What it is, in words, for a finding's message.
    pub fn describe(self) -> &'static str {
        match self {
            Disguise::InvisibleCharacters => "invisible characters",
            Disguise::MixedScripts => "letters of different scripts in one word",
            Disguise::CompatibilityForms => "fullwidth or other compatibility forms of letters",
            Disguise::SpacedLetters => "letters spelled out one by one",
        }
    }
}

/// The disguises a name is written with, in the order of [`Disguise`], each once; empty
/// for a name written plainly, in any one script per word, accented or not.
pub fn disguises(name: &str) -> Vec<Disguise> {
    let mut found = Vec::new();
    // Most names are plain ASCII: only letters spelled out one by one can disguise them,
    // and that needs no Unicode tables (a rule runs this for every party of every payment).
    if name.is_ascii() {
        let words = name
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|word| !word.is_empty());
        if longest_run_of_single_letters(words) >= SPACED_LETTERS_MIN {
            found.push(Disguise::SpacedLetters);
        }
        return found;
    }
    if name.chars().any(|c| !c.is_ascii() && is_invisible(c)) {
        found.push(Disguise::InvisibleCharacters);
    }
    let mixed = name
        .split(|c: char| !c.is_alphanumeric() && !is_combining_mark(c))
        .filter(|word| !word.is_empty())
        .any(|word| !word.is_single_script());
    if mixed {
        found.push(Disguise::MixedScripts);
    }
    let compatibility = name.chars().any(|c| {
        !c.is_ascii()
            && c.is_alphanumeric()
            && std::iter::once(c).nfkd().ne(std::iter::once(c).nfd())
    });
    if compatibility {
        found.push(Disguise::CompatibilityForms);
    }
    let words = raw_words(name);
    if longest_run_of_single_letters(words.iter().map(String::as_str)) >= SPACED_LETTERS_MIN {
        found.push(Disguise::SpacedLetters);
    }
    found
}

/// The most one-letter words in a row.
fn longest_run_of_single_letters<'a>(words: impl Iterator<Item = &'a str>) -> usize {
    let mut run = 0;
    let mut longest = 0;
    for word in words {
        run = if word.chars().count() == 1 {
            run + 1
        } else {
            0
        };
        longest = longest.max(run);
    }
    longest
}

/// Scores two *normalised* names (see [`normalize`]) from 0 (nothing alike) to
/// [`SIMILARITY_MAX`] (the same words, in any order).
///
/// Every word of each name is paired with its most similar word in the other name
/// (Jaro-Winkler); that score is the mean of those best similarities weighted by word
/// length, over the words of both names. Extra words in either name therefore lower the
/// score in proportion to their length, and word order does not matter. The result is
/// that score or [`compact_similarity`], whichever is higher, so a name split or joined
/// differently ("KimJong Un") scores as the name.
pub fn similarity(a: &str, b: &str) -> u16 {
    Name::new(a).similarity(&Name::new(b))
}

/// Scores the letters of two *normalised* names with their spaces taken out, 0..=1000:
/// one minus the Levenshtein distance over the longer length. Stricter than Jaro-Winkler
/// (a common prefix earns nothing), since it compares whole names.
pub fn compact_similarity(a: &str, b: &str) -> u16 {
    Name::new(a).compact_similarity(&Name::new(b))
}

/// A normalised name's letters without its spaces: "kim jong un" → "kimjongun".
pub fn compact(normalized: &str) -> String {
    normalized.chars().filter(|c| *c != ' ').collect()
}

/// Scores two single words from 0 to [`SIMILARITY_MAX`] (Jaro-Winkler): the measure
/// [`similarity`] applies word by word, for callers that index names by word.
pub fn word_similarity(a: &str, b: &str) -> u16 {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    word_score(&a, &b)
}

/// [`word_similarity`] of two words given as their characters.
pub fn word_score(a: &[char], b: &[char]) -> u16 {
    thousandths(jaro_winkler(a, b))
}

/// A normalised name prepared for scoring many times: its letters without spaces and
/// where each word starts and ends among them. [`Name::similarity`] is [`similarity`]
/// without an allocation, for a host that scores one name against thousands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Name {
    letters: Vec<char>,
    /// Each word's `start..end` in `letters`.
    words: Vec<(usize, usize)>,
}

impl Name {
    /// Prepares a *normalised* name (see [`normalize`]): words are separated by spaces.
    pub fn new(normalized: &str) -> Name {
        let mut name = Name::default();
        for word in normalized.split(' ').filter(|word| !word.is_empty()) {
            let start = name.letters.len();
            name.letters.extend(word.chars());
            name.words.push((start, name.letters.len()));
        }
        name
    }

    /// The letters without spaces ([`compact`]).
    pub fn letters(&self) -> &[char] {
        &self.letters
    }

    /// The words, in order.
    pub fn words(&self) -> impl ExactSizeIterator<Item = &[char]> + '_ {
        self.words
            .iter()
            .map(|&(start, end)| &self.letters[start..end])
    }

    /// Whether the name has no words.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// [`similarity`] of the two names.
    pub fn similarity(&self, other: &Name) -> u16 {
        let words = self.word_order_similarity(other);
        // The space-less score is at most 1 − (length difference / longer length): when
        // that cannot beat the word score, the edit distance is not computed (most
        // candidates).
        let (len_a, len_b) = (self.letters.len(), other.letters.len());
        let longer = len_a.max(len_b);
        if longer == 0 {
            return words;
        }
        let same = longer - len_a.abs_diff(len_b);
        let bound = (2 * usize::from(SIMILARITY_MAX) * same + longer) / (2 * longer);
        if bound <= usize::from(words) {
            return words;
        }
        words.max(self.compact_similarity(other))
    }

    /// [`compact_similarity`] of the two names.
    pub fn compact_similarity(&self, other: &Name) -> u16 {
        let (a, b) = (&self.letters, &other.letters);
        if a.is_empty() || b.is_empty() {
            return 0;
        }
        let distance = levenshtein(a, b);
        #[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
        let normalized = 1.0 - (distance as f64) / (a.len().max(b.len()) as f64);
        thousandths(normalized)
    }

    fn word_order_similarity(&self, other: &Name) -> u16 {
        if self.words.is_empty() || other.words.is_empty() {
            return 0;
        }
        let (a_weighted, a_len) = best_pair_sum(self, other);
        let (b_weighted, b_len) = best_pair_sum(other, self);
        // Similarity scores are ratios, not money: floating point is the right tool here,
        // and the result is rounded to an integer at once.
        #[allow(clippy::float_arithmetic)]
        let score = (a_weighted + b_weighted) / (a_len + b_len);
        thousandths(score)
    }
}

/// A ratio within 0..=1 as thousandths, rounded.
fn thousandths(ratio: f64) -> u16 {
    #[allow(clippy::float_arithmetic)]
    let score = ratio * f64::from(SIMILARITY_MAX);
    // Within 0..=1 times 1000: the cast cannot truncate.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rounded = score.round() as u16;
    rounded.min(SIMILARITY_MAX)
}

/// Σ over the words of `a` of (best Jaro-Winkler against the words of `b`) × (word
/// length), and Σ length.
#[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
fn best_pair_sum(a: &Name, b: &Name) -> (f64, f64) {
    let mut weighted = 0.0;
    let mut total = 0.0;
    for word in a.words() {
        let best = b
            .words()
            .map(|other| jaro_winkler(word, other))
            .fold(0.0_f64, f64::max);
        let len = word.len() as f64;
        weighted += best * len;
        total += len;
    }
    (weighted, total)
}

/// Jaro-Winkler similarity, 0..=1: the Jaro similarity, raised for a common prefix of up
/// to four characters (by a tenth of the gap to 1 per character) when it is over 0.7.
/// The same figures as the `strsim` crate's, computed without allocating for words of up
/// to 64 characters.
#[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
pub fn jaro_winkler(a: &[char], b: &[char]) -> f64 {
    let sim = jaro(a, b);
    if sim > 0.7 {
        let prefix = a.iter().take(4).zip(b).take_while(|(x, y)| x == y).count();
        sim + 0.1 * prefix as f64 * (1.0 - sim)
    } else {
        sim
    }
}

/// Which characters of a word are matched, for words up to 64 characters in a `u64`.
trait Flags {
    fn get(&self, index: usize) -> bool;
    fn set(&mut self, index: usize);
}

impl Flags for u64 {
    fn get(&self, index: usize) -> bool {
        *self & (1 << index) != 0
    }
    fn set(&mut self, index: usize) {
        *self |= 1 << index;
    }
}

impl Flags for Vec<bool> {
    fn get(&self, index: usize) -> bool {
        self[index]
    }
    fn set(&mut self, index: usize) {
        self[index] = true;
    }
}

/// Jaro similarity, 0..=1.
fn jaro(a: &[char], b: &[char]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    if a.len() <= 64 && b.len() <= 64 {
        jaro_with(a, b, 0_u64, 0_u64)
    } else {
        jaro_with(a, b, vec![false; a.len()], vec![false; b.len()])
    }
}

#[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
fn jaro_with(a: &[char], b: &[char], mut a_flags: impl Flags, mut b_flags: impl Flags) -> f64 {
    let range = (a.len().max(b.len()) / 2).saturating_sub(1);
    let mut matches = 0_usize;
    for (i, x) in a.iter().enumerate() {
        let low = i.saturating_sub(range);
        let high = b.len().min(i + range + 1);
        if let Some(j) = (low..high).find(|&j| *x == b[j] && !b_flags.get(j)) {
            a_flags.set(i);
            b_flags.set(j);
            matches += 1;
        }
    }
    if matches == 0 {
        return 0.0;
    }
    // Matched characters of `a` and of `b`, in order, that differ: twice the transpositions.
    let mut half_transpositions = 0_usize;
    let mut j = 0;
    for (i, x) in a.iter().enumerate() {
        if a_flags.get(i) {
            while !b_flags.get(j) {
                j += 1;
            }
            if *x != b[j] {
                half_transpositions += 1;
            }
            j += 1;
        }
    }
    let transpositions = half_transpositions / 2;
    let m = matches as f64;
    ((m / a.len() as f64) + (m / b.len() as f64) + ((matches - transpositions) as f64 / m)) / 3.0
}

/// Levenshtein distance (insertions, deletions, substitutions), one row of the table on
/// the stack for names up to 64 characters.
fn levenshtein(a: &[char], b: &[char]) -> usize {
    if b.len() <= 64 {
        let mut row = [0_usize; 64];
        levenshtein_with(a, b, &mut row[..b.len()])
    } else {
        levenshtein_with(a, b, &mut vec![0; b.len()])
    }
}

fn levenshtein_with(a: &[char], b: &[char], row: &mut [usize]) -> usize {
    for (j, cell) in row.iter_mut().enumerate() {
        *cell = j + 1;
    }
    let mut result = b.len();
    for (i, x) in a.iter().enumerate() {
        result = i + 1;
        let mut diagonal = i;
        for (j, y) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(x != y);
            diagonal = row[j];
            result = (result + 1).min(substitute.min(diagonal + 1));
            row[j] = result;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_removes_accents_case_punctuation_and_legal_forms() {
        let cases = [
            ("Müller & Söhne GmbH", "muller sohne"),
            ("KIM, Jong Un", "kim jong un"),
            ("Banco Nacional de Cuba S.A.", "banco nacional de cuba"),
            ("  Straße   der Einheit ", "strasse der einheit"),
            ("ØRSTED A/S", "orsted"),
            ("Łódź Trading Co., Ltd.", "lodz trading"),
            ("AL-QAIDA", "al qaida"),
            ("Ltd.", ""),
            ("", ""),
            // Invisible characters are dropped, not read as spaces.
            ("K\u{200B}i\u{200B}m", "kim"),
            ("Jo\u{00AD}ng\u{2060}Un", "jongun"),
            // Letters one by one are one word; a lone initial is dropped.
            ("K.i.m J.o.n.g-U.n", "kimjongun"),
            ("K i m J o n g U n", "kimjongun"),
            ("John F. Kennedy", "john kennedy"),
            ("J.P. Morgan", "jp morgan"),
            // Look-alike letters of other scripts, fullwidth and mathematical forms.
            ("\u{041A}\u{0456}m", "kim"),
            ("\u{039A}\u{03BF}\u{03BD}\u{03B1}", "kova"),
            ("\u{FF2B}\u{FF49}\u{FF4D}", "kim"),
            ("\u{1D40A}im", "kim"),
        ];
        for (name, expected) in cases {
            assert_eq!(normalize(name), expected, "normalising {name:?}");
        }
    }

    #[test]
    fn a_name_split_or_joined_differently_scores_as_the_name() {
        assert_eq!(similarity("kimjongun", "kim jong un"), SIMILARITY_MAX);
        assert!(similarity("kimjongum", "kim jong un") >= 850);
        assert!(compact_similarity("kimjones", "kim jong un") < 850);
    }

    #[test]
    fn disguises_are_named() {
        let cases: &[(&str, &[Disguise])] = &[
            ("Kim Jong Un", &[]),
            ("M\u{00FC}ller & S\u{00F6}hne GmbH", &[]),
            ("J. R. R. Tolkien", &[]),
            (
                "\u{0418}\u{0432}\u{0430}\u{043D} \u{041F}\u{0435}\u{0442}\u{0440}\u{043E}\u{0432}",
                &[],
            ),
            ("\u{5C71}\u{7530} \u{592A}\u{90CE}", &[]),
            ("Kim\u{200B}Jong", &[Disguise::InvisibleCharacters]),
            ("Ki\u{00AD}m", &[Disguise::InvisibleCharacters]),
            ("\u{041A}im J\u{043E}ng", &[Disguise::MixedScripts]),
            ("\u{FF2B}\u{FF49}\u{FF4D}", &[Disguise::CompatibilityForms]),
            ("K i m J o n g", &[Disguise::SpacedLetters]),
            ("K.i.m J.o.n.g-U.n", &[Disguise::SpacedLetters]),
            (
                "K\u{200B}\u{0456}m J o n g",
                &[
                    Disguise::InvisibleCharacters,
                    Disguise::MixedScripts,
                    Disguise::SpacedLetters,
                ],
            ),
        ];
        for (name, expected) in cases {
            assert_eq!(&disguises(name), expected, "{}", name.escape_unicode());
        }
    }

    #[test]
    fn identical_names_in_any_order_score_the_maximum() {
        assert_eq!(similarity("kim jong un", "kim jong un"), SIMILARITY_MAX);
        assert_eq!(similarity("jong un kim", "kim jong un"), SIMILARITY_MAX);
    }

    #[test]
    fn transliteration_variants_score_high() {
        let score = similarity(&normalize("Al Qaeda"), &normalize("AL-QAIDA"));
        assert!(score >= 900, "{score}");
    }

    #[test]
    fn an_extra_middle_name_lowers_the_score_a_little() {
        let score = similarity(
            &normalize("Vladimir Putin"),
            &normalize("Vladimir Vladimirovich Putin"),
        );
        assert!((850..1000).contains(&score), "{score}");
    }

    #[test]
    fn unrelated_names_score_low() {
        let score = similarity(&normalize("Maria Gonzalez"), &normalize("Kim Jong Un"));
        assert!(score < 700, "{score}");
    }

    /// The measures as they were computed with the `strsim` crate before the allocation-free
    /// ones: every score must be the same, to the bit.
    mod reference {
        use super::super::{SIMILARITY_MAX, compact};

        pub fn similarity(a: &str, b: &str) -> u16 {
            let words = word_order_similarity(a, b);
            let (len_a, len_b) = (compact(a).chars().count(), compact(b).chars().count());
            let longer = len_a.max(len_b);
            if longer == 0 {
                return words;
            }
            let same = longer - len_a.abs_diff(len_b);
            let bound = (2 * usize::from(SIMILARITY_MAX) * same + longer) / (2 * longer);
            if bound <= usize::from(words) {
                return words;
            }
            words.max(compact_similarity(a, b))
        }

        #[allow(
            clippy::float_arithmetic,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        pub fn compact_similarity(a: &str, b: &str) -> u16 {
            let (a, b) = (compact(a), compact(b));
            if a.is_empty() || b.is_empty() {
                return 0;
            }
            let score = strsim::normalized_levenshtein(&a, &b) * f64::from(SIMILARITY_MAX);
            (score.round() as u16).min(SIMILARITY_MAX)
        }

        #[allow(
            clippy::float_arithmetic,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        fn word_order_similarity(a: &str, b: &str) -> u16 {
            if a == b {
                return if a.is_empty() { 0 } else { SIMILARITY_MAX };
            }
            let a_words: Vec<&str> = a.split(' ').filter(|w| !w.is_empty()).collect();
            let b_words: Vec<&str> = b.split(' ').filter(|w| !w.is_empty()).collect();
            if a_words.is_empty() || b_words.is_empty() {
                return 0;
            }
            let sum = |words: &[&str], others: &[&str]| {
                let mut weighted = 0.0;
                let mut total = 0.0;
                for word in words {
                    let best = others
                        .iter()
                        .map(|other| strsim::jaro_winkler(word, other))
                        .fold(0.0_f64, f64::max);
                    let len = word.chars().count() as f64;
                    weighted += best * len;
                    total += len;
                }
                (weighted, total)
            };
            let (a_weighted, a_len) = sum(&a_words, &b_words);
            let (b_weighted, b_len) = sum(&b_words, &a_words);
            let score = (a_weighted + b_weighted) / (a_len + b_len) * f64::from(SIMILARITY_MAX);
            (score.round() as u16).min(SIMILARITY_MAX)
        }
    }

    /// Words and names drawn from a few letters, so that they share many characters in and
    /// out of Jaro's window, with now and then a letter of another script, and lengths
    /// either side of the 64 characters kept on the stack.
    fn random_names(count: usize) -> Vec<String> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % below).expect("small")
        };
        let letters = ['a', 'b', 'c', 'd', 'e', 'k', 'o', '\u{0436}', '1'];
        (0..count)
            .map(|_| {
                let words = 1 + next(4);
                (0..words)
                    .map(|_| {
                        let len = if next(20) == 0 {
                            60 + next(20)
                        } else {
                            2 + next(10)
                        };
                        (0..len)
                            .map(|_| letters[next(letters.len() as u64)])
                            .collect::<String>()
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn the_measures_give_the_reference_figures_to_the_bit() {
        let names = random_names(400);
        for a in &names {
            for b in names.iter().take(60) {
                assert_eq!(
                    similarity(a, b),
                    reference::similarity(a, b),
                    "{a:?} / {b:?}"
                );
                assert_eq!(
                    compact_similarity(a, b),
                    reference::compact_similarity(a, b),
                    "{a:?} / {b:?}"
                );
                for (x, y) in a.split(' ').zip(b.split(' ')) {
                    let (xs, ys): (Vec<char>, Vec<char>) =
                        (x.chars().collect(), y.chars().collect());
                    assert_eq!(
                        jaro_winkler(&xs, &ys).to_bits(),
                        strsim::jaro_winkler(x, y).to_bits(),
                        "{x:?} / {y:?}"
                    );
                }
            }
        }
        // The names of the tests above, normalised, against each other.
        let listed = [
            "kim jong un",
            "kimjongun",
            "al qaida",
            "al qaeda",
            "muller sohne",
            "jong un kim",
        ];
        for a in listed {
            for b in listed {
                assert_eq!(
                    similarity(a, b),
                    reference::similarity(a, b),
                    "{a:?} / {b:?}"
                );
            }
        }
    }

    #[test]
    fn empty_names_are_never_similar() {
        assert_eq!(similarity("", ""), 0);
        assert_eq!(similarity("", "kim"), 0);
    }
}
