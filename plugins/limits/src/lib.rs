//! Compliance rule `limits`: amount limits, blocked countries, and the party data a
//! cross-border payment must carry.
//!
//! - `max-amount.<CCY>`: the largest payment in a currency (AM02 over it); a currency
//!   with no entry has no limit here.
//! - `instant-max-amount.<CCY>`: the instant rails' scheme cap for payments that ask to
//!   settle instantly (SEPA Instant 100,000 EUR; FedNow 1,000,000 USD; AM02 over it).
//! - `blocked-countries`: countries under embargo; a debtor, creditor, ultimate party or
//!   agent in one rejects with RR04.
//! - cross-border payments (debtor and creditor in different countries) must name the
//!   debtor's address (town or address lines, RR02) and the creditor's country (RR03), as
//!   the EU transfer-of-funds regulation and FATF recommendation 16 require.

use payrules_sdk::config::{self, Source};
use payrules_sdk::money::format_minor_units;
use payrules_sdk::{ComplianceRule, Payment, Reason, Urgency, Verdict};

/// What the rule is configured with, read once per payment.
#[derive(Debug, Default)]
pub struct Limits {
    /// The maximum for this payment's currency, in its minor units.
    pub max_amount: Option<u64>,
    /// The instant maximum for this payment's currency, in its minor units.
    pub instant_max_amount: Option<u64>,
    /// ISO country codes under embargo.
    pub blocked_countries: Vec<String>,
}

impl Limits {
    /// Reads the limits that apply to `payment` from `config`.
    pub fn read(payment: &Payment, config: &impl Source) -> Limits {
        let currency = &payment.amount.currency;
        let scale = payment.amount.scale;
        Limits {
            max_amount: config.amount(&format!("max-amount.{currency}"), scale),
            instant_max_amount: config.amount(&format!("instant-max-amount.{currency}"), scale),
            blocked_countries: config.list("blocked-countries"),
        }
    }
}

/// The verdict for `payment` under `limits`: the first limit it breaks rejects it.
pub fn verdict(payment: &Payment, limits: &Limits) -> Verdict {
    let amount = &payment.amount;
    let shown = |minor: u64| {
        format!(
            "{} {}",
            format_minor_units(minor, amount.scale),
            amount.currency
        )
    };
    if let Some(max) = limits.max_amount
        && amount.minor_units > max
    {
        return Verdict::Reject(Reason::new(
            "AM02",
            format!(
                "{} is over the {} limit",
                shown(amount.minor_units),
                shown(max)
            ),
        ));
    }
    if payment.urgency == Urgency::Instant
        && let Some(max) = limits.instant_max_amount
        && amount.minor_units > max
    {
        return Verdict::Reject(Reason::new(
            "AM02",
            format!(
                "{} is over the {} instant payment limit",
                shown(amount.minor_units),
                shown(max)
            ),
        ));
    }
    let mut places: Vec<(String, Option<&str>)> = payment
        .named_parties()
        .into_iter()
        .map(|(role, party)| (role.to_owned(), party.country()))
        .collect();
    places.push(("debtor agent".to_owned(), payment.debtor_agent.country()));
    places.push((
        "creditor agent".to_owned(),
        payment.creditor_agent.country(),
    ));
    for (index, agent) in payment.intermediary_agents.iter().enumerate() {
        places.push((format!("intermediary agent {}", index + 1), agent.country()));
    }
    for (role, country) in places {
        if let Some(country) = country
            && limits
                .blocked_countries
                .iter()
                .any(|blocked| blocked == country)
        {
            return Verdict::Reject(Reason::new(
                "RR04",
                format!("the {role} is in {country}, a blocked country"),
            ));
        }
    }
    if payment.is_cross_border() {
        let address_given = payment.debtor.address.as_ref().is_some_and(|address| {
            address.town_name.is_some() || !address.address_lines.is_empty()
        });
        if !address_given {
            return Verdict::Reject(Reason::new(
                "RR02",
                "a cross-border payment must give the debtor's address (town or address lines)",
            ));
        }
        if payment.creditor.country().is_none() {
            return Verdict::Reject(Reason::new(
                "RR03",
                "a cross-border payment must give the creditor's country",
            ));
        }
    }
    Verdict::Pass
}

struct LimitsRule;

impl ComplianceRule for LimitsRule {
    fn check(payment: Payment) -> Verdict {
        let limits = Limits::read(&payment, &config::Host);
        verdict(&payment, &limits)
    }
}

payrules_sdk::compliance_rule!(LimitsRule);

#[cfg(test)]
mod tests {
    use super::*;
    use payrules_sdk::testing::sepa_payment;
    use payrules_sdk::{Agent, Party};

    fn limits() -> Limits {
        Limits {
            max_amount: Some(100_000_000),
            instant_max_amount: Some(10_000_000),
            blocked_countries: vec!["KP".to_owned(), "IR".to_owned()],
        }
    }

    fn code(verdict: Verdict) -> Option<String> {
        match verdict {
            Verdict::Reject(reason) => Some(reason.code),
            _ => None,
        }
    }

    #[test]
    fn an_ordinary_payment_passes() {
        assert_eq!(code(verdict(&sepa_payment(), &limits())), None);
    }

    #[test]
    fn amounts_over_the_currency_limit_are_rejected_with_am02() {
        let mut payment = sepa_payment();
        payment.amount.minor_units = 100_000_001;
        assert_eq!(code(verdict(&payment, &limits())).as_deref(), Some("AM02"));
        payment.amount.minor_units = 100_000_000;
        assert_eq!(code(verdict(&payment, &limits())), None);
    }

    #[test]
    fn instant_payments_have_the_instant_cap() {
        let mut payment = sepa_payment();
        payment.amount.minor_units = 10_000_001;
        assert_eq!(code(verdict(&payment, &limits())), None);
        payment.urgency = Urgency::Instant;
        assert_eq!(code(verdict(&payment, &limits())).as_deref(), Some("AM02"));
    }

    #[test]
    fn any_party_or_agent_in_a_blocked_country_is_rejected_with_rr04() {
        let mut payment = sepa_payment();
        payment.ultimate_creditor = Some(Party {
            name: Some("Someone".to_owned()),
            country: Some("KP".to_owned()),
            address: None,
            account: None,
        });
        assert_eq!(code(verdict(&payment, &limits())).as_deref(), Some("RR04"));
        let mut payment = sepa_payment();
        payment.intermediary_agents.push(Agent {
            bic: Some("BMJIIRTH".to_owned()),
            member_id: None,
            name: None,
            country: None,
        });
        assert_eq!(code(verdict(&payment, &limits())).as_deref(), Some("RR04"));
    }

    #[test]
    fn cross_border_payments_need_the_debtor_address() {
        let mut payment = sepa_payment();
        assert!(payment.is_cross_border());
        payment.debtor.address = None;
        assert_eq!(code(verdict(&payment, &limits())).as_deref(), Some("RR02"));
        payment.creditor.country = Some("DE".to_owned());
        payment.creditor.account = Some(payrules_sdk::AccountId::Iban(
            "DE02120300000000202051".to_owned(),
        ));
        payment.creditor_agent.country = Some("DE".to_owned());
        assert!(!payment.is_cross_border());
        assert_eq!(code(verdict(&payment, &limits())), None);
    }
}
