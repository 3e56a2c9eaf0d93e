//! The rule's own configuration (the `[config]` table of its manifest), with typed
//! readers on top of the host's `config.get`.
//!
//! A rule reads through [`Source`]: [`Host`] inside payrules, or a `BTreeMap` of the same
//! flattened keys in native unit tests, so the code that reads configuration is tested
//! too. The free functions here read from the host.

use std::collections::BTreeMap;

use crate::money::parse_minor_units;

/// Where configuration comes from.
pub trait Source {
    /// The text at `key` (dotted for nested tables), or `None`.
    fn get(&self, key: &str) -> Option<String>;

    /// The array at `key` as its items (the host joins an array's items with ","); empty
    /// if absent.
    fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .map(|text| split_list(&text))
            .unwrap_or_default()
    }

    /// The number at `key`, or `default` if absent or not a number of type `T`.
    fn number<T: std::str::FromStr>(&self, key: &str, default: T) -> T {
        self.get(key)
            .and_then(|text| text.parse().ok())
            .unwrap_or(default)
    }

    /// The amount at `key` (a decimal such as `25000.00`) in minor units of a currency
    /// with `scale` minor digits; `None` if absent or not such an amount.
    fn amount(&self, key: &str, scale: u8) -> Option<u64> {
        self.get(key)
            .and_then(|text| parse_minor_units(&text, scale))
    }

    /// The boolean at `key`, or `default`.
    fn flag(&self, key: &str, default: bool) -> bool {
        match self.get(key).as_deref() {
            Some("true") => true,
            Some("false") => false,
            _ => default,
        }
    }
}

/// The configuration the host holds for this rule (`config.get`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Host;

impl Source for Host {
    fn get(&self, key: &str) -> Option<String> {
        crate::compliance::payrules::rules::config::get(key)
    }
}

impl Source for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        BTreeMap::get(self, key).cloned()
    }
}

/// The text at `key` from the host.
pub fn get(key: &str) -> Option<String> {
    Host.get(key)
}

/// The array at `key` from the host; see [`Source::list`].
pub fn list(key: &str) -> Vec<String> {
    Host.list(key)
}

/// The number at `key` from the host; see [`Source::number`].
pub fn number<T: std::str::FromStr>(key: &str, default: T) -> T {
    Host.number(key, default)
}

/// The amount at `key` from the host; see [`Source::amount`].
pub fn amount(key: &str, scale: u8) -> Option<u64> {
    Host.amount(key, scale)
}

/// The boolean at `key` from the host; see [`Source::flag`].
pub fn flag(key: &str, default: bool) -> bool {
    Host.flag(key, default)
}

/// Splits the host's text form of an array into its items, skipping empty ones.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_reads_like_the_host() {
        let map: BTreeMap<String, String> = [
            ("limit", "25000.50"),
            ("count", "7"),
            ("countries", "KP, IR,,CU"),
            ("strict", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(map.amount("limit", 2), Some(2_500_050));
        assert_eq!(map.number("count", 0_u32), 7);
        assert_eq!(map.number("missing", 3_u32), 3);
        assert_eq!(map.list("countries"), ["KP", "IR", "CU"]);
        assert!(map.flag("strict", false));
        assert!(map.list("missing").is_empty());
    }
}
