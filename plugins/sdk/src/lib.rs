//! Write payrules rules in Rust.
//!
//! A rule is a type that implements one of [`ComplianceRule`], [`FraudRule`] or
//! [`RoutingRule`], exported with the matching macro ([`compliance_rule!`],
//! [`fraud_rule!`], [`routing_rule!`]), built for `wasm32-wasip2` as a `cdylib`:
//!
//! ```
//! use payrules_sdk::{ComplianceRule, Payment, Verdict, Reason};
//!
//! struct NoTestPayments;
//!
//! impl ComplianceRule for NoTestPayments {
//!     fn check(payment: Payment) -> Verdict {
//!         if payment.remittance.as_deref() == Some("test") {
//!             return Verdict::Reject(Reason::new("AG01", "test payments are not allowed"));
//!         }
//!         Verdict::Pass
//!     }
//! }
//!
//! payrules_sdk::compliance_rule!(NoTestPayments);
//! ```
//!
//! What is here, in the order a rule uses it:
//! - the contract's types ([`Payment`], [`Money`], [`Verdict`], [`Risk`], [`Route`], ...),
//!   generated from the same `wit/` files the host reads;
//! - the host capabilities: [`lists`], [`velocity`], [`clock`], [`log`], [`config`];
//! - helpers every rule would otherwise rewrite: [`money`] (exact amounts, never floats),
//!   [`names`] (the normalisation the host's list matching uses), payment facts such as
//!   [`Payment::is_cross_border`];
//! - [`testing`]: a realistic payment to start native unit tests from;
//! - `arena` (on `wasm32`, the default `arena` feature): a bump allocator, since a rule
//!   instance lives for one call.
//!
//! The capabilities only work inside the payrules host; in native unit tests, keep the
//! rule's decision in a plain function and call that.

// The generated code names the runtime and the bindings by their path from a rule crate
// (`::payrules_sdk::...`); this makes the same paths work inside the SDK itself.
extern crate self as payrules_sdk;

/// Bindings for the `compliance-rule` world; they also hold the shared types and
/// capabilities the other two worlds reuse.
#[allow(missing_docs, unsafe_code)]
pub mod compliance {
    wit_bindgen::generate!({
        path: "wit",
        world: "payrules:rules/compliance-rule",
        pub_export_macro: true,
        export_macro_name: "export_compliance_rule",
        default_bindings_module: "::payrules_sdk::compliance",
        runtime_path: "::payrules_sdk::wit_bindgen_rt",
        generate_all,
    });
}

/// Bindings for the `fraud-rule` world.
#[allow(missing_docs, unsafe_code)]
pub mod fraud {
    wit_bindgen::generate!({
        path: "wit",
        world: "payrules:rules/fraud-rule",
        pub_export_macro: true,
        export_macro_name: "export_fraud_rule",
        default_bindings_module: "::payrules_sdk::fraud",
        runtime_path: "::payrules_sdk::wit_bindgen_rt",
        with: {
            "payrules:rules/types@0.1.0": crate::compliance::payrules::rules::types,
            "payrules:rules/lists@0.1.0": crate::compliance::payrules::rules::lists,
            "payrules:rules/velocity@0.1.0": crate::compliance::payrules::rules::velocity,
            "payrules:rules/clock@0.1.0": crate::compliance::payrules::rules::clock,
            "payrules:rules/log@0.1.0": crate::compliance::payrules::rules::log,
            "payrules:rules/config@0.1.0": crate::compliance::payrules::rules::config,
        },
    });
}

/// Bindings for the `routing-rule` world.
#[allow(missing_docs, unsafe_code)]
pub mod routing {
    wit_bindgen::generate!({
        path: "wit",
        world: "payrules:rules/routing-rule",
        pub_export_macro: true,
        export_macro_name: "export_routing_rule",
        default_bindings_module: "::payrules_sdk::routing",
        runtime_path: "::payrules_sdk::wit_bindgen_rt",
        with: {
            "payrules:rules/types@0.1.0": crate::compliance::payrules::rules::types,
            "payrules:rules/lists@0.1.0": crate::compliance::payrules::rules::lists,
            "payrules:rules/velocity@0.1.0": crate::compliance::payrules::rules::velocity,
            "payrules:rules/clock@0.1.0": crate::compliance::payrules::rules::clock,
            "payrules:rules/log@0.1.0": crate::compliance::payrules::rules::log,
            "payrules:rules/config@0.1.0": crate::compliance::payrules::rules::config,
        },
    });
}

/// Bindings for the `preparing` world: the `preparation` export, linked beside a rule's
/// own world when it is exported with `prepared`.
#[allow(missing_docs, unsafe_code)]
pub mod preparing {
    wit_bindgen::generate!({
        path: "wit",
        world: "payrules:rules/preparing",
        pub_export_macro: true,
        export_macro_name: "export_preparing",
        default_bindings_module: "::payrules_sdk::preparing",
        runtime_path: "::payrules_sdk::wit_bindgen_rt",
    });
}

#[doc(hidden)]
pub use wit_bindgen::rt as wit_bindgen_rt;

/// Exports a [`ComplianceRule`] as the component's `compliance` interface;
/// `compliance_rule!(Rule, prepared)` also exports its [`Prepare`] as the `preparation`
/// interface (the `compliance-rule-prepared` world).
///
/// On `wasm32` this is the export; natively (unit tests, benchmarks) nothing is exported,
/// so several rules can link into one test binary, and the type is only checked.
#[macro_export]
macro_rules! compliance_rule {
    ($rule:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::export_compliance_rule!($rule);
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn($crate::Payment) -> $crate::Verdict = <$rule as $crate::ComplianceRule>::check;
    };
    ($rule:ident, prepared) => {
        $crate::compliance_rule!($rule);
        #[cfg(target_arch = "wasm32")]
        $crate::export_preparing!($rule);
        const _: fn() = <$rule as $crate::Prepare>::prepare;
    };
}

/// Exports a [`FraudRule`] as the component's `fraud` interface (see [`compliance_rule!`],
/// also for `prepared`).
#[macro_export]
macro_rules! fraud_rule {
    ($rule:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::export_fraud_rule!($rule);
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn($crate::Payment) -> $crate::Risk = <$rule as $crate::FraudRule>::score;
    };
    ($rule:ident, prepared) => {
        $crate::fraud_rule!($rule);
        #[cfg(target_arch = "wasm32")]
        $crate::export_preparing!($rule);
        const _: fn() = <$rule as $crate::Prepare>::prepare;
    };
}

/// Exports a [`RoutingRule`] as the component's `routing` interface (see
/// [`compliance_rule!`], also for `prepared`).
#[macro_export]
macro_rules! routing_rule {
    ($rule:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::export_routing_rule!($rule);
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn(
            $crate::Payment,
            ::std::vec::Vec<$crate::Rail>,
        ) -> ::std::result::Result<$crate::RouteChoice, $crate::Reason> =
            <$rule as $crate::RoutingRule>::route;
    };
    ($rule:ident, prepared) => {
        $crate::routing_rule!($rule);
        #[cfg(target_arch = "wasm32")]
        $crate::export_preparing!($rule);
        const _: fn() = <$rule as $crate::Prepare>::prepare;
    };
}

#[doc(hidden)]
pub use preparing::export_preparing;
/// What a rule prepares once per rule version, before any payment (exported with the
/// `prepared` form of the rule's macro, e.g. `routing_rule!(Router, prepared)`).
///
/// The host calls `prepare` once when it loads the rule version, then starts every call
/// from an instance holding what it left in memory: read and parse the configuration
/// (and anything else that depends on the configuration and the lists alone) here, keep
/// it in a `static` or `thread_local!`, and every payment finds it ready instead of
/// asking the host for it again. `velocity` and `clock` trap during `prepare`: there is
/// no payment yet. A trap or a broken bound in `prepare` refuses the rule version.
pub use preparing::exports::payrules::rules::preparation::Guest as Prepare;

#[doc(hidden)]
pub use compliance::export_compliance_rule;
pub use compliance::exports::payrules::rules::compliance::Guest as ComplianceRule;
pub use compliance::payrules::rules::types::{
    AccountId, Agent, ChargeBearer, Date, Money, Party, Payment, PostalAddress, Rail, Reason, Risk,
    RiskReason, RouteChoice, Urgency, Verdict,
};
#[doc(hidden)]
pub use fraud::export_fraud_rule;
pub use fraud::exports::payrules::rules::fraud::Guest as FraudRule;
#[doc(hidden)]
pub use routing::export_routing_rule;
pub use routing::exports::payrules::rules::routing::Guest as RoutingRule;

pub use compliance::payrules::rules::{clock, lists, log, velocity};

#[cfg(target_arch = "wasm32")]
pub mod arena;
pub mod config;
pub mod money;
pub mod testing;

#[cfg(all(target_arch = "wasm32", feature = "arena"))]
#[global_allocator]
static ALLOCATOR: arena::Arena = arena::Arena::new();

/// Party-name normalisation and similarity: the very functions the host's
/// `lists.fuzzy-match` uses, so a rule can compare names the way the host does.
pub mod names {
    pub use payrules_names::{Disguise, SIMILARITY_MAX, disguises, normalize, similarity};
}

impl Reason {
    /// A reason with this code and message.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Reason {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

impl RiskReason {
    /// A risk reason worth `points`.
    pub fn new(code: &str, points: u16, message: impl Into<String>) -> Self {
        RiskReason {
            code: code.to_owned(),
            points,
            message: message.into(),
        }
    }
}

impl Risk {
    /// A risk whose score is the sum of the reasons' points, capped at 1000, as the host
    /// requires.
    pub fn from_reasons(reasons: Vec<RiskReason>) -> Self {
        let total: u32 = reasons.iter().map(|r| u32::from(r.points)).sum();
        let score = u16::try_from(total.min(1000)).unwrap_or(1000);
        Risk { score, reasons }
    }
}

impl AccountId {
    /// The identifier text, whatever its kind.
    pub fn as_str(&self) -> &str {
        match self {
            AccountId::Iban(id) | AccountId::Other(id) => id,
        }
    }

    /// The country of an IBAN (its first two letters); `None` for other identifiers.
    pub fn iban_country(&self) -> Option<&str> {
        match self {
            AccountId::Iban(iban) => iban.get(..2),
            AccountId::Other(_) => None,
        }
    }
}

impl Agent {
    /// The country of the agent: its own, or else the one in its BIC (characters 5-6).
    pub fn country(&self) -> Option<&str> {
        self.country
            .as_deref()
            .or_else(|| self.bic.as_deref().and_then(|bic| bic.get(4..6)))
    }
}

impl Party {
    /// The party's country: its address country, or else its IBAN's country.
    pub fn country(&self) -> Option<&str> {
        self.country
            .as_deref()
            .or_else(|| self.account.as_ref().and_then(AccountId::iban_country))
    }
}

impl Payment {
    /// The debtor's country: the debtor's own, else its IBAN's, else its agent's.
    pub fn debtor_country(&self) -> Option<&str> {
        self.debtor
            .country()
            .or_else(|| self.debtor_agent.country())
    }

    /// The creditor's country: the creditor's own, else its IBAN's, else its agent's.
    pub fn creditor_country(&self) -> Option<&str> {
        self.creditor
            .country()
            .or_else(|| self.creditor_agent.country())
    }

    /// Whether debtor and creditor are known to be in different countries.
    pub fn is_cross_border(&self) -> bool {
        match (self.debtor_country(), self.creditor_country()) {
            (Some(debtor), Some(creditor)) => debtor != creditor,
            _ => false,
        }
    }

    /// Every named party of the payment with its role: debtor, creditor and the ultimate
    /// parties when present. What a screening rule screens.
    pub fn named_parties(&self) -> Vec<(&'static str, &Party)> {
        let mut parties = vec![("debtor", &self.debtor), ("creditor", &self.creditor)];
        if let Some(party) = &self.ultimate_debtor {
            parties.push(("ultimate debtor", party));
        }
        if let Some(party) = &self.ultimate_creditor {
            parties.push(("ultimate creditor", party));
        }
        parties
    }
}

impl Rail {
    /// The rail's name as manifests and decisions spell it (`"sepa-instant"`).
    pub fn name(self) -> &'static str {
        match self {
            Rail::Rtp => "rtp",
            Rail::Fednow => "fednow",
            Rail::Ach => "ach",
            Rail::SepaInstant => "sepa-instant",
            Rail::SepaCreditTransfer => "sepa-credit-transfer",
            Rail::Swift => "swift",
            Rail::BookTransfer => "book-transfer",
        }
    }

    /// Every rail, in the contract's order.
    pub const ALL: [Rail; 7] = [
        Rail::Rtp,
        Rail::Fednow,
        Rail::Ach,
        Rail::SepaInstant,
        Rail::SepaCreditTransfer,
        Rail::Swift,
        Rail::BookTransfer,
    ];

    /// The rail named `name` (as [`Rail::name`] spells it).
    pub fn from_name(name: &str) -> Option<Rail> {
        Rail::ALL.into_iter().find(|rail| rail.name() == name)
    }
}
