//! The look-up behind `fuzzy-match`: every listed name whose similarity to a query reaches
//! the rule's threshold, found without scoring the names that cannot reach it.
//!
//! A name's similarity ([`Name::similarity`]) is the higher of two scores, and each has a
//! condition it cannot reach the threshold `t` without:
//!
//! - **the word score** is a length-weighted mean of each word's best Jaro-Winkler against
//!   the other name's words, so it reaches `t` only if some pair of words does. Jaro is at
//!   most `(m/a + m/b + 1) / 3` with `m` the characters matched (never more than two words
//!   have in common), and Winkler's bonus adds a tenth of the gap to 1 per character of
//!   common prefix, up to four: so a pair reaches `t` only if the words share at least an
//!   `m` known from their lengths, `t` and the prefix they share.
//! - **the space-less score** is `1 − distance / longer length`, so it reaches `t` only
//!   within `k = (1 − t) × longer` edits: lengths within `k`, at least `longer − k`
//!   characters and `longer − 1 − 2k` adjacent pairs in common (an edit changes at most
//!   two pairs).
//!
//! "Shares at least `n` tokens" is what the index answers without looking at every string:
//! a string is a set of tokens (a character, or an adjacent pair, with its occurrence: the
//! second "a" is another token than the first), all tokens in one order (rarest first),
//! and two sets sharing `n` tokens share one among the first `q − n + 1` of a `q`-token set
//! and the first `s − n + 1` of an `s`-token one (prefix filtering, as in set-similarity
//! joins). Strings are numbered by length, so a token's postings for the lengths that can
//! still reach `t` are one slice, and each posting carries where the token comes in its
//! string. Words are looked up three ways, because the prefix bonus is what makes
//! Jaro-Winkler lenient: those sharing the query's first four characters are all taken;
//! those sharing its initial are looked for with the bound for a bonus one character
//! smaller; all words with no bonus. What a candidate can share is then bounded from
//! character counts before it is measured exactly.
//!
//! The result is exact: the same names as scoring every listed name (tests compare the
//! two on an SDN-sized list and on the example list). Before this index a name was scored
//! only if one of its words began with the same letter as a query word and was
//! Jaro-Winkler-similar to it at 0.75: that scored thousands of names per query on a list
//! the size of OFAC's (4.8 ms for a payment's two names), and it let a name through whose
//! first letter was changed ("Xizballah" for "HIZBALLAH" scores 926, over the example
//! rule's review threshold, and was never scored).

use std::cell::Cell;
use std::ops::ControlFlow;
use std::time::Instant;

use payrules_names::{Name, SIMILARITY_MAX, word_score};
use rustc_hash::FxHashMap;

/// How much measuring a look-up does between two readings of the clock, in characters of
/// the query measured against one string (about 0.1 ms of work).
const WORK_BETWEEN_READINGS: usize = 4_096;

/// Keeps a look-up within a deadline: the rule's own, because the host works on its behalf
/// inside its call, where the engine's deadline (which interrupts WebAssembly code) cannot
/// reach. Each string measured counts as the query's length in work; the clock is read when
/// [`WORK_BETWEEN_READINGS`] has been done, and once the deadline has passed the look-up
/// stops.
#[derive(Debug)]
pub(super) struct Watch {
    deadline: Option<Instant>,
    credit: Cell<usize>,
    passed: Cell<bool>,
}

impl Watch {
    /// A watch for `deadline`; `None` never stops (the caller bounds the work itself).
    pub(super) fn new(deadline: Option<Instant>) -> Watch {
        let watch = Watch {
            deadline,
            credit: Cell::new(WORK_BETWEEN_READINGS),
            passed: Cell::new(false),
        };
        // A deadline already gone stops the look-up before it starts.
        watch.read_the_clock();
        watch
    }

    /// Counts `work` (characters measured); whether the deadline has passed.
    pub(super) fn spend(&self, work: usize) -> bool {
        if self.passed.get() {
            return true;
        }
        match self.credit.get().checked_sub(work.max(1)) {
            Some(left) => self.credit.set(left),
            None => {
                self.credit.set(WORK_BETWEEN_READINGS);
                self.read_the_clock();
            }
        }
        self.passed.get()
    }

    /// Whether the deadline was found passed.
    pub(super) fn passed(&self) -> bool {
        self.passed.get()
    }

    fn read_the_clock(&self) {
        if let Some(deadline) = self.deadline {
            self.passed.set(Instant::now() >= deadline);
        }
    }
}

/// Stops a visit when `stop`.
fn stop_if(stop: bool) -> ControlFlow<()> {
    if stop {
        ControlFlow::Break(())
    } else {
        ControlFlow::Continue(())
    }
}

/// A token: an item (a character, or a pair of adjacent ones) and which occurrence of it
/// in the string it is (1 for the first), so that a string's tokens are a set whose
/// overlap with another's counts repeated items as often as both have them.
type Token = (u64, u32);

/// How strings are cut into tokens.
#[derive(Clone, Copy, Debug, Default)]
enum Cut {
    /// Characters: what Jaro counts as matched, at most the characters two words share.
    #[default]
    Letters,
    /// Adjacent pairs: an edit changes at most two of them, so two strings within edit
    /// distance `k` share at least `longer − 1 − 2k` of them (and pairs are far rarer than
    /// letters, which makes the filter sharp).
    Pairs,
}

impl Cut {
    /// How many fewer tokens than characters a string has.
    fn lost(self) -> usize {
        match self {
            Cut::Letters => 0,
            Cut::Pairs => 1,
        }
    }

    fn tokens(self, chars: &[char]) -> Vec<Token> {
        let code = |c: &char| u64::from(u32::from(*c));
        match self {
            Cut::Letters => numbered(chars.iter().map(code)),
            Cut::Pairs => numbered(
                chars
                    .windows(2)
                    .map(|pair| (code(&pair[0]) << 21) | code(&pair[1])),
            ),
        }
    }
}

/// The items, each numbered with its occurrence.
fn numbered(items: impl ExactSizeIterator<Item = u64>) -> Vec<Token> {
    let mut tokens: Vec<Token> = Vec::with_capacity(items.len());
    if items.len() <= 32 {
        // A name's word: counting by looking back is quicker than hashing.
        for item in items {
            let count = tokens.iter().filter(|(seen, _)| *seen == item).count();
            tokens.push((item, u32::try_from(count).unwrap_or(u32::MAX - 1) + 1));
        }
    } else {
        let mut counts: FxHashMap<u64, u32> = FxHashMap::default();
        for item in items {
            let count = counts.entry(item).or_insert(0);
            *count += 1;
            tokens.push((item, *count));
        }
    }
    tokens
}

/// Which of 64 buckets a character counts in: one per ASCII letter and digit, the rest
/// spread over the remaining 28. Two strings share at most, per bucket, the fewer of
/// their characters in it.
fn bucket(c: char) -> u32 {
    match c {
        'a'..='z' => u32::from(c) - u32::from('a'),
        '0'..='9' => 26 + u32::from(c) - u32::from('0'),
        _ => 36 + u32::from(c) % 28,
    }
}

fn buckets(chars: &[char]) -> u64 {
    chars.iter().fold(0, |mask, c| mask | 1 << bucket(*c))
}

/// A query's characters by bucket, to bound how many it shares with a string.
struct Counted {
    mask: u64,
    counts: [u16; 64],
}

impl Counted {
    fn new(chars: &[char]) -> Counted {
        let mut counts = [0_u16; 64];
        for c in chars {
            let count = &mut counts[bucket(*c) as usize];
            *count = count.saturating_add(1);
        }
        Counted {
            mask: buckets(chars),
            counts,
        }
    }

    /// At most how many characters the query shares with a string whose buckets are
    /// `mask`, from the query's side alone: its characters in the buckets both use.
    fn ours(&self, mask: u64) -> usize {
        let mut ours = 0_usize;
        let mut rest = self.mask & mask;
        while rest != 0 {
            ours += usize::from(self.counts[rest.trailing_zeros() as usize]);
            rest &= rest - 1;
        }
        ours
    }

    /// At most how many characters the query shares with `other` (whose buckets are
    /// `mask`): in the buckets both use, the fewer of the query's and the other's.
    fn shared_at_most(&self, other: &[char], mask: u64) -> usize {
        let common = self.mask & mask;
        let theirs = other
            .iter()
            .filter(|c| common & (1 << bucket(**c)) != 0)
            .count();
        self.ours(mask).min(theirs)
    }
}

/// Which strings a look-up has already seen.
struct Seen(Vec<u64>);

impl Seen {
    fn new(strings: usize) -> Seen {
        Seen(vec![0; strings.div_ceil(64)])
    }

    /// Whether `id` is new, marking it seen.
    fn first(&mut self, id: u32) -> bool {
        let (word, bit) = ((id / 64) as usize, 1 << (id % 64));
        let new = self.0[word] & bit == 0;
        self.0[word] |= bit;
        new
    }
}

/// A string holding a token: which, and where the token comes among the string's tokens
/// in the index's order (rarest first).
#[derive(Clone, Copy, Debug)]
struct Posting {
    id: u32,
    position: u32,
    len: u32,
}

/// Token → the strings holding it, ascending (so by length).
type Postings<K> = FxHashMap<K, Vec<Posting>>;

/// How many tokens a string of each length must share with the query to be a candidate:
/// `None` if no string of that length can reach the threshold, `Some(0)` if every one may.
type Needed = Vec<Option<usize>>;

/// Strings (words, or names' letters) numbered in order of length, with the names each
/// belongs to, and for each token the strings holding it.
#[derive(Debug, Default)]
struct Strings {
    cut: Cut,
    chars: Vec<Box<[char]>>,
    /// Each string's character buckets.
    masks: Vec<u64>,
    /// For each string, the indexed names it is in (ascending, once each).
    names: Vec<Vec<u32>>,
    postings: Postings<Token>,
    /// How many strings hold each token: the index's order of tokens is rarest first.
    frequency: FxHashMap<Token, u32>,
    /// `ends[len]`: how many strings are at most `len` characters long.
    ends: Vec<u32>,
}

impl Strings {
    /// Indexes `(string, name)` pairs.
    fn build(cut: Cut, mut pairs: Vec<(Vec<char>, u32)>) -> Strings {
        pairs.sort_unstable_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.cmp(b)));
        let mut strings = Strings {
            cut,
            ..Strings::default()
        };
        for (chars, name) in pairs {
            if strings.chars.last().map(|last| &**last) != Some(&chars[..]) {
                strings.masks.push(buckets(&chars));
                strings.chars.push(chars.into_boxed_slice());
                strings.names.push(Vec::new());
            }
            let names = strings.names.last_mut().expect("pushed");
            if names.last() != Some(&name) {
                names.push(name);
            }
        }
        let mut ends = vec![0_u32; strings.chars.last().map_or(0, |last| last.len()) + 1];
        let tokenised: Vec<Vec<Token>> = strings
            .chars
            .iter()
            .map(|chars| cut.tokens(chars))
            .collect();
        for (id, tokens) in tokenised.iter().enumerate() {
            let id = u32::try_from(id).expect("fewer strings than a list has bytes");
            for token in tokens {
                strings
                    .frequency
                    .entry(*token)
                    .and_modify(|n| *n += 1)
                    .or_insert(1);
            }
            ends[strings.chars[id as usize].len()] = id + 1;
        }
        for (id, tokens) in tokenised.into_iter().enumerate() {
            let id = u32::try_from(id).expect("fewer strings than a list has bytes");
            for (token, posting) in strings.ordered(id, tokens) {
                strings.postings.entry(token).or_default().push(posting);
            }
        }
        // A length no string has ends where the shorter ones do.
        for len in 1..ends.len() {
            ends[len] = ends[len].max(ends[len - 1]);
        }
        strings.ends = ends;
        strings
    }

    fn longest(&self) -> usize {
        self.ends.len().saturating_sub(1)
    }

    /// The tokens in the index's order: rarest first (a token no string holds, first of
    /// all), ties by value.
    fn order(&self, tokens: &mut [Token]) {
        tokens.sort_unstable_by_key(|token| {
            (self.frequency.get(token).copied().unwrap_or(0), *token)
        });
    }

    /// The string's tokens in order, each with its posting.
    fn ordered(
        &self,
        id: u32,
        mut tokens: Vec<Token>,
    ) -> impl Iterator<Item = (Token, Posting)> + use<> {
        self.order(&mut tokens);
        let len =
            u32::try_from(self.chars[id as usize].len()).expect("fewer characters than bytes");
        tokens
            .into_iter()
            .enumerate()
            .map(move |(position, token)| {
                let position = u32::try_from(position).expect("fewer tokens than bytes");
                (token, Posting { id, position, len })
            })
    }

    /// The ids of strings `shortest..=longest` characters long.
    fn ids_of_lengths(&self, shortest: usize, longest: usize) -> std::ops::Range<u32> {
        let start = if shortest == 0 {
            0
        } else {
            self.ends[shortest - 1]
        };
        start..self.ends[longest.min(self.longest())]
    }

    /// Calls `visit` once for every string not yet `seen` among `postings` that could
    /// share `needed[len]` tokens with `query`. Prefix filtering, as in set-similarity
    /// joins: with tokens in one order, the first token two sets share comes among the
    /// first `q − n + 1` of a `q`-token query and the first `s − n + 1` of an `s`-token
    /// string when they share `n`; so only those of the query are looked up, and of their
    /// postings only those that come early enough in their string. `key` makes a token a
    /// key of `postings`. A visit that breaks ends the probe (a deadline has passed).
    fn probe<K: std::hash::Hash + Eq>(
        &self,
        query: &[char],
        postings: &Postings<K>,
        key: impl Fn(Token) -> K,
        needed: &Needed,
        seen: &mut Seen,
        visit: &mut impl FnMut(u32, usize) -> ControlFlow<()>,
    ) {
        let mut tokens = self.cut.tokens(query);
        self.order(&mut tokens);
        // How many of the query's tokens to look up for strings of each length.
        let mut probes = vec![0_usize; needed.len()];
        for (len, needed) in needed.iter().enumerate() {
            match *needed {
                // Nothing to filter by: every string of the length.
                Some(0) => {
                    for id in self.ids_of_lengths(len, len) {
                        if seen.first(id) && visit(id, len).is_break() {
                            return;
                        }
                    }
                }
                Some(needed) if needed <= tokens.len() => {
                    probes[len] = tokens.len() - needed + 1;
                }
                _ => {}
            }
        }
        // How early in its string a shared token must come, by the string's tokens.
        let room = |posting: &Posting| match needed.get(posting.len as usize) {
            Some(Some(needed)) => {
                let tokens = (posting.len as usize).saturating_sub(self.cut.lost());
                posting.position as usize + needed <= tokens
            }
            _ => false,
        };
        for (rank, token) in tokens.iter().enumerate() {
            // The lengths to look for under this token: contiguous, since what a string
            // must share grows with its length (a wider range would only cost time).
            let mut wanted = (0..probes.len()).filter(|len| probes[*len] > rank);
            let Some(shortest) = wanted.next() else {
                break;
            };
            let longest = wanted.next_back().unwrap_or(shortest);
            let Some(strings) = postings.get(&key(*token)) else {
                continue;
            };
            let range = self.ids_of_lengths(shortest, longest);
            let from = strings.partition_point(|posting| posting.id < range.start);
            let to = strings.partition_point(|posting| posting.id < range.end);
            for posting in &strings[from..to] {
                if room(posting)
                    && seen.first(posting.id)
                    && visit(posting.id, posting.len as usize).is_break()
                {
                    return;
                }
            }
        }
    }
}

/// The smallest integer at least `x`, less a hair so that rounding in the bound never
/// drops a string that reaches the threshold exactly.
#[allow(
    clippy::float_arithmetic,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn at_least(x: f64) -> usize {
    let x = x - 1e-9;
    if x <= 0.0 { 0 } else { x.ceil() as usize }
}

/// The largest integer at most `x`, plus a hair (see [`at_least`]).
#[allow(
    clippy::float_arithmetic,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn at_most(x: f64) -> usize {
    let x = x + 1e-9;
    if x <= 0.0 { 0 } else { x.floor() as usize }
}

/// The characters two words must have in common for Jaro-Winkler to reach a ratio, by
/// their lengths and the prefix they share: the prefix bonus raises Jaro by `prefix / 10`
/// of its gap to 1, so Jaro must reach `(ratio − prefix/10) / (1 − prefix/10)`, and Jaro is
/// at most `(m/a + m/b + 1) / 3`.
struct LettersNeeded {
    /// The query's length.
    a: f64,
    /// `3 × Jaro's minimum − 1`, by the prefix shared (0..=4).
    factor: [f64; 5],
    /// The figures by length, worked out once for a look-up that visits thousands of
    /// words; empty for one that visits few.
    table: Vec<[usize; 5]>,
}

impl LettersNeeded {
    /// For a query of `a` characters; with a table up to `longest` characters if given.
    #[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
    fn new(ratio: f64, a: usize, longest: Option<usize>) -> LettersNeeded {
        let mut needed = LettersNeeded {
            a: a as f64,
            factor: std::array::from_fn(|prefix| {
                let bonus = prefix as f64 / 10.0;
                3.0 * (ratio - bonus) / (1.0 - bonus) - 1.0
            }),
            table: Vec::new(),
        };
        if let Some(longest) = longest {
            needed.table = (0..=longest)
                .map(|b| std::array::from_fn(|prefix| needed.work_out(b, prefix)))
                .collect();
        }
        needed
    }

    /// For a word of `b` characters sharing `prefix` (0..=4) with the query.
    fn of(&self, b: usize, prefix: usize) -> usize {
        match self.table.get(b) {
            Some(by_prefix) => by_prefix[prefix],
            None => self.work_out(b, prefix),
        }
    }

    #[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
    fn work_out(&self, b: usize, prefix: usize) -> usize {
        let b = b as f64;
        at_least(self.factor[prefix] * self.a * b / (self.a + b)).max(1)
    }
}

/// Lists with at most this many distinct words (or names) are looked through whole for a
/// query: cheaper than probing the index (the example list has 93 words).
const LOOK_THROUGH_MAX: usize = 256;

/// The distinct words of a list's names, indexed by token, by initial and token, and in
/// alphabetical order (for a common prefix).
#[derive(Debug, Default)]
struct Words {
    strings: Strings,
    by_initial: Postings<(char, Token)>,
    alphabetical: Vec<u32>,
}

impl Words {
    fn build(pairs: Vec<(Vec<char>, u32)>) -> Words {
        let strings = Strings::build(Cut::Letters, pairs);
        let mut by_initial: Postings<(char, Token)> = Postings::default();
        for (id, chars) in strings.chars.iter().enumerate() {
            let id = u32::try_from(id).expect("fewer strings than bytes");
            for (token, posting) in strings.ordered(id, Cut::Letters.tokens(chars)) {
                by_initial
                    .entry((chars[0], token))
                    .or_default()
                    .push(posting);
            }
        }
        let mut alphabetical: Vec<u32> = (0..strings.chars.len())
            .map(|id| u32::try_from(id).expect("fewer strings than bytes"))
            .collect();
        alphabetical
            .sort_unstable_by(|a, b| strings.chars[*a as usize].cmp(&strings.chars[*b as usize]));
        Words {
            strings,
            by_initial,
            alphabetical,
        }
    }

    /// Calls `found` with every word whose Jaro-Winkler similarity to `query` reaches
    /// `word_min` (0..=1000; `ratio` is its lowest unrounded value).
    ///
    /// The prefix bonus is what makes Jaro-Winkler lenient (a short word that begins a
    /// long one scores high), and only words beginning like the query get it. So the
    /// words sharing its first four characters are all looked at; those sharing only the
    /// first are looked for with the bound for a bonus of one character fewer; the rest
    /// with no bonus at all. Each one found is checked against the bound for the prefix
    /// it does share and the characters it can share before it is measured.
    fn matching(
        &self,
        query: &[char],
        word_min: u16,
        ratio: f64,
        watch: &Watch,
        found: &mut impl FnMut(u32),
    ) {
        let strings = &self.strings;
        let counted = Counted::new(query);
        let a = query.len();
        let look_through = strings.chars.len() <= LOOK_THROUGH_MAX;
        let needed = LettersNeeded::new(ratio, a, (!look_through).then(|| strings.longest()));
        // `loosest`: what a word of `len` characters must share with the largest prefix
        // bonus.
        let mut check = |id: u32, len: usize, loosest: usize| {
            // First what the query alone says about a word of the length and buckets;
            // then the word itself (the work the watch counts).
            let mask = strings.masks[id as usize];
            if counted.ours(mask).min(len) < loosest || watch.spend(a) {
                return;
            }
            let word = &strings.chars[id as usize];
            let prefix = query
                .iter()
                .zip(word.iter())
                .take(4)
                .take_while(|(x, y)| x == y)
                .count();
            if counted.shared_at_most(word, mask) >= needed.of(len, prefix)
                && word_score(query, word) >= word_min
            {
                found(id);
            }
        };
        if look_through {
            for len in 1..=strings.longest() {
                let loosest = needed.of(len, 4);
                for id in strings.ids_of_lengths(len, len) {
                    check(id, len, loosest);
                }
                if watch.passed() {
                    return;
                }
            }
            return;
        }
        let mut seen = Seen::new(strings.chars.len());
        let prefix = &query[..a.min(4)];
        let start = self
            .alphabetical
            .partition_point(|id| &strings.chars[*id as usize][..] < prefix);
        for &id in self.alphabetical[start..]
            .iter()
            .take_while(|id| strings.chars[**id as usize].starts_with(prefix))
        {
            if watch.passed() {
                return;
            }
            if seen.first(id) {
                let len = strings.chars[id as usize].len();
                check(id, len, needed.of(len, 4));
            }
        }
        let needed_by = |prefix: usize| -> Needed {
            (0..=strings.longest())
                .map(|b| (b > 0).then(|| needed.of(b, prefix)))
                .collect()
        };
        let (by_initial, by_none) = (needed_by(prefix.len() - 1), needed_by(0));
        let mut visit = |id: u32, len: usize| {
            check(id, len, needed.of(len, 4));
            stop_if(watch.passed())
        };
        let initial = query[0];
        strings.probe(
            query,
            &self.by_initial,
            |token| (initial, token),
            &by_initial,
            &mut seen,
            &mut visit,
        );
        strings.probe(
            query,
            &strings.postings,
            |token| token,
            &by_none,
            &mut seen,
            &mut visit,
        );
    }
}

/// The word and space-less indexes of a list's names.
#[derive(Debug, Default)]
pub(super) struct NameIndex {
    words: Words,
    compacts: Strings,
    names: usize,
}

impl NameIndex {
    /// Indexes the names, numbered by their position in `names`.
    pub(super) fn build(names: &[Name]) -> NameIndex {
        let mut words = Vec::new();
        let mut compacts = Vec::new();
        for (index, name) in names.iter().enumerate() {
            let index = u32::try_from(index).expect("fewer names than a list has bytes");
            words.extend(name.words().map(|word| (word.to_vec(), index)));
            compacts.push((name.letters().to_vec(), index));
        }
        NameIndex {
            words: Words::build(words),
            compacts: Strings::build(Cut::Pairs, compacts),
            names: names.len(),
        }
    }

    /// The names (positions) whose similarity to `query` may reach `min_similarity`: every
    /// one that does, and few that do not; fewer if `watch` finds its deadline passed
    /// (the caller then has no answer).
    pub(super) fn candidates(&self, query: &Name, min_similarity: u16, watch: &Watch) -> Vec<u32> {
        if min_similarity <= 1 {
            let all = u32::try_from(self.names).expect("fewer names than bytes");
            return (0..all).collect();
        }
        // A score rounds to at least `min_similarity` from `min_similarity − 0.5`
        // thousandths; a pair of words is looked for one thousandth lower still, so
        // that the mean of floating-point figures is never above its largest term.
        let word_min = min_similarity - 1;
        #[allow(clippy::float_arithmetic)]
        let ratio = (f64::from(word_min) - 0.5) / f64::from(SIMILARITY_MAX);
        let mut names = Vec::new();
        for (index, word) in query.words().enumerate() {
            if query.words().take(index).any(|earlier| earlier == word) {
                continue;
            }
            let words = &self.words.strings;
            self.words
                .matching(word, word_min, ratio, watch, &mut |id| {
                    names.extend_from_slice(&words.names[id as usize]);
                });
            if watch.passed() {
                return names;
            }
        }

        // Letters without spaces: 1 − distance / longer ≥ ratio needs a distance of at
        // most k = (1 − ratio) × longer, so lengths within k, at least longer − k
        // characters shared and longer − 1 − 2k adjacent pairs.
        let letters = query.letters();
        let a = letters.len();
        let compacts = &self.compacts;
        #[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
        let distance_max: Vec<usize> = (0..=compacts.longest())
            .map(|b| at_most((1.0 - ratio) * a.max(b) as f64))
            .collect();
        let needed: Needed = distance_max
            .iter()
            .enumerate()
            .map(|(b, &k)| {
                (b > 0 && a.abs_diff(b) <= k).then(|| (a.max(b) - 1).saturating_sub(2 * k))
            })
            .collect();
        let counted = Counted::new(letters);
        let mut check = |id: u32, len: usize| {
            let mask = compacts.masks[id as usize];
            let shared = a.max(len) - distance_max[len];
            if counted.ours(mask).min(len) >= shared
                && !watch.spend(a)
                && counted.shared_at_most(&compacts.chars[id as usize], mask) >= shared
            {
                names.extend_from_slice(&compacts.names[id as usize]);
            }
        };
        if compacts.chars.len() <= LOOK_THROUGH_MAX {
            for (len, needed) in needed.iter().enumerate() {
                if needed.is_some() {
                    for id in compacts.ids_of_lengths(len, len) {
                        check(id, len);
                    }
                    if watch.passed() {
                        break;
                    }
                }
            }
        } else {
            let mut seen = Seen::new(compacts.chars.len());
            compacts.probe(
                letters,
                &compacts.postings,
                |token| token,
                &needed,
                &mut seen,
                &mut |id, len| {
                    check(id, len);
                    stop_if(watch.passed())
                },
            );
        }
        names.sort_unstable();
        names.dedup();
        names
    }
}
