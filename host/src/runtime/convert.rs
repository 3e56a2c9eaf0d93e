//! Between the model and the contract: the payment a rule receives, and the checks every
//! answer passes before it becomes part of a decision (its size, its reason codes, its
//! score arithmetic, its rail).

use super::bindings::payrules::rules::types as wit;
use super::{RuleFailure, RuleLimits};
use crate::model::{
    Account, Agent, ChargeBearer, FailureKind, Party, Payment, Rail, Reason, RiskReason,
    RuleOutcome, Urgency, reason_code::is_status_reason_code,
};

/// The payment as the contract spells it.
pub(super) fn guest_payment(payment: &Payment, payment_id: &str) -> wit::Payment {
    let money = payment.money();
    wit::Payment {
        payment_id: payment_id.to_owned(),
        end_to_end_id: payment.end_to_end_id.to_string(),
        instruction_id: payment.instruction_id.as_ref().map(ToString::to_string),
        uetr: payment.uetr.as_ref().map(|u| u.as_str().to_owned()),
        amount: wit::Money {
            minor_units: money.minor_units(),
            currency: money.currency().code().to_owned(),
            scale: money.currency().minor_digits(),
        },
        debtor: guest_party(&payment.debtor),
        debtor_agent: guest_agent(&payment.debtor_agent),
        creditor: guest_party(&payment.creditor),
        creditor_agent: guest_agent(&payment.creditor_agent),
        ultimate_debtor: payment.ultimate_debtor.as_ref().map(guest_party),
        ultimate_creditor: payment.ultimate_creditor.as_ref().map(guest_party),
        intermediary_agents: payment
            .intermediary_agents
            .iter()
            .map(guest_agent)
            .collect(),
        charge_bearer: payment.charge_bearer.map(|bearer| match bearer {
            ChargeBearer::DEBT => wit::ChargeBearer::Debt,
            ChargeBearer::CRED => wit::ChargeBearer::Cred,
            ChargeBearer::SHAR => wit::ChargeBearer::Shar,
            ChargeBearer::SLEV => wit::ChargeBearer::Slev,
        }),
        purpose: payment.purpose.as_ref().map(ToString::to_string),
        category_purpose: payment.category_purpose.as_ref().map(ToString::to_string),
        remittance: payment.remittance.as_ref().map(ToString::to_string),
        requested_execution_date: payment.requested_execution_date.map(|date| wit::Date {
            year: date.year,
            month: date.month,
            day: date.day,
        }),
        urgency: match payment.urgency {
            Urgency::Normal => wit::Urgency::Normal,
            Urgency::Urgent => wit::Urgency::Urgent,
            Urgency::Instant => wit::Urgency::Instant,
        },
        channel: payment.channel.as_ref().map(ToString::to_string),
    }
}

fn guest_party(party: &Party) -> wit::Party {
    wit::Party {
        name: party.name.as_ref().map(ToString::to_string),
        country: party.country.as_ref().map(|c| c.as_str().to_owned()),
        address: party.address.as_ref().map(|address| wit::PostalAddress {
            street_name: address.street_name.as_ref().map(ToString::to_string),
            building_number: address.building_number.as_ref().map(ToString::to_string),
            post_code: address.post_code.as_ref().map(ToString::to_string),
            town_name: address.town_name.as_ref().map(ToString::to_string),
            country_sub_division: address
                .country_sub_division
                .as_ref()
                .map(ToString::to_string),
            address_lines: address
                .address_lines
                .lines()
                .iter()
                .map(ToString::to_string)
                .collect(),
        }),
        account: party.account.as_ref().map(guest_account),
    }
}

fn guest_account(account: &Account) -> wit::AccountId {
    match (&account.iban, &account.id) {
        (Some(iban), _) => wit::AccountId::Iban(iban.as_str().to_owned()),
        (None, id) => {
            wit::AccountId::Other(id.as_ref().map(ToString::to_string).unwrap_or_default())
        }
    }
}

fn guest_agent(agent: &Agent) -> wit::Agent {
    wit::Agent {
        bic: agent.bic.as_ref().map(|bic| bic.as_str().to_owned()),
        member_id: agent.member_id.as_ref().map(ToString::to_string),
        name: agent.name.as_ref().map(ToString::to_string),
        country: agent
            .country
            .as_ref()
            .map(|c| c.as_str().to_owned())
            .or_else(|| agent.bic.as_ref().map(|bic| bic.country().to_owned())),
    }
}

pub(super) fn guest_rail(rail: Rail) -> wit::Rail {
    match rail {
        Rail::Rtp => wit::Rail::Rtp,
        Rail::Fednow => wit::Rail::Fednow,
        Rail::Ach => wit::Rail::Ach,
        Rail::SepaInstant => wit::Rail::SepaInstant,
        Rail::SepaCreditTransfer => wit::Rail::SepaCreditTransfer,
        Rail::Swift => wit::Rail::Swift,
        Rail::BookTransfer => wit::Rail::BookTransfer,
    }
}

fn model_rail(rail: wit::Rail) -> Rail {
    match rail {
        wit::Rail::Rtp => Rail::Rtp,
        wit::Rail::Fednow => Rail::Fednow,
        wit::Rail::Ach => Rail::Ach,
        wit::Rail::SepaInstant => Rail::SepaInstant,
        wit::Rail::SepaCreditTransfer => Rail::SepaCreditTransfer,
        wit::Rail::Swift => Rail::Swift,
        wit::Rail::BookTransfer => Rail::BookTransfer,
    }
}

/// Bytes an item of a returned list counts for besides its strings.
const ITEM_OVERHEAD_BYTES: u64 = 16;

fn invalid(message: String) -> RuleFailure {
    RuleFailure {
        kind: FailureKind::InvalidOutput,
        message,
    }
}

fn check_size(bytes: u64, limits: &RuleLimits) -> Result<(), RuleFailure> {
    if bytes > limits.output_bytes_max {
        return Err(RuleFailure {
            kind: FailureKind::OutputTooLarge,
            message: format!(
                "the answer is {bytes} bytes, more than the rule's output-bytes-max of {}",
                limits.output_bytes_max
            ),
        });
    }
    Ok(())
}

fn reason_bytes(reason: &wit::Reason) -> u64 {
    (reason.code.len() + reason.message.len()) as u64 + ITEM_OVERHEAD_BYTES
}

/// A reject or decline reason: an ISO 20022 status reason code and a message.
fn iso_reason(reason: wit::Reason) -> Result<Reason, RuleFailure> {
    if !is_status_reason_code(&reason.code) {
        return Err(invalid(format!(
            "{:?} is not an ISO 20022 external status reason code",
            reason.code
        )));
    }
    model_reason(reason)
}

/// A review finding: an ISO code or a lower-kebab-case rule code.
fn finding(reason: wit::Reason) -> Result<Reason, RuleFailure> {
    if !is_status_reason_code(&reason.code) && !is_rule_code(&reason.code) {
        return Err(invalid(format!(
            "{:?} is neither an ISO 20022 status reason code nor a lower-kebab-case rule code",
            reason.code
        )));
    }
    model_reason(reason)
}

fn model_reason(reason: wit::Reason) -> Result<Reason, RuleFailure> {
    if reason.message.trim().is_empty() {
        return Err(invalid(format!(
            "the reason {} has no message",
            reason.code
        )));
    }
    Ok(Reason {
        code: reason.code,
        message: reason.message,
        rule: None,
    })
}

/// Lower-kebab-case, 1 to 64 characters: `debtor-velocity`.
fn is_rule_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && !code.starts_with('-')
        && !code.ends_with('-')
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub(super) fn verdict(
    verdict: wit::Verdict,
    limits: &RuleLimits,
) -> Result<RuleOutcome, RuleFailure> {
    match verdict {
        wit::Verdict::Pass => Ok(RuleOutcome::Pass),
        wit::Verdict::Review(findings) => {
            check_size(findings.iter().map(reason_bytes).sum(), limits)?;
            if findings.is_empty() {
                return Err(invalid(
                    "a review verdict must carry at least one finding".to_owned(),
                ));
            }
            let findings = findings
                .into_iter()
                .map(finding)
                .collect::<Result<_, _>>()?;
            Ok(RuleOutcome::Review { findings })
        }
        wit::Verdict::Reject(reason) => {
            check_size(reason_bytes(&reason), limits)?;
            Ok(RuleOutcome::Reject {
                reason: iso_reason(reason)?,
            })
        }
    }
}

pub(super) fn risk(risk: wit::Risk, limits: &RuleLimits) -> Result<RuleOutcome, RuleFailure> {
    let bytes = risk
        .reasons
        .iter()
        .map(|r| (r.code.len() + r.message.len()) as u64 + ITEM_OVERHEAD_BYTES)
        .sum();
    check_size(bytes, limits)?;
    let total: u32 = risk.reasons.iter().map(|r| u32::from(r.points)).sum();
    let expected = total.min(1000);
    if u32::from(risk.score) != expected {
        return Err(invalid(format!(
            "the score is {} but its reasons add up to {expected} (capped at 1000)",
            risk.score
        )));
    }
    let mut reasons = Vec::with_capacity(risk.reasons.len());
    for reason in risk.reasons {
        if reason.points == 0 || reason.points > 1000 || !is_rule_code(&reason.code) {
            return Err(invalid(format!(
                "the risk reason {:?} must have a lower-kebab-case code and 1..=1000 points, not {}",
                reason.code, reason.points
            )));
        }
        reasons.push(RiskReason {
            code: reason.code,
            points: reason.points,
            message: reason.message,
        });
    }
    Ok(RuleOutcome::Score {
        score: risk.score,
        reasons,
    })
}

pub(super) fn route(
    answer: Result<wit::RouteChoice, wit::Reason>,
    candidates: &[Rail],
    limits: &RuleLimits,
) -> Result<RuleOutcome, RuleFailure> {
    match answer {
        Ok(choice) => {
            check_size(
                choice.explanation.len() as u64 + ITEM_OVERHEAD_BYTES,
                limits,
            )?;
            let rail = model_rail(choice.rail);
            if !candidates.contains(&rail) {
                return Err(invalid(format!(
                    "it chose {rail:?}, which is not among the candidates offered"
                )));
            }
            Ok(RuleOutcome::Route {
                rail,
                explanation: choice.explanation,
            })
        }
        Err(reason) => {
            check_size(reason_bytes(&reason), limits)?;
            Ok(RuleOutcome::Decline {
                reason: iso_reason(reason)?,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(code: &str) -> wit::Reason {
        wit::Reason {
            code: code.to_owned(),
            message: "because".to_owned(),
        }
    }

    #[test]
    fn rejects_must_carry_an_iso_code() {
        let limits = RuleLimits::default();
        assert!(verdict(wit::Verdict::Reject(reason("RR04")), &limits).is_ok());
        let failure = verdict(wit::Verdict::Reject(reason("XX01")), &limits).expect_err("bad code");
        assert_eq!(failure.kind, FailureKind::InvalidOutput);
    }

    #[test]
    fn review_findings_take_iso_or_rule_codes() {
        let limits = RuleLimits::default();
        let ok = verdict(
            wit::Verdict::Review(vec![reason("sanctions-weak-match"), reason("RR04")]),
            &limits,
        );
        assert!(ok.is_ok());
        for bad in ["Weak Match", "", "-x", "x".repeat(65).as_str()] {
            assert!(
                verdict(wit::Verdict::Review(vec![reason(bad)]), &limits).is_err(),
                "{bad:?}"
            );
        }
        assert!(verdict(wit::Verdict::Review(Vec::new()), &limits).is_err());
    }

    #[test]
    fn a_score_must_equal_its_reasons_points() {
        let limits = RuleLimits::default();
        let reasons = vec![
            wit::RiskReason {
                code: "a".into(),
                points: 300,
                message: "m".into(),
            },
            wit::RiskReason {
                code: "b".into(),
                points: 900,
                message: "m".into(),
            },
        ];
        assert!(
            risk(
                wit::Risk {
                    score: 1000,
                    reasons: reasons.clone()
                },
                &limits
            )
            .is_ok()
        );
        let failure = risk(
            wit::Risk {
                score: 999,
                reasons,
            },
            &limits,
        )
        .expect_err("wrong sum");
        assert_eq!(failure.kind, FailureKind::InvalidOutput);
    }

    #[test]
    fn answers_over_the_output_cap_are_failures() {
        let limits = RuleLimits {
            output_bytes_max: 100,
            ..RuleLimits::default()
        };
        let findings = vec![wit::Reason {
            code: "big".into(),
            message: "x".repeat(200),
        }];
        let failure = verdict(wit::Verdict::Review(findings), &limits).expect_err("too big");
        assert_eq!(failure.kind, FailureKind::OutputTooLarge);
    }

    #[test]
    fn a_route_must_be_one_of_the_candidates() {
        let limits = RuleLimits::default();
        let choice = wit::RouteChoice {
            rail: wit::Rail::Swift,
            explanation: "x".into(),
        };
        assert!(route(Ok(choice.clone()), &[Rail::Swift], &limits).is_ok());
        let failure = route(Ok(choice), &[Rail::Rtp], &limits).expect_err("not offered");
        assert_eq!(failure.kind, FailureKind::InvalidOutput);
    }
}
