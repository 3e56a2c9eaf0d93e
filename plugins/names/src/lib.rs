//! Party-name normalisation and similarity for sanctions and blocklist screening.
//!
//! Used in two places that must agree: the payrules host, which indexes named lists and
//! answers `lists.fuzzy-match`, and the rule SDK, which gives rule authors the same
//! normalisation. Both read this crate, so a name a rule normalises is the name the host
//! matched.
//!
//! - [`normalize`] folds a name to a canonical form: accents removed, lower case,
//!   punctuation to spaces, legal-form words ("Ltd", "GmbH", "S.A.") dropped.
//! - [`similarity`] scores two normalised names 0..=1000, ignoring word order, with
//!   Jaro-Winkler per word so that transliteration variants ("Qaida" / "Qaeda") and
//!   typos still score high.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// The highest similarity: the names are equal after normalisation.
pub const SIMILARITY_MAX: u16 = 1000;

/// Legal-form and filler words that say nothing about who a party is. Compared after
/// normalisation, so "S.A." is "s a" and appears here as the two tokens "s" and "a"
/// only through the single-letter rule in [`normalize`].
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

/// Folds a party name to its canonical form for comparison.
///
/// Compatibility decomposition then removal of combining marks takes accents off
/// ("Müller" → "muller"); letters that do not decompose are spelled out ("ß" → "ss",
/// "Ø" → "o"); anything but a letter or digit separates words; legal-form words and
/// single letters left by dotted abbreviations are dropped; words are joined by one
/// space. The result may be empty (a name made only of punctuation or legal forms).
pub fn normalize(name: &str) -> String {
    let mut folded = String::with_capacity(name.len());
    for c in name.nfkd() {
        if is_combining_mark(c) {
            continue;
        }
        match c {
            'ß' => folded.push_str("ss"),
            'æ' | 'Æ' => folded.push_str("ae"),
            'œ' | 'Œ' => folded.push_str("oe"),
            'ø' | 'Ø' => folded.push('o'),
            'ł' | 'Ł' => folded.push('l'),
            'đ' | 'Đ' => folded.push('d'),
            'þ' | 'Þ' => folded.push_str("th"),
            'ı' => folded.push('i'),
            c if c.is_alphanumeric() => folded.extend(c.to_lowercase()),
            _ => folded.push(' '),
        }
    }
    let words: Vec<&str> = folded
        .split_whitespace()
        .filter(|word| word.chars().count() > 1 && !IGNORED_WORDS.contains(word))
        .collect();
    words.join(" ")
}

/// Scores two *normalised* names (see [`normalize`]) from 0 (nothing alike) to
/// [`SIMILARITY_MAX`] (the same words, in any order).
///
/// Every word of each name is paired with its most similar word in the other name
/// (Jaro-Winkler); the score is the mean of those best similarities weighted by word
/// length, over the words of both names. Extra words in either name therefore lower the
/// score in proportion to their length, and word order does not matter.
pub fn similarity(a: &str, b: &str) -> u16 {
    if a == b {
        return if a.is_empty() { 0 } else { SIMILARITY_MAX };
    }
    let a_words: Vec<&str> = a.split(' ').filter(|w| !w.is_empty()).collect();
    let b_words: Vec<&str> = b.split(' ').filter(|w| !w.is_empty()).collect();
    if a_words.is_empty() || b_words.is_empty() {
        return 0;
    }
    let (a_weighted, a_len) = best_pair_sum(&a_words, &b_words);
    let (b_weighted, b_len) = best_pair_sum(&b_words, &a_words);
    // Similarity scores are ratios, not money: floating point is the right tool here,
    // and the result is rounded to an integer at once.
    #[allow(clippy::float_arithmetic)]
    let score = (a_weighted + b_weighted) / (a_len + b_len) * f64::from(SIMILARITY_MAX);
    // `score` is within 0..=1000 by construction; the cast cannot truncate.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rounded = score.round() as u16;
    rounded.min(SIMILARITY_MAX)
}

/// Scores two single words from 0 to [`SIMILARITY_MAX`] (Jaro-Winkler): the measure
/// [`similarity`] applies word by word, for callers that index names by word.
pub fn word_similarity(a: &str, b: &str) -> u16 {
    #[allow(clippy::float_arithmetic)]
    let score = strsim::jaro_winkler(a, b) * f64::from(SIMILARITY_MAX);
    // Jaro-Winkler is within 0..=1, so the score is within 0..=1000.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rounded = score.round() as u16;
    rounded.min(SIMILARITY_MAX)
}

/// Σ over `words` of (best Jaro-Winkler against `others`) × (word length), and Σ length.
#[allow(clippy::float_arithmetic)]
fn best_pair_sum(words: &[&str], others: &[&str]) -> (f64, f64) {
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
        ];
        for (name, expected) in cases {
            assert_eq!(normalize(name), expected, "normalising {name:?}");
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

    #[test]
    fn empty_names_are_never_similar() {
        assert_eq!(similarity("", ""), 0);
        assert_eq!(similarity("", "kim"), 0);
    }
}
