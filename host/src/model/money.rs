//! Exact money: an ISO 4217 currency with its minor units, and a positive decimal amount
//! that fits it. Amounts are `rust_decimal::Decimal` in the host and a whole number of
//! minor units across the WIT boundary; a float never touches one.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The most significant digits an amount may have (ISO 20022 `ActiveCurrencyAndAmount`
/// allows 18 in total).
pub const AMOUNT_DIGITS_MAX: u32 = 18;

/// An ISO 4217 currency that has minor units (so not XAU, XDR and the like).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency {
    iso: iso_currency::Currency,
    minor_digits: u8,
}

impl Currency {
    /// The currency with this ISO 4217 alphabetic code (upper case, e.g. "EUR").
    pub fn parse(code: &str) -> Result<Currency, String> {
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!(
                "{code:?} is not an ISO 4217 currency code (three upper-case letters)"
            ));
        }
        let iso = iso_currency::Currency::from_code(code)
            .ok_or_else(|| format!("{code} is not an ISO 4217 currency"))?;
        let minor_digits = iso
            .exponent()
            .and_then(|e| u8::try_from(e).ok())
            .ok_or_else(|| format!("{code} has no minor units and cannot be paid in"))?;
        Ok(Currency { iso, minor_digits })
    }

    /// The alphabetic code, e.g. "EUR".
    pub fn code(self) -> &'static str {
        self.iso.code()
    }

    /// The number of minor-unit digits (ISO 4217 exponent): 2 for EUR, 0 for JPY.
    pub fn minor_digits(self) -> u8 {
        self.minor_digits
    }
}

impl TryFrom<String> for Currency {
    type Error = String;
    fn try_from(code: String) -> Result<Self, Self::Error> {
        Currency::parse(&code)
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> String {
        currency.code().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A plain decimal as text: digits with an optional fraction, no sign, no exponent. What
/// the canonical JSON form carries in `amount` (a JSON string, never a JSON number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DecimalText(Decimal);

impl DecimalText {
    /// The value.
    pub fn value(self) -> Decimal {
        self.0
    }
}

/// The longest amount text read: 18 digits, a point, and room for leading zeros a system
/// pads with; past it (5,000 leading zeros) the text is refused before it is parsed.
pub const AMOUNT_TEXT_CHARS_MAX: usize = 40;

impl FromStr for DecimalText {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() > AMOUNT_TEXT_CHARS_MAX {
            return Err(format!(
                "is {} characters long; an amount has at most {AMOUNT_TEXT_CHARS_MAX}",
                text.len()
            ));
        }
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let plain = !whole.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && (fraction.is_empty() || fraction.bytes().all(|b| b.is_ascii_digit()))
            && !text.ends_with('.');
        if !plain {
            return Err(format!(
                "{text:?} is not a plain decimal (digits, an optional fraction; no sign, no exponent)"
            ));
        }
        let digits = whole.trim_start_matches('0').len() + fraction.len();
        if digits > AMOUNT_DIGITS_MAX as usize + 10 {
            return Err(format!("{text:?} has too many digits"));
        }
        Decimal::from_str_exact(text)
            .map(DecimalText)
            .map_err(|_| format!("{text:?} has too many digits"))
    }
}

impl TryFrom<String> for DecimalText {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<DecimalText> for String {
    fn from(text: DecimalText) -> String {
        text.0.to_string()
    }
}

/// Why an amount does not fit its currency.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Zero (ISO 20022 AM01).
    #[error("amount must be greater than zero")]
    Zero,
    /// More fraction digits than the currency has minor units.
    #[error("{amount} has more decimals than {currency} allows ({digits})")]
    TooManyDecimals {
        /// The amount as given.
        amount: Decimal,
        /// Its currency.
        currency: Currency,
        /// The currency's minor-unit digits.
        digits: u8,
    },
    /// More than [`AMOUNT_DIGITS_MAX`] digits once written with the currency's minor units
    /// (`999999999999999999` USD is `999999999999999999.00`: 20).
    #[error(
        "{0} has more than 18 digits written with its currency's decimals (at most 18, the \
         decimals included)"
    )]
    TooManyDigits(Decimal),
}

impl AmountError {
    /// The ISO 20022 status reason code for this error.
    pub fn reason_code(&self) -> &'static str {
        match self {
            AmountError::Zero => "AM01",
            AmountError::TooManyDecimals { .. } | AmountError::TooManyDigits(_) => "AM12",
        }
    }
}

/// A positive amount in a currency, with no more decimals than the currency has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Money {
    minor_units: u64,
    currency: Currency,
}

impl Money {
    /// Checks that `amount` is positive, fits the currency's minor units and has at most
    /// 18 digits.
    pub fn new(amount: Decimal, currency: Currency) -> Result<Money, AmountError> {
        if amount.is_zero() {
            return Err(AmountError::Zero);
        }
        let amount = amount.normalize();
        let digits = currency.minor_digits();
        if amount.scale() > u32::from(digits) {
            return Err(AmountError::TooManyDecimals {
                amount,
                currency,
                digits,
            });
        }
        let minor = amount
            .checked_mul(Decimal::from(10_u64.pow(u32::from(digits))))
            .ok_or(AmountError::TooManyDigits(amount))?;
        let minor_units =
            u64::try_from(minor.trunc()).map_err(|_| AmountError::TooManyDigits(amount))?;
        if minor_units >= 10_u64.pow(AMOUNT_DIGITS_MAX) {
            return Err(AmountError::TooManyDigits(amount));
        }
        Ok(Money {
            minor_units,
            currency,
        })
    }

    /// The amount as a whole number of minor units.
    pub fn minor_units(self) -> u64 {
        self.minor_units
    }

    /// The currency.
    pub fn currency(self) -> Currency {
        self.currency
    }

    /// The amount as an exact decimal with the currency's scale.
    pub fn amount(self) -> Decimal {
        Decimal::from_i128_with_scale(
            i128::from(self.minor_units),
            u32::from(self.currency.minor_digits()),
        )
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount(), self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(amount: &str, currency: &str) -> Result<Money, AmountError> {
        let amount: DecimalText = amount.parse().expect("test amount is plain");
        Money::new(
            amount.value(),
            Currency::parse(currency).expect("test currency"),
        )
    }

    #[test]
    fn amounts_become_exact_minor_units_of_their_currency() {
        let cases = [
            ("1234.50", "EUR", 123_450),
            ("1234.5", "EUR", 123_450),
            ("5000", "JPY", 5000),
            ("5000.000", "JPY", 5000),
            ("1.234", "BHD", 1234),
            ("0.01", "USD", 1),
            ("9999999999999999.99", "USD", 999_999_999_999_999_999),
        ];
        for (amount, currency, minor) in cases {
            let money = money(amount, currency).expect(amount);
            assert_eq!(money.minor_units(), minor, "{amount} {currency}");
        }
    }

    #[test]
    fn amounts_that_do_not_fit_their_currency_are_refused_with_their_iso_code() {
        let cases = [
            ("0", "EUR", "AM01"),
            ("0.00", "EUR", "AM01"),
            ("1.005", "EUR", "AM12"),
            ("1.5", "JPY", "AM12"),
            ("10000000000000000.00", "USD", "AM12"),
            ("1000000000000000000", "JPY", "AM12"),
        ];
        for (amount, currency, code) in cases {
            let error = money(amount, currency).expect_err(amount);
            assert_eq!(error.reason_code(), code, "{amount} {currency}: {error}");
        }
    }

    #[test]
    fn decimal_text_is_plain_digits_only() {
        for bad in [
            "-1", "+1", "1e3", "1.", ".5", "", "1,5", " 1", "0x10", "NaN", "1.2.3",
        ] {
            assert!(
                bad.parse::<DecimalText>().is_err(),
                "{bad:?} should be refused"
            );
        }
        assert_eq!(
            "0012.50".parse::<DecimalText>().map(DecimalText::value),
            Ok(Decimal::new(1250, 2))
        );
        let padded = format!("{}1.00", "0".repeat(5_000));
        let refused = padded.parse::<DecimalText>().unwrap_err();
        assert!(refused.contains("5004 characters"), "{refused}");
    }

    #[test]
    fn an_amount_too_long_for_its_currency_says_decimals_count() {
        let usd = Currency::parse("USD").unwrap();
        let amount: DecimalText = "999999999999999999".parse().unwrap();
        let error = Money::new(amount.value(), usd).unwrap_err();
        assert!(error.to_string().contains("decimals included"), "{error}");
        let jpy = Currency::parse("JPY").unwrap();
        assert!(Money::new(Decimal::new(999_999_999_999_999_999, 0), jpy).is_ok());
    }

    #[test]
    fn currencies_are_iso_4217_codes_with_minor_units() {
        assert_eq!(Currency::parse("JPY").map(Currency::minor_digits), Ok(0));
        assert_eq!(Currency::parse("BHD").map(Currency::minor_digits), Ok(3));
        for bad in ["eur", "EURO", "XXY", "XAU", ""] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }
}
