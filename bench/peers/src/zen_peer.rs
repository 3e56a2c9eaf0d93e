//! The decision as a GoRules JDM graph (`rules/decision.json`: expression nodes and a
//! decision table, as the JDM editor saves them), evaluated by zen-engine: what a team
//! would run if it chose a business rules engine. A graph cannot call the host, so the
//! host screens the named parties first (the same index payrules' rules call) and gives
//! the answers in the input; zen's own `fuzzyMatch` is a plain string distance without
//! the normalisation (word order, accents, legal forms, disguises) screening needs. The
//! participant directories are written into the graph as lists. The graph is compiled
//! once; each evaluation is driven to completion on the calling thread.

use payrules::lists::NamedList;
use payrules::model::{Agent, Party, Payment};
use payrules::velocity::VelocityBook;
use serde_json::{Value, json};
use zen_engine::Decision;
use zen_engine::model::GraphContent;

use crate::facts::{self, Outcome};

pub struct ZenPeer {
    decision: Decision,
    runtime: tokio::runtime::Runtime,
}

impl ZenPeer {
    /// The graph, read and compiled.
    pub fn new() -> ZenPeer {
        let content: GraphContent = serde_json::from_str(include_str!("../rules/decision.json"))
            .expect("the JDM graph reads");
        let mut decision = Decision::from(content);
        decision.compile();
        decision.validate().expect("the JDM graph is valid");
        ZenPeer {
            decision,
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a current-thread runtime"),
        }
    }

    /// The decision for `payment` at `now_unix_ms`.
    pub fn decide(
        &self,
        payment: &Payment,
        book: &VelocityBook,
        sanctions: &NamedList,
        now_unix_ms: i64,
    ) -> Outcome {
        let input = input(payment, book, sanctions, now_unix_ms);
        let response = self
            .runtime
            .block_on(self.decision.evaluate(input.into()))
            .unwrap_or_else(|error| panic!("the JDM graph evaluates: {error:?}"));
        let answer = response.result.to_value();
        let text = |key: &str| answer[key].as_str().map(str::to_owned);
        Outcome {
            status: text("status").expect("a status"),
            codes: answer["codes"]
                .as_array()
                .expect("codes")
                .iter()
                .map(|code| code.as_str().expect("a code is text").to_owned())
                .collect(),
            // A JDM number is a decimal: read its digits, never a float.
            score: match &answer["score"] {
                Value::Null => None,
                score => Some(score.to_string().parse().expect("a score is 0..=1000")),
            },
            rail: text("rail"),
        }
    }
}

fn party(party: Option<&Party>) -> Value {
    let Some(party) = party else {
        return Value::Null;
    };
    json!({
        "name": party.name.as_ref().map(ToString::to_string),
        "country": party.country.as_ref().map(|c| c.as_str()),
        "iban": party.account.as_ref().and_then(|a| a.iban.as_ref()).map(|i| i.as_str()),
    })
}

fn agent(agent: &Agent) -> Value {
    json!({
        "bic": agent.bic.as_ref().map(|b| b.as_str()),
        "member_id": agent.member_id.as_ref().map(ToString::to_string),
        "country": agent.country.as_ref().map(|c| c.as_str()),
    })
}

/// The graph's input: the payment, the velocity figures, the clock, and the screening
/// index's answer for each named party.
fn input(payment: &Payment, book: &VelocityBook, sanctions: &NamedList, now_unix_ms: i64) -> Value {
    let money = payment.money();
    let signals = crate::floor::signals(payment, book, now_unix_ms);
    let clock = crate::floor::clock(now_unix_ms);
    let named = [
        Some(&payment.debtor),
        Some(&payment.creditor),
        payment.ultimate_debtor.as_ref(),
        payment.ultimate_creditor.as_ref(),
    ];
    let screening: Vec<Value> = named
        .into_iter()
        .flatten()
        .filter_map(|party| party.name.as_ref())
        .map(|name| {
            json!({
                "best": facts::best_match(sanctions, name.as_str()),
                "disguised": facts::disguised(name.as_str()),
            })
        })
        .collect();
    json!({
        "p": {
            "amount": money.minor_units(),
            "currency": money.currency().code(),
            "scale": money.currency().minor_digits(),
            "urgency": facts::urgency_name(payment.urgency),
            "debtor": party(Some(&payment.debtor)),
            "creditor": party(Some(&payment.creditor)),
            "ultimate_debtor": party(payment.ultimate_debtor.as_ref()),
            "ultimate_creditor": party(payment.ultimate_creditor.as_ref()),
            "debtor_agent": agent(&payment.debtor_agent),
            "creditor_agent": agent(&payment.creditor_agent),
            "intermediaries": payment.intermediary_agents.iter().map(agent).collect::<Vec<_>>(),
            "debtor_address_given": payment.debtor.address.as_ref().is_some_and(|a| {
                a.town_name.is_some() || !a.address_lines.lines().is_empty()
            }),
            "signals": {
                "debtor_last_hour": signals.debtor_last_hour,
                "debtor_last_day": signals.debtor_last_day,
                "debtor_30_count": signals.debtor_last_30_days.0,
                "debtor_30_sum": signals.debtor_last_30_days.1,
                "pair_last_day": signals.pair_last_day,
                "pair_last_90_days": signals.pair_last_90_days,
            },
            "now": { "minute_of_day": clock.minute_of_day, "weekday": clock.weekday },
        },
        "screening": screening,
    })
}
