//! A rule's test vectors: payments and what the rule must answer for each, in a file
//! `NAME.vectors.toml` beside its manifest.
//!
//! The same file is what `payrules plugin test` runs for the rule's author and what the
//! loader runs before a rule set goes live (at start and on every reload): a version
//! whose vectors fail never decides a payment. Each case runs the real component in the
//! real sandbox with the rule's own limits, config and lists, at a fixed instant, with
//! fresh velocity figures holding only the payments the case says came before.
//!
//! ```toml
//! at = 2026-11-23T15:00:00Z      # the instant the cases run at (the rule's clock)
//!
//! [payment]                      # the payment every case starts from (canonical JSON
//! end_to_end_id = "VEC-1"        # form, as TOML); a case changes only what it names
//! amount = "250.00"
//! # ...
//!
//! [[case]]
//! name = "a new creditor for a large amount"
//! payment = { amount = "5000.00" }
//! expect = { score = 200, reason = "new-creditor" }
//!
//! [[case]]
//! name = "the sixth payment in an hour is a burst"
//! expect = { score = { min = 250 }, reason = "debtor-burst" }
//! [[case.before]]                # accepted before this case (velocity figures)
//! at = 2026-11-23T14:10:00Z
//! payment = { end_to_end_id = "VEC-0" }
//! ```
//!
//! `expect` holds any of: `verdict` (`pass`, `review`, `reject`, `score`, `route`,
//! `decline`, `failed`), `reason` (a code the answer must carry: a reject or decline
//! reason, a review finding, a risk reason), `score` (a number, or `{ min, max }`,
//! inclusive) and `route` (a rail). Every field named must hold.
//!
//! A case's `payment` overlays the file's field by field (tables merge, anything else
//! replaces); `unset = ["creditor_agent.member_id"]` removes fields the case must not
//! have. A `[[case.before]]` payment overlays the case's.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::model::{Payment, Rail, RuleKind, RuleLogLine, RuleOutcome};
use crate::runtime::Runtime;
use crate::velocity::VelocityBook;

use super::Rule;

/// How a rule's vectors file is named: `NAME` + this, beside `NAME.toml`.
pub const FILE_SUFFIX: &str = ".vectors.toml";
/// The most cases a vectors file may hold.
pub const CASES_MAX: usize = 1_000;
/// The most earlier payments one case may set up.
pub const BEFORE_MAX: usize = 1_000;

/// A vectors file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VectorsFile {
    at: Option<toml::Value>,
    #[serde(default)]
    payment: toml::Table,
    #[serde(default, rename = "case")]
    cases: Vec<CaseFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    name: String,
    at: Option<toml::Value>,
    #[serde(default)]
    payment: toml::Table,
    #[serde(default)]
    unset: Vec<String>,
    #[serde(default)]
    before: Vec<BeforeFile>,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BeforeFile {
    at: toml::Value,
    #[serde(default)]
    payment: toml::Table,
}

/// What a case expects of the rule's answer. Every field given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The kind of answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// A reason code the answer must carry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The fraud score, exactly or within a range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<ScoreExpect>,
    /// The rail chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<Rail>,
}

/// The kinds of answer a rule can give (and `failed`: it broke a bound or the contract).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Compliance: nothing to object to.
    Pass,
    /// Compliance: hold for review.
    Review,
    /// Compliance: refuse.
    Reject,
    /// Fraud: a score.
    Score,
    /// Routing: a rail.
    Route,
    /// Routing: no rail.
    Decline,
    /// The rule failed.
    Failed,
}

impl Verdict {
    fn of(outcome: &RuleOutcome) -> Verdict {
        match outcome {
            RuleOutcome::Pass => Verdict::Pass,
            RuleOutcome::Review { .. } => Verdict::Review,
            RuleOutcome::Reject { .. } => Verdict::Reject,
            RuleOutcome::Score { .. } => Verdict::Score,
            RuleOutcome::Route { .. } => Verdict::Route,
            RuleOutcome::Decline { .. } => Verdict::Decline,
            RuleOutcome::Failed { .. } => Verdict::Failed,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Review => "review",
            Verdict::Reject => "reject",
            Verdict::Score => "score",
            Verdict::Route => "route",
            Verdict::Decline => "decline",
            Verdict::Failed => "failed",
        }
    }

    fn fits(self, kind: RuleKind) -> bool {
        match self {
            Verdict::Pass | Verdict::Review | Verdict::Reject => kind == RuleKind::Compliance,
            Verdict::Score => kind == RuleKind::Fraud,
            Verdict::Route | Verdict::Decline => kind == RuleKind::Routing,
            Verdict::Failed => true,
        }
    }
}

/// An expected score: exactly, or an inclusive range (either end open).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScoreExpect {
    /// Exactly this score.
    Exactly(u16),
    /// Within `min..=max`.
    Range {
        /// The lowest accepted score (default 0).
        #[serde(default)]
        min: u16,
        /// The highest accepted score (default 1000).
        #[serde(default = "score_max")]
        max: u16,
    },
}

fn score_max() -> u16 {
    1000
}

impl ScoreExpect {
    fn holds(self, score: u16) -> bool {
        match self {
            ScoreExpect::Exactly(expected) => score == expected,
            ScoreExpect::Range { min, max } => (min..=max).contains(&score),
        }
    }
}

impl std::fmt::Display for ScoreExpect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScoreExpect::Exactly(score) => write!(f, "{score}"),
            ScoreExpect::Range { min, max } => write!(f, "{min}..={max}"),
        }
    }
}

/// One case: a payment, the instant it is decided at, what came before, what to expect.
#[derive(Debug)]
pub struct Case {
    /// What it tests, in words.
    pub name: String,
    /// The instant the rule sees (milliseconds since the Unix epoch).
    pub at_unix_ms: i64,
    /// The payment.
    pub payment: Payment,
    /// Payments accepted earlier, with their instants: the velocity figures the rule sees.
    pub before: Vec<(Payment, i64)>,
    /// What the answer must be.
    pub expect: Expect,
}

/// A rule's parsed test vectors.
#[derive(Debug)]
pub struct Vectors {
    /// The file they were read from (empty if not read from a file).
    pub path: PathBuf,
    /// The cases, in file order.
    pub cases: Vec<Case>,
}

/// One case's run.
#[derive(Debug)]
pub struct CaseReport {
    /// The case's name.
    pub name: String,
    /// What the rule answered (a failure as [`RuleOutcome::Failed`]).
    pub outcome: RuleOutcome,
    /// What did not hold, one line each; empty when the case passed.
    pub mismatches: Vec<String>,
    /// The fuel the rule used.
    pub fuel_used: u64,
    /// Wall time from instantiation to checked answer.
    pub duration: Duration,
    /// The part of `duration` spent instantiating the rule.
    pub instantiation: Duration,
    /// What the rule logged.
    pub logs: Vec<RuleLogLine>,
}

impl CaseReport {
    /// Whether every expectation held.
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

impl Vectors {
    /// Parses and checks a vectors file for a rule of `kind`: every payment must be valid
    /// and every expectation one a rule of that kind can meet.
    pub fn parse(text: &str, kind: RuleKind) -> Result<Vectors, String> {
        let file: VectorsFile = toml::from_str(text).map_err(|e| super::toml_error(text, &e))?;
        if file.cases.is_empty() {
            return Err("no [[case]]: a vectors file must hold at least one case".to_owned());
        }
        if file.cases.len() > CASES_MAX {
            return Err(format!(
                "{} cases, more than the {CASES_MAX} allowed",
                file.cases.len()
            ));
        }
        let default_at = file
            .at
            .as_ref()
            .map(|at| instant(at).map_err(|e| format!("at: {e}")))
            .transpose()?;
        let mut cases = Vec::with_capacity(file.cases.len());
        for (index, case) in file.cases.into_iter().enumerate() {
            let name = case.name.clone();
            let parsed = parse_case(case, &file.payment, default_at, kind)
                .map_err(|e| format!("case {} ({name:?}): {e}", index + 1))?;
            cases.push(parsed);
        }
        Ok(Vectors {
            path: PathBuf::new(),
            cases,
        })
    }

    /// Runs every case through `rule` in the sandbox of `runtime`; a routing rule is
    /// offered `candidates`.
    pub fn run(&self, runtime: &Runtime, rule: &Rule, candidates: &[Rail]) -> Vec<CaseReport> {
        self.cases
            .iter()
            .enumerate()
            .map(|(index, case)| run_case(runtime, rule, candidates, index, case))
            .collect()
    }
}

fn parse_case(
    case: CaseFile,
    base: &toml::Table,
    default_at: Option<i64>,
    kind: RuleKind,
) -> Result<Case, String> {
    let at_unix_ms = match &case.at {
        Some(at) => instant(at).map_err(|e| format!("at: {e}"))?,
        None => default_at.ok_or(
            "no instant: give `at` at the top of the file or in the case (e.g. at = 2026-11-23T15:00:00Z)",
        )?,
    };
    let expect = case.expect;
    if expect == Expect::default() {
        return Err("expect names nothing: give a verdict, reason, score or route".to_owned());
    }
    if let Some(verdict) = expect.verdict
        && !verdict.fits(kind)
    {
        return Err(format!(
            "expect.verdict {:?}: a {} rule cannot answer it",
            verdict.name(),
            kind.name()
        ));
    }
    if expect.score.is_some() && kind != RuleKind::Fraud {
        return Err(format!(
            "expect.score: only fraud rules score, this is a {} rule",
            kind.name()
        ));
    }
    if expect.route.is_some() && kind != RuleKind::Routing {
        return Err(format!(
            "expect.route: only routing rules route, this is a {} rule",
            kind.name()
        ));
    }
    if let Some(ScoreExpect::Range { min, max }) = expect.score
        && (min > max || max > 1000)
    {
        return Err(format!(
            "expect.score: the range {min}..={max} is empty or above 1000"
        ));
    }
    let mut merged = base.clone();
    merge(&mut merged, &case.payment);
    for path in &case.unset {
        unset(&mut merged, path).map_err(|e| format!("unset {path:?}: {e}"))?;
    }
    let payment = read_payment(&merged)?;
    if case.before.len() > BEFORE_MAX {
        return Err(format!(
            "{} earlier payments, more than the {BEFORE_MAX} allowed",
            case.before.len()
        ));
    }
    let mut before = Vec::with_capacity(case.before.len());
    for (index, earlier) in case.before.iter().enumerate() {
        let at = instant(&earlier.at).map_err(|e| format!("before {}: at: {e}", index + 1))?;
        if at > at_unix_ms {
            return Err(format!(
                "before {}: at is after the case's own instant",
                index + 1
            ));
        }
        let mut table = merged.clone();
        merge(&mut table, &earlier.payment);
        let payment = read_payment(&table).map_err(|e| format!("before {}: {e}", index + 1))?;
        before.push((payment, at));
    }
    Ok(Case {
        name: case.name,
        at_unix_ms,
        payment,
        before,
        expect,
    })
}

fn run_case(
    runtime: &Runtime,
    rule: &Rule,
    candidates: &[Rail],
    index: usize,
    case: &Case,
) -> CaseReport {
    let velocity = Arc::new(VelocityBook::new());
    for (payment, at) in &case.before {
        velocity.record(payment, *at);
    }
    let payment_id = format!("vector-{}", index + 1);
    let mut evaluation = runtime.evaluation(&case.payment, &payment_id, case.at_unix_ms, velocity);
    let result = match rule.manifest.kind {
        RuleKind::Compliance => evaluation.check(&rule.compiled, &rule.context),
        RuleKind::Fraud => evaluation.score(&rule.compiled, &rule.context),
        RuleKind::Routing => evaluation.route(&rule.compiled, &rule.context, candidates),
    };
    let outcome = match result.outcome {
        Ok(outcome) => outcome,
        Err(failure) => RuleOutcome::Failed {
            failure: failure.kind,
            message: failure.message,
            policy: rule.manifest.failure_policy,
        },
    };
    CaseReport {
        name: case.name.clone(),
        mismatches: mismatches(&case.expect, &outcome),
        outcome,
        fuel_used: result.fuel_used,
        duration: result.duration,
        instantiation: result.instantiation,
        logs: result.logs,
    }
}

/// What of `expect` does not hold for `outcome`, one line each.
pub fn mismatches(expect: &Expect, outcome: &RuleOutcome) -> Vec<String> {
    let mut wrong = Vec::new();
    let got = Verdict::of(outcome);
    let answer = outcome.summary();
    if let Some(verdict) = expect.verdict
        && verdict != got
    {
        wrong.push(format!("expected {}, got {answer}", verdict.name()));
    }
    if let Some(expected) = expect.score {
        match outcome {
            RuleOutcome::Score { score, .. } if expected.holds(*score) => {}
            _ => wrong.push(format!("expected score {expected}, got {answer}")),
        }
    }
    if let Some(expected) = expect.route {
        match outcome {
            RuleOutcome::Route { rail, .. } if *rail == expected => {}
            _ => wrong.push(format!("expected route {}, got {answer}", expected.name())),
        }
    }
    if let Some(code) = &expect.reason
        && !outcome.codes().contains(&code.as_str())
    {
        wrong.push(format!("expected reason {code}, got {answer}"));
    }
    wrong
}

/// Overlays `over` on `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(over)) => merge(inner, over),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Removes the field at the dotted `path` (`creditor_agent.member_id`).
fn unset(table: &mut toml::Table, path: &str) -> Result<(), String> {
    match path.split_once('.') {
        None => table
            .remove(path)
            .map(drop)
            .ok_or_else(|| "the payment has no such field".to_owned()),
        Some((head, rest)) => match table.get_mut(head) {
            Some(toml::Value::Table(inner)) => unset(inner, rest),
            _ => Err("the payment has no such field".to_owned()),
        },
    }
}

/// A payment from its TOML form, validated as one from HTTP would be.
fn read_payment(table: &toml::Table) -> Result<Payment, String> {
    let json = json(&toml::Value::Table(table.clone()));
    Payment::from_json(&json.to_string()).map_err(|e| {
        let dot = if e.field.is_empty() { "" } else { "." };
        format!("payment{dot}{}: {} ({})", e.field, e.reason, e.code)
    })
}

fn json(value: &toml::Value) -> serde_json::Value {
    match value {
        toml::Value::String(text) => serde_json::Value::String(text.clone()),
        toml::Value::Integer(number) => serde_json::Value::from(*number),
        // A float stays a JSON number, which the payment reader refuses for money.
        toml::Value::Float(number) => serde_json::Number::from_f64(*number)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        toml::Value::Boolean(flag) => serde_json::Value::Bool(*flag),
        toml::Value::Datetime(datetime) => serde_json::Value::String(datetime.to_string()),
        toml::Value::Array(items) => serde_json::Value::Array(items.iter().map(json).collect()),
        toml::Value::Table(table) => serde_json::Value::Object(
            table
                .iter()
                .map(|(key, value)| (key.clone(), json(value)))
                .collect(),
        ),
    }
}

/// An instant written as a TOML date-time or an RFC 3339 string, in UTC.
fn instant(value: &toml::Value) -> Result<i64, String> {
    let text = match value {
        toml::Value::Datetime(datetime) => datetime.to_string(),
        toml::Value::String(text) => text.clone(),
        _ => return Err("not a date-time (e.g. 2026-11-23T15:00:00Z)".to_owned()),
    };
    let time = humantime::parse_rfc3339(&text)
        .map_err(|e| format!("{text:?} is not a UTC date-time like 2026-11-23T15:00:00Z: {e}"))?;
    let since_epoch = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| format!("{text:?} is before 1970"))?;
    i64::try_from(since_epoch.as_millis()).map_err(|_| format!("{text:?} is too far ahead"))
}

/// The instant `unix_ms` as RFC 3339 (for reports).
pub fn format_instant(unix_ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(u64::try_from(unix_ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Reason, RiskReason};

    const PAYMENT: &str = r#"
at = 2026-11-23T15:00:00Z
[payment]
end_to_end_id = "VEC-1"
amount = "250.00"
currency = "USD"
debtor = { name = "Harbor Coffee Roasters LLC", country = "US", account = { id = "44444444444" } }
debtor_agent = { member_id = "021000021" }
creditor = { name = "Maria Gonzalez", country = "US", account = { id = "55555555555" } }
creditor_agent = { member_id = "121000248" }
"#;

    fn parse(cases: &str, kind: RuleKind) -> Result<Vectors, String> {
        Vectors::parse(&format!("{PAYMENT}\n{cases}"), kind)
    }

    #[test]
    fn cases_overlay_the_base_payment_and_set_up_earlier_ones() {
        let vectors = parse(
            r#"
[[case]]
name = "big"
payment = { amount = "5000.00", creditor = { country = "NG" }, creditor_agent = { bic = "ZEIBNGLA" } }
unset = ["creditor_agent.member_id"]
expect = { score = { min = 200 }, reason = "new-creditor" }
[[case.before]]
at = "2026-11-23T14:00:00Z"
payment = { amount = "10.00" }
"#,
            RuleKind::Fraud,
        )
        .expect("valid");
        let case = &vectors.cases[0];
        let json = |payment: &Payment| serde_json::to_value(payment).expect("serializes");
        let payment = json(&case.payment);
        assert_eq!(payment["amount"], "5000.00");
        assert_eq!(payment["creditor"]["country"], "NG");
        assert_eq!(payment["creditor"]["name"], "Maria Gonzalez");
        assert_eq!(
            payment["creditor_agent"],
            serde_json::json!({ "bic": "ZEIBNGLA" })
        );
        assert_eq!(case.at_unix_ms, 1_795_446_000_000);
        let (earlier, at) = &case.before[0];
        let earlier = json(earlier);
        assert_eq!(earlier["amount"], "10.00");
        assert_eq!(earlier["creditor"]["country"], "NG");
        assert_eq!(*at, 1_795_442_400_000);
    }

    #[test]
    fn bad_files_say_which_case_and_why() {
        let error = |cases: &str, kind| parse(cases, kind).expect_err("refused");
        assert!(error("", RuleKind::Fraud).contains("at least one case"));
        assert!(
            error(
                "[[case]]\nname = \"x\"\npayment = { amount = 12.5 }\nexpect = { score = 0 }",
                RuleKind::Fraud
            )
            .contains("case 1 (\"x\"): payment.amount")
        );
        assert!(
            error(
                "[[case]]\nname = \"x\"\nexpect = { route = \"fednow\" }",
                RuleKind::Fraud
            )
            .contains("only routing rules route")
        );
        assert!(
            error(
                "[[case]]\nname = \"x\"\nexpect = { verdict = \"pass\" }",
                RuleKind::Routing
            )
            .contains("cannot answer")
        );
        assert!(
            error("[[case]]\nname = \"x\"\nexpect = {}", RuleKind::Fraud).contains("names nothing")
        );
        assert!(
            error(
                "[[case]]\nname = \"x\"\nunset = [\"creditor.colour\"]\nexpect = { score = 0 }",
                RuleKind::Fraud
            )
            .contains("unset \"creditor.colour\": the payment has no such field")
        );
        assert!(
            error(
                "[[case]]\nname = \"x\"\nat = \"tomorrow\"\nexpect = { score = 0 }",
                RuleKind::Fraud
            )
            .contains("not a UTC date-time")
        );
        assert!(
            error(
                "[[case]]\nname = \"x\"\nexpect = { score = 0, colour = \"red\" }",
                RuleKind::Fraud
            )
            .contains("colour")
        );
        assert!(
            error(
                "[[case]]\nname = \"x\"\nexpect = { score = { min = 700, max = 300 } }",
                RuleKind::Fraud
            )
            .contains("empty")
        );
        assert!(
            error(
                "[[case]]\nname = \"x\"\nexpect = { score = 0 }\n[[case.before]]\nat = 2026-11-24T00:00:00Z",
                RuleKind::Fraud
            )
            .contains("after the case's own instant")
        );
    }

    #[test]
    fn every_expectation_is_checked() {
        let score = RuleOutcome::Score {
            score: 450,
            reasons: vec![RiskReason {
                code: "new-creditor".into(),
                points: 450,
                message: String::new(),
            }],
        };
        let expect = |text: &str| -> Expect { toml::from_str(text).expect("valid expect") };
        assert!(mismatches(&expect("score = 450"), &score).is_empty());
        assert!(mismatches(&expect("score = { min = 400, max = 500 }"), &score).is_empty());
        assert!(mismatches(&expect("reason = \"new-creditor\""), &score).is_empty());
        assert_eq!(
            mismatches(&expect("score = { max = 400 }"), &score),
            vec!["expected score 0..=400, got score 450 [new-creditor]"]
        );
        assert_eq!(
            mismatches(&expect("verdict = \"failed\"\nreason = \"burst\""), &score),
            vec![
                "expected failed, got score 450 [new-creditor]",
                "expected reason burst, got score 450 [new-creditor]"
            ]
        );
        let reject = RuleOutcome::Reject {
            reason: Reason {
                code: "RR04".into(),
                message: String::new(),
                rule: None,
            },
        };
        assert!(mismatches(&expect("verdict = \"reject\"\nreason = \"RR04\""), &reject).is_empty());
        let route = RuleOutcome::Route {
            rail: Rail::Fednow,
            explanation: String::new(),
        };
        assert!(mismatches(&expect("route = \"fednow\""), &route).is_empty());
        assert_eq!(
            mismatches(&expect("route = \"rtp\""), &route),
            vec!["expected route rtp, got route fednow"]
        );
    }
}
