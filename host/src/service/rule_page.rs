//! One rule of the live set, for the people who run it: its test vectors as they ran when
//! the set went live, its measured figures by version over the last week (every host), and
//! what changed from the same rule in another kept rule set (by default the one live
//! before): the component, the capabilities granted, the limits, the failure policy, its
//! order, lists and configuration, and the fuel each version measured.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::rollback::ROLLED_BACK;
use super::rules::LOADED;
use super::{Service, ServiceError};
use crate::registry::manifest::Manifest;
use crate::registry::{LoadError, RuleSet};
use crate::service::overview::Window;
use crate::telemetry::overview::RuleTally;

/// How far back the history is searched for the set live before.
const HISTORY_SEARCHED: u32 = 200;

/// A rule's page.
pub struct RulePage {
    /// The live set holding it.
    pub set: Arc<RuleSet>,
    /// Its place in the set's rules.
    pub index: usize,
    /// Its figures over the last 7 days on every host, by component version.
    pub measured: BTreeMap<String, RuleTally>,
    /// The other set it is compared with, if any.
    pub against: Option<Against>,
    /// The kept rule sets (the most recently live first): what it may be compared with.
    pub kept_versions: Vec<String>,
}

/// The same rule in another kept set.
pub struct Against {
    /// That set's version.
    pub set_version: String,
    /// The rule there (its manifest and its component's sha256), or `None` when that set
    /// has no rule of this name.
    pub rule: Option<(Manifest, String)>,
    /// What differs, live first: empty when nothing does.
    pub changes: Vec<Change>,
}

/// One difference between two versions of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// What: `component`, `failure_policy`, `capabilities`, `limits.fuel`, …
    pub field: String,
    /// In the live set.
    pub live: String,
    /// In the other set.
    pub other: String,
}

/// Why a rule's page was not made.
#[derive(Debug, thiserror::Error)]
pub enum RulePageError {
    /// The live set has no rule of that name.
    #[error("the live rule set has no rule {0:?}")]
    NoSuchRule(String),
    /// The set to compare with is not kept on this host.
    #[error("the rule set {0:?} is not kept on this host (see kept_versions)")]
    NotKept(String),
    /// The kept set's files do not read.
    #[error("the kept rule set does not read: {0}")]
    Unreadable(LoadError),
    /// The store did not answer.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl Service {
    /// The page of the live rule `name`, compared with that rule in the kept set
    /// `against` (by default the set live before the live one, if kept).
    pub async fn rule_page(
        &self,
        name: &str,
        against: Option<&str>,
    ) -> Result<RulePage, RulePageError> {
        let set = self.rules.current();
        let index = set
            .rules()
            .iter()
            .position(|rule| rule.manifest.name == name)
            .ok_or_else(|| RulePageError::NoSuchRule(name.to_owned()))?;
        let kept = self.rules.kept();
        let kept_versions = kept.map(|k| k.versions()).unwrap_or_default();
        let other = match against {
            Some(version) => {
                if !kept_versions.iter().any(|v| v == version) {
                    return Err(RulePageError::NotKept(version.to_owned()));
                }
                Some(version.to_owned())
            }
            None => self
                .store
                .audit_entries_of(&[LOADED, ROLLED_BACK], HISTORY_SEARCHED)
                .await
                .map_err(ServiceError::from)?
                .into_iter()
                .map(|entry| entry.subject)
                .find(|version| *version != set.version && kept_versions.contains(version)),
        };
        let against = match (other, kept) {
            (Some(set_version), Some(kept)) => {
                let rule = kept
                    .rule(&set_version, name)
                    .map_err(RulePageError::Unreadable)?;
                let live = &set.rules()[index];
                let changes = rule.as_ref().map_or_else(Vec::new, |(manifest, version)| {
                    changes(&live.manifest, &live.version, manifest, version)
                });
                Some(Against {
                    set_version,
                    rule,
                    changes,
                })
            }
            _ => None,
        };
        let week = self.overview(Window::Week).await?;
        let measured = week.total.rules.get(name).cloned().unwrap_or_default();
        Ok(RulePage {
            set,
            index,
            measured,
            against,
            kept_versions,
        })
    }
}

/// What differs between a rule's manifest and component (`live`) and another's.
pub fn changes(
    live: &Manifest,
    live_version: &str,
    other: &Manifest,
    other_version: &str,
) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut differ = |field: &str, live: String, other: String| {
        if live != other {
            changes.push(Change {
                field: field.to_owned(),
                live,
                other,
            });
        }
    };
    differ(
        "component",
        live_version.to_owned(),
        other_version.to_owned(),
    );
    differ(
        "kind",
        live.kind.name().to_owned(),
        other.kind.name().to_owned(),
    );
    differ("order", live.order.to_string(), other.order.to_string());
    differ(
        "failure_policy",
        policy_name(live.failure_policy),
        policy_name(other.failure_policy),
    );
    let capabilities = |m: &Manifest| {
        let mut names: Vec<&str> = m.capabilities.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.join(", ")
    };
    differ("capabilities", capabilities(live), capabilities(other));
    let (a, b) = (&live.limits, &other.limits);
    differ("limits.fuel", a.fuel.to_string(), b.fuel.to_string());
    differ(
        "limits.memory_bytes_max",
        a.memory_bytes_max.to_string(),
        b.memory_bytes_max.to_string(),
    );
    differ(
        "limits.timeout_ms",
        a.timeout_ms.to_string(),
        b.timeout_ms.to_string(),
    );
    differ(
        "limits.output_bytes_max",
        a.output_bytes_max.to_string(),
        b.output_bytes_max.to_string(),
    );
    differ(
        "limits.host_calls_max",
        a.host_calls_max.to_string(),
        b.host_calls_max.to_string(),
    );
    let keys = |map: &BTreeMap<String, String>| map.keys().cloned().collect::<Vec<_>>().join(", ");
    differ("lists", keys(&live.lists), keys(&other.lists));
    // Configuration: the keys whose values differ (a value is the rule team's, shown on
    // their manifest; the page names what moved).
    let changed: Vec<&str> = live
        .config
        .keys()
        .chain(other.config.keys())
        .filter(|key| live.config.get(*key) != other.config.get(*key))
        .map(String::as_str)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !changed.is_empty() {
        changes.push(Change {
            field: "config".to_owned(),
            live: changed
                .iter()
                .map(|key| {
                    format!(
                        "{key} = {}",
                        live.config.get(*key).map_or("(unset)", String::as_str)
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            other: changed
                .iter()
                .map(|key| {
                    format!(
                        "{key} = {}",
                        other.config.get(*key).map_or("(unset)", String::as_str)
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    changes
}

fn policy_name(policy: crate::model::FailurePolicy) -> String {
    serde_json::to_value(policy)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(text: &str) -> Manifest {
        Manifest::parse("limits", text).expect("a manifest")
    }

    #[test]
    fn changes_name_what_moved_between_two_versions_and_nothing_else() {
        let base = r#"
kind = "compliance"
component = "limits.wasm"
capabilities = ["clock", "config"]
[limits]
fuel = 1000000
[config]
max-amount = "10000.00"
currency = "EUR"
"#;
        let same = changes(&manifest(base), "aa", &manifest(base), "aa");
        assert_eq!(same, Vec::new());
        let other = base
            .replace(
                r#"capabilities = ["clock", "config"]"#,
                r#"capabilities = ["config"]"#,
            )
            .replace("fuel = 1000000", "fuel = 2000000\ntimeout-ms = 50")
            .replace(r#"max-amount = "10000.00""#, r#"max-amount = "5000.00""#)
            .replace("[limits]", "failure-policy = \"reject\"\n[limits]");
        let found = changes(&manifest(base), "aa", &manifest(&other), "bb");
        let fields: Vec<&str> = found.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "component",
                "failure_policy",
                "capabilities",
                "limits.fuel",
                "limits.timeout_ms",
                "config"
            ]
        );
        assert_eq!(found[1].live, "review");
        assert_eq!(found[1].other, "reject");
        assert_eq!(found[2].live, "clock, config");
        assert_eq!(found[2].other, "config");
        assert_eq!(found[5].live, "max-amount = 10000.00");
        assert_eq!(found[5].other, "max-amount = 5000.00");
    }
}
