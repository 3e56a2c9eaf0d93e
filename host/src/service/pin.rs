//! Pinning a divergence as a test vector: a payment where the shadow set's rule answered
//! otherwise than the live set's becomes a `[[case]]` of that rule's vectors file, so the
//! difference seen on live traffic is a check every later version must pass.
//!
//! The case is the stored payment at its decision's instant, expecting the answer of the
//! side the operator names (the shadow's, when the new version is right; the live one's,
//! when it is a regression). Before it is handed out it is run, in the sandbox, through
//! the live and the shadow set's versions of the rule: it must hold on the side expected
//! and fail on the other, or it pins nothing and is refused with why.
//!
//! A rule repository is no place for a customer's data, so by default the payment's
//! personal data is replaced by pseudonyms of the same shape (names, addresses, accounts,
//! remittance: each letter by a letter, each digit by a digit, an IBAN's check digits made
//! right again), drawn from a key made for this one pin: not linkable to the payment, nor
//! across pins. If the divergence does not survive that (a screening rule's answer turns
//! on the name), the refusal says so; an auditor may then ask for the case with the
//! payment as submitted. Either way the pin is an audit entry.

use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Service, ServiceError};
use crate::model::{Payment, RuleOutcome};
use crate::registry::vectors::{self, Vectors};

/// The audit action of a divergence pinned as a vector.
pub const VECTOR_PINNED: &str = "rules.vector_pinned";

/// Which side's answer the case expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The live set's answer.
    Live,
    /// The shadow set's answer.
    Shadow,
}

/// What to pin.
#[derive(Clone, Debug)]
pub struct PinRequest {
    /// The payment.
    pub payment_id: String,
    /// The rule whose answers differed.
    pub rule: String,
    /// Which answer the case expects.
    pub expect: Side,
    /// The payment as submitted, personal data and all (else pseudonymised).
    pub personal_data: bool,
    /// Who asks.
    pub actor: String,
}

/// One side's run of the case.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct CaseCheck {
    /// The rule's component there (sha256).
    pub version: String,
    /// What it answered to the case.
    pub answer: String,
    /// Whether the case's expectation held.
    pub holds: bool,
}

/// A divergence pinned.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Pinned {
    /// The rule.
    pub rule: String,
    /// The vectors file the case belongs in.
    pub file: String,
    /// The case, as TOML to append to that file.
    pub case: String,
    /// Whether the payment's personal data was replaced by pseudonyms.
    pub pseudonymised: bool,
    /// The case run through the live set's version of the rule.
    pub live: CaseCheck,
    /// The case run through the shadow set's version.
    pub shadow: CaseCheck,
    /// The shadow set's version.
    pub shadow_version: String,
}

/// Why nothing was pinned.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// No shadow set runs.
    #[error("no shadow set runs")]
    NoShadow,
    /// No such payment (or its personal data was erased).
    #[error("no such payment")]
    NotFound,
    /// The shadow set running now recorded no decision for it.
    #[error("the shadow set {0} recorded no decision for this payment")]
    NotShadowed(String),
    /// One of the sets has no rule of that name.
    #[error("the {side} set has no rule {rule:?}")]
    NoSuchRule {
        /// The rule named.
        rule: String,
        /// `live` or `shadow`.
        side: &'static str,
    },
    /// The rule answered alike on both sides for this payment.
    #[error(
        "{rule} answered {answer} on both sides for this payment; the rules that differ: {differing}"
    )]
    Agreed {
        /// The rule named.
        rule: String,
        /// Its answer.
        answer: String,
        /// The rules whose answers did differ (may be none).
        differing: String,
    },
    /// The case does not tell the two versions apart.
    #[error(
        "the case does not pin the divergence: expecting {expected}, the live rule answered {live} and the shadow rule {shadow} ({why})"
    )]
    DoesNotReproduce {
        /// What the case expects.
        expected: String,
        /// The live rule's answer to it.
        live: String,
        /// The shadow rule's.
        shadow: String,
        /// Why, as far as can be told.
        why: &'static str,
    },
    /// With pseudonyms the divergence is gone; with the payment's own data it holds.
    #[error(
        "with pseudonyms in place of the payment's personal data the two versions answer alike ({answer}); the divergence turns on that data, so the case would have to carry it (an auditor may ask for it with personal_data)"
    )]
    NeedsPersonalData {
        /// What both answered with pseudonyms.
        answer: String,
    },
    /// The store did not answer.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// Building or running the case failed (a fault of the host, not of the request).
    #[error("the case could not be built: {0}")]
    Failed(String),
}

impl Service {
    /// Pins the divergence `request` names (see the module's comment).
    pub async fn pin_divergence(&self, request: PinRequest) -> Result<Pinned, PinError> {
        let installed = self.shadow().installed().ok_or(PinError::NoShadow)?;
        let shadow_version = installed.rules.version.clone();
        let stored = self
            .store
            .payment(&request.payment_id)
            .await
            .map_err(ServiceError::from)?
            .ok_or(PinError::NotFound)?;
        let shadowed = self
            .store
            .shadowed(&request.payment_id, &shadow_version)
            .await
            .map_err(ServiceError::from)?
            .ok_or_else(|| PinError::NotShadowed(shadow_version.clone()))?;
        let answer = |decision: &crate::model::Decision, name: &str| {
            decision
                .rules
                .iter()
                .find(|run| run.name == name)
                .map(|run| run.outcome.clone())
        };
        let live_answer = answer(&stored.decision, &request.rule);
        let shadow_answer = answer(&shadowed, &request.rule);
        let chosen = match (&live_answer, &shadow_answer) {
            (Some(live), Some(shadow)) if live.summary() != shadow.summary() => {
                match request.expect {
                    Side::Live => live.clone(),
                    Side::Shadow => shadow.clone(),
                }
            }
            _ => {
                let differing: Vec<String> = stored
                    .decision
                    .rules
                    .iter()
                    .filter(|run| {
                        answer(&shadowed, &run.name).map(|o| o.summary())
                            != Some(run.outcome.summary())
                    })
                    .map(|run| run.name.clone())
                    .collect();
                return Err(PinError::Agreed {
                    rule: request.rule.clone(),
                    answer: live_answer
                        .or(shadow_answer)
                        .map_or_else(|| "nothing (it did not run)".to_owned(), |o| o.summary()),
                    differing: if differing.is_empty() {
                        "none".to_owned()
                    } else {
                        differing.join(", ")
                    },
                });
            }
        };
        let live_set = self.rules.current();
        let runtime = Arc::clone(self.rules.runtime());
        let at = stored.decision.decided_at_unix_ms;
        let payment = stored.payment;
        let request_in = request.clone();
        let shadow_set = Arc::clone(&installed.rules);
        let (case, pseudonymised, live, shadow) = tokio::task::spawn_blocking(move || {
            let run = |payment: &Payment| {
                let text = case_text(&request_in, &chosen, payment, at)?;
                let checks = check(&text, &request_in.rule, &runtime, &live_set, &shadow_set)?;
                Ok::<_, PinError>((text, checks))
            };
            if request_in.personal_data {
                let (text, (live, shadow)) = run(&payment)?;
                return Ok((text, false, live, shadow));
            }
            let pseudonyms = pseudonymised(&payment)?;
            let (text, (live, shadow)) = run(&pseudonyms)?;
            if !pins(request_in.expect, &live, &shadow) && live.answer == shadow.answer {
                // Does it hold with the payment's own data?
                let (_, (own_live, own_shadow)) = run(&payment)?;
                if pins(request_in.expect, &own_live, &own_shadow) {
                    return Err(PinError::NeedsPersonalData {
                        answer: live.answer.clone(),
                    });
                }
            }
            Ok((text, true, live, shadow))
        })
        .await
        .map_err(|e| PinError::Failed(format!("the case's run failed: {e}")))??;
        if !pins(request.expect, &live, &shadow) {
            return Err(PinError::DoesNotReproduce {
                expected: chosen_summary(&request, &live, &shadow),
                live: live.answer,
                shadow: shadow.answer,
                why: "the answers it saw may turn on what came before the payment — velocity \
                      figures a case cannot carry — or the live rule changed since it decided",
            });
        }
        let detail = serde_json::json!({
            "payment_id": request.payment_id,
            "rule": request.rule,
            "expect": request.expect,
            "shadow_version": shadow_version,
            "personal_data": !pseudonymised,
            "by": request.actor,
            "host": self.host_id,
        });
        self.store
            .audit_event(VECTOR_PINNED, &request.rule, &detail)
            .await
            .map_err(ServiceError::from)?;
        tracing::info!(
            payment = %request.payment_id,
            rule = %request.rule,
            personal_data = !pseudonymised,
            by = %request.actor,
            "a divergence pinned as a test vector"
        );
        Ok(Pinned {
            file: format!("{}{}", request.rule, vectors::FILE_SUFFIX),
            rule: request.rule,
            case,
            pseudonymised,
            live,
            shadow,
            shadow_version,
        })
    }
}

/// Whether a case's runs pin the divergence: it holds on the side expected and fails on
/// the other.
fn pins(expect: Side, live: &CaseCheck, shadow: &CaseCheck) -> bool {
    match expect {
        Side::Live => live.holds && !shadow.holds,
        Side::Shadow => shadow.holds && !live.holds,
    }
}

fn chosen_summary(request: &PinRequest, live: &CaseCheck, shadow: &CaseCheck) -> String {
    match request.expect {
        Side::Live => format!("the live answer (it answered {} to the case)", live.answer),
        Side::Shadow => format!(
            "the shadow answer (it answered {} to the case)",
            shadow.answer
        ),
    }
}

/// What a case expects of `outcome`: its verdict, and its score, rail or first reason.
fn expectation(outcome: &RuleOutcome) -> toml::Table {
    let mut expect = toml::Table::new();
    let mut set = |key: &str, value: toml::Value| {
        expect.insert(key.to_owned(), value);
    };
    match outcome {
        RuleOutcome::Pass => set("verdict", "pass".into()),
        RuleOutcome::Review { .. } => set("verdict", "review".into()),
        RuleOutcome::Reject { .. } => set("verdict", "reject".into()),
        RuleOutcome::Decline { .. } => set("verdict", "decline".into()),
        RuleOutcome::Score { score, .. } => {
            set("verdict", "score".into());
            set("score", i64::from(*score).into());
        }
        RuleOutcome::Route { rail, .. } => {
            set("verdict", "route".into());
            set("route", rail.name().into());
        }
        RuleOutcome::Failed { .. } => set("verdict", "failed".into()),
    }
    if let Some(code) = outcome.codes().first() {
        set("reason", (*code).into());
    }
    expect
}

/// The case as TOML: `[[case]]` with its name, instant, payment and expectation.
fn case_text(
    request: &PinRequest,
    chosen: &RuleOutcome,
    payment: &Payment,
    at_unix_ms: i64,
) -> Result<String, PinError> {
    let payment = toml::Value::try_from(payment)
        .map_err(|e| PinError::Failed(format!("the payment as TOML: {e}")))?;
    let side = match request.expect {
        Side::Live => "live",
        Side::Shadow => "shadow",
    };
    let mut case = toml::Table::new();
    case.insert(
        "name".to_owned(),
        format!(
            "pinned from payment {}: the {side} answer, {}",
            request.payment_id,
            chosen.summary()
        )
        .into(),
    );
    case.insert("at".to_owned(), vectors::format_instant(at_unix_ms).into());
    case.insert("payment".to_owned(), payment);
    case.insert("expect".to_owned(), expectation(chosen).into());
    let mut file = toml::Table::new();
    file.insert(
        "case".to_owned(),
        toml::Value::Array(vec![toml::Value::Table(case)]),
    );
    toml::to_string(&file).map_err(|e| PinError::Failed(format!("the case as TOML: {e}")))
}

/// Runs the case `text` through rule `name` of the live and the shadow set.
fn check(
    text: &str,
    name: &str,
    runtime: &crate::runtime::Runtime,
    live: &crate::registry::RuleSet,
    shadow: &crate::registry::RuleSet,
) -> Result<(CaseCheck, CaseCheck), PinError> {
    let run = |set: &crate::registry::RuleSet, side: &'static str| {
        let rule = set
            .rules()
            .iter()
            .find(|rule| rule.manifest.name == name)
            .ok_or_else(|| PinError::NoSuchRule {
                rule: name.to_owned(),
                side,
            })?;
        let vectors = Vectors::parse(text, rule.manifest.kind)
            .map_err(|e| PinError::Failed(format!("the case does not parse: {e}")))?;
        let report = vectors
            .run(runtime, rule, &set.policy.routing.candidates)
            .into_iter()
            .next()
            .ok_or_else(|| PinError::Failed("the case did not run".to_owned()))?;
        Ok::<CaseCheck, PinError>(CaseCheck {
            version: rule.version.clone(),
            answer: report.outcome.summary(),
            holds: report.passed(),
        })
    };
    Ok((run(live, "live")?, run(shadow, "shadow")?))
}

/// `payment` with its personal data replaced by pseudonyms of the same shape, from a key
/// made for this call (see the module's comment).
fn pseudonymised(payment: &Payment) -> Result<Payment, PinError> {
    let mut key = [0_u8; 32];
    getrandom::fill(&mut key).map_err(|e| PinError::Failed(format!("no randomness: {e}")))?;
    let mut value = serde_json::to_value(payment)
        .map_err(|e| PinError::Failed(format!("the payment as JSON: {e}")))?;
    pseudonymise(&key, &mut value, "");
    Payment::from_json(&value.to_string()).map_err(|e| {
        PinError::Failed(format!(
            "the pseudonymised payment is not valid ({}: {})",
            e.field, e.reason
        ))
    })
}

/// The fields holding no personal data: references, amounts, codes, bank identifiers,
/// dates.
const KEPT_AS_IS: [&str; 15] = [
    "end_to_end_id",
    "instruction_id",
    "uetr",
    "amount",
    "currency",
    "country",
    "bic",
    "member_id",
    "clearing_system",
    "charge_bearer",
    "purpose",
    "category_purpose",
    "requested_execution_date",
    "urgency",
    "channel",
];

fn pseudonymise(key: &[u8; 32], value: &mut serde_json::Value, field: &str) {
    match value {
        serde_json::Value::Object(map) => {
            for (name, inner) in map.iter_mut() {
                if !KEPT_AS_IS.contains(&name.as_str()) {
                    pseudonymise(key, inner, name);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                pseudonymise(key, item, field);
            }
        }
        serde_json::Value::String(text) => {
            *text = if field == "iban" {
                pseudo_iban(key, text)
            } else {
                same_shape(key, field, text)
            };
        }
        _ => {}
    }
}

/// `text` with each ASCII letter replaced by a letter (same case) and each digit by a
/// digit, drawn from SHA-256(key, field, text); every other character kept.
fn same_shape(key: &[u8; 32], field: &str, text: &str) -> String {
    let mut stream = Vec::new();
    let mut block = 0_u32;
    while stream.len() < text.len() {
        let mut hash = Sha256::new();
        hash.update(key);
        hash.update(field.as_bytes());
        hash.update([0]);
        hash.update(text.as_bytes());
        hash.update(block.to_be_bytes());
        stream.extend_from_slice(&hash.finalize());
        block += 1;
    }
    text.chars()
        .zip(stream)
        .map(|(c, byte)| match c {
            'a'..='z' => char::from(b'a' + byte % 26),
            'A'..='Z' => char::from(b'A' + byte % 26),
            '0'..='9' => char::from(b'0' + byte % 10),
            // Anything else — spaces, punctuation, letters outside ASCII — becomes a
            // letter unless it separates words.
            c if c.is_whitespace() || c.is_ascii_punctuation() => c,
            _ => char::from(b'a' + byte % 26),
        })
        .collect()
}

/// An IBAN of the same country and shape as `iban`, its check digits right.
fn pseudo_iban(key: &[u8; 32], iban: &str) -> String {
    let compact: String = iban.chars().filter(|c| !c.is_whitespace()).collect();
    let (country, rest) = compact.split_at(compact.len().min(2));
    let bban = same_shape(key, "iban", rest.get(2..).unwrap_or(""));
    // ISO 13616: BBAN + country + "00" as digits (A = 10 … Z = 35), mod 97; the check
    // digits are 98 minus that.
    let mut remainder = 0_u32;
    for c in bban.chars().chain(country.chars()).chain("00".chars()) {
        let digits = match c {
            '0'..='9' => c.to_digit(10).unwrap_or(0).to_string(),
            'A'..='Z' | 'a'..='z' => (u32::from(c.to_ascii_uppercase()) - 55).to_string(),
            _ => String::new(),
        };
        for d in digits.chars() {
            remainder = (remainder * 10 + d.to_digit(10).unwrap_or(0)) % 97;
        }
    }
    format!("{country}{:02}{bban}", 98 - remainder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_keep_the_shape_and_make_a_valid_iban() {
        let key = [7_u8; 32];
        let name = same_shape(&key, "name", "Heinz Mueller-Lang 42");
        assert_ne!(name, "Heinz Mueller-Lang 42");
        assert_eq!(name.len(), "Heinz Mueller-Lang 42".len());
        assert_eq!(&name[5..6], " ");
        assert_eq!(&name[13..14], "-");
        assert!(name[19..].chars().all(|c| c.is_ascii_digit()));
        for iban in [
            "AT611904300234573201",
            "GB29NWBK60161331926819",
            "DE89370400440532013000",
        ] {
            let pseudo = pseudo_iban(&key, iban);
            assert_ne!(pseudo, iban);
            assert_eq!(&pseudo[..2], &iban[..2]);
            assert!(
                pseudo.parse::<iban::Iban>().is_ok(),
                "{pseudo} (from {iban}) is a valid IBAN"
            );
        }
        // Another key, other pseudonyms.
        assert_ne!(
            pseudo_iban(&[8; 32], "AT611904300234573201"),
            pseudo_iban(&key, "AT611904300234573201")
        );
    }

    #[test]
    fn a_pseudonymised_payment_keeps_amounts_codes_and_banks_and_none_of_the_parties() {
        let text = include_str!("../../../examples/payments/weak-match-review.json");
        let payment = Payment::from_json(text).unwrap();
        let pseudo = pseudonymised(&payment).unwrap();
        let json = serde_json::to_string(&pseudo).unwrap();
        for gone in [
            "Atlas Freight",
            "Heinz Mueller",
            "GB29NWBK60161331926819",
            "EC2V 7HH",
            "Consulting fees",
        ] {
            assert!(!json.contains(gone), "{gone} in {json}");
        }
        for kept in [
            "7300.00", "\"EUR\"", "NWBKGB2L", "BKAUATWW", "\"AT\"", "\"GB\"",
        ] {
            assert!(json.contains(kept), "{kept} in {json}");
        }
    }
}
