//! The OpenAPI schemas of the model's validated strings.
//!
//! Each newtype reads from and writes to a JSON string; its schema says which strings it
//! takes (length, pattern, format), so the OpenAPI document describes what the reader
//! checks. The structs around them derive theirs.

use std::borrow::Cow;

use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema,
    SchemaFormat, Type,
};
use utoipa::openapi::{KnownFormat, Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use super::money::{AMOUNT_TEXT_CHARS_MAX, Currency, DecimalText};
use super::payment::{Account, AddressLines, Bic, CountryCode, Date, Iban, Text, Uetr};

/// What [`Text`] takes, as an ECMA-262 pattern: no control character (Unicode `Cc`, what
/// `char::is_control` refuses) and at least one character that is not white space. Every
/// string it matches, the reader takes: Rust's `White_Space` is within ECMA's `\s` and
/// `Cc`. (The reader takes a few more: a text of U+FEFF alone, which `\s` counts as space.)
pub const TEXT_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$";

/// What [`DecimalText`] takes, as a pattern: plain digits with an optional fraction and at
/// least one digit that is not zero (an amount is positive). The digit count a currency
/// allows is said in the description: a pattern cannot know the currency.
pub const AMOUNT_PATTERN: &str = "^([0-9]*[1-9][0-9]*(\\.[0-9]+)?|[0-9]+\\.[0-9]*[1-9][0-9]*)$";

fn string(
    description: &str,
    max_length: Option<usize>,
    pattern: Option<&str>,
    example: &str,
) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .max_length(max_length)
        .pattern(pattern)
        .examples([example])
}

impl<const MAX: usize> PartialSchema for Text<MAX> {
    fn schema() -> RefOr<Schema> {
        let description =
            format!("1 to {MAX} characters, not all white space, no control characters");
        string(&description, Some(MAX), Some(TEXT_PATTERN), "E2E-2026-0001")
            .min_length(Some(1))
            .into()
    }
}

impl<const MAX: usize> ToSchema for Text<MAX> {
    fn name() -> Cow<'static, str> {
        Cow::Owned(format!("Text{MAX}"))
    }
}

impl PartialSchema for AddressLines {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(Text::<70>::schema())
            .max_items(Some(7))
            .description(Some("Unstructured address lines, at most 7"))
            .into()
    }
}

impl ToSchema for AddressLines {}

macro_rules! string_schema {
    ($type:ty, $description:expr, $max:expr, $pattern:expr, $example:expr) => {
        impl PartialSchema for $type {
            fn schema() -> RefOr<Schema> {
                string($description, $max, $pattern, $example).into()
            }
        }
        impl ToSchema for $type {}
    };
}

string_schema!(
    Iban,
    "An IBAN (ISO 13616) with valid check digits, electronic form",
    Some(34),
    Some("^[A-Z]{2}[0-9]{2}[A-Z0-9]{1,30}$"),
    "DE89370400440532013000"
);
string_schema!(
    Bic,
    "A BIC (ISO 9362): 8 or 11 characters",
    Some(11),
    Some("^[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$"),
    "DEUTDEFF"
);
string_schema!(
    CountryCode,
    "An ISO 3166-1 alpha-2 country code",
    Some(2),
    Some("^[A-Z]{2}$"),
    "DE"
);
string_schema!(
    Currency,
    "An ISO 4217 currency code",
    Some(3),
    Some("^[A-Z]{3}$"),
    "EUR"
);
string_schema!(
    DecimalText,
    "A positive amount as a plain decimal string (never a JSON number), at most 18 digits \
     written with the currency's decimals and no more decimals than the currency has \
     (2 for EUR and USD, 0 for JPY)",
    Some(AMOUNT_TEXT_CHARS_MAX),
    Some(AMOUNT_PATTERN),
    "1250.00"
);

impl PartialSchema for Uetr {
    fn schema() -> RefOr<Schema> {
        string(
            "A SWIFT UETR: a lower-case version 4 UUID",
            Some(36),
            None,
            "eb6305c9-1f7f-49de-aed0-16487c27b42d",
        )
        .format(Some(SchemaFormat::Custom("uuid".to_owned())))
        .into()
    }
}

impl ToSchema for Uetr {}

impl PartialSchema for Date {
    fn schema() -> RefOr<Schema> {
        string("A calendar date, YYYY-MM-DD", Some(10), None, "2026-11-23")
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
            .into()
    }
}

impl ToSchema for Date {}

impl PartialSchema for Account {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "An account: exactly one of its IBAN (check digits verified) and another \
                 identifier",
            ))
            .property("iban", Iban::schema())
            .property("id", Text::<34>::schema())
            .min_properties(Some(1))
            .max_properties(Some(1))
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
            .into()
    }
}

impl ToSchema for Account {}

fn reference(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

/// The debtor and the creditor: a `Party` whose name (screening needs it) and account are
/// both given.
pub(super) fn account_holder() -> RefOr<Schema> {
    AllOfBuilder::new()
        .item(reference("Party"))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .required("name")
                .required("account")
                .property("name", reference("Text140"))
                .property("account", reference("Account")),
        )
        .description(Some("A party with its name and its account, both required"))
        .into()
}

/// An ultimate debtor or creditor: a party on whose behalf, or for whom, the payment is
/// made, with no account in the payment.
pub(super) fn ultimate_party() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "An ultimate party: a `Party` without an account (the account is the debtor's \
             or the creditor's)",
        ))
        .property("name", reference("Text140"))
        .property("country", reference("CountryCode"))
        .property("address", reference("PostalAddress"))
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
        .into()
}

/// The debtor's and the creditor's agents: an `Agent` identified by its BIC or its
/// clearing-system member id (one at least).
pub(super) fn identified_agent() -> RefOr<Schema> {
    let having = |field: &str, schema: &str| {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .required(field)
            .property(field, reference(schema))
    };
    AllOfBuilder::new()
        .item(reference("Agent"))
        .item(
            AnyOfBuilder::new()
                .item(having("bic", "Bic"))
                .item(having("member_id", "Text35")),
        )
        .description(Some("An agent with its bic, its member_id, or both"))
        .into()
}
