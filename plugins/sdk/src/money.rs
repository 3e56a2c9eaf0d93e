//! Exact amounts: parse decimal text into minor units and print them back, never
//! through a float.

use crate::Money;

/// Parses a plain decimal ("25000", "1234.5", "0.07") into minor units of a currency
/// with `scale` minor digits. `None` if the text is not a plain non-negative decimal,
/// has more fraction digits than `scale` allows (other than trailing zeros), or does not
/// fit in a `u64`.
pub fn parse_minor_units(text: &str, scale: u8) -> Option<u64> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = fraction.trim_end_matches('0');
    if significant.len() > usize::from(scale) {
        return None;
    }
    let mut minor: u64 = whole.parse().ok()?;
    for _ in 0..scale {
        minor = minor.checked_mul(10)?;
    }
    let mut fraction_minor: u64 = 0;
    for position in 0..usize::from(scale) {
        let digit = significant.as_bytes().get(position).map_or(0, |b| b - b'0');
        fraction_minor = fraction_minor * 10 + u64::from(digit);
    }
    minor.checked_add(fraction_minor)
}

/// Formats minor units as a plain decimal with exactly `scale` fraction digits:
/// `format_minor_units(123450, 2)` is `"1234.50"`.
pub fn format_minor_units(minor_units: u64, scale: u8) -> String {
    if scale == 0 {
        return minor_units.to_string();
    }
    let digits = format!("{minor_units:0>width$}", width = usize::from(scale) + 1);
    let (whole, fraction) = digits.split_at(digits.len() - usize::from(scale));
    format!("{whole}.{fraction}")
}

impl Money {
    /// The amount as a plain decimal with its currency, e.g. `"1234.50 EUR"`.
    pub fn display(&self) -> String {
        format!(
            "{} {}",
            format_minor_units(self.minor_units, self.scale),
            self.currency
        )
    }

    /// Parses `text` (a plain decimal) as an amount in this money's currency; see
    /// [`parse_minor_units`].
    pub fn parse_same_currency(&self, text: &str) -> Option<u64> {
        parse_minor_units(text, self.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_text_into_minor_units_exactly() {
        let cases = [
            ("25000", 2, Some(2_500_000)),
            ("1234.5", 2, Some(123_450)),
            ("1234.50", 2, Some(123_450)),
            ("0.07", 2, Some(7)),
            ("5000", 0, Some(5000)),
            ("5000.00", 0, Some(5000)),
            ("1.234", 3, Some(1234)),
            ("999999999999999999", 0, Some(999_999_999_999_999_999)),
        ];
        for (text, scale, expected) in cases {
            assert_eq!(
                parse_minor_units(text, scale),
                expected,
                "{text} at scale {scale}"
            );
        }
    }

    #[test]
    fn refuses_text_that_is_not_a_plain_amount_of_the_currency() {
        for (text, scale) in [
            ("1.005", 2),
            ("-1", 2),
            ("1e3", 2),
            ("", 2),
            (".5", 2),
            ("1,000", 2),
            ("99999999999999999999", 2),
        ] {
            assert_eq!(parse_minor_units(text, scale), None, "{text}");
        }
    }

    #[test]
    fn formats_minor_units_with_the_currency_scale() {
        assert_eq!(format_minor_units(123_450, 2), "1234.50");
        assert_eq!(format_minor_units(7, 2), "0.07");
        assert_eq!(format_minor_units(5000, 0), "5000");
        assert_eq!(format_minor_units(1, 3), "0.001");
    }
}
