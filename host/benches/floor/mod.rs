//! The four example rules as plain native Rust: the floor that the pipeline benchmark
//! (`host/benches/pipeline.rs`) and the peers' benchmark (`bench/peers/`, which includes
//! this file by path) measure payrules against. The rules' own code (the plugin crates,
//! compiled for this machine), their manifests' configuration, the host's list index and
//! velocity book, and the pipeline's own order and combining: compliance rules all run,
//! fraud only if compliance did not reject, routing only if the score did not reject.
//!
//! Also: a copy of a rules directory with every manifest asking for warm isolation.

use std::collections::BTreeMap;
use std::path::Path;

use payrules::lists::NamedList;
use payrules::model::{self, Payment, Rail, RuleKind, RuleOutcome, RuleRun};
use payrules::pipeline::combine;
use payrules::registry::Manifest;
use payrules::velocity::{Scope, VelocityBook};
use payrules_sdk as sdk;

/// The four example rules, natively: their own code, their manifests' configuration,
/// the host's list index and velocity book.
pub struct NativeRules {
    sanctions: (BTreeMap<String, String>, NamedList),
    limits: BTreeMap<String, String>,
    velocity: BTreeMap<String, String>,
    router: (BTreeMap<String, String>, NamedList, NamedList),
    policy: payrules::registry::PipelinePolicy,
}

impl NativeRules {
    /// The example rules of `dir` (`examples/rules`).
    pub fn load(dir: &Path) -> NativeRules {
        let config = |name: &str| {
            let text = std::fs::read_to_string(dir.join(format!("{name}.toml"))).expect("manifest");
            Manifest::parse(name, &text).expect("valid manifest").config
        };
        let list = |file: &str, csv: bool| {
            NamedList::parse(
                &std::fs::read(dir.join("lists").join(file)).expect("list"),
                csv,
            )
            .expect("valid list")
        };
        let policy = payrules::registry::PipelinePolicy::parse(
            &std::fs::read_to_string(dir.join("pipeline.toml")).expect("policy"),
        )
        .expect("valid policy");
        NativeRules {
            sanctions: (config("sanctions-screening"), list("sdn-sample.csv", true)),
            limits: config("limits"),
            velocity: config("velocity-risk"),
            router: (
                config("rail-router"),
                list("fednow-participants.txt", false),
                list("rtp-participants.txt", false),
            ),
            policy,
        }
    }

    /// The decision for `payment` at `now_unix_ms`, reading `velocity`.
    pub fn evaluate(
        &self,
        payment: &Payment,
        velocity: &VelocityBook,
        now_unix_ms: i64,
    ) -> model::Decision {
        let guest = sdk_payment(payment);
        let mut runs = Vec::with_capacity(4);

        let screening = sanctions_screening::Screening::read(&self.sanctions.0);
        let hits: Vec<_> = guest
            .named_parties()
            .into_iter()
            .filter_map(|(role, party)| {
                let name = party.name.clone()?;
                let matches: Vec<_> = self
                    .sanctions
                    .1
                    .fuzzy_match(&name, screening.weak_match, 3, None)
                    .expect("a payment's party name is within the bound")
                    .into_iter()
                    .map(|m| sdk::lists::ListMatch {
                        entry_id: m.entry.id,
                        entry_name: m.entry.name,
                        matched_name: m.matched_name,
                        similarity: m.similarity,
                        program: m.entry.program,
                    })
                    .collect();
                (!matches.is_empty()).then_some(sanctions_screening::PartyHits {
                    role,
                    name,
                    matches,
                })
            })
            .collect();
        let disguised: Vec<_> = guest
            .named_parties()
            .into_iter()
            .filter_map(|(role, party)| {
                let name = party.name.clone()?;
                let disguises = sdk::names::disguises(&name);
                (!disguises.is_empty()).then_some(sanctions_screening::DisguisedName {
                    role,
                    name,
                    disguises,
                })
            })
            .collect();
        runs.push(run(
            "sanctions-screening",
            RuleKind::Compliance,
            verdict(sanctions_screening::verdict(
                &hits,
                &disguised,
                screening.strong_match,
            )),
        ));

        let limits = limits::Limits::read(&guest, &self.limits);
        runs.push(run(
            "limits",
            RuleKind::Compliance,
            verdict(limits::verdict(&guest, &limits)),
        ));

        if !combine::compliance_rejects(&runs) {
            runs.push(self.velocity_risk(payment, &guest, velocity, now_unix_ms));
            if !combine::fraud_rejects(&runs, &self.policy.fraud) {
                runs.push(self.rail_router(&guest, now_unix_ms));
            }
        }

        let combined = combine::combine(&runs, &self.policy.fraud);
        model::Decision {
            payment_id: "bench".to_owned(),
            end_to_end_id: payment.end_to_end_id.to_string(),
            status: combined.status,
            reasons: combined.reasons,
            risk_score: combined.risk_score,
            route: combined.route,
            rule_set_version: String::new(),
            canary: false,
            decided_at_unix_ms: now_unix_ms,
            rules: runs,
        }
    }

    fn velocity_risk(
        &self,
        payment: &Payment,
        guest: &sdk::Payment,
        velocity: &VelocityBook,
        now_unix_ms: i64,
    ) -> RuleRun {
        let signals = signals(payment, velocity, now_unix_ms);
        let settings = velocity_risk::Settings::read(guest.amount.scale, &self.velocity);
        let risk = velocity_risk::score(guest, &signals, &settings);
        run(
            "velocity-risk",
            RuleKind::Fraud,
            RuleOutcome::Score {
                score: risk.score,
                reasons: risk
                    .reasons
                    .into_iter()
                    .map(|r| model::RiskReason {
                        code: r.code,
                        points: r.points,
                        message: r.message,
                    })
                    .collect(),
            },
        )
    }

    fn rail_router(&self, guest: &sdk::Payment, now_unix_ms: i64) -> RuleRun {
        let candidates: Vec<sdk::Rail> = self
            .policy
            .routing
            .candidates
            .iter()
            .map(|rail| sdk_rail(*rail))
            .collect();
        let routing = rail_router::Routing::remembered(guest, &candidates, &self.router.0);
        let now = clock(now_unix_ms);
        let on_list = |list: &str, id: &str| match list {
            "fednow-participants" => self.router.1.contains(id),
            "rtp-participants" => self.router.2.contains(id),
            _ => false,
        };
        let outcome = match rail_router::choose(guest, &routing, &now, on_list) {
            Ok(choice) => RuleOutcome::Route {
                rail: model_rail(choice.rail),
                explanation: choice.explanation,
            },
            Err(reason) => RuleOutcome::Decline {
                reason: model_reason(reason),
            },
        };
        run("rail-router", RuleKind::Routing, outcome)
    }
}

/// The velocity figures the example velocity rule asks the host for, for `payment` at
/// `now_unix_ms`.
pub fn signals(payment: &Payment, book: &VelocityBook, now_unix_ms: i64) -> velocity_risk::Signals {
    let (debtor, creditor) = (payment.debtor_account(), payment.creditor_account());
    let figures = |scope, window| book.figures(scope, payment.currency, window, now_unix_ms);
    let day = 86_400;
    let month = figures(Scope::Debtor(debtor), 30 * day);
    velocity_risk::Signals {
        debtor_last_hour: figures(Scope::Debtor(debtor), 3_600).count,
        debtor_last_day: figures(Scope::Debtor(debtor), day).count,
        debtor_last_30_days: (month.count, month.sum_minor_units),
        pair_last_day: figures(Scope::Pair(debtor, creditor), day).count,
        pair_last_90_days: figures(Scope::Pair(debtor, creditor), 90 * day).count,
    }
}

/// The instant a rule's `clock.now` gives for `unix_ms` (UTC).
pub fn clock(unix_ms: i64) -> sdk::clock::Instant {
    let days = unix_ms.div_euclid(86_400_000);
    let date = payrules::runtime::utc_date(unix_ms);
    sdk::clock::Instant {
        unix_ms,
        date: sdk::Date {
            year: date.year,
            month: date.month,
            day: date.day,
        },
        minute_of_day: u16::try_from(unix_ms.rem_euclid(86_400_000) / 60_000)
            .expect("a day has 1,440 minutes"),
        // 1970-01-01 was a Thursday (ISO weekday 4).
        weekday: u8::try_from((days + 3).rem_euclid(7) + 1).expect("seven weekdays"),
    }
}

fn run(name: &str, kind: RuleKind, outcome: RuleOutcome) -> RuleRun {
    RuleRun {
        name: name.to_owned(),
        kind,
        version: String::new(),
        outcome,
        duration_us: 0,
        instantiation_us: 0,
        fuel_used: 0,
        logs: Vec::new(),
    }
}

fn model_reason(reason: sdk::Reason) -> model::Reason {
    model::Reason {
        code: reason.code,
        message: reason.message,
        rule: None,
    }
}

fn verdict(verdict: sdk::Verdict) -> RuleOutcome {
    match verdict {
        sdk::Verdict::Pass => RuleOutcome::Pass,
        sdk::Verdict::Review(findings) => RuleOutcome::Review {
            findings: findings.into_iter().map(model_reason).collect(),
        },
        sdk::Verdict::Reject(reason) => RuleOutcome::Reject {
            reason: model_reason(reason),
        },
    }
}

const RAILS: [(Rail, sdk::Rail); 7] = [
    (Rail::Rtp, sdk::Rail::Rtp),
    (Rail::Fednow, sdk::Rail::Fednow),
    (Rail::Ach, sdk::Rail::Ach),
    (Rail::SepaInstant, sdk::Rail::SepaInstant),
    (Rail::SepaCreditTransfer, sdk::Rail::SepaCreditTransfer),
    (Rail::Swift, sdk::Rail::Swift),
    (Rail::BookTransfer, sdk::Rail::BookTransfer),
];

fn sdk_rail(rail: Rail) -> sdk::Rail {
    RAILS
        .iter()
        .find(|(model, _)| *model == rail)
        .map(|(_, sdk)| *sdk)
        .expect("every rail maps")
}

fn model_rail(rail: sdk::Rail) -> Rail {
    RAILS
        .iter()
        .find(|(_, sdk)| *sdk == rail)
        .map(|(model, _)| *model)
        .expect("every rail maps")
}

/// The payment as a native rule sees it: the copy the host would marshal into the guest.
fn sdk_payment(payment: &Payment) -> sdk::Payment {
    let money = payment.money();
    let text = |t: &Option<model::Text<35>>| t.as_ref().map(ToString::to_string);
    let agent = |a: &model::Agent| sdk::Agent {
        bic: a.bic.as_ref().map(|b| b.as_str().to_owned()),
        member_id: a.member_id.as_ref().map(ToString::to_string),
        name: a.name.as_ref().map(ToString::to_string),
        country: a
            .country
            .as_ref()
            .map(|c| c.as_str().to_owned())
            .or_else(|| a.bic.as_ref().map(|b| b.country().to_owned())),
    };
    let party = |p: &model::Party| sdk::Party {
        name: p.name.as_ref().map(ToString::to_string),
        country: p.country.as_ref().map(|c| c.as_str().to_owned()),
        address: p.address.as_ref().map(|a| sdk::PostalAddress {
            street_name: a.street_name.as_ref().map(ToString::to_string),
            building_number: a.building_number.as_ref().map(ToString::to_string),
            post_code: a.post_code.as_ref().map(ToString::to_string),
            town_name: a.town_name.as_ref().map(ToString::to_string),
            country_sub_division: a.country_sub_division.as_ref().map(ToString::to_string),
            address_lines: a
                .address_lines
                .lines()
                .iter()
                .map(ToString::to_string)
                .collect(),
        }),
        account: p.account.as_ref().map(|a| match &a.iban {
            Some(iban) => sdk::AccountId::Iban(iban.as_str().to_owned()),
            None => sdk::AccountId::Other(a.identifier().to_owned()),
        }),
    };
    sdk::Payment {
        payment_id: "bench".to_owned(),
        end_to_end_id: payment.end_to_end_id.to_string(),
        instruction_id: text(&payment.instruction_id),
        uetr: payment.uetr.as_ref().map(|u| u.as_str().to_owned()),
        amount: sdk::Money {
            minor_units: money.minor_units(),
            currency: money.currency().code().to_owned(),
            scale: money.currency().minor_digits(),
        },
        debtor: party(&payment.debtor),
        debtor_agent: agent(&payment.debtor_agent),
        creditor: party(&payment.creditor),
        creditor_agent: agent(&payment.creditor_agent),
        ultimate_debtor: payment.ultimate_debtor.as_ref().map(party),
        ultimate_creditor: payment.ultimate_creditor.as_ref().map(party),
        intermediary_agents: payment.intermediary_agents.iter().map(agent).collect(),
        charge_bearer: payment.charge_bearer.map(|c| match c {
            model::ChargeBearer::DEBT => sdk::ChargeBearer::Debt,
            model::ChargeBearer::CRED => sdk::ChargeBearer::Cred,
            model::ChargeBearer::SHAR => sdk::ChargeBearer::Shar,
            model::ChargeBearer::SLEV => sdk::ChargeBearer::Slev,
        }),
        purpose: text(&payment.purpose),
        category_purpose: text(&payment.category_purpose),
        remittance: payment.remittance.as_ref().map(ToString::to_string),
        requested_execution_date: payment.requested_execution_date.map(|d| sdk::Date {
            year: d.year,
            month: d.month,
            day: d.day,
        }),
        urgency: match payment.urgency {
            model::Urgency::Normal => sdk::Urgency::Normal,
            model::Urgency::Urgent => sdk::Urgency::Urgent,
            model::Urgency::Instant => sdk::Urgency::Instant,
        },
        channel: text(&payment.channel),
    }
}

/// The example rules in a temporary directory, each manifest asking for warm isolation.
pub fn warm_copy_of_the_example_rules(rules: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    copy_dir(rules, dir.path());
    for entry in std::fs::read_dir(dir.path()).expect("read the copy") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let manifest =
            name.ends_with(".toml") && !name.ends_with(".vectors.toml") && name != "pipeline.toml";
        if manifest {
            let text = std::fs::read_to_string(&path).expect("manifest");
            std::fs::write(&path, format!("isolation = \"warm\"\n{text}")).expect("write");
        }
    }
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create");
    for entry in std::fs::read_dir(from).expect("read") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
