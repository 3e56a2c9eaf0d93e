//! ISO 20022 in: `payrules parse` and the reader behind it, on fixtures written for these
//! tests (`tests/fixtures/iso20022`) and on hostile input.

use payrules::iso20022::{IsoError, ParsedMessage, parse};
use payrules::model::Payment;

use crate::support::workspace;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(workspace().join("tests/fixtures/iso20022").join(name))
        .expect("fixture")
}

fn parsed(xml: &str) -> ParsedMessage {
    parse(xml.as_bytes()).unwrap_or_else(|e| panic!("parses: {e:?}"))
}

fn refused(xml: &str) -> IsoError {
    match parse(xml.as_bytes()) {
        Ok(message) => panic!("should have been refused: {message:?}"),
        Err(error) => error,
    }
}

#[test]
fn a_pacs008_in_a_fednow_envelope_becomes_one_canonical_payment() {
    let message = parsed(&fixture("pacs008-fednow-envelope.xml"));
    assert_eq!(
        message.message_type, "pacs.008.001.08",
        "from the Document namespace, not the AppHdr"
    );
    assert_eq!(message.message_id, "20261124PAYR0001");
    assert_eq!(message.payments.len(), 1);
    let json = serde_json::to_value(&message.payments[0]).expect("serialises");
    let expected = serde_json::json!({
        "end_to_end_id": "PAYROLL-0031",
        "instruction_id": "INSTR-0001",
        "uetr": "8a562c67-ca16-48ba-b074-65581be6f011",
        "amount": "3250.75",
        "currency": "USD",
        "debtor": {"name": "Harbor Coffee Roasters LLC", "country": "US", "address": {"town_name": "Seattle"},
                   "account": {"id": "44444444444"}},
        "debtor_agent": {"member_id": "021000021"},
        "creditor": {"name": "Müller & Söhne", "country": "US", "account": {"id": "55555555555"}},
        "creditor_agent": {"member_id": "121000248"},
        "charge_bearer": "SLEV",
        "purpose": "SALA",
        "remittance": "Salary November 2026",
        "requested_execution_date": "2026-11-24"
    });
    assert_eq!(json, expected);
}

#[test]
fn a_prefixed_pain001_with_a_bom_applies_each_payment_information_to_its_transactions() {
    let message = parsed(&fixture("pain001-two-pmtinf-prefixed-bom.xml"));
    assert_eq!(message.message_type, "pain.001.001.09");
    let payments = &message.payments;
    let e2e: Vec<_> = payments
        .iter()
        .map(|p| p.end_to_end_id.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(e2e, ["INV-2026-0418", "INV-2026-0419", "ROYALTY-7"]);
    assert!(
        payments
            .iter()
            .all(|p| p.debtor.name.as_deref() == Some("Muster Maschinenbau GmbH"))
    );
    assert!(
        payments
            .iter()
            .all(|p| p.debtor_agent.bic.as_deref() == Some("COBADEFFXXX"))
    );
    assert_eq!(
        payments[0].urgency,
        Some("instant"),
        "INST at the PmtInf level"
    );
    assert_eq!(payments[2].urgency, None);
    assert_eq!(
        payments[1].creditor.name.as_deref(),
        Some("De Vries & Zn"),
        "CDATA is text"
    );
    assert_eq!(payments[1].amount.as_deref(), Some("250.5"));
    assert_eq!(
        payments[1].charge_bearer.as_deref(),
        Some("SLEV"),
        "from the PmtInf"
    );
    assert_eq!(
        payments[2].charge_bearer.as_deref(),
        Some("SHAR"),
        "the transaction's own"
    );
    assert_eq!(
        payments[2].requested_execution_date.as_deref(),
        Some("2026-11-25")
    );
    assert_eq!(
        (
            payments[2].amount.as_deref(),
            payments[2].currency.as_deref()
        ),
        (Some("1000"), Some("JPY"))
    );
}

#[test]
fn the_german_dk_variant_pain_001_003_03_reads_like_pain_001_001_03() {
    let pain = fixture("pain001-two-pmtinf-prefixed-bom.xml").replace(
        "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09",
        "urn:iso:std:iso:20022:tech:xsd:pain.001.003.03",
    );
    let message = parsed(&pain);
    assert_eq!(message.message_type, "pain.001.003.03");
    assert_eq!(message.payments.len(), 3);
}

#[test]
fn a_parsed_payment_is_a_valid_canonical_payment() {
    for name in [
        "pacs008-fednow-envelope.xml",
        "pain001-two-pmtinf-prefixed-bom.xml",
    ] {
        for raw in parsed(&fixture(name)).payments {
            let json = serde_json::to_string(&raw).expect("serialises");
            Payment::from_json(&json).unwrap_or_else(|e| panic!("{name}: {e}: {json}"));
        }
    }
}

#[test]
fn message_level_inconsistencies_are_refused_with_their_iso_codes() {
    let long_msg_id = format!("<p:MsgId>{}</p:MsgId>", "M".repeat(60_000));
    let pain = fixture("pain001-two-pmtinf-prefixed-bom.xml");
    let cases = [
        (
            "<p:NbOfTxs>3</p:NbOfTxs>",
            "<p:NbOfTxs>4</p:NbOfTxs>",
            "AM18",
            Some("/Document/CstmrCdtTrfInitn/GrpHdr/NbOfTxs"),
        ),
        (
            "<p:CtrlSum>13730.50</p:CtrlSum>",
            "<p:CtrlSum>13730.51</p:CtrlSum>",
            "AM10",
            Some("/Document/CstmrCdtTrfInitn/GrpHdr/CtrlSum"),
        ),
        (
            "<p:NbOfTxs>2</p:NbOfTxs>",
            "<p:NbOfTxs>1</p:NbOfTxs>",
            "AM20",
            Some("/Document/CstmrCdtTrfInitn/PmtInf/NbOfTxs"),
        ),
        (
            "<p:CtrlSum>12730.50</p:CtrlSum>",
            "<p:CtrlSum>12730.00</p:CtrlSum>",
            "AM10",
            Some("/Document/CstmrCdtTrfInitn/PmtInf/CtrlSum"),
        ),
        (
            "<p:Dt>2026-11-24</p:Dt>",
            "<p:Dt>2026-02-30</p:Dt>",
            "DT01",
            Some("/Document/CstmrCdtTrfInitn/PmtInf/ReqdExctnDt/Dt"),
        ),
        (
            "<p:Dt>2026-11-24</p:Dt>",
            "<p:Dt>YYYY-MM-DD</p:Dt>",
            "DT01",
            None,
        ),
        (
            "<p:IBAN>NL91ABNA0417164300</p:IBAN>",
            "<p:IBAN>NL91 ABNA 0417 1643 00</p:IBAN>",
            "AC03",
            None,
        ),
        (
            "<p:IBAN>DE89370400440532013000</p:IBAN>",
            "<p:IBAN>IBAN</p:IBAN>",
            "AC02",
            None,
        ),
        (
            "<p:BICFI>ABNANL2A</p:BICFI>",
            "<p:BICFI>Bank BIC</p:BICFI>",
            "RC04",
            None,
        ),
        (
            "<p:BICFI>COBADEFFXXX</p:BICFI>",
            "<p:BICFI>COBADEFF-XX</p:BICFI>",
            "RC03",
            None,
        ),
        (">250.5<", ">250.505<", "AM12", None),
        (">250.5<", ">-250.5<", "AM12", None),
        (">250.5<", ">0.00<", "AM01", None),
        (">250.5<", ">1234567890123456789<", "AM12", None),
        (">1000</p:InstdAmt>", ">1000.5</p:InstdAmt>", "AM12", None),
        ("Ccy=\"JPY\"", "Ccy=\"YEN\"", "AM11", None),
        ("Ccy=\"JPY\"", "", "AM11", None),
        (
            "<p:EndToEndId>INV-2026-0418</p:EndToEndId>",
            "",
            "FF08",
            None,
        ),
        (
            "<p:MsgId>MUSTER-20261124-01</p:MsgId>",
            "",
            "FF01",
            Some("/Document/CstmrCdtTrfInitn/GrpHdr/MsgId"),
        ),
        // The MsgId is the idempotency key, stored and logged: Max35Text, no control
        // characters (a line break and an escape would reach a text log raw).
        (
            "<p:MsgId>MUSTER-20261124-01</p:MsgId>",
            &long_msg_id,
            "FF01",
            Some("/Document/CstmrCdtTrfInitn/GrpHdr/MsgId"),
        ),
        (
            "<p:MsgId>MUSTER-20261124-01</p:MsgId>",
            "<p:MsgId>MUSTER&#10;&#27;[31mFORGED</p:MsgId>",
            "FF01",
            Some("/Document/CstmrCdtTrfInitn/GrpHdr/MsgId"),
        ),
    ];
    for (from, to, code, path) in cases {
        assert!(pain.contains(from), "the fixture holds {from}");
        let error = refused(&pain.replacen(from, to, 1));
        assert_eq!(error.code, code, "{from} -> {to}: {error:?}");
        if let Some(path) = path {
            assert_eq!(error.path.as_deref(), Some(path), "{from} -> {to}");
        }
        assert!(!error.message.is_empty());
    }
    let forged = refused(&pain.replacen(
        "<p:MsgId>MUSTER-20261124-01</p:MsgId>",
        "<p:MsgId>MUSTER&#10;&#27;[31mFORGED</p:MsgId>",
        1,
    ));
    assert!(forged.message.contains("control character"), "{forged:?}");
    let long = refused(&pain.replacen("<p:MsgId>MUSTER-20261124-01</p:MsgId>", &long_msg_id, 1));
    assert!(long.message.contains("60000 characters"), "{long:?}");
}

#[test]
fn messages_that_are_not_payments_or_not_read_are_refused_with_ff01() {
    let pain = fixture("pain001-two-pmtinf-prefixed-bom.xml");
    let namespace = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09";
    for (replacement, expected) in [
        (
            "urn:iso:std:iso:20022:tech:xsd:pain.002.001.10",
            "not a pacs.008 or pain.001",
        ),
        (
            "urn:iso:std:iso:20022:tech:xsd:pain.001.001.02",
            "version payrules does not read",
        ),
        (
            "http://example.com/pain.001.001.09.ch.02.xsd",
            "not an ISO 20022 one",
        ),
    ] {
        let error = refused(&pain.replace(namespace, replacement));
        assert_eq!(error.code, "FF01");
        assert!(error.message.contains(expected), "{error:?}");
    }
    let appheader_only = "<AppHdr xmlns=\"urn:iso:std:iso:20022:tech:xsd:head.001.001.02\"><BizMsgIdr>X</BizMsgIdr></AppHdr>";
    for input in [
        "",
        "hello",
        "{\"a\": 1}",
        appheader_only,
        "<Document>",
        "<a><b></a></b>",
    ] {
        assert_eq!(refused(input).code, "FF01", "{input:?}");
    }
}

#[test]
fn hostile_input_is_refused_quickly_with_ff01() {
    let laughs = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">{}]><Document>&lol9;</Document>",
        (1..10).map(|i| format!("<!ENTITY lol{i} \"&lol{0};&lol{0};&lol{0};&lol{0};&lol{0};&lol{0};&lol{0};&lol{0};&lol{0};&lol{0};\">", i - 1)).collect::<String>()
    );
    let external =
        "<?xml version=\"1.0\"?><!DOCTYPE d [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><d>&x;</d>";
    let pacs = fixture("pacs008-fednow-envelope.xml");
    let undefined_entity = pacs.replace("Müller &amp; Söhne", "Müller &foo; Söhne");
    let deep = format!("{}{}", "<a>".repeat(10_000), "</a>".repeat(10_000));
    let attributes = format!(
        "<Document {}/>",
        (0..100).map(|i| format!("a{i}=\"1\" ")).collect::<String>()
    );
    let long_text = pacs.replace("Harbor Coffee Roasters LLC", &"X".repeat(100_000));
    let cases = [
        (laughs.as_str(), "DTD"),
        (external, "DTD"),
        (undefined_entity.as_str(), "entity"),
        (deep.as_str(), "deeper"),
        (attributes.as_str(), "attributes"),
        (long_text.as_str(), "longer than"),
    ];
    for (input, expected) in cases {
        let started = std::time::Instant::now();
        let error = refused(input);
        assert_eq!(error.code, "FF01", "{expected}: {error:?}");
        assert!(error.message.contains(expected), "{expected}: {error:?}");
        // A guard against a hang or a blow-up, not a benchmark.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{expected}: {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn payrules_parse_prints_json_or_a_json_error_with_exit_status_2() {
    let run = |file: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_payrules"))
            .current_dir(workspace())
            .args(["parse", file])
            .output()
            .expect("payrules runs")
    };
    let output = run("tests/fixtures/iso20022/pacs008-fednow-envelope.xml");
    assert!(output.status.success());
    let message: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(message["payments"][0]["amount"], "3250.75");

    let output = run("examples/payments/sepa-instant-supplier.json");
    assert_eq!(output.status.code(), Some(2));
    let error: serde_json::Value = serde_json::from_slice(&output.stderr).expect("a JSON error");
    assert_eq!(error["error"]["code"], "FF01");
    assert!(output.stdout.is_empty());
}
