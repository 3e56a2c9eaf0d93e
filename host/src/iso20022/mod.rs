//! ISO 20022 in: a streaming reader for pacs.008 (FI-to-FI customer credit transfer) and
//! pain.001 (customer credit transfer initiation) that maps every credit transfer
//! transaction to the canonical payment shape.
//!
//! The reader finds the ISO `Document` inside any wrapper (FedNow, SWIFT envelopes, an
//! `AppHdr` beside it), with or without namespace prefixes or a UTF-8 BOM, by the local
//! names of elements; the message type comes from the `Document`'s namespace. It checks
//! what the message says about itself (number of transactions, control sums) and the form
//! of its values (amounts, currencies, dates, IBANs, BICs), each failure with the ISO
//! 20022 status reason code that names it. It refuses DTDs, expands no entities, fetches
//! nothing, and bounds input size, depth, attributes, text and transactions while it
//! streams ([`limits`]).
//!
//! What it does not check belongs to the pipeline: IBAN check digits, whether a BIC
//! exists, sanctions, limits. A parsed payment becomes a [`crate::model::Payment`] through
//! `Payment::from_json`, which validates those.

mod reader;
pub mod report;

use serde::Serialize;

pub use reader::parse;

/// The bounds the reader enforces while it streams; breaking one is FF01.
pub mod limits {
    /// The largest message, in bytes.
    pub const INPUT_BYTES_MAX: usize = 64 * 1024 * 1024;
    /// The deepest element nesting.
    pub const DEPTH_MAX: usize = 64;
    /// The most attributes (namespace declarations included) on one element.
    pub const ATTRIBUTES_MAX: usize = 32;
    /// The longest text content of one element, in bytes.
    pub const TEXT_BYTES_MAX: usize = 64 * 1024;
    /// The most transactions in one message.
    pub const TRANSACTIONS_MAX: usize = 100_000;
}

/// A message that must be refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct IsoError {
    /// The ISO 20022 external status reason code (`FF01`, `AM18`, `AM10`, `DT01`, ...).
    pub code: &'static str,
    /// What is wrong, in a sentence.
    pub message: String,
    /// The element at fault, e.g. `/Document/CstmrCdtTrfInitn/GrpHdr/NbOfTxs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl IsoError {
    /// An error about the whole message.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        IsoError {
            code,
            message: message.into(),
            path: None,
        }
    }

    /// An error about the element at `path`.
    pub fn at(code: &'static str, path: &str, message: impl Into<String>) -> Self {
        IsoError {
            code,
            message: message.into(),
            path: Some(path.to_owned()),
        }
    }
}

/// A parsed message: its type, its id, and its transactions in document order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ParsedMessage {
    /// The ISO message identifier from the `Document` namespace, e.g. `pacs.008.001.08`.
    pub message_type: String,
    /// `GrpHdr/MsgId`.
    pub message_id: String,
    /// One per credit transfer transaction.
    pub payments: Vec<RawPayment>,
}

/// A payment as the message gives it, in the canonical field names, before the
/// pipeline's validation. Absent fields are omitted.
// The fields are those of the canonical payment, documented on `model::Payment`.
#[allow(missing_docs)]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RawPayment {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_to_end_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instruction_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uetr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    pub debtor: RawParty,
    pub debtor_agent: RawAgent,
    pub creditor: RawParty,
    pub creditor_agent: RawAgent,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ultimate_debtor: Option<RawParty>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ultimate_creditor: Option<RawParty>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub intermediary_agents: Vec<RawAgent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charge_bearer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category_purpose: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remittance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_execution_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub urgency: Option<&'static str>,
    /// A pain.001 transaction's `PmtInf/PmtInfId`, for the pain.002 that answers it; not
    /// part of the payment (nor of the message's fingerprint).
    #[serde(skip)]
    pub payment_information_id: Option<String>,
}

/// A party as the message gives it.
// The fields are those of the canonical payment, documented on `model::Payment`.
#[allow(missing_docs)]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RawParty {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `PstlAdr/Ctry`, else `CtryOfRes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<RawAddress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<RawAccount>,
}

/// A postal address as the message gives it.
// The fields are those of the canonical payment, documented on `model::Payment`.
#[allow(missing_docs)]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RawAddress {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub street_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub building_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub town_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_sub_division: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub address_lines: Vec<String>,
}

/// An account: `Id/IBAN`, or else `Id/Othr/Id`.
// The fields are those of the canonical payment, documented on `model::Payment`.
#[allow(missing_docs)]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RawAccount {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iban: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// A financial institution as the message gives it.
// The fields are those of the canonical payment, documented on `model::Payment`.
#[allow(missing_docs)]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RawAgent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}
