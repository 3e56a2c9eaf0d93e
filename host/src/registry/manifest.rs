//! A rule's manifest: the TOML file beside its component that says what the rule is and
//! how the host must run it.
//!
//! ```toml
//! kind = "compliance"               # compliance | fraud | routing
//! component = "sanctions_screening.wasm"   # default: <manifest name>.wasm
//! order = 10                        # lower runs first within its kind
//! failure-policy = "review"         # review | reject | skip (default by kind)
//! capabilities = ["lists", "log", "config"]
//! isolation = "fresh"               # fresh | warm (trusted rules only; see below)
//!
//! [warm]                            # only with isolation = "warm"
//! recycle-after = 1_000             # payments per instance
//!
//! [limits]                          # all optional; see runtime::RuleLimits
//! fuel = 10_000_000
//! memory-bytes-max = 16_777_216
//!
//! [lists]                           # list name -> file, relative to the manifest
//! sanctions = "lists/sdn-sample.csv"
//!
//! [config]                          # anything; the rule reads it with config.get
//! strong-match = 930
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::model::{FailurePolicy, RuleKind};
use crate::runtime::{Capability, Isolation, RuleLimits, WarmPolicy};

/// The most configuration entries (after flattening) a rule may have.
pub const CONFIG_ENTRIES_MAX: usize = 4_096;

/// A manifest as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ManifestFile {
    kind: RuleKind,
    component: Option<String>,
    #[serde(default)]
    order: i32,
    failure_policy: Option<FailurePolicy>,
    #[serde(default)]
    capabilities: Vec<Capability>,
    #[serde(default)]
    limits: RuleLimits,
    #[serde(default)]
    isolation: IsolationName,
    warm: Option<WarmPolicy>,
    #[serde(default)]
    lists: BTreeMap<String, String>,
    #[serde(default)]
    config: toml::Table,
}

/// `isolation` as written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum IsolationName {
    #[default]
    Fresh,
    Warm,
}

/// A parsed, checked manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The rule's name: the manifest's file name without `.toml`.
    pub name: String,
    /// Its kind.
    pub kind: RuleKind,
    /// The component file, relative to the manifest.
    pub component: String,
    /// Its place among the rules of its kind (ascending, then by name).
    pub order: i32,
    /// What its failure means.
    pub failure_policy: FailurePolicy,
    /// What it may call.
    pub capabilities: Vec<Capability>,
    /// Its bounds.
    pub limits: RuleLimits,
    /// How its instances live.
    pub isolation: Isolation,
    /// Its lists: name → file relative to the manifest.
    pub lists: BTreeMap<String, String>,
    /// Its configuration, flattened (see [`flatten_config`]).
    pub config: BTreeMap<String, String>,
}

impl Manifest {
    /// Parses the manifest of the rule `name`.
    pub fn parse(name: &str, text: &str) -> Result<Manifest, String> {
        let file: ManifestFile = toml::from_str(text).map_err(|e| super::toml_error(text, &e))?;
        file.limits.check()?;
        if !file.lists.is_empty() && !file.capabilities.contains(&Capability::Lists) {
            return Err("it names [lists] but does not grant the \"lists\" capability".to_owned());
        }
        for path in file.lists.values().chain(file.component.iter()) {
            if path.starts_with('/') || path.split(['/', '\\']).any(|part| part == "..") {
                return Err(format!(
                    "{path:?}: files must be inside the rules directory (no absolute paths, no \"..\")"
                ));
            }
        }
        let isolation = match (file.isolation, file.warm) {
            (IsolationName::Fresh, None) => Isolation::Fresh,
            (IsolationName::Fresh, Some(_)) => {
                return Err("it has a [warm] table but its isolation is not \"warm\"".to_owned());
            }
            (IsolationName::Warm, policy) => {
                let policy = policy.unwrap_or_default();
                policy.check()?;
                Isolation::Warm(policy)
            }
        };
        let config = flatten_config(&file.config)?;
        Ok(Manifest {
            name: name.to_owned(),
            kind: file.kind,
            component: file
                .component
                .unwrap_or_else(|| format!("{}.wasm", name.replace('-', "_"))),
            order: file.order,
            failure_policy: file
                .failure_policy
                .unwrap_or(FailurePolicy::default_for(file.kind)),
            capabilities: file.capabilities,
            limits: file.limits,
            isolation,
            lists: file.lists,
            config,
        })
    }
}

/// Flattens a TOML table to the text form `config.get` answers with: nested tables as
/// dotted keys, numbers and booleans as their TOML text, strings as they are, arrays of
/// scalars as their items joined by ",".
pub fn flatten_config(table: &toml::Table) -> Result<BTreeMap<String, String>, String> {
    let mut flat = BTreeMap::new();
    flatten_into(&mut flat, "", table)?;
    if flat.len() > CONFIG_ENTRIES_MAX {
        return Err(format!(
            "[config] has {} entries, more than {CONFIG_ENTRIES_MAX}",
            flat.len()
        ));
    }
    Ok(flat)
}

fn flatten_into(
    flat: &mut BTreeMap<String, String>,
    prefix: &str,
    table: &toml::Table,
) -> Result<(), String> {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => flatten_into(flat, &path, inner)?,
            toml::Value::Array(items) => {
                let texts = items
                    .iter()
                    .map(|item| {
                        scalar_text(item).ok_or_else(|| {
                            format!(
                                "config.{path}: arrays may hold only strings, numbers and booleans"
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                flat.insert(path, texts.join(","));
            }
            scalar => {
                let text = scalar_text(scalar)
                    .ok_or_else(|| format!("config.{path}: unsupported value"))?;
                flat.insert(path, text);
            }
        }
    }
    Ok(())
}

fn scalar_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Integer(number) => Some(number.to_string()),
        toml::Value::Float(number) => Some(number.to_string()),
        toml::Value::Boolean(flag) => Some(flag.to_string()),
        toml::Value::Datetime(datetime) => Some(datetime.to_string()),
        toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_manifest_is_read_with_defaults_filled_in() {
        let manifest = Manifest::parse(
            "sanctions-screening",
            r#"
            kind = "compliance"
            order = 10
            capabilities = ["lists", "log", "config"]
            [limits]
            fuel = 5_000_000
            [lists]
            sanctions = "lists/sdn.csv"
            [config]
            strong-match = 930
            programs = ["SDGT", "DPRK"]
            [config.thresholds]
            review = 850
            "#,
        )
        .expect("valid manifest");
        assert_eq!(manifest.component, "sanctions_screening.wasm");
        assert_eq!(manifest.failure_policy, FailurePolicy::Review);
        assert_eq!(manifest.limits.fuel, 5_000_000);
        assert_eq!(
            manifest.limits.memory_bytes_max,
            RuleLimits::default().memory_bytes_max
        );
        assert_eq!(
            manifest.config.get("strong-match").map(String::as_str),
            Some("930")
        );
        assert_eq!(
            manifest.config.get("programs").map(String::as_str),
            Some("SDGT,DPRK")
        );
        assert_eq!(
            manifest.config.get("thresholds.review").map(String::as_str),
            Some("850")
        );
    }

    #[test]
    fn routing_rules_fail_over_to_the_next_router_by_default() {
        let manifest = Manifest::parse("r", "kind = \"routing\"").expect("valid");
        assert_eq!(manifest.failure_policy, FailurePolicy::Skip);
    }

    #[test]
    fn bad_manifests_are_refused_with_the_reason() {
        let cases = [
            ("kind = \"magic\"", "unknown variant"),
            ("kind = \"fraud\"\nsurprise = 1", "unknown field"),
            (
                "kind = \"fraud\"\ncapabilities = [\"network\"]",
                "unknown variant",
            ),
            ("kind = \"fraud\"\n[limits]\nfuel = 0", "limits.fuel"),
            (
                "kind = \"fraud\"\n[limits]\nmemory-bytes-max = 1_000_000_000",
                "limits.memory-bytes-max",
            ),
            ("kind = \"fraud\"\n[lists]\nx = \"a.txt\"", "capability"),
            (
                "kind = \"fraud\"\ncapabilities = [\"lists\"]\n[lists]\nx = \"../../etc/passwd\"",
                "inside the rules directory",
            ),
            (
                "kind = \"fraud\"\n[config]\nx = [{a = 1}]",
                "arrays may hold only",
            ),
            ("kind = ", "line 1, column 8"),
        ];
        for (text, expected) in cases {
            let error = Manifest::parse("r", text).expect_err(text);
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }
}
