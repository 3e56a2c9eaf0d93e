//! Plain data, no I/O: the payment and its money, the decision and its trace, and the
//! review of a held payment.

mod decision;
mod money;
mod payment;
pub mod reason_code;
mod review;
mod schema;

pub use decision::{
    ChosenRoute, ClientDecision, ClientRoute, Decision, FailureKind, FailurePolicy, Rail, Reason,
    ReasonCode, RiskReason, RuleKind, RuleLogLine, RuleOutcome, RuleRun, Status,
};
pub use money::{AMOUNT_DIGITS_MAX, AmountError, Currency, DecimalText, Money};
pub use payment::{
    Account, AddressLines, Agent, Bic, ChargeBearer, CountryCode, Date, Iban, InvalidPayment,
    Party, Payment, PostalAddress, Text, Uetr, Urgency,
};
pub use review::{Review, Verdict, final_status};
