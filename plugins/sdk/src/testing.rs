//! A realistic payment to start a rule's native unit tests from: change the fields the
//! test is about and leave the rest.

use crate::{AccountId, Agent, ChargeBearer, Money, Party, Payment, PostalAddress, Urgency};

/// A valid SEPA credit transfer of 1,250.00 EUR from a German company to a Dutch
/// supplier, as the host would hand it to a rule.
pub fn sepa_payment() -> Payment {
    Payment {
        payment_id: "pay-0001".to_owned(),
        end_to_end_id: "E2E-2026-0001".to_owned(),
        instruction_id: Some("INSTR-0001".to_owned()),
        uetr: Some("4b6bf8c2-2b35-4a5e-9f57-1c4e2a1e9d10".to_owned()),
        amount: Money {
            minor_units: 125_000,
            currency: "EUR".to_owned(),
            scale: 2,
        },
        debtor: Party {
            name: Some("Muster Maschinenbau GmbH".to_owned()),
            country: Some("DE".to_owned()),
            address: Some(PostalAddress {
                street_name: Some("Hauptstrasse".to_owned()),
                building_number: Some("12".to_owned()),
                post_code: Some("80331".to_owned()),
                town_name: Some("Muenchen".to_owned()),
                country_sub_division: None,
                address_lines: Vec::new(),
            }),
            account: Some(AccountId::Iban("DE89370400440532013000".to_owned())),
        },
        debtor_agent: Agent {
            bic: Some("COBADEFFXXX".to_owned()),
            member_id: None,
            name: None,
            country: Some("DE".to_owned()),
        },
        creditor: Party {
            name: Some("Van Dijk Onderdelen B.V.".to_owned()),
            country: Some("NL".to_owned()),
            address: None,
            account: Some(AccountId::Iban("NL91ABNA0417164300".to_owned())),
        },
        creditor_agent: Agent {
            bic: Some("ABNANL2AXXX".to_owned()),
            member_id: None,
            name: None,
            country: Some("NL".to_owned()),
        },
        ultimate_debtor: None,
        ultimate_creditor: None,
        intermediary_agents: Vec::new(),
        charge_bearer: Some(ChargeBearer::Slev),
        purpose: Some("SUPP".to_owned()),
        category_purpose: None,
        remittance: Some("Invoice 2026-118".to_owned()),
        requested_execution_date: None,
        urgency: Urgency::Normal,
        channel: Some("online-banking".to_owned()),
    }
}

/// A domestic US payment of 2,500.00 USD between two accounts identified by account
/// number and ABA routing number.
pub fn us_payment() -> Payment {
    let mut payment = sepa_payment();
    payment.amount = Money {
        minor_units: 250_000,
        currency: "USD".to_owned(),
        scale: 2,
    };
    payment.debtor = Party {
        name: Some("Harbor Coffee Roasters LLC".to_owned()),
        country: Some("US".to_owned()),
        address: None,
        account: Some(AccountId::Other("44444444444".to_owned())),
    };
    payment.debtor_agent = Agent {
        bic: None,
        member_id: Some("021000021".to_owned()),
        name: None,
        country: Some("US".to_owned()),
    };
    payment.creditor = Party {
        name: Some("Pacific Bean Supply Inc".to_owned()),
        country: Some("US".to_owned()),
        address: None,
        account: Some(AccountId::Other("55555555555".to_owned())),
    };
    payment.creditor_agent = Agent {
        bic: None,
        member_id: Some("121000248".to_owned()),
        name: None,
        country: Some("US".to_owned()),
    };
    payment.charge_bearer = None;
    payment
}
