//! The decision as a Rhai script (`rules/decision.rhai`), compiled once to an AST and run
//! per payment with the engine's operation, size and depth limits set: what a team would
//! embed if it chose a scripting engine. The sanctions look-up and the participant
//! directories are host functions over the same index payrules' rules call.

use std::sync::Arc;

use payrules::lists::NamedList;
use payrules::model::{Agent, Party, Payment};
use payrules::velocity::VelocityBook;
use rhai::{AST, Dynamic, Engine, Map, Scope};

use crate::facts::{self, Outcome};

/// The script's bounds: far above what the decision needs (it takes ≈2,000 operations),
/// low enough that a runaway script stops in milliseconds.
const OPERATIONS_MAX: u64 = 200_000;

pub struct RhaiPeer {
    engine: Engine,
    ast: AST,
}

impl RhaiPeer {
    /// The engine with the host's functions, and the script compiled.
    pub fn new(sanctions: Arc<NamedList>, fednow: Arc<NamedList>, rtp: Arc<NamedList>) -> RhaiPeer {
        let mut engine = Engine::new();
        engine
            .set_max_operations(OPERATIONS_MAX)
            .set_max_call_levels(16)
            .set_max_expr_depths(64, 32)
            .set_max_string_size(4_096)
            .set_max_array_size(1_024)
            .set_max_map_size(256)
            .set_strict_variables(true);
        engine.register_fn("screen", move |name: &str| -> i64 {
            i64::from(facts::best_match(&sanctions, name))
        });
        engine.register_fn("disguised", |name: &str| facts::disguised(name));
        engine.register_fn("on_list", move |list: &str, member_id: &str| match list {
            "fednow-participants" => fednow.contains(member_id),
            "rtp-participants" => rtp.contains(member_id),
            _ => false,
        });
        let script = include_str!("../rules/decision.rhai");
        // Strict variables: the script may read `p` and nothing it has not declared.
        let mut declared = Scope::new();
        declared.push("p", Map::new());
        let ast = engine
            .compile_with_scope(&declared, script)
            .expect("the Rhai decision compiles");
        RhaiPeer { engine, ast }
    }

    /// The decision for `payment` at `now_unix_ms`.
    pub fn decide(&self, payment: &Payment, book: &VelocityBook, now_unix_ms: i64) -> Outcome {
        let mut scope = Scope::new();
        scope.push("p", payment_map(payment, book, now_unix_ms));
        let answer: Map = self
            .engine
            .eval_ast_with_scope(&mut scope, &self.ast)
            .expect("the Rhai decision runs");
        let text = |key: &str| answer[key].clone().into_string().ok();
        Outcome {
            status: text("status").expect("a status"),
            codes: answer["codes"]
                .clone()
                .into_typed_array::<rhai::ImmutableString>()
                .expect("codes")
                .into_iter()
                .map(|code| code.to_string())
                .collect(),
            score: answer["score"]
                .as_int()
                .ok()
                .map(|score| u16::try_from(score).expect("a score is 0..=1000")),
            rail: text("rail"),
        }
    }
}

fn text(value: Option<impl ToString>) -> Dynamic {
    value.map_or(Dynamic::UNIT, |v| v.to_string().into())
}

fn party(party: Option<&Party>) -> Dynamic {
    let Some(party) = party else {
        return Dynamic::UNIT;
    };
    let mut map = Map::new();
    map.insert("name".into(), text(party.name.as_ref()));
    map.insert(
        "country".into(),
        text(party.country.as_ref().map(|c| c.as_str())),
    );
    map.insert(
        "iban".into(),
        text(
            party
                .account
                .as_ref()
                .and_then(|a| a.iban.as_ref())
                .map(|i| i.as_str()),
        ),
    );
    map.into()
}

fn agent(agent: &Agent) -> Dynamic {
    let mut map = Map::new();
    map.insert("bic".into(), text(agent.bic.as_ref().map(|b| b.as_str())));
    map.insert("member_id".into(), text(agent.member_id.as_ref()));
    map.insert(
        "country".into(),
        text(agent.country.as_ref().map(|c| c.as_str())),
    );
    map.into()
}

/// The payment as the script reads it, with the velocity figures and the clock.
fn payment_map(payment: &Payment, book: &VelocityBook, now_unix_ms: i64) -> Map {
    let money = payment.money();
    let signals = crate::floor::signals(payment, book, now_unix_ms);
    let clock = crate::floor::clock(now_unix_ms);
    let int = |n: u64| Dynamic::from(i64::try_from(n).expect("fits in i64"));
    let mut map = Map::new();
    map.insert("amount".into(), int(money.minor_units()));
    map.insert("currency".into(), money.currency().code().into());
    map.insert(
        "scale".into(),
        int(u64::from(money.currency().minor_digits())),
    );
    map.insert(
        "urgency".into(),
        facts::urgency_name(payment.urgency).into(),
    );
    map.insert("debtor".into(), party(Some(&payment.debtor)));
    map.insert("creditor".into(), party(Some(&payment.creditor)));
    map.insert(
        "ultimate_debtor".into(),
        party(payment.ultimate_debtor.as_ref()),
    );
    map.insert(
        "ultimate_creditor".into(),
        party(payment.ultimate_creditor.as_ref()),
    );
    map.insert("debtor_agent".into(), agent(&payment.debtor_agent));
    map.insert("creditor_agent".into(), agent(&payment.creditor_agent));
    map.insert(
        "intermediaries".into(),
        payment
            .intermediary_agents
            .iter()
            .map(agent)
            .collect::<Vec<_>>()
            .into(),
    );
    map.insert(
        "debtor_address_given".into(),
        payment
            .debtor
            .address
            .as_ref()
            .is_some_and(|a| a.town_name.is_some() || !a.address_lines.lines().is_empty())
            .into(),
    );
    let mut figures = Map::new();
    figures.insert(
        "debtor_last_hour".into(),
        int(signals.debtor_last_hour.into()),
    );
    figures.insert(
        "debtor_last_day".into(),
        int(signals.debtor_last_day.into()),
    );
    figures.insert(
        "debtor_30_count".into(),
        int(signals.debtor_last_30_days.0.into()),
    );
    figures.insert("debtor_30_sum".into(), int(signals.debtor_last_30_days.1));
    figures.insert("pair_last_day".into(), int(signals.pair_last_day.into()));
    figures.insert(
        "pair_last_90_days".into(),
        int(signals.pair_last_90_days.into()),
    );
    map.insert("signals".into(), figures.into());
    let mut now = Map::new();
    now.insert("minute_of_day".into(), int(clock.minute_of_day.into()));
    now.insert("weekday".into(), int(clock.weekday.into()));
    map.insert("now".into(), now.into());
    map
}
