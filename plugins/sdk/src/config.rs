//! The rule's own configuration (the `[config]` table of its manifest), with typed
//! readers on top of the host's `config.get`.

pub use crate::compliance::payrules::rules::config::get;

use crate::money::parse_minor_units;

/// The array at `key` as its items (the host joins an array's items with ","); empty if
/// absent.
pub fn list(key: &str) -> Vec<String> {
    get(key).map(|text| split_list(&text)).unwrap_or_default()
}

/// Splits the host's text form of an array into its items, skipping empty ones.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The number at `key`, or `default` if absent or not a number of type `T`.
pub fn number<T: std::str::FromStr>(key: &str, default: T) -> T {
    get(key)
        .and_then(|text| text.parse().ok())
        .unwrap_or(default)
}

/// The amount at `key` (a decimal such as `25000.00`) in minor units of a currency with
/// `scale` minor digits; `None` if absent or not such an amount.
pub fn amount(key: &str, scale: u8) -> Option<u64> {
    get(key).and_then(|text| parse_minor_units(&text, scale))
}

/// The boolean at `key`, or `default`.
pub fn flag(key: &str, default: bool) -> bool {
    match get(key).as_deref() {
        Some("true") => true,
        Some("false") => false,
        _ => default,
    }
}
