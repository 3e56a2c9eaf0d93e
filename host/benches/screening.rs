//! Run: `cargo bench -p payrules --bench screening`
//!
//! The host's sanctions look-up (`lists.fuzzy-match`), what `sanctions-screening` asks for
//! each named party of a payment: on the example rules' list as shipped (20 entries) and
//! on a generated list the size of OFAC's SDN list (18,000 entries with aliases,
//! `fixtures/sdn_like.rs`). The queries are the example payment's two party names (a
//! payment that matches nothing: the common case), a listed name written differently
//! (a hit), and, as the floor of any matcher, normalising the two names alone; and what
//! reading and indexing each list costs at load. Each is
//! measured asked for the first time (`fuzzy_match_unremembered`: the index and the
//! measure) and asked again (`fuzzy_match`: the list remembers its answers, as it does for
//! a counterparty paid again).

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use payrules::lists::{ListMatch, NamedList, Unscreened};

#[path = "fixtures/sdn_like.rs"]
mod sdn_like;

/// The parties of `examples/payments/sepa-instant-supplier.json`.
const PAYMENT_NAMES: [&str; 2] = ["Muster Maschinenbau GmbH", "Van Dijk Onderdelen B.V."];
/// The example rule's `weak-match`: what it asks the host for.
const WEAK_MATCH: u16 = 850;

/// How a name is asked about: for the first time, or as the rule asks (remembered).
type Ask = fn(&NamedList, &str, u16, usize, Option<Instant>) -> Result<Vec<ListMatch>, Unscreened>;
const FIRST_TIME: Ask = NamedList::fuzzy_match_unremembered;
const AGAIN: Ask = NamedList::fuzzy_match;

/// How many matches the names have, asked `ask`.
fn screen_with(ask: Ask, list: &NamedList, names: &[&str]) -> usize {
    names
        .iter()
        .map(|name| {
            ask(list, black_box(name), WEAK_MATCH, 3, None)
                .expect("short names")
                .len()
        })
        .sum()
}

fn screen(list: &NamedList, names: &[&str]) -> usize {
    screen_with(FIRST_TIME, list, names)
}

fn screen_again(list: &NamedList, names: &[&str]) -> usize {
    screen_with(AGAIN, list, names)
}

fn screening(c: &mut Criterion) {
    let shipped = NamedList::parse(
        include_bytes!("../../examples/rules/lists/sdn-sample.csv"),
        true,
    )
    .expect("the example list parses");
    let (csv, entries) = sdn_like::generate(sdn_like::ENTRIES);
    let large = NamedList::parse(csv.as_bytes(), true).expect("the generated list parses");
    // A listed individual, written with the given name first and one letter dropped.
    let (listed, _) = &entries[1_234];
    let listed_hit = {
        let (family, given) = listed.split_once(", ").expect("an individual");
        let mut family = family.to_owned();
        family.remove(family.len() / 2);
        format!("{given} {family}")
    };
    assert_eq!(
        screen(&shipped, &PAYMENT_NAMES),
        0,
        "the payment matches nothing"
    );
    assert_eq!(
        screen(&large, &PAYMENT_NAMES),
        0,
        "the payment matches nothing"
    );
    assert!(
        screen(&large, &[listed_hit.as_str()]) > 0,
        "{listed_hit:?} is a hit"
    );

    let mut group = c.benchmark_group("screening");
    group.bench_function("normalise the payment's 2 names (floor)", |b| {
        b.iter(|| {
            PAYMENT_NAMES
                .iter()
                .map(|name| payrules_names::normalize(black_box(name)).len())
                .sum::<usize>()
        })
    });
    group.bench_function("the payment's 2 names, shipped list (20 entries)", |b| {
        b.iter(|| screen(&shipped, &PAYMENT_NAMES))
    });
    group.bench_function("the payment's 2 names asked again, shipped list", |b| {
        b.iter(|| screen_again(&shipped, &PAYMENT_NAMES))
    });
    group.bench_function("a listed name, shipped list", |b| {
        b.iter(|| screen(&shipped, &["Kim Jong Eun"]))
    });
    group.bench_function(
        "the payment's 2 names, SDN-sized list (18,000 entries)",
        |b| b.iter(|| screen(&large, &PAYMENT_NAMES)),
    );
    group.bench_function("the payment's 2 names asked again, SDN-sized list", |b| {
        b.iter(|| screen_again(&large, &PAYMENT_NAMES))
    });
    group.bench_function("a listed name misspelt, SDN-sized list", |b| {
        b.iter(|| screen(&large, &[listed_hit.as_str()]))
    });
    group.finish();

    // What a rule set with such a list pays at load (and at each reload): reading the CSV,
    // normalising every name and alias, building the index.
    let mut load = c.benchmark_group("screening load");
    load.sample_size(10);
    load.bench_function("read and index the SDN-sized list", |b| {
        b.iter(|| {
            NamedList::parse(black_box(csv.as_bytes()), true)
                .expect("parses")
                .len()
        })
    });
    load.bench_function("read and index the shipped list", |b| {
        b.iter(|| {
            NamedList::parse(
                black_box(include_bytes!("../../examples/rules/lists/sdn-sample.csv")),
                true,
            )
            .expect("parses")
            .len()
        })
    });
    load.finish();
}

criterion_group!(benches, screening);
criterion_main!(benches);
