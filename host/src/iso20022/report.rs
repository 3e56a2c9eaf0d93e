//! ISO 20022 out: the status report that answers a message submitted over HTTP — a
//! pacs.002 (FI to FI payment status report) for a pacs.008, a pain.002 (customer payment
//! status report) for a pain.001, which is what a customer's system expects.
//!
//! The report is plain data ([`StatusReport`]), kept as JSON in the store so a retry of
//! the same message gets the very same report, and written as XML by
//! [`StatusReport::to_xml`]: pacs.002.001.10 ([`StatusReport::to_pacs002`]) or
//! pain.002.001.10 ([`StatusReport::to_pain002`], the transactions grouped by their
//! original `PmtInfId`). Both carry the group header, the original message's id, type,
//! number of transactions and group status, and per transaction its original
//! instruction id, end-to-end id and UETR, its status and the reasons (ISO 20022
//! external status reason codes, with the rule's message as additional information).

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};
use serde::{Deserialize, Serialize};

use crate::model::reason_code;

/// The pacs.002 version written.
pub const PACS002_VERSION: &str = "pacs.002.001.10";
/// The pain.002 version written.
pub const PAIN002_VERSION: &str = "pain.002.001.10";
/// The namespace of an ISO 20022 message version.
const NAMESPACE_PREFIX: &str = "urn:iso:std:iso:20022:tech:xsd:";
/// What a pain.002 names a group of transactions whose `PmtInfId` was not kept (reports
/// stored before payrules kept it).
const PAYMENT_INFORMATION_ID_UNKNOWN: &str = "NOTPROVIDED";
/// ISO 20022 `Max105Text`: the longest additional information line.
const ADDITIONAL_INFO_CHARS_MAX: usize = 105;
/// At most this many additional information lines per reason.
const ADDITIONAL_INFO_LINES_MAX: usize = 4;

/// A transaction's status (ISO 20022 ExternalPaymentTransactionStatus1Code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxStatus {
    /// Accepted, settlement in process: the rules accepted it and chose its route.
    #[serde(rename = "ACSP")]
    AcceptedSettlementInProcess,
    /// Pending: held for review.
    #[serde(rename = "PDNG")]
    Pending,
    /// Rejected, with reasons.
    #[serde(rename = "RJCT")]
    Rejected,
}

impl TxStatus {
    /// The ISO code.
    pub fn code(self) -> &'static str {
        match self {
            TxStatus::AcceptedSettlementInProcess => "ACSP",
            TxStatus::Pending => "PDNG",
            TxStatus::Rejected => "RJCT",
        }
    }
}

/// Why a transaction has its status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReason {
    /// An ISO 20022 external status reason code (`RR04`, `AM02`, ...) or, for a rule's
    /// own finding code, that code (written as a proprietary reason).
    pub code: String,
    /// One sentence; empty when withheld from the reader.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// One transaction's line of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxReport {
    /// The payment's id in payrules, when it was decided (absent when it was refused
    /// before any rule saw it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    /// The original `PmtInfId` of a pain.001 transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_information_id: Option<String>,
    /// The original InstrId.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instruction_id: Option<String>,
    /// The original EndToEndId.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_to_end_id: Option<String>,
    /// The original UETR.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uetr: Option<String>,
    /// Its status.
    pub status: TxStatus,
    /// Why (empty when accepted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<StatusReason>,
}

/// A status report for one message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// This report's MsgId.
    pub report_id: String,
    /// When it was made, ms since the Unix epoch.
    pub created_at_unix_ms: i64,
    /// The original message's MsgId.
    pub original_message_id: String,
    /// The original message's type, e.g. `pacs.008.001.08`.
    pub original_message_type: String,
    /// One line per transaction, in the message's order.
    pub transactions: Vec<TxReport>,
}

impl StatusReport {
    /// The group status: the transactions' common status, or `PART` when they differ.
    pub fn group_status(&self) -> &'static str {
        common_status(&self.transactions)
    }

    /// Whether this answers a pain.001 (so is written as a pain.002).
    pub fn answers_pain001(&self) -> bool {
        self.original_message_type.starts_with("pain.001.")
    }

    /// The message version this report is written as: pain.002 for a pain.001, pacs.002
    /// for a pacs.008.
    pub fn xml_version(&self) -> &'static str {
        if self.answers_pain001() {
            PAIN002_VERSION
        } else {
            PACS002_VERSION
        }
    }

    /// The report as the document that answers its original message: a pain.002 for a
    /// pain.001, a pacs.002 for a pacs.008.
    pub fn to_xml(&self) -> String {
        if self.answers_pain001() {
            self.to_pain002()
        } else {
            self.to_pacs002()
        }
    }

    /// The report as a pacs.002.001.10 document.
    pub fn to_pacs002(&self) -> String {
        document(PACS002_VERSION, "FIToFIPmtStsRpt", |w| {
            self.write_headers(w)?;
            for tx in &self.transactions {
                w.create_element("TxInfAndSts")
                    .write_inner_content(|w| write_transaction(w, tx))?;
            }
            Ok(())
        })
    }

    /// The report as a pain.002.001.10 document: the transactions under the payment
    /// information (`PmtInfId`) they came in, each group with its status.
    pub fn to_pain002(&self) -> String {
        document(PAIN002_VERSION, "CstmrPmtStsRpt", |w| {
            self.write_headers(w)?;
            for group in self
                .transactions
                .chunk_by(|a, b| a.payment_information_id == b.payment_information_id)
            {
                let id = group[0]
                    .payment_information_id
                    .as_deref()
                    .unwrap_or(PAYMENT_INFORMATION_ID_UNKNOWN);
                w.create_element("OrgnlPmtInfAndSts")
                    .write_inner_content(|w| {
                        leaf(w, "OrgnlPmtInfId", &truncate(id, 35))?;
                        leaf(w, "OrgnlNbOfTxs", &group.len().to_string())?;
                        leaf(w, "PmtInfSts", common_status(group))?;
                        for tx in group {
                            w.create_element("TxInfAndSts")
                                .write_inner_content(|w| write_transaction(w, tx))?;
                        }
                        Ok(())
                    })?;
            }
            Ok(())
        })
    }

    /// The group header and the original group's information and status.
    fn write_headers(&self, w: &mut Writer<Vec<u8>>) -> std::io::Result<()> {
        w.create_element("GrpHdr").write_inner_content(|w| {
            leaf(w, "MsgId", &self.report_id)?;
            leaf(w, "CreDtTm", &date_time(self.created_at_unix_ms))
        })?;
        w.create_element("OrgnlGrpInfAndSts")
            .write_inner_content(|w| {
                leaf(w, "OrgnlMsgId", &self.original_message_id)?;
                leaf(w, "OrgnlMsgNmId", &self.original_message_type)?;
                leaf(w, "OrgnlNbOfTxs", &self.transactions.len().to_string())?;
                leaf(w, "GrpSts", self.group_status())
            })?;
        Ok(())
    }
}

/// The transactions' common status, or `PART` when they differ (`RJCT` for none).
fn common_status(transactions: &[TxReport]) -> &'static str {
    let mut statuses = transactions.iter().map(|t| t.status);
    match statuses.next() {
        None => "RJCT",
        Some(first) if statuses.all(|s| s == first) => first.code(),
        Some(_) => "PART",
    }
}

/// A `Document` of message `version` whose root element `root` holds what `body` writes.
fn document(
    version: &str,
    root: &str,
    body: impl FnOnce(&mut Writer<Vec<u8>>) -> std::io::Result<()>,
) -> String {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    let namespace = format!("{NAMESPACE_PREFIX}{version}");
    let written = (|| -> std::io::Result<()> {
        writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        writer
            .create_element("Document")
            .with_attribute(("xmlns", namespace.as_str()))
            .write_inner_content(|w| {
                w.create_element(root).write_inner_content(body)?;
                Ok(())
            })?;
        Ok(())
    })();
    // Writing to a Vec cannot fail; the result is checked all the same.
    debug_assert!(written.is_ok(), "writing XML to memory failed: {written:?}");
    String::from_utf8(writer.into_inner())
        .unwrap_or_else(|e| unreachable!("the writer writes UTF-8: {e}"))
}

fn write_transaction(w: &mut Writer<Vec<u8>>, tx: &TxReport) -> std::io::Result<()> {
    if let Some(id) = &tx.instruction_id {
        leaf(w, "OrgnlInstrId", id)?;
    }
    if let Some(id) = &tx.end_to_end_id {
        leaf(w, "OrgnlEndToEndId", id)?;
    }
    if let Some(uetr) = &tx.uetr {
        leaf(w, "OrgnlUETR", uetr)?;
    }
    leaf(w, "TxSts", tx.status.code())?;
    for reason in &tx.reasons {
        w.create_element("StsRsnInf").write_inner_content(|w| {
            w.create_element("Rsn").write_inner_content(|w| {
                if reason_code::is_status_reason_code(&reason.code) {
                    leaf(w, "Cd", &reason.code)
                } else {
                    leaf(w, "Prtry", &truncate(&reason.code, 35))
                }
            })?;
            for line in additional_info(&reason.message) {
                leaf(w, "AddtlInf", &line)?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

fn leaf(w: &mut Writer<Vec<u8>>, name: &str, text: &str) -> std::io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(text))?;
    Ok(())
}

/// A message cut into `Max105Text` lines at character boundaries, at most four.
fn additional_info(message: &str) -> Vec<String> {
    let chars: Vec<char> = message.chars().filter(|c| !c.is_control()).collect();
    chars
        .chunks(ADDITIONAL_INFO_CHARS_MAX)
        .take(ADDITIONAL_INFO_LINES_MAX)
        .map(|chunk| chunk.iter().collect::<String>())
        .filter(|line| !line.trim().is_empty())
        .collect()
}

fn truncate(text: &str, chars: usize) -> String {
    text.chars().take(chars).collect()
}

/// An ISO date-time in UTC with milliseconds, e.g. `2026-11-22T09:30:00.123Z`.
fn date_time(unix_ms: i64) -> String {
    let at = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(u64::try_from(unix_ms).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(status: TxStatus, reasons: &[(&str, &str)]) -> TxReport {
        TxReport {
            payment_id: None,
            payment_information_id: None,
            instruction_id: Some("INSTR-1".into()),
            end_to_end_id: Some("E2E-1".into()),
            uetr: Some("8a562c67-ca16-48ba-b074-65581be6f011".into()),
            status,
            reasons: reasons
                .iter()
                .map(|(code, message)| StatusReason {
                    code: (*code).into(),
                    message: (*message).into(),
                })
                .collect(),
        }
    }

    fn report(transactions: Vec<TxReport>) -> StatusReport {
        StatusReport {
            report_id: "PR-1".into(),
            created_at_unix_ms: 1_795_514_400_123,
            original_message_id: "MSG-1".into(),
            original_message_type: "pacs.008.001.08".into(),
            transactions,
        }
    }

    #[test]
    fn the_group_status_is_the_common_one_or_part() {
        use TxStatus::*;
        for (statuses, group) in [
            (vec![AcceptedSettlementInProcess], "ACSP"),
            (vec![Rejected, Rejected], "RJCT"),
            (vec![Pending], "PDNG"),
            (vec![AcceptedSettlementInProcess, Rejected], "PART"),
            (vec![AcceptedSettlementInProcess, Pending], "PART"),
            (vec![], "RJCT"),
        ] {
            let r = report(statuses.into_iter().map(|s| tx(s, &[])).collect());
            assert_eq!(r.group_status(), group);
        }
    }

    #[test]
    fn the_pacs002_carries_the_originals_statuses_and_reasons_escaped() {
        let xml = report(vec![
            tx(TxStatus::AcceptedSettlementInProcess, &[]),
            tx(
                TxStatus::Rejected,
                &[("RR04", "creditor <Müller & Söhne> is listed")],
            ),
            tx(TxStatus::Pending, &[("weak-match", "a weak match")]),
        ])
        .to_pacs002();
        for part in [
            "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10\">",
            "<MsgId>PR-1</MsgId>",
            "<CreDtTm>2026-11-24T10:00:00.123Z</CreDtTm>",
            "<OrgnlMsgId>MSG-1</OrgnlMsgId>",
            "<OrgnlMsgNmId>pacs.008.001.08</OrgnlMsgNmId>",
            "<OrgnlNbOfTxs>3</OrgnlNbOfTxs>",
            "<GrpSts>PART</GrpSts>",
            "<OrgnlUETR>8a562c67-ca16-48ba-b074-65581be6f011</OrgnlUETR>",
            "<TxSts>ACSP</TxSts>",
            "<Cd>RR04</Cd>",
            "<AddtlInf>creditor &lt;Müller &amp; Söhne&gt; is listed</AddtlInf>",
            "<Prtry>weak-match</Prtry>",
        ] {
            assert!(xml.contains(part), "{part} in\n{xml}");
        }
    }

    #[test]
    fn long_messages_are_cut_into_max105_lines() {
        let lines = additional_info(&"é".repeat(500));
        assert_eq!(lines.len(), 4);
        assert!(lines.iter().all(|l| l.chars().count() <= 105));
    }
}

#[cfg(test)]
mod pain002_tests {
    use super::*;

    fn line(group: &str, status: TxStatus, reason: Option<&str>) -> TxReport {
        TxReport {
            payment_id: Some(format!("pay_{group}")),
            payment_information_id: Some(group.to_owned()),
            instruction_id: None,
            end_to_end_id: Some(format!("E2E-{group}")),
            uetr: None,
            status,
            reasons: reason
                .map(|code| StatusReason {
                    code: code.to_owned(),
                    message: String::new(),
                })
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn a_pain001_is_answered_with_a_pain002_grouped_by_payment_information() {
        let report = StatusReport {
            report_id: "PR-2".into(),
            created_at_unix_ms: 1_795_514_400_000,
            original_message_id: "CUST-1".into(),
            original_message_type: "pain.001.001.09".into(),
            transactions: vec![
                line("PMT-A", TxStatus::AcceptedSettlementInProcess, None),
                line("PMT-A", TxStatus::Rejected, Some("RR04")),
                line("PMT-B", TxStatus::Pending, None),
            ],
        };
        assert_eq!(report.xml_version(), "pain.002.001.10");
        let xml = report.to_xml();
        for part in [
            "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.002.001.10\">",
            "<CstmrPmtStsRpt>",
            "<OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId>",
            "<GrpSts>PART</GrpSts>",
            "<OrgnlPmtInfId>PMT-A</OrgnlPmtInfId>",
            "<PmtInfSts>PART</PmtInfSts>",
            "<OrgnlPmtInfId>PMT-B</OrgnlPmtInfId>",
            "<PmtInfSts>PDNG</PmtInfSts>",
            "<Cd>RR04</Cd>",
        ] {
            assert!(xml.contains(part), "{part} in\n{xml}");
        }
        assert_eq!(xml.matches("<OrgnlPmtInfAndSts>").count(), 2);
        assert_eq!(xml.matches("<TxInfAndSts>").count(), 3);
        assert!(!xml.contains("FIToFIPmtStsRpt"));
        let pacs = StatusReport {
            original_message_type: "pacs.008.001.08".into(),
            ..report
        };
        assert!(pacs.to_xml().contains("<FIToFIPmtStsRpt>"));
    }
}
