//! ISO 20022 over HTTP: pacs.008 and pain.001 in, pacs.002 and pain.002 (or JSON) out,
//! and the follow-up reports once held transactions are reviewed.
//!
//! Every status report these tests receive is also written to `target/status-reports/`,
//! where `.ci/run` validates them against the official XSDs with the conformance kit's
//! `validate_status_report.py`.

use serde_json::Value;

use crate::server::{AUDITOR, REVIEWER, SUBMITTER, Server, audit_verify};
use crate::support::workspace;

/// One credit transfer of a test pacs.008: end-to-end id, amount (USD), creditor name,
/// creditor account (`<Othr><Id>`, or an IBAN when it starts with two letters).
type Tx<'a> = (&'a str, &'a str, &'a str, &'a str);

/// A FedNow-style pacs.008.001.08 in its envelope, with a consistent group header.
fn pacs008(message_id: &str, transactions: &[Tx]) -> String {
    let total: rust_decimal::Decimal = transactions
        .iter()
        .map(|(_, amount, _, _)| amount.parse::<rust_decimal::Decimal>().unwrap())
        .sum();
    let body: String = transactions
        .iter()
        .map(|(e2e, amount, creditor, account)| {
            let account = if account.as_bytes()[0].is_ascii_alphabetic() {
                format!("<IBAN>{account}</IBAN>")
            } else {
                format!("<Othr><Id>{account}</Id></Othr>")
            };
            format!(
                "<CdtTrfTxInf><PmtId><InstrId>I-{e2e}</InstrId><EndToEndId>{e2e}</EndToEndId></PmtId>\
                 <IntrBkSttlmAmt Ccy=\"USD\">{amount}</IntrBkSttlmAmt><ChrgBr>SLEV</ChrgBr>\
                 <Dbtr><Nm>Harbor Coffee Roasters LLC</Nm><PstlAdr><TwnNm>Seattle</TwnNm><Ctry>US</Ctry></PstlAdr></Dbtr>\
                 <DbtrAcct><Id><Othr><Id>44444444444</Id></Othr></Id></DbtrAcct>\
                 <DbtrAgt><FinInstnId><ClrSysMmbId><ClrSysId><Cd>USABA</Cd></ClrSysId><MmbId>021000021</MmbId></ClrSysMmbId></FinInstnId></DbtrAgt>\
                 <CdtrAgt><FinInstnId><ClrSysMmbId><ClrSysId><Cd>USABA</Cd></ClrSysId><MmbId>121000248</MmbId></ClrSysMmbId></FinInstnId></CdtrAgt>\
                 <Cdtr><Nm>{creditor}</Nm><PstlAdr><Ctry>US</Ctry></PstlAdr></Cdtr>\
                 <CdtrAcct><Id>{account}</Id></CdtrAcct></CdtTrfTxInf>"
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <FedNowIncoming xmlns=\"urn:fednow\"><FedNowIncomingMessage>\
         <Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08\"><FIToFICstmrCdtTrf>\
         <GrpHdr><MsgId>{message_id}</MsgId><CreDtTm>2026-11-24T10:00:00Z</CreDtTm>\
         <NbOfTxs>{}</NbOfTxs><TtlIntrBkSttlmAmt Ccy=\"USD\">{total}</TtlIntrBkSttlmAmt>\
         <IntrBkSttlmDt>2026-11-24</IntrBkSttlmDt><SttlmInf><SttlmMtd>CLRG</SttlmMtd></SttlmInf></GrpHdr>\
         {body}</FIToFICstmrCdtTrf></Document></FedNowIncomingMessage></FedNowIncoming>",
        transactions.len()
    )
}

fn post_xml(server: &Server, xml: &str, accept: Option<&str>) -> crate::server::Reply {
    let auth = format!("Bearer {SUBMITTER}");
    let mut headers = vec![
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/xml"),
    ];
    if let Some(accept) = accept {
        headers.push(("Accept", accept));
    }
    server.request("POST", "/v1/payments", &headers, Some(xml.as_bytes()))
}

/// Keeps a status report (pacs.002 or pain.002) for the XSD validation in `.ci/run`.
fn keep(name: &str, xml: &str) {
    let dir = workspace().join("target/status-reports");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.xml")), xml).unwrap();
}

/// The text of every `<name>` element, in order.
fn texts(xml: &str, name: &str) -> Vec<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    xml.split(&open)
        .skip(1)
        .map(|rest| rest.split(&close).next().unwrap().to_owned())
        .collect()
}

#[test]
fn each_transaction_of_a_pacs008_is_decided_and_reported_in_a_pacs002() {
    let server = Server::start();
    let xml = pacs008(
        "MSG-MIXED-1",
        &[
            ("E2E-OK", "1200.00", "Maria Gonzalez", "55555555555"),
            (
                "E2E-SANCTIONED",
                "900.00",
                "BANCO NACIONAL DE CUBA",
                "66666666666",
            ),
            (
                "E2E-BAD-IBAN",
                "50.00",
                "Hans Weber",
                "DE89370400440532013001",
            ),
        ],
    );
    let reply = post_xml(&server, &xml, None);
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("application/xml")
    );
    let report = &reply.body;
    keep("mixed-pacs008", report);
    assert_eq!(texts(report, "OrgnlMsgId"), ["MSG-MIXED-1"]);
    assert_eq!(texts(report, "OrgnlMsgNmId"), ["pacs.008.001.08"]);
    assert_eq!(texts(report, "OrgnlNbOfTxs"), ["3"]);
    assert_eq!(texts(report, "GrpSts"), ["PART"]);
    assert_eq!(
        texts(report, "OrgnlEndToEndId"),
        ["E2E-OK", "E2E-SANCTIONED", "E2E-BAD-IBAN"]
    );
    assert_eq!(
        texts(report, "OrgnlInstrId"),
        ["I-E2E-OK", "I-E2E-SANCTIONED", "I-E2E-BAD-IBAN"]
    );
    assert_eq!(texts(report, "TxSts"), ["ACSP", "RJCT", "RJCT"]);
    assert_eq!(texts(report, "Cd"), ["RR04", "AC01"], "{report}");
    assert!(
        texts(report, "AddtlInf")
            .iter()
            .any(|i| i.contains("creditor.account.iban")),
        "{report}"
    );
    // The screening rule's finding (which listed party, how similar) is not told to the
    // submitting system: its reason code is.
    assert!(!report.contains("sanctions entry"), "{report}");

    // The two payments that reached the rules are stored with their decisions.
    let stored = server.all_payments();
    let mut ends: Vec<_> = stored
        .iter()
        .map(|p| p["end_to_end_id"].as_str().unwrap().to_owned())
        .collect();
    ends.sort();
    assert_eq!(ends, ["E2E-OK", "E2E-SANCTIONED"]);
    let mut server = server;
    server.kill();
    let verify = audit_verify(&server.store());
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[test]
fn a_pain001_from_the_fixtures_is_answered_per_transaction() {
    let server = Server::start();
    let xml = std::fs::read_to_string(
        workspace().join("tests/fixtures/iso20022/pain001-two-pmtinf-prefixed-bom.xml"),
    )
    .unwrap();
    let reply = post_xml(&server, &xml, Some("application/xml"));
    assert_eq!(reply.status, 201, "{}", reply.body);
    keep("pain001-fixture", &reply.body);
    let report = &reply.body;
    assert!(
        report.contains("urn:iso:std:iso:20022:tech:xsd:pain.002.001.10")
            && report.contains("<CstmrPmtStsRpt>"),
        "a pain.001 is answered with a pain.002: {report}"
    );
    assert_eq!(texts(report, "OrgnlMsgNmId"), ["pain.001.001.09"]);
    assert_eq!(texts(report, "OrgnlPmtInfId"), ["PI-1", "PI-2"]);
    assert_eq!(texts(report, "OrgnlNbOfTxs"), ["3", "2", "1"]);
    assert_eq!(texts(report, "TxSts").len(), 3);
}

/// A message whose transactions were held: its status follows their reviews, in the
/// report that answers its kind (pacs.002 for a pacs.008, pain.002 for a pain.001), under
/// a report id of its own, the same when asked again.
#[test]
fn a_messages_status_follows_the_reviews_of_its_held_transactions() {
    let server = Server::start();
    let xml = pacs008(
        "MSG-HELD-1",
        &[
            ("E2E-H-OK", "40.00", "Maria Gonzalez", "55555555555"),
            ("E2E-H-HELD", "70.00", "Heinz Mueller", "77777777777"),
        ],
    );
    let first = post_xml(&server, &xml, None);
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(
        texts(&first.body, "TxSts"),
        ["ACSP", "PDNG"],
        "{}",
        first.body
    );
    let status_path = "/v1/messages/MSG-HELD-1/status";
    let before = server.get(status_path, Some(SUBMITTER));
    assert_eq!(before.status, 200, "{}", before.body);
    assert_eq!(
        before.body, first.body,
        "nothing reviewed yet: the first report"
    );
    assert_eq!(
        server.get(status_path, Some(AUDITOR)).status,
        403,
        "the submitting key's"
    );
    assert_eq!(
        server
            .get("/v1/messages/MSG-NOT-SENT/status", Some(SUBMITTER))
            .code(),
        "message_not_found"
    );

    let held = server.all_payments();
    let held_id = held
        .iter()
        .find(|p| p["end_to_end_id"] == "E2E-H-HELD")
        .and_then(|p| p["payment_id"].as_str())
        .expect("the held payment")
        .to_owned();
    let reply = server.review(
        REVIEWER,
        &held_id,
        &serde_json::json!({"verdict": "reject", "reason_code": "AG01", "note": "no contract"}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let after = server.get(status_path, Some(SUBMITTER));
    assert_eq!(after.status, 200);
    keep("pacs008-followed-up", &after.body);
    assert_eq!(texts(&after.body, "TxSts"), ["ACSP", "RJCT"]);
    assert_eq!(texts(&after.body, "GrpSts"), ["PART"]);
    assert_eq!(texts(&after.body, "Cd"), ["AG01"]);
    assert!(!after.body.contains("no contract"), "the note stays inside");
    assert_ne!(
        texts(&after.body, "MsgId"),
        texts(&first.body, "MsgId"),
        "a report of its own"
    );
    assert_eq!(texts(&after.body, "MsgId")[0].len(), 34);
    assert_eq!(
        server.get(status_path, Some(SUBMITTER)).body,
        after.body,
        "the same outcomes, the same report"
    );
    let json = server.request(
        "GET",
        status_path,
        &[
            ("Authorization", &format!("Bearer {SUBMITTER}")),
            ("Accept", "application/json"),
        ],
        None,
    );
    assert_eq!(json.json()["group_status"], "PART", "{}", json.body);

    // A pain.001 with a held transaction: approved, its pain.002 says so.
    let pain = std::fs::read_to_string(
        workspace().join("tests/fixtures/iso20022/pain001-two-pmtinf-prefixed-bom.xml"),
    )
    .unwrap()
    .replace("Van Dijk Onderdelen B.V.", "Heinz Mueller")
    .replace("MUSTER-20261124-01", "MUSTER-HELD-01");
    let first = post_xml(&server, &pain, None);
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(texts(&first.body, "TxSts")[0], "PDNG", "{}", first.body);
    let held_id = server
        .all_payments()
        .iter()
        .find(|p| p["end_to_end_id"] == "INV-2026-0418" && p["final_status"] == "pending_review")
        .and_then(|p| p["payment_id"].as_str())
        .expect("the held payment")
        .to_owned();
    let reply = server.review(
        REVIEWER,
        &held_id,
        &serde_json::json!({"verdict": "approve"}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let after = server.get("/v1/messages/MUSTER-HELD-01/status", Some(SUBMITTER));
    assert_eq!(after.status, 200, "{}", after.body);
    keep("pain001-followed-up", &after.body);
    assert!(after.body.contains("<CstmrPmtStsRpt>"), "{}", after.body);
    assert_eq!(texts(&after.body, "TxSts")[0], "ACSP");
    assert_eq!(texts(&after.body, "OrgnlPmtInfId"), ["PI-1", "PI-2"]);
}

#[test]
fn the_same_message_again_gets_the_same_report_and_another_under_its_msgid_is_refused() {
    let server = Server::start();
    let xml = pacs008(
        "MSG-RETRY-1",
        &[("E2E-R1", "10.00", "Maria Gonzalez", "55555555555")],
    );
    let first = post_xml(&server, &xml, None);
    assert_eq!(first.status, 201, "{}", first.body);
    keep("retry-first", &first.body);
    // The same message, laid out differently: the same transactions.
    let again = post_xml(&server, &xml.replace("><", ">\n<"), None);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body, "the very same report");
    assert_eq!(server.all_payments().len(), 1, "decided once");

    let other = pacs008(
        "MSG-RETRY-1",
        &[("E2E-R1", "11.00", "Maria Gonzalez", "55555555555")],
    );
    let reused = post_xml(&server, &other, None);
    assert_eq!(reused.status, 422, "{}", reused.body);
    assert_eq!(reused.code(), "message_id_reused");
    assert_eq!(reused.json()["error"]["field"], "MsgId");
}

#[test]
fn accept_json_answers_with_the_decisions() {
    let server = Server::start();
    let xml = pacs008(
        "MSG-JSON-1",
        &[
            ("E2E-J1", "10.00", "Maria Gonzalez", "55555555555"),
            ("E2E-J2", "20.00", "BANCO NACIONAL DE CUBA", "66666666666"),
        ],
    );
    let reply = post_xml(&server, &xml, Some("application/json"));
    assert_eq!(reply.status, 201, "{}", reply.body);
    let body: Value = reply.json();
    assert_eq!(body["original_message_id"], "MSG-JSON-1");
    assert_eq!(body["group_status"], "PART");
    let transactions = body["transactions"].as_array().unwrap();
    assert_eq!(transactions[0]["status"], "ACSP");
    assert_eq!(transactions[0]["decision"]["status"], "accepted");
    assert_eq!(transactions[1]["status"], "RJCT");
    assert_eq!(transactions[1]["decision"]["reasons"][0]["code"], "RR04");
    let id = transactions[1]["payment_id"].as_str().unwrap();
    assert_eq!(
        server
            .get(&format!("/v1/payments/{id}"), Some(AUDITOR))
            .status,
        200
    );
    // A retry asking for JSON gets the stored decisions.
    let again = post_xml(&server, &xml, Some("application/json"));
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["transactions"], body["transactions"]);
}

#[test]
fn a_message_that_must_be_refused_whole_names_its_iso_code_and_element() {
    let server = Server::start();
    let good = pacs008(
        "MSG-BAD-1",
        &[("E2E-B1", "10.00", "Maria Gonzalez", "55555555555")],
    );
    let cases = [
        (
            "wrong NbOfTxs",
            good.replace("<NbOfTxs>1</NbOfTxs>", "<NbOfTxs>2</NbOfTxs>"),
            422,
            "AM18",
        ),
        (
            "wrong total",
            good.replace(
                "<TtlIntrBkSttlmAmt Ccy=\"USD\">10.00",
                "<TtlIntrBkSttlmAmt Ccy=\"USD\">11.00",
            ),
            422,
            "AM10",
        ),
        ("not XML", "payments, please".to_owned(), 400, "FF01"),
        (
            "a DTD",
            good.replacen("?>", "?><!DOCTYPE x [<!ENTITY e \"boom\">]>", 1),
            400,
            "FF01",
        ),
        (
            "a pacs.002",
            "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10\"/>".to_owned(),
            400,
            "FF01",
        ),
    ];
    for (what, xml, status, iso) in &cases {
        let reply = post_xml(&server, xml, None);
        assert_eq!(reply.status, *status, "{what}: {}", reply.body);
        assert_eq!(reply.code(), "message_refused", "{what}");
        assert_eq!(
            reply.json()["error"]["reason_code"],
            *iso,
            "{what}: {}",
            reply.body
        );
    }
    let am18 = post_xml(&server, &cases[0].1, None).json();
    assert!(
        am18["error"]["field"]
            .as_str()
            .unwrap()
            .ends_with("GrpHdr/NbOfTxs"),
        "{am18}"
    );
    assert!(server.all_payments().is_empty());
}
