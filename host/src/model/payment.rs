//! The payment, in its one canonical JSON shape.
//!
//! The same shape is read by `payrules evaluate`, posted to the HTTP API and printed by
//! `payrules parse`; its field names follow the payment objects of the ISO 20022
//! conformance kit (`end_to_end_id`, `amount`, `debtor.account.iban`, ...). Every field
//! is validated while it is read, by the newtype it is read into, and the few rules that
//! tie fields together (an amount must fit its currency) by [`Payment::from_json`]: a
//! `Payment` that exists is a valid one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::money::{Currency, DecimalText, Money};

/// Why a payment was refused before any rule saw it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidPayment {
    /// The path of the field at fault, e.g. `debtor.account.iban`; empty for the whole
    /// document.
    pub field: String,
    /// Why, in a sentence.
    pub reason: String,
    /// The ISO 20022 status reason code that says it (`AM12`, `AC02`, `FF01`, ...).
    pub code: &'static str,
    /// The text is not JSON at all (a syntax error or a truncated document), as opposed
    /// to JSON with a value that is not acceptable.
    pub malformed: bool,
}

impl InvalidPayment {
    fn new(field: &str, code: &'static str, reason: impl Into<String>) -> Self {
        InvalidPayment {
            field: field.to_owned(),
            reason: reason.into(),
            code,
            malformed: false,
        }
    }
}

/// A validated payment. Construct it with [`Payment::from_json`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    /// ISO 20022 EndToEndId.
    pub end_to_end_id: Text<35>,
    /// ISO 20022 InstrId.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction_id: Option<Text<35>>,
    /// SWIFT UETR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uetr: Option<Uetr>,
    /// The amount, as a plain decimal string.
    pub amount: DecimalText,
    /// ISO 4217 code of the amount.
    pub currency: Currency,
    /// Who pays.
    #[schema(schema_with = super::schema::account_holder)]
    pub debtor: Party,
    /// The debtor's bank.
    #[schema(schema_with = super::schema::identified_agent)]
    pub debtor_agent: Agent,
    /// Who is paid.
    #[schema(schema_with = super::schema::account_holder)]
    pub creditor: Party,
    /// The creditor's bank.
    #[schema(schema_with = super::schema::identified_agent)]
    pub creditor_agent: Agent,
    /// On whose behalf the debtor pays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::ultimate_party)]
    pub ultimate_debtor: Option<Party>,
    /// For whom the creditor is paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::ultimate_party)]
    pub ultimate_creditor: Option<Party>,
    /// Agents between the two, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intermediary_agents: Vec<Agent>,
    /// Who pays the charges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge_bearer: Option<ChargeBearer>,
    /// ISO purpose code or proprietary purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<Text<35>>,
    /// ISO category purpose code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_purpose: Option<Text<35>>,
    /// The first unstructured remittance line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remittance: Option<Text<140>>,
    /// The date the debtor asked for execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_execution_date: Option<Date>,
    /// How fast it should settle.
    #[serde(default)]
    pub urgency: Urgency,
    /// Where the payment came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Text<35>>,
}

impl Payment {
    /// Reads and validates a payment from its canonical JSON form. The error names the
    /// first field at fault, why, and the ISO 20022 reason code for it.
    pub fn from_json(json: &str) -> Result<Payment, InvalidPayment> {
        let deserializer = &mut serde_json::Deserializer::from_str(json);
        let payment: Payment = serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let field = error.path().to_string();
            let field = if field == "." { String::new() } else { field };
            let inner = error.into_inner();
            let malformed = inner.is_syntax() || inner.is_eof();
            let code = code_for_field(&field, malformed);
            InvalidPayment {
                reason: strip_position(&inner.to_string()),
                field,
                code,
                malformed,
            }
        })?;
        payment.check()?;
        Ok(payment)
    }

    /// The amount with its currency. Valid for every `Payment` built by `from_json`.
    pub fn money(&self) -> Money {
        Money::new(self.amount.value(), self.currency)
            .unwrap_or_else(|error| unreachable!("a validated payment has a valid amount: {error}"))
    }

    /// The debtor's account identifier (IBAN or other id). Present in every validated
    /// payment.
    pub fn debtor_account(&self) -> &str {
        self.debtor.account.as_ref().map_or("", Account::identifier)
    }

    /// The creditor's account identifier (IBAN or other id). Present in every validated
    /// payment.
    pub fn creditor_account(&self) -> &str {
        self.creditor
            .account
            .as_ref()
            .map_or("", Account::identifier)
    }

    /// The rules that tie fields together.
    fn check(&self) -> Result<(), InvalidPayment> {
        Money::new(self.amount.value(), self.currency).map_err(|error| {
            InvalidPayment::new("amount", error.reason_code(), error.to_string())
        })?;
        for (role, party, name_code, account_code) in [
            ("debtor", &self.debtor, "BE08", "AC02"),
            ("creditor", &self.creditor, "BE22", "AC03"),
        ] {
            if party.name.is_none() {
                return Err(InvalidPayment::new(
                    &format!("{role}.name"),
                    name_code,
                    format!("the {role}'s name is required (screening needs it)"),
                ));
            }
            match &party.account {
                None => {
                    return Err(InvalidPayment::new(
                        &format!("{role}.account"),
                        account_code,
                        format!("the {role}'s account is required"),
                    ));
                }
                Some(account) => account.check(&format!("{role}.account"), account_code)?,
            }
        }
        for (role, agent, code) in [
            ("debtor_agent", &self.debtor_agent, "RC03"),
            ("creditor_agent", &self.creditor_agent, "RC04"),
        ] {
            if agent.bic.is_none() && agent.member_id.is_none() {
                return Err(InvalidPayment::new(
                    role,
                    code,
                    "give the agent's bic or member_id",
                ));
            }
        }
        for (role, party) in [
            ("ultimate_debtor", &self.ultimate_debtor),
            ("ultimate_creditor", &self.ultimate_creditor),
        ] {
            if party.as_ref().is_some_and(|party| party.account.is_some()) {
                return Err(InvalidPayment::new(
                    &format!("{role}.account"),
                    "CH17",
                    "an ultimate party has no account in a payment",
                ));
            }
        }
        Ok(())
    }
}

/// The ISO 20022 reason code for a field the JSON reader refused.
fn code_for_field(field: &str, syntax: bool) -> &'static str {
    if syntax {
        return "FF01";
    }
    let last = field.rsplit('.').next().unwrap_or(field);
    match last {
        "amount" => "AM12",
        "currency" => "AM11",
        "end_to_end_id" => "FF08",
        "iban" | "id" | "account" => "AC01",
        "bic" => "RC01",
        "member_id" => "RC08",
        "requested_execution_date" => "DT01",
        "country" => "BE09",
        "charge_bearer" => "BE19",
        "purpose" => "FF07",
        "category_purpose" => "FF06",
        _ => "FF01",
    }
}

/// serde_json appends " at line L column C"; the field path says more, so drop it.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// A party: debtor, creditor or ultimate party.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Party {
    /// The name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Text<140>>,
    /// ISO 3166 alpha-2 country of the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<CountryCode>,
    /// The postal address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<PostalAddress>,
    /// The account; required for debtor and creditor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<Account>,
}

/// A postal address, every part optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostalAddress {
    /// Street name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street_name: Option<Text<70>>,
    /// Building number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub building_number: Option<Text<16>>,
    /// Post code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_code: Option<Text<16>>,
    /// Town.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub town_name: Option<Text<35>>,
    /// State, province or region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_sub_division: Option<Text<35>>,
    /// Unstructured lines (at most 7, as in ISO 20022).
    #[serde(default, skip_serializing_if = "AddressLines::is_empty")]
    pub address_lines: AddressLines,
}

/// Up to seven unstructured address lines of at most 70 characters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Text<70>>", into = "Vec<Text<70>>")]
pub struct AddressLines(Vec<Text<70>>);

impl AddressLines {
    /// The lines.
    pub fn lines(&self) -> &[Text<70>] {
        &self.0
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<Vec<Text<70>>> for AddressLines {
    type Error = String;
    fn try_from(lines: Vec<Text<70>>) -> Result<Self, Self::Error> {
        if lines.len() > 7 {
            return Err(format!("at most 7 address lines, not {}", lines.len()));
        }
        Ok(AddressLines(lines))
    }
}

impl From<AddressLines> for Vec<Text<70>> {
    fn from(lines: AddressLines) -> Self {
        lines.0
    }
}

/// An account: by IBAN, or by another identifier (its schema: `super::schema`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// The IBAN, check digits verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iban: Option<Iban>,
    /// Any other identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Text<34>>,
}

impl Account {
    fn check(&self, field: &str, code: &'static str) -> Result<(), InvalidPayment> {
        match (&self.iban, &self.id) {
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err(InvalidPayment::new(
                field,
                code,
                "give exactly one of iban and id",
            )),
        }
    }

    /// The identifier, whichever kind it is.
    pub fn identifier(&self) -> &str {
        match (&self.iban, &self.id) {
            (Some(iban), _) => iban.as_str(),
            (None, Some(id)) => id.as_str(),
            (None, None) => "",
        }
    }
}

/// A financial institution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// BIC (ISO 9362).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bic: Option<Bic>,
    /// Clearing system member id (e.g. ABA routing number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<Text<35>>,
    /// The institution's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Text<140>>,
    /// ISO 3166 alpha-2 country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<CountryCode>,
}

/// Who pays the charges (ISO 20022 ChargeBearerType1Code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum ChargeBearer {
    /// The debtor.
    DEBT,
    /// The creditor.
    CRED,
    /// Shared.
    SHAR,
    /// Following the service level.
    SLEV,
}

/// How fast the payment should settle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Urgency {
    /// No preference.
    #[default]
    Normal,
    /// Same day.
    Urgent,
    /// Within seconds.
    Instant,
}

/// Text of 1 to `MAX` characters with no control characters (ISO 20022 `MaxNNText`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Text<const MAX: usize>(String);

impl<const MAX: usize> Text<MAX> {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> TryFrom<String> for Text<MAX> {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        if text.trim().is_empty() {
            return Err("must not be empty".to_owned());
        }
        let length = text.chars().count();
        if length > MAX {
            return Err(format!("is {length} characters long, more than {MAX}"));
        }
        if text.chars().any(char::is_control) {
            return Err("must not contain control characters".to_owned());
        }
        Ok(Text(text))
    }
}

impl<const MAX: usize> From<Text<MAX>> for String {
    fn from(text: Text<MAX>) -> String {
        text.0
    }
}

impl<const MAX: usize> fmt::Display for Text<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An IBAN with valid structure for its country and valid check digits (ISO 13616),
/// kept in its electronic form (upper case, no spaces).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Iban(String);

impl Iban {
    /// The IBAN, e.g. `DE89370400440532013000`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Iban {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        let iban = iban::Iban::from_str(&text).map_err(|error| {
            use iban::{ParseBaseIbanError, ParseIbanError};
            let why = match error {
                ParseIbanError::InvalidBaseIban {
                    source: ParseBaseIbanError::InvalidChecksum,
                } => "its check digits are wrong (ISO 7064 mod 97-10)",
                ParseIbanError::InvalidBaseIban {
                    source: ParseBaseIbanError::InvalidFormat,
                } => "it is not an IBAN (two letters, two check digits, up to 30 letters and digits, no spaces)",
                ParseIbanError::InvalidBban(_) => "its account part does not have its country's format",
                ParseIbanError::UnknownCountry(_) => "its country does not use IBANs",
            };
            format!("{text:?} is not a valid IBAN: {why}")
        })?;
        Ok(Iban(iban::IbanLike::electronic_str(&iban).to_owned()))
    }
}

impl From<Iban> for String {
    fn from(iban: Iban) -> String {
        iban.0
    }
}

/// A BIC (ISO 9362): 4 bank characters, 2 country letters, 2 location characters and an
/// optional 3-character branch, upper case.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Bic(String);

impl Bic {
    /// The BIC.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `text` has the form of a BIC (ISO 9362; ISO 20022 `BICFIDec2014Identifier`).
    pub fn has_form(text: &str) -> bool {
        let bytes = text.as_bytes();
        let upper_alnum = |b: &u8| b.is_ascii_uppercase() || b.is_ascii_digit();
        matches!(bytes.len(), 8 | 11)
            && bytes[..4].iter().all(upper_alnum)
            && bytes[4..6].iter().all(u8::is_ascii_uppercase)
            && bytes[6..].iter().all(upper_alnum)
    }

    /// The country letters (characters 5 and 6).
    pub fn country(&self) -> &str {
        &self.0[4..6]
    }
}

impl TryFrom<String> for Bic {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        if Bic::has_form(&text) {
            Ok(Bic(text))
        } else {
            Err(format!(
                "{text:?} is not a BIC (8 or 11 upper-case letters and digits, letters 5-6 a country)"
            ))
        }
    }
}

impl From<Bic> for String {
    fn from(bic: Bic) -> String {
        bic.0
    }
}

/// An ISO 3166 alpha-2 country code: two upper-case letters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CountryCode(String);

impl CountryCode {
    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CountryCode {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        if text.len() == 2 && text.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(CountryCode(text))
        } else {
            Err(format!(
                "{text:?} is not an ISO 3166 country code (two upper-case letters)"
            ))
        }
    }
}

impl From<CountryCode> for String {
    fn from(code: CountryCode) -> String {
        code.0
    }
}

/// A SWIFT UETR: a lower-case version 4 UUID (the ISO 20022 `UUIDv4Identifier` pattern).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Uetr(String);

impl Uetr {
    /// The UETR.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Uetr {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        let bytes = text.as_bytes();
        let hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
        let valid = bytes.len() == 36
            && bytes.iter().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => *b == b'-',
                14 => *b == b'4',
                19 => matches!(b, b'8' | b'9' | b'a' | b'b'),
                _ => hex(b),
            });
        if valid {
            Ok(Uetr(text))
        } else {
            Err(format!(
                "{text:?} is not a UETR (a lower-case version 4 UUID)"
            ))
        }
    }
}

impl From<Uetr> for String {
    fn from(uetr: Uetr) -> String {
        uetr.0
    }
}

/// A calendar date written `YYYY-MM-DD` (ISO 8601), always valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Date {
    /// Year, 1900..=9999.
    pub year: u16,
    /// Month, 1..=12.
    pub month: u8,
    /// Day of the month.
    pub day: u8,
}

impl Date {
    /// The number of days in `month` of `year`.
    pub fn days_in_month(year: u16, month: u8) -> u8 {
        match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if (year.is_multiple_of(4) && !year.is_multiple_of(100))
                || year.is_multiple_of(400) =>
            {
                29
            }
            2 => 28,
            _ => 0,
        }
    }
}

impl FromStr for Date {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refuse = || format!("{text:?} is not a valid date (YYYY-MM-DD)");
        let bytes = text.as_bytes();
        let shaped = bytes.len() == 10
            && bytes[4] == b'-'
            && bytes[7] == b'-'
            && bytes
                .iter()
                .enumerate()
                .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
        if !shaped {
            return Err(refuse());
        }
        let year: u16 = text[0..4].parse().map_err(|_| refuse())?;
        let month: u8 = text[5..7].parse().map_err(|_| refuse())?;
        let day: u8 = text[8..10].parse().map_err(|_| refuse())?;
        if year < 1900 || day == 0 || day > Date::days_in_month(year, month) {
            return Err(refuse());
        }
        Ok(Date { year, month, day })
    }
}

impl TryFrom<String> for Date {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Date> for String {
    fn from(date: Date) -> String {
        format!("{:04}-{:02}-{:02}", date.year, date.month, date.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"{
        "end_to_end_id": "E2E-1",
        "amount": "1250.00",
        "currency": "EUR",
        "debtor": {"name": "Muster GmbH", "country": "DE", "account": {"iban": "DE89370400440532013000"}},
        "debtor_agent": {"bic": "COBADEFFXXX"},
        "creditor": {"name": "Van Dijk B.V.", "country": "NL", "account": {"iban": "NL91ABNA0417164300"}},
        "creditor_agent": {"bic": "ABNANL2A"}
    }"#;

    fn with(pointer: &str, value: serde_json::Value) -> String {
        let mut json: serde_json::Value = serde_json::from_str(VALID).expect("valid fixture");
        let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
        let object = json
            .pointer_mut(parent)
            .and_then(serde_json::Value::as_object_mut)
            .expect("parent is an object");
        if value.is_null() {
            object.remove(key);
        } else {
            object.insert(key.to_owned(), value);
        }
        json.to_string()
    }

    #[test]
    fn a_valid_payment_is_read_with_exact_money() {
        let payment = Payment::from_json(VALID).expect("valid");
        assert_eq!(payment.money().minor_units(), 125_000);
        assert_eq!(
            payment.debtor.account.as_ref().map(Account::identifier),
            Some("DE89370400440532013000")
        );
        assert_eq!(payment.urgency, Urgency::Normal);
    }

    #[test]
    fn the_canonical_form_round_trips() {
        let payment = Payment::from_json(VALID).expect("valid");
        let again = Payment::from_json(&serde_json::to_string(&payment).expect("serialises"))
            .expect("its own output is valid");
        assert_eq!(payment, again);
    }

    #[test]
    fn each_bad_field_is_refused_with_its_path_and_iso_code() {
        use serde_json::json;
        let cases = [
            ("/amount", json!("0"), "amount", "AM01"),
            ("/amount", json!("-5.00"), "amount", "AM12"),
            ("/amount", json!("1.005"), "amount", "AM12"),
            ("/amount", json!(1250.0), "amount", "AM12"),
            ("/amount", json!("1234567890123456789"), "amount", "AM12"),
            ("/currency", json!("EURO"), "currency", "AM11"),
            ("/currency", json!("XYZ"), "currency", "AM11"),
            (
                "/debtor/account/iban",
                json!("DE89370400440532013001"),
                "debtor.account.iban",
                "AC01",
            ),
            (
                "/creditor_agent/bic",
                json!("ABN-NL2A"),
                "creditor_agent.bic",
                "RC01",
            ),
            ("/debtor/country", json!("de"), "debtor.country", "BE09"),
            ("/end_to_end_id", json!(""), "end_to_end_id", "FF08"),
            (
                "/end_to_end_id",
                json!("X".repeat(36)),
                "end_to_end_id",
                "FF08",
            ),
            (
                "/requested_execution_date",
                json!("2026-02-30"),
                "requested_execution_date",
                "DT01",
            ),
            (
                "/uetr",
                json!("8A562C67-CA16-48BA-B074-65581BE6F011"),
                "uetr",
                "FF01",
            ),
            (
                "/debtor/name",
                serde_json::Value::Null,
                "debtor.name",
                "BE08",
            ),
            (
                "/creditor/account",
                serde_json::Value::Null,
                "creditor.account",
                "AC03",
            ),
            (
                "/debtor_agent/bic",
                serde_json::Value::Null,
                "debtor_agent",
                "RC03",
            ),
            ("/amount", serde_json::Value::Null, "", "FF01"),
        ];
        for (pointer, value, field, code) in cases {
            let json = with(pointer, value.clone());
            let error = Payment::from_json(&json).expect_err(&format!("{pointer} = {value}"));
            assert_eq!(error.field, field, "{pointer} = {value}: {error}");
            assert_eq!(error.code, code, "{pointer} = {value}: {error}");
            assert!(!error.reason.is_empty());
        }
    }

    #[test]
    fn unknown_fields_and_broken_json_are_refused() {
        let typo = VALID.replacen("\"amount\"", "\"ammount\"", 1);
        let error = Payment::from_json(&typo).expect_err("typo");
        assert!(error.reason.contains("ammount"), "{error}");
        let error = Payment::from_json("{\"end_to_end_id\": ").expect_err("truncated");
        assert_eq!(error.code, "FF01");
    }

    #[test]
    fn dates_are_checked_against_the_calendar() {
        assert!("2024-02-29".parse::<Date>().is_ok());
        for bad in [
            "2023-02-29",
            "2026-13-01",
            "2026-00-10",
            "YYYY-MM-DD",
            "2026-1-01",
            "1899-12-31",
        ] {
            assert!(bad.parse::<Date>().is_err(), "{bad}");
        }
    }
}
