//! Fraud rule `velocity-risk`: scores a payment from what this host has already accepted
//! for its parties, and from where the money goes. Every point has a reason.
//!
//! | signal | points (config key) | when |
//! |---|---|---|
//! | debtor burst | 250 (`points.debtor-burst`) | the debtor account sent `debtor-hourly-count` (5) or more payments in the last hour |
//! | debtor daily velocity | 150 (`points.debtor-daily`) | ... `debtor-daily-count` (20) or more in the last 24 hours |
//! | repeated pair | 150 (`points.pair-daily`) | this debtor paid this creditor `pair-daily-count` (3) or more times in 24 hours |
//! | unusual amount | 300 (`points.unusual-amount`) | the amount is more than `unusual-amount-multiple` (5) times the debtor's 30-day mean, with at least 3 payments to compare |
//! | new creditor | 200 (`points.new-creditor`) | no payment from this debtor to this creditor in 90 days, and the amount is at least `new-creditor-amount` (1000) |
//! | high-risk corridor | 250 (`points.high-risk-corridor`) | the creditor's country is in `high-risk-countries`, or `DEBTOR-CREDITOR` country pair is in `high-risk-corridors` |

use payrules_sdk::config::{self, Source};
use payrules_sdk::money::format_minor_units;
use payrules_sdk::velocity::{self, VelocityScope};
use payrules_sdk::{FraudRule, Payment, Prepare, Risk, RiskReason};

const HOUR_SECONDS: u32 = 3_600;
const DAY_SECONDS: u32 = 86_400;

/// What the host's velocity figures say about the payment's parties.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signals {
    /// Payments from the debtor account in the last hour.
    pub debtor_last_hour: u32,
    /// ... in the last 24 hours.
    pub debtor_last_day: u32,
    /// Count and sum (minor units) from the debtor account in the last 30 days.
    pub debtor_last_30_days: (u32, u64),
    /// Payments from this debtor to this creditor in the last 24 hours.
    pub pair_last_day: u32,
    /// ... in the last 90 days.
    pub pair_last_90_days: u32,
}

/// The rule's thresholds and points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Hourly count that makes a burst.
    pub debtor_hourly_count: u32,
    /// Daily count that is high velocity.
    pub debtor_daily_count: u32,
    /// Daily count for one pair that is suspicious.
    pub pair_daily_count: u32,
    /// How many times the 30-day mean is unusual.
    pub unusual_amount_multiple: u64,
    /// Smallest amount (minor units) for which a new creditor counts.
    pub new_creditor_minor_units: u64,
    /// Creditor countries that are high risk.
    pub high_risk_countries: Vec<String>,
    /// `DEBTOR-CREDITOR` country pairs that are high risk.
    pub high_risk_corridors: Vec<String>,
    /// Points per signal: burst, daily, pair, unusual amount, new creditor, corridor.
    pub points: [u16; 6],
}

impl Settings {
    /// The defaults, with `new-creditor-amount` of 1000 in a currency of `scale`.
    pub fn defaults(scale: u8) -> Settings {
        Settings {
            debtor_hourly_count: 5,
            debtor_daily_count: 20,
            pair_daily_count: 3,
            unusual_amount_multiple: 5,
            new_creditor_minor_units: 1000 * 10_u64.pow(u32::from(scale)),
            high_risk_countries: Vec::new(),
            high_risk_corridors: Vec::new(),
            points: [250, 150, 150, 300, 200, 250],
        }
    }

    /// Reads the settings from `config`, for a currency of `scale` minor digits.
    pub fn read(scale: u8, config: &impl Source) -> Settings {
        let defaults = Settings::defaults(scale);
        let keys = [
            "points.debtor-burst",
            "points.debtor-daily",
            "points.pair-daily",
            "points.unusual-amount",
            "points.new-creditor",
            "points.high-risk-corridor",
        ];
        let mut points = defaults.points;
        for (slot, key) in points.iter_mut().zip(keys) {
            *slot = config.number(key, *slot);
        }
        Settings {
            debtor_hourly_count: config.number("debtor-hourly-count", defaults.debtor_hourly_count),
            debtor_daily_count: config.number("debtor-daily-count", defaults.debtor_daily_count),
            pair_daily_count: config.number("pair-daily-count", defaults.pair_daily_count),
            unusual_amount_multiple: config
                .number("unusual-amount-multiple", defaults.unusual_amount_multiple),
            new_creditor_minor_units: config
                .amount("new-creditor-amount", scale)
                .unwrap_or(defaults.new_creditor_minor_units),
            high_risk_countries: config.list("high-risk-countries"),
            high_risk_corridors: config.list("high-risk-corridors"),
            points,
        }
    }
}

/// Scores the payment from its signals. Pure: the same inputs give the same risk.
pub fn score(payment: &Payment, signals: &Signals, settings: &Settings) -> Risk {
    let amount = &payment.amount;
    let shown = |minor: u64| {
        format!(
            "{} {}",
            format_minor_units(minor, amount.scale),
            amount.currency
        )
    };
    let [burst, daily, pair, unusual, new_creditor, corridor] = settings.points;
    let mut reasons = Vec::new();
    if signals.debtor_last_hour >= settings.debtor_hourly_count {
        reasons.push(RiskReason::new(
            "debtor-burst",
            burst,
            format!(
                "the debtor account sent {} payments in the last hour",
                signals.debtor_last_hour
            ),
        ));
    }
    if signals.debtor_last_day >= settings.debtor_daily_count {
        reasons.push(RiskReason::new(
            "debtor-daily-velocity",
            daily,
            format!(
                "the debtor account sent {} payments in the last 24 hours",
                signals.debtor_last_day
            ),
        ));
    }
    if signals.pair_last_day >= settings.pair_daily_count {
        reasons.push(RiskReason::new(
            "repeated-pair",
            pair,
            format!(
                "this debtor paid this creditor {} times in the last 24 hours",
                signals.pair_last_day
            ),
        ));
    }
    let (count, sum) = signals.debtor_last_30_days;
    // amount > multiple × (sum / count), in integers: amount × count > multiple × sum.
    if count >= 3
        && u128::from(amount.minor_units) * u128::from(count)
            > u128::from(settings.unusual_amount_multiple) * u128::from(sum)
    {
        reasons.push(RiskReason::new(
            "unusual-amount",
            unusual,
            format!(
                "{} is more than {} times the debtor's 30-day mean of {}",
                shown(amount.minor_units),
                settings.unusual_amount_multiple,
                shown(sum / u64::from(count))
            ),
        ));
    }
    if signals.pair_last_90_days == 0 && amount.minor_units >= settings.new_creditor_minor_units {
        reasons.push(RiskReason::new(
            "new-creditor",
            new_creditor,
            format!(
                "first payment from this debtor to this creditor in 90 days, and {} is at least {}",
                shown(amount.minor_units),
                shown(settings.new_creditor_minor_units)
            ),
        ));
    }
    if let (Some(from), Some(to)) = (payment.debtor_country(), payment.creditor_country()) {
        let corridor_name = format!("{from}-{to}");
        if settings.high_risk_countries.iter().any(|c| c == to)
            || settings.high_risk_corridors.contains(&corridor_name)
        {
            reasons.push(RiskReason::new(
                "high-risk-corridor",
                corridor,
                format!("payments from {from} to {to} are a high-risk corridor"),
            ));
        }
    }
    reasons.retain(|reason| reason.points > 0);
    Risk::from_reasons(reasons)
}

struct VelocityRisk;

impl FraudRule for VelocityRisk {
    fn score(payment: Payment) -> Risk {
        let count =
            |scope, window| velocity::figures(scope, window).map(|f| (f.count, f.sum_minor_units));
        let signals = (|| -> Result<Signals, String> {
            Ok(Signals {
                debtor_last_hour: count(VelocityScope::DebtorAccount, HOUR_SECONDS)?.0,
                debtor_last_day: count(VelocityScope::DebtorAccount, DAY_SECONDS)?.0,
                debtor_last_30_days: count(VelocityScope::DebtorAccount, 30 * DAY_SECONDS)?,
                pair_last_day: count(VelocityScope::DebtorToCreditor, DAY_SECONDS)?.0,
                pair_last_90_days: count(VelocityScope::DebtorToCreditor, 90 * DAY_SECONDS)?.0,
            })
        })();
        match signals {
            Ok(signals) => score(&payment, &signals, &settings(payment.amount.scale)),
            // The host refused a window: a bug in this rule, so fail loudly rather
            // than score on missing data.
            Err(error) => panic!("velocity figures unavailable: {error}"),
        }
    }
}

/// The minor-unit digits of nearly every ISO 4217 currency: 0 (JPY), 2 (EUR, USD), 3
/// (BHD, KWD).
const USUAL_SCALES: [u8; 3] = [0, 2, 3];

std::thread_local! {
    /// The settings read so far in this instance, per currency scale; those of the usual
    /// scales read by the preparation.
    static SETTINGS: std::cell::RefCell<Vec<(u8, std::rc::Rc<Settings>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The settings for a currency of `scale`: as prepared, or read from the host once.
fn settings(scale: u8) -> std::rc::Rc<Settings> {
    SETTINGS.with(|kept| {
        if let Some((_, settings)) = kept.borrow().iter().find(|(s, _)| *s == scale) {
            return std::rc::Rc::clone(settings);
        }
        let settings = std::rc::Rc::new(Settings::read(scale, &config::Host));
        kept.borrow_mut()
            .push((scale, std::rc::Rc::clone(&settings)));
        settings
    })
}

impl Prepare for VelocityRisk {
    /// Reads the settings for the usual currency scales once per rule version.
    fn prepare() {
        for scale in USUAL_SCALES {
            settings(scale);
        }
    }
}

payrules_sdk::fraud_rule!(VelocityRisk, prepared);

#[cfg(test)]
mod tests {
    use super::*;
    use payrules_sdk::testing::sepa_payment;

    fn codes(risk: &Risk) -> Vec<&str> {
        risk.reasons.iter().map(|r| r.code.as_str()).collect()
    }

    fn known_pair() -> Signals {
        Signals {
            pair_last_90_days: 4,
            ..Signals::default()
        }
    }

    #[test]
    fn a_quiet_known_pair_scores_zero() {
        let risk = score(&sepa_payment(), &known_pair(), &Settings::defaults(2));
        assert_eq!((risk.score, codes(&risk)), (0, vec![]));
    }

    #[test]
    fn each_signal_adds_its_points_with_a_reason() {
        let settings = Settings::defaults(2);
        let payment = sepa_payment(); // 1,250.00 EUR
        let cases = [
            (
                Signals {
                    debtor_last_hour: 5,
                    ..known_pair()
                },
                "debtor-burst",
                250,
            ),
            (
                Signals {
                    debtor_last_day: 20,
                    ..known_pair()
                },
                "debtor-daily-velocity",
                150,
            ),
            (
                Signals {
                    pair_last_day: 3,
                    ..known_pair()
                },
                "repeated-pair",
                150,
            ),
            (
                Signals {
                    debtor_last_30_days: (4, 40_000),
                    ..known_pair()
                },
                "unusual-amount",
                300,
            ),
            (Signals::default(), "new-creditor", 200),
        ];
        for (signals, code, points) in cases {
            let risk = score(&payment, &signals, &settings);
            assert_eq!(codes(&risk), vec![code], "{signals:?}");
            assert_eq!(risk.score, points);
        }
    }

    #[test]
    fn the_unusual_amount_needs_history_and_uses_exact_integers() {
        let settings = Settings::defaults(2);
        let payment = sepa_payment(); // 125,000 minor units
        // mean 25,000 × 5 = 125,000: not more than 5 times.
        let at_limit = Signals {
            debtor_last_30_days: (4, 100_000),
            ..known_pair()
        };
        assert_eq!(score(&payment, &at_limit, &settings).score, 0);
        let too_little_history = Signals {
            debtor_last_30_days: (2, 100),
            ..known_pair()
        };
        assert_eq!(score(&payment, &too_little_history, &settings).score, 0);
    }

    #[test]
    fn high_risk_corridors_and_countries_score() {
        let mut settings = Settings::defaults(2);
        settings.high_risk_corridors = vec!["DE-NL".to_owned()];
        let risk = score(&sepa_payment(), &known_pair(), &settings);
        assert_eq!(codes(&risk), vec!["high-risk-corridor"]);
        let mut settings = Settings::defaults(2);
        settings.high_risk_countries = vec!["NL".to_owned()];
        assert_eq!(score(&sepa_payment(), &known_pair(), &settings).score, 250);
    }

    #[test]
    fn the_score_is_the_sum_of_its_reasons_capped_at_1000() {
        let mut settings = Settings::defaults(2);
        settings.high_risk_countries = vec!["NL".to_owned()];
        let everything = Signals {
            debtor_last_hour: 9,
            debtor_last_day: 30,
            pair_last_day: 0,
            debtor_last_30_days: (10, 10_000),
            pair_last_90_days: 0,
        };
        let risk = score(&sepa_payment(), &everything, &settings);
        let total: u32 = risk.reasons.iter().map(|r| u32::from(r.points)).sum();
        assert_eq!(total, 250 + 150 + 300 + 200 + 250);
        assert_eq!(risk.score, 1000);
    }
}
