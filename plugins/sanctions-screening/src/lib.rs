//! Compliance rule `sanctions-screening`: screens the debtor, the creditor and the
//! ultimate parties against a sanctions list with fuzzy name matching.
//!
//! A name at least `strong-match` similar (0..=1000) to a listed name or alias rejects the
//! payment with RR04 (regulatory reason); a name at least `weak-match` similar holds it
//! for review, with the matched entry in the finding. The host does the matching
//! (`lists.fuzzy-match`, normalised names, word-order-insensitive Jaro-Winkler); this rule
//! decides what a match means.
//!
//! A name written to slip past screening — invisible characters, look-alike letters of
//! another script, fullwidth forms, letters spelled out one by one — is screened as the
//! name it shows (the host's normalisation sees through each trick), and is itself a
//! finding (`name-disguised`) that holds the payment for review when nothing rejects it.
//!
//! Configuration: `list` (default "sanctions"), `strong-match` (default 930),
//! `weak-match` (default 850).

use payrules_sdk::config::{self, Source};
use payrules_sdk::lists::{self, ListMatch};
use payrules_sdk::names::{Disguise, disguises};
use payrules_sdk::{ComplianceRule, Payment, Reason, Verdict};

/// Default similarity at or above which a match rejects.
pub const STRONG_MATCH_DEFAULT: u16 = 930;
/// Default similarity at or above which a match holds for review.
pub const WEAK_MATCH_DEFAULT: u16 = 850;

/// One screened party and what the list said about its name.
#[derive(Debug)]
pub struct PartyHits {
    /// "debtor", "creditor", "ultimate debtor", "ultimate creditor".
    pub role: &'static str,
    /// The name as in the payment.
    pub name: String,
    /// The list entries it resembles, best first.
    pub matches: Vec<ListMatch>,
}

/// A party whose name is written with tricks that hide what it says.
#[derive(Debug)]
pub struct DisguisedName {
    /// "debtor", "creditor", "ultimate debtor", "ultimate creditor".
    pub role: &'static str,
    /// The name as in the payment.
    pub name: String,
    /// The tricks it uses.
    pub disguises: Vec<Disguise>,
}

/// The verdict for the screened parties: reject on the strongest match at or above
/// `strong_match`; otherwise review with one finding per party with a match and one per
/// disguised name; otherwise pass.
pub fn verdict(hits: &[PartyHits], disguised: &[DisguisedName], strong_match: u16) -> Verdict {
    let strongest = hits
        .iter()
        .filter_map(|hit| hit.matches.first().map(|best| (hit, best)))
        .max_by_key(|(_, best)| best.similarity);
    if let Some((hit, best)) = strongest
        && best.similarity >= strong_match
    {
        return Verdict::Reject(Reason::new(
            "RR04",
            format!(
                "{} {:?} matches sanctions entry {} {:?} ({}) with similarity {}/1000",
                hit.role, hit.name, best.entry_id, best.matched_name, best.program, best.similarity
            ),
        ));
    }
    let mut findings: Vec<Reason> = hits
        .iter()
        .filter_map(|hit| {
            hit.matches.first().map(|best| {
                Reason::new(
                    "sanctions-weak-match",
                    format!(
                        "{} {:?} resembles sanctions entry {} {:?} (matched {:?}, program {}) with similarity {}/1000",
                        hit.role,
                        hit.name,
                        best.entry_id,
                        best.entry_name,
                        best.matched_name,
                        best.program,
                        best.similarity
                    ),
                )
            })
        })
        .collect();
    findings.extend(disguised.iter().map(|party| {
        let tricks: Vec<&str> = party.disguises.iter().map(|d| d.describe()).collect();
        Reason::new(
            "name-disguised",
            format!(
                "{} name {:?} is written with {}",
                party.role,
                party.name.escape_default().to_string(),
                tricks.join(", ")
            ),
        )
    }));
    if findings.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Review(findings)
    }
}

/// Which list to screen against and what a match means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Screening {
    /// The list's name in the manifest.
    pub list: String,
    /// Similarity at or above which a match rejects.
    pub strong_match: u16,
    /// Similarity at or above which a match holds for review.
    pub weak_match: u16,
}

impl Screening {
    /// Reads the screening settings from `config`.
    pub fn read(config: &impl Source) -> Screening {
        Screening {
            list: config.get("list").unwrap_or_else(|| "sanctions".to_owned()),
            strong_match: config.number("strong-match", STRONG_MATCH_DEFAULT),
            weak_match: config.number("weak-match", WEAK_MATCH_DEFAULT),
        }
    }
}

struct SanctionsScreening;

impl ComplianceRule for SanctionsScreening {
    fn check(payment: Payment) -> Verdict {
        let Screening {
            list,
            strong_match,
            weak_match,
        } = Screening::read(&config::Host);
        let mut hits = Vec::new();
        let mut disguised = Vec::new();
        for (role, party) in payment.named_parties() {
            let Some(name) = &party.name else { continue };
            let tricks = disguises(name);
            if !tricks.is_empty() {
                disguised.push(DisguisedName {
                    role,
                    name: name.clone(),
                    disguises: tricks,
                });
            }
            match lists::fuzzy_match(&list, name, weak_match, 3) {
                Ok(matches) if !matches.is_empty() => hits.push(PartyHits {
                    role,
                    name: name.clone(),
                    matches,
                }),
                Ok(_) => {}
                Err(error) => {
                    return Verdict::Review(vec![Reason::new(
                        "sanctions-list-unavailable",
                        format!(
                            "the sanctions list could not be read ({error:?}); screening was not done"
                        ),
                    )]);
                }
            }
        }
        verdict(&hits, &disguised, strong_match)
    }
}

payrules_sdk::compliance_rule!(SanctionsScreening);

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(role: &'static str, similarity: u16) -> PartyHits {
        PartyHits {
            role,
            name: "Kim Jong Un".to_owned(),
            matches: vec![ListMatch {
                entry_id: "7001".to_owned(),
                entry_name: "KIM, Jong Un".to_owned(),
                matched_name: "KIM, Jong Un".to_owned(),
                similarity,
                program: "DPRK".to_owned(),
            }],
        }
    }

    #[test]
    fn no_match_passes() {
        assert!(matches!(
            verdict(&[], &[], STRONG_MATCH_DEFAULT),
            Verdict::Pass
        ));
    }

    #[test]
    fn a_strong_match_rejects_with_rr04_naming_the_entry() {
        let Verdict::Reject(reason) = verdict(&[hit("creditor", 1000)], &[], STRONG_MATCH_DEFAULT)
        else {
            panic!("expected a reject");
        };
        assert_eq!(reason.code, "RR04");
        assert!(
            reason.message.contains("7001") && reason.message.contains("creditor"),
            "{}",
            reason.message
        );
    }

    #[test]
    fn a_weak_match_holds_for_review_with_the_matched_entry() {
        let Verdict::Review(findings) =
            verdict(&[hit("ultimate debtor", 880)], &[], STRONG_MATCH_DEFAULT)
        else {
            panic!("expected a review");
        };
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].code, "sanctions-weak-match");
        assert!(
            findings[0].message.contains("KIM, Jong Un") && findings[0].message.contains("880")
        );
    }

    #[test]
    fn the_strongest_match_of_any_party_decides() {
        let verdict = verdict(
            &[hit("debtor", 860), hit("creditor", 950)],
            &[],
            STRONG_MATCH_DEFAULT,
        );
        assert!(matches!(verdict, Verdict::Reject(_)));
    }

    fn disguised(role: &'static str) -> DisguisedName {
        DisguisedName {
            role,
            name: "K\u{200B}im".to_owned(),
            disguises: vec![Disguise::InvisibleCharacters],
        }
    }

    #[test]
    fn a_disguised_name_alone_holds_for_review_naming_the_trick() {
        let Verdict::Review(findings) = verdict(&[], &[disguised("debtor")], STRONG_MATCH_DEFAULT)
        else {
            panic!("expected a review");
        };
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].code, "name-disguised");
        assert!(
            findings[0].message.contains("invisible characters")
                && findings[0].message.contains("\\u{200b}"),
            "{}",
            findings[0].message
        );
    }

    #[test]
    fn a_strong_match_rejects_even_when_the_name_is_also_disguised() {
        let verdict = verdict(
            &[hit("creditor", 1000)],
            &[disguised("creditor")],
            STRONG_MATCH_DEFAULT,
        );
        assert!(matches!(verdict, Verdict::Reject(_)));
    }
}
