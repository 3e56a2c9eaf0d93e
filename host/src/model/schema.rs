//! The OpenAPI schemas of the model's validated strings.
//!
//! Each newtype reads from and writes to a JSON string; its schema says which strings it
//! takes (length, pattern, format), so the OpenAPI document describes what the reader
//! checks. The structs around them derive theirs.

use std::borrow::Cow;

use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr};
use utoipa::{PartialSchema, ToSchema};

use super::money::{Currency, DecimalText};
use super::payment::{AddressLines, Bic, CountryCode, Date, Iban, Text, Uetr};

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
        let description = format!("1 to {MAX} characters, no control characters");
        string(&description, Some(MAX), None, "E2E-2026-0001").into()
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
     and no more decimals than the currency has",
    None,
    Some("^[0-9]+(\\.[0-9]+)?$"),
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
