//! Routing rule `rail-router`: chooses the rail for a payment among the candidates the
//! host offers, by currency, amount limit, both agents' reach, cut-off time and urgency,
//! and says why.
//!
//! Configuration (all under `[config]` of the manifest):
//!
//! ```toml
//! own-bics = ["PAYRUS33", "PAYRDEFF"]     # this institution: both agents here => book transfer
//! own-member-ids = ["026009593"]
//! sepa-countries = ["DE", "NL", ...]      # where SEPA reaches (agent BIC countries)
//! [rails.fednow]
//! currency = "USD"                        # omit for any currency (SWIFT)
//! max-amount = "1000000.00"
//! instant = true                          # settles in seconds, 24x7x365
//! reach-list = "fednow-participants"      # both agents' member ids must be on this list
//! [rails.ach]
//! currency = "USD"
//! max-amount = "99999999.99"
//! cutoff-utc = "20:45"                    # last same-day window; later (or weekends) settles next business day
//! reach = "member-id"                     # both agents need a clearing member id
//! [rails.sepa-instant]
//! reach = "sepa"                          # both agents' BICs in sepa-countries
//! [preference]
//! instant = ["book-transfer", "fednow", "rtp", "sepa-instant"]
//! urgent = [...]                          # rails tried in order for each urgency
//! normal = [...]
//! ```
//!
//! A rail qualifies when it is offered, configured, in the payment's currency, within its
//! limit, reaches both agents, and is fast enough: an instant payment needs an instant
//! rail; an urgent one a rail that settles today (instant, or before its cut-off on a
//! weekday). The first qualifying rail of the urgency's preference wins. If none does,
//! the rule declines: AM03 if no rail takes the currency, AM02 if the amount is over
//! every limit, AG03 otherwise.

use std::cell::RefCell;
use std::rc::Rc;

use payrules_sdk::clock::Instant;
use payrules_sdk::config::{self, Source};
use payrules_sdk::money::{format_minor_units, parse_minor_units};
use payrules_sdk::{
    Payment, Prepare, Rail, Reason, RouteChoice, RoutingRule, Urgency, clock, lists,
};

/// How a rail reaches agents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Any agent with a BIC (SWIFT).
    Bic,
    /// Any agent with a clearing member id (ACH).
    MemberId,
    /// Agents whose member id is on a named list (RTP, FedNow participant directories).
    MemberList(String),
    /// Agents whose BIC country is in `sepa-countries`.
    Sepa,
    /// Both agents are this institution.
    OwnInstitution,
}

/// One rail as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RailSpec {
    /// The rail.
    pub rail: Rail,
    /// Its currency; `None` for any.
    pub currency: Option<String>,
    /// Its limit in the payment's minor units; `None` for none.
    pub max_minor_units: Option<u64>,
    /// Settles in seconds at any hour.
    pub instant: bool,
    /// Minute of the UTC day after which it no longer settles today.
    pub cutoff_minute_utc: Option<u16>,
    /// How it reaches agents.
    pub reach: Reach,
}

/// Everything the choice depends on besides the payment and the clock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routing {
    /// The configured rails that the host offered.
    pub rails: Vec<RailSpec>,
    /// Preference order for the payment's urgency.
    pub preference: Vec<Rail>,
    /// This institution's BICs.
    pub own_bics: Rc<[String]>,
    /// This institution's clearing member ids.
    pub own_member_ids: Rc<[String]>,
    /// Countries SEPA reaches.
    pub sepa_countries: Rc<[String]>,
}

/// The urgency as manifests spell it.
fn urgency_name(urgency: Urgency) -> &'static str {
    match urgency {
        Urgency::Instant => "instant",
        Urgency::Urgent => "urgent",
        Urgency::Normal => "normal",
    }
}

fn parse_hh_mm(text: &str) -> Option<u16> {
    let (hours, minutes) = text.split_once(':')?;
    let (hours, minutes): (u16, u16) = (hours.parse().ok()?, minutes.parse().ok()?);
    (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
}

/// What [`Routing::read`] depends on besides the configuration.
/// (urgency, currency scale, the candidates as a set: one bit per [`Rail::ALL`] entry;
/// only which rails are offered matters, not their order).
type RoutingKey = (Urgency, u8, u8);

/// The candidates as a set, for [`RoutingKey`].
fn offered(candidates: &[Rail]) -> u8 {
    Rail::ALL
        .iter()
        .enumerate()
        .filter(|(_, rail)| candidates.contains(rail))
        .fold(0, |set, (index, _)| set | (1 << index))
}

/// One rail as configured, before a payment: its limit still as the configuration's text
/// (a payment's currency decides its minor units).
#[derive(Clone, Debug, PartialEq, Eq)]
struct ConfiguredRail {
    rail: Rail,
    currency: Option<String>,
    max_amount: Option<String>,
    instant: bool,
    cutoff_minute_utc: Option<u16>,
    reach: Reach,
}

/// The whole configuration, read once, payment-independent: what [`Prepare::prepare`]
/// keeps, so that a payment's [`Routing`] is made from memory without asking the host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutingConfig {
    /// Each urgency's preference, as named rails.
    preferences: Vec<(Urgency, Vec<Rail>)>,
    /// Every rail some preference names and the configuration describes.
    rails: Vec<ConfiguredRail>,
    own_bics: Rc<[String]>,
    own_member_ids: Rc<[String]>,
    sepa_countries: Rc<[String]>,
}

const URGENCIES: [Urgency; 3] = [Urgency::Instant, Urgency::Urgent, Urgency::Normal];

impl RoutingConfig {
    /// Reads every key any payment's routing could need.
    pub fn read(config: &impl Source) -> RoutingConfig {
        let preferences: Vec<(Urgency, Vec<Rail>)> = URGENCIES
            .iter()
            .map(|urgency| {
                let names = config.list(&format!("preference.{}", urgency_name(*urgency)));
                (
                    *urgency,
                    names.iter().filter_map(|n| Rail::from_name(n)).collect(),
                )
            })
            .collect();
        let mut named: Vec<Rail> = Vec::new();
        for rail in preferences.iter().flat_map(|(_, rails)| rails) {
            if !named.contains(rail) {
                named.push(*rail);
            }
        }
        let rails = named
            .into_iter()
            .filter_map(|rail| {
                let key = |field: &str| format!("rails.{}.{field}", rail.name());
                Some(ConfiguredRail {
                    rail,
                    reach: reach(config, &key)?,
                    currency: config.get(&key("currency")),
                    max_amount: config.get(&key("max-amount")),
                    instant: config.flag(&key("instant"), false),
                    cutoff_minute_utc: config.get(&key("cutoff-utc")).and_then(|t| parse_hh_mm(&t)),
                })
            })
            .collect();
        RoutingConfig {
            preferences,
            rails,
            own_bics: config.list("own-bics").into(),
            own_member_ids: config.list("own-member-ids").into(),
            sepa_countries: config.list("sepa-countries").into(),
        }
    }
}

/// How a rail reaches agents, from its `reach` (and `reach-list`); `None` for a rail that
/// names neither, which is left out.
fn reach(config: &impl Source, key: &impl Fn(&str) -> String) -> Option<Reach> {
    Some(match config.get(&key("reach")).as_deref() {
        Some("bic") => Reach::Bic,
        Some("member-id") => Reach::MemberId,
        Some("sepa") => Reach::Sepa,
        Some("own-institution") => Reach::OwnInstitution,
        _ => Reach::MemberList(config.get(&key("reach-list"))?),
    })
}

thread_local! {
    /// The configuration as the rule version's preparation read it (see [`RailRouter`]'s
    /// [`Prepare`]); empty in an instance that was not prepared.
    static PREPARED: RefCell<Option<Rc<RoutingConfig>>> = const { RefCell::new(None) };

    /// The routings read so far in this instance. The configuration never changes within
    /// an instance, so on a warm instance (one that decides payment after payment) each
    /// urgency's routing is made once; a prepared instance starts with those `prepare`
    /// made (every urgency, the usual scales, every rail offered).
    static READ: RefCell<Vec<(RoutingKey, Rc<Routing>)>> = const { RefCell::new(Vec::new()) };
}

impl Routing {
    /// [`Routing::read`], remembered per urgency, currency scale and candidates for the
    /// life of the instance (`config` must be the same every time: the host's is).
    pub fn remembered(payment: &Payment, candidates: &[Rail], config: &impl Source) -> Rc<Routing> {
        let key: RoutingKey = (payment.urgency, payment.amount.scale, offered(candidates));
        READ.with(|read| {
            if let Some((_, routing)) = read.borrow().iter().find(|(seen, _)| *seen == key) {
                return Rc::clone(routing);
            }
            let prepared = PREPARED.with(|prepared| prepared.borrow().clone());
            let routing = Rc::new(match prepared {
                Some(prepared) => Routing::from_config(
                    &prepared,
                    payment.urgency,
                    payment.amount.scale,
                    candidates,
                ),
                None => Routing::read(payment, candidates, config),
            });
            read.borrow_mut().push((key, Rc::clone(&routing)));
            routing
        })
    }

    /// Reads the rails among `candidates` and the preference for `payment`'s urgency
    /// from `config`.
    pub fn read(payment: &Payment, candidates: &[Rail], config: &impl Source) -> Routing {
        let scale = payment.amount.scale;
        let urgency = urgency_name(payment.urgency);
        // Only the rails this urgency would try, and only if offered: every key read is a
        // call to the host.
        let preference: Vec<Rail> = config
            .list(&format!("preference.{urgency}"))
            .iter()
            .filter_map(|name| Rail::from_name(name))
            .filter(|rail| candidates.contains(rail))
            .collect();
        let rails = preference
            .iter()
            .filter_map(|rail| {
                let key = |field: &str| format!("rails.{}.{field}", rail.name());
                let reach = reach(config, &key)?;
                Some(RailSpec {
                    rail: *rail,
                    currency: config.get(&key("currency")),
                    max_minor_units: config.amount(&key("max-amount"), scale),
                    instant: config.flag(&key("instant"), false),
                    cutoff_minute_utc: config.get(&key("cutoff-utc")).and_then(|t| parse_hh_mm(&t)),
                    reach,
                })
            })
            .collect::<Vec<_>>();
        let needs = |reach: fn(&Reach) -> bool| rails.iter().any(|spec| reach(&spec.reach));
        let list = |needed: bool, key: &str| {
            if needed {
                config.list(key).into()
            } else {
                Rc::from([])
            }
        };
        let own = needs(|r| *r == Reach::OwnInstitution);
        Routing {
            own_bics: list(own, "own-bics"),
            own_member_ids: list(own, "own-member-ids"),
            sepa_countries: list(needs(|r| *r == Reach::Sepa), "sepa-countries"),
            rails,
            preference,
        }
    }
}

impl Routing {
    /// What [`Routing::read`] reads for a payment of `urgency` in a currency of `scale`
    /// and `candidates`, made from the whole configuration read before (the same answer,
    /// with no call to the host).
    pub fn from_config(
        config: &RoutingConfig,
        urgency: Urgency,
        scale: u8,
        candidates: &[Rail],
    ) -> Routing {
        let preference: Vec<Rail> = config
            .preferences
            .iter()
            .find(|(preferred, _)| *preferred == urgency)
            .map(|(_, rails)| rails.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|rail| candidates.contains(rail))
            .copied()
            .collect();
        let rails = preference
            .iter()
            .filter_map(|rail| config.rails.iter().find(|spec| spec.rail == *rail))
            .map(|spec| RailSpec {
                rail: spec.rail,
                currency: spec.currency.clone(),
                max_minor_units: spec
                    .max_amount
                    .as_deref()
                    .and_then(|text| parse_minor_units(text, scale)),
                instant: spec.instant,
                cutoff_minute_utc: spec.cutoff_minute_utc,
                reach: spec.reach.clone(),
            })
            .collect::<Vec<_>>();
        let needs = |reach: fn(&Reach) -> bool| rails.iter().any(|spec| reach(&spec.reach));
        let when = |needed: bool, list: &Rc<[String]>| {
            if needed {
                Rc::clone(list)
            } else {
                Rc::from([])
            }
        };
        let own = needs(|r| *r == Reach::OwnInstitution);
        Routing {
            own_bics: when(own, &config.own_bics),
            own_member_ids: when(own, &config.own_member_ids),
            sepa_countries: when(needs(|r| *r == Reach::Sepa), &config.sepa_countries),
            rails,
            preference,
        }
    }
}

/// Why one rail did not qualify, from least to most specific: the decline code comes from
/// the most specific miss (a rail in the right currency that was too small says more
/// than a rail in another currency).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Miss {
    Currency,
    Amount,
    Other,
}

/// Chooses the rail. `on_list(list, member_id)` answers reach-list look-ups. Pure apart
/// from that look-up.
pub fn choose(
    payment: &Payment,
    routing: &Routing,
    now: &Instant,
    on_list: impl Fn(&str, &str) -> bool,
) -> Result<RouteChoice, Reason> {
    let amount = &payment.amount;
    let shown = |minor: u64| {
        format!(
            "{} {}",
            format_minor_units(minor, amount.scale),
            amount.currency
        )
    };
    let agents = [&payment.debtor_agent, &payment.creditor_agent];
    let is_own = |agent: &payrules_sdk::Agent| {
        agent.bic.as_ref().is_some_and(|bic| {
            routing
                .own_bics
                .iter()
                .any(|own| bic.starts_with(own.as_str()))
        }) || agent
            .member_id
            .as_ref()
            .is_some_and(|id| routing.own_member_ids.contains(id))
    };
    let weekday = now.weekday <= 5;
    let mut best_miss: Option<Miss> = None;
    let mut note_miss = |miss: Miss| {
        best_miss = Some(best_miss.map_or(miss, |seen| seen.max(miss)));
    };
    for rail in &routing.preference {
        let Some(spec) = routing.rails.iter().find(|spec| spec.rail == *rail) else {
            continue;
        };
        if spec
            .currency
            .as_ref()
            .is_some_and(|c| *c != amount.currency)
        {
            note_miss(Miss::Currency);
            continue;
        }
        if spec
            .max_minor_units
            .is_some_and(|max| amount.minor_units > max)
        {
            note_miss(Miss::Amount);
            continue;
        }
        let reaches = match &spec.reach {
            Reach::Bic => agents.iter().all(|a| a.bic.is_some()),
            Reach::MemberId => agents.iter().all(|a| a.member_id.is_some()),
            Reach::MemberList(list) => agents
                .iter()
                .all(|a| a.member_id.as_deref().is_some_and(|id| on_list(list, id))),
            Reach::Sepa => agents.iter().all(|a| {
                a.country()
                    .is_some_and(|c| routing.sepa_countries.iter().any(|s| s == c))
            }),
            Reach::OwnInstitution => agents.iter().all(|a| is_own(a)),
        };
        if !reaches {
            // A book transfer is an opportunity, not a requirement: missing it says
            // nothing about why the payment cannot be routed.
            if spec.reach != Reach::OwnInstitution {
                note_miss(Miss::Other);
            }
            continue;
        }
        let before_cutoff = spec
            .cutoff_minute_utc
            .is_none_or(|cutoff| now.minute_of_day <= cutoff);
        let settles_today = spec.instant || (weekday && before_cutoff);
        let fast_enough = match payment.urgency {
            Urgency::Instant => spec.instant,
            Urgency::Urgent => settles_today,
            Urgency::Normal => true,
        };
        if !fast_enough {
            note_miss(Miss::Other);
            continue;
        }
        let limit = spec.max_minor_units.map_or(String::new(), |max| {
            format!(" within its {} limit", shown(max))
        });
        let timing = if spec.instant {
            "settles instantly".to_owned()
        } else if settles_today {
            "settles today, before its cut-off".to_owned()
        } else {
            "settles the next business day (past today's cut-off or not a weekday)".to_owned()
        };
        let urgency = urgency_name(payment.urgency);
        return Ok(RouteChoice {
            rail: *rail,
            explanation: format!(
                "{}: first {urgency} preference that fits; {}{limit}; reaches both agents; {timing}",
                rail.name(),
                shown(amount.minor_units)
            ),
        });
    }
    Err(match best_miss {
        Some(Miss::Currency) | None => Reason::new(
            "AM03",
            format!(
                "no configured rail takes {} for an {} payment",
                amount.currency,
                urgency_name(payment.urgency)
            ),
        ),
        Some(Miss::Amount) => Reason::new(
            "AM02",
            format!(
                "{} is over the limit of every rail that takes {}",
                shown(amount.minor_units),
                amount.currency
            ),
        ),
        Some(Miss::Other) => Reason::new(
            "AG03",
            format!(
                "no rail in {} reaches both agents fast enough for an {} payment",
                amount.currency,
                urgency_name(payment.urgency)
            ),
        ),
    })
}

struct RailRouter;

impl RoutingRule for RailRouter {
    fn route(payment: Payment, candidates: Vec<Rail>) -> Result<RouteChoice, Reason> {
        let routing = Routing::remembered(&payment, &candidates, &config::Host);
        let now = clock::now();
        choose(&payment, &routing, &now, |list, id| {
            lists::contains(list, id).unwrap_or(false)
        })
    }
}

impl Prepare for RailRouter {
    /// Reads the whole configuration once per rule version, and makes the routing of
    /// every urgency for the usual currency scales with every rail offered (what a rule
    /// set offering all its rails asks): a payment then finds its routing made, or makes
    /// it from memory (no `config.get` calls: they were most of this rule's cost).
    fn prepare() {
        let config = Rc::new(RoutingConfig::read(&config::Host));
        READ.with(|read| {
            let mut read = read.borrow_mut();
            for urgency in URGENCIES {
                for scale in [0, 2, 3] {
                    let routing = Routing::from_config(&config, urgency, scale, &Rail::ALL);
                    read.push(((urgency, scale, offered(&Rail::ALL)), Rc::new(routing)));
                }
            }
        });
        PREPARED.with(|prepared| *prepared.borrow_mut() = Some(config));
    }
}

payrules_sdk::routing_rule!(RailRouter, prepared);

#[cfg(test)]
mod tests {
    use super::*;
    use payrules_sdk::Date;
    use payrules_sdk::testing::{sepa_payment, us_payment};

    fn routing(preference: &[Rail]) -> Routing {
        let spec =
            |rail, currency: Option<&str>, max: Option<u64>, instant, cutoff, reach| RailSpec {
                rail,
                currency: currency.map(str::to_owned),
                max_minor_units: max,
                instant,
                cutoff_minute_utc: cutoff,
                reach,
            };
        Routing {
            rails: vec![
                spec(
                    Rail::BookTransfer,
                    None,
                    None,
                    true,
                    None,
                    Reach::OwnInstitution,
                ),
                spec(
                    Rail::Fednow,
                    Some("USD"),
                    Some(100_000_000),
                    true,
                    None,
                    Reach::MemberList("fednow".into()),
                ),
                spec(
                    Rail::Rtp,
                    Some("USD"),
                    Some(1_000_000_000),
                    true,
                    None,
                    Reach::MemberList("rtp".into()),
                ),
                spec(
                    Rail::Ach,
                    Some("USD"),
                    None,
                    false,
                    Some(20 * 60 + 45),
                    Reach::MemberId,
                ),
                spec(
                    Rail::SepaInstant,
                    Some("EUR"),
                    Some(10_000_000),
                    true,
                    None,
                    Reach::Sepa,
                ),
                spec(
                    Rail::SepaCreditTransfer,
                    Some("EUR"),
                    None,
                    false,
                    Some(15 * 60),
                    Reach::Sepa,
                ),
                spec(Rail::Swift, None, None, false, Some(16 * 60), Reach::Bic),
            ],
            preference: preference.to_vec(),
            own_bics: vec!["PAYRUS33".into()].into(),
            own_member_ids: vec!["026009593".into()].into(),
            sepa_countries: vec!["DE".into(), "NL".into(), "FR".into()].into(),
        }
    }

    const INSTANT: &[Rail] = &[
        Rail::BookTransfer,
        Rail::Fednow,
        Rail::Rtp,
        Rail::SepaInstant,
    ];
    const NORMAL: &[Rail] = &[
        Rail::BookTransfer,
        Rail::Ach,
        Rail::SepaCreditTransfer,
        Rail::Swift,
    ];

    /// Tuesday 2026-11-24 at `hh:mm` UTC.
    fn tuesday(hh: u16, mm: u16) -> Instant {
        Instant {
            unix_ms: 0,
            date: Date {
                year: 2026,
                month: 11,
                day: 24,
            },
            minute_of_day: hh * 60 + mm,
            weekday: 2,
        }
    }

    fn everyone(_: &str, _: &str) -> bool {
        true
    }

    #[test]
    fn an_instant_usd_payment_goes_to_the_first_instant_rail_that_reaches_both_agents() {
        let mut payment = us_payment();
        payment.urgency = Urgency::Instant;
        let choice =
            choose(&payment, &routing(INSTANT), &tuesday(10, 0), everyone).expect("a route");
        assert_eq!(choice.rail, Rail::Fednow);
        let only_rtp = |list: &str, _: &str| list == "rtp";
        let choice =
            choose(&payment, &routing(INSTANT), &tuesday(10, 0), only_rtp).expect("a route");
        assert_eq!(choice.rail, Rail::Rtp);
    }

    #[test]
    fn an_amount_over_the_fednow_limit_goes_to_rtp() {
        let mut payment = us_payment();
        payment.urgency = Urgency::Instant;
        payment.amount.minor_units = 200_000_000;
        let choice =
            choose(&payment, &routing(INSTANT), &tuesday(10, 0), everyone).expect("a route");
        assert_eq!(choice.rail, Rail::Rtp);
        payment.amount.minor_units = 2_000_000_000;
        let reason =
            choose(&payment, &routing(INSTANT), &tuesday(10, 0), everyone).expect_err("too big");
        assert_eq!(reason.code, "AM02");
    }

    #[test]
    fn a_normal_eur_payment_goes_by_sepa_credit_transfer_and_explains_the_timing() {
        let choice =
            choose(&sepa_payment(), &routing(NORMAL), &tuesday(16, 0), everyone).expect("a route");
        assert_eq!(choice.rail, Rail::SepaCreditTransfer);
        assert!(
            choice.explanation.contains("next business day"),
            "{}",
            choice.explanation
        );
    }

    #[test]
    fn an_urgent_payment_past_the_cutoff_needs_a_rail_that_still_settles_today() {
        let mut payment = sepa_payment();
        payment.urgency = Urgency::Urgent;
        let urgent = [Rail::SepaCreditTransfer, Rail::SepaInstant, Rail::Swift];
        let choice =
            choose(&payment, &routing(&urgent), &tuesday(14, 0), everyone).expect("before cut-off");
        assert_eq!(choice.rail, Rail::SepaCreditTransfer);
        let choice =
            choose(&payment, &routing(&urgent), &tuesday(15, 30), everyone).expect("after cut-off");
        assert_eq!(choice.rail, Rail::SepaInstant);
    }

    #[test]
    fn both_agents_at_this_institution_is_a_book_transfer() {
        let mut payment = us_payment();
        payment.debtor_agent.member_id = Some("026009593".into());
        payment.creditor_agent.bic = Some("PAYRUS33XXX".into());
        let choice =
            choose(&payment, &routing(NORMAL), &tuesday(10, 0), everyone).expect("a route");
        assert_eq!(choice.rail, Rail::BookTransfer);
    }

    #[test]
    fn a_currency_no_rail_takes_is_declined_with_am03() {
        let mut payment = sepa_payment();
        payment.amount.currency = "CHF".into();
        let domestic = [Rail::Ach, Rail::SepaCreditTransfer];
        let reason =
            choose(&payment, &routing(&domestic), &tuesday(10, 0), everyone).expect_err("no rail");
        assert_eq!(reason.code, "AM03");
        // SWIFT takes any currency, given both agents' BICs.
        let choice =
            choose(&payment, &routing(NORMAL), &tuesday(10, 0), everyone).expect("by SWIFT");
        assert_eq!(choice.rail, Rail::Swift);
    }

    #[test]
    fn agents_outside_every_rail_are_declined_with_ag03() {
        let mut payment = us_payment();
        payment.urgency = Urgency::Instant;
        let nobody = |_: &str, _: &str| false;
        let reason =
            choose(&payment, &routing(INSTANT), &tuesday(10, 0), nobody).expect_err("no reach");
        assert_eq!(reason.code, "AG03");
    }

    #[test]
    fn cut_off_times_are_read_as_hh_mm() {
        assert_eq!(parse_hh_mm("20:45"), Some(1245));
        assert_eq!(parse_hh_mm("24:00"), None);
        assert_eq!(parse_hh_mm("7"), None);
    }

    /// A routing is read once per urgency, scale and candidates in an instance, and is
    /// what reading it afresh gives.
    #[test]
    fn a_routing_is_read_once_per_urgency() {
        let config: std::collections::BTreeMap<String, String> = [
            ("preference.instant", "sepa-instant"),
            ("preference.normal", "sepa-credit-transfer, sepa-instant"),
            ("rails.sepa-instant.reach", "sepa"),
            ("rails.sepa-instant.currency", "EUR"),
            ("rails.sepa-credit-transfer.reach", "sepa"),
            ("sepa-countries", "DE, NL"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let candidates = [Rail::SepaInstant, Rail::SepaCreditTransfer];
        let mut instant = sepa_payment();
        instant.urgency = Urgency::Instant;
        let mut normal = sepa_payment();
        normal.urgency = Urgency::Normal;
        let first = Routing::remembered(&instant, &candidates, &config);
        let again = Routing::remembered(&instant, &candidates, &config);
        assert!(Rc::ptr_eq(&first, &again), "read once");
        let other = Routing::remembered(&normal, &candidates, &config);
        assert!(
            !Rc::ptr_eq(&first, &other),
            "another urgency is read for itself"
        );
        assert_eq!(
            other.preference,
            [Rail::SepaCreditTransfer, Rail::SepaInstant]
        );
        let fewer = Routing::remembered(&normal, &candidates[..1], &config);
        assert_eq!(
            fewer.preference,
            [Rail::SepaInstant],
            "other candidates, another read"
        );
        let afresh = Routing::read(&instant, &candidates, &config);
        assert_eq!(format!("{first:?}"), format!("{afresh:?}"));
    }

    /// The prepared configuration gives every payment the routing that reading it from
    /// the host gives: for each urgency, currency scale and set of candidates, on the
    /// example manifest's configuration and on one with the odd cases (a rail without a
    /// reach, a rail named twice, a limit that is not an amount, an unknown rail).
    #[test]
    fn a_prepared_configuration_routes_as_reading_it_from_the_host() {
        let example = include_str!("../../../examples/rules/rail-router.toml");
        let manifest: toml::Table = example.parse().expect("the example manifest");
        let mut flat = std::collections::BTreeMap::new();
        flatten("", &manifest["config"], &mut flat);
        assert!(flat.len() > 20, "{flat:?}");
        let mut odd = flat.clone();
        odd.insert(
            "preference.urgent".into(),
            "swift, fednow, swift, telegraph, ach".into(),
        );
        odd.remove("rails.ach.reach");
        odd.insert("rails.fednow.max-amount".into(), "lots".into());
        for config in [&flat, &odd] {
            let prepared = RoutingConfig::read(config);
            for urgency in URGENCIES {
                for scale in [0, 2, 3] {
                    for subset in 1_u32..(1 << Rail::ALL.len()) {
                        let candidates: Vec<Rail> = Rail::ALL
                            .into_iter()
                            .enumerate()
                            .filter(|(i, _)| subset & (1 << i) != 0)
                            .map(|(_, rail)| rail)
                            .collect();
                        let mut payment = us_payment();
                        payment.urgency = urgency;
                        payment.amount.scale = scale;
                        assert_eq!(
                            Routing::from_config(&prepared, urgency, scale, &candidates),
                            Routing::read(&payment, &candidates, config),
                            "{urgency:?}, scale {scale}, {candidates:?}"
                        );
                    }
                }
            }
        }
    }

    /// A manifest's `[config]` as the host gives it: dotted keys, text values, arrays
    /// joined with ",".
    fn flatten(
        prefix: &str,
        value: &toml::Value,
        into: &mut std::collections::BTreeMap<String, String>,
    ) {
        match value {
            toml::Value::Table(table) => {
                for (key, value) in table {
                    let key = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    flatten(&key, value, into);
                }
            }
            toml::Value::Array(items) => {
                let items: Vec<String> = items.iter().map(text).collect();
                into.insert(prefix.to_owned(), items.join(","));
            }
            scalar => {
                into.insert(prefix.to_owned(), text(scalar));
            }
        }
    }

    fn text(value: &toml::Value) -> String {
        match value {
            toml::Value::String(text) => text.clone(),
            other => other.to_string(),
        }
    }
}
