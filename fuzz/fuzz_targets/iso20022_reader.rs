//! Any bytes through the ISO 20022 reader, and whatever it reads through the payment
//! validator and the pacs.002 writer: none of them may panic, hang or run away with
//! memory (libFuzzer's -timeout and -rss_limit_mb watch the last two).
//!
//! cargo fuzz run iso20022_reader fuzz/corpus/iso20022_reader tests/fixtures/iso20022

#![no_main]

use libfuzzer_sys::fuzz_target;
use payrules::iso20022::report::{StatusReason, StatusReport, TxReport, TxStatus};

fuzz_target!(|data: &[u8]| {
    let Ok(message) = payrules::iso20022::parse(data) else {
        return;
    };
    let mut lines = Vec::new();
    for raw in &message.payments {
        let json = serde_json::to_string(raw).expect("a parsed payment serialises");
        let reasons = match payrules::model::Payment::from_json(&json) {
            Ok(_) => Vec::new(),
            Err(invalid) => vec![StatusReason {
                code: invalid.code.to_owned(),
                message: invalid.reason,
            }],
        };
        lines.push(TxReport {
            payment_id: None,
            instruction_id: raw.instruction_id.clone(),
            end_to_end_id: raw.end_to_end_id.clone(),
            uetr: raw.uetr.clone(),
            status: if reasons.is_empty() {
                TxStatus::Pending
            } else {
                TxStatus::Rejected
            },
            reasons,
        });
    }
    let report = StatusReport {
        report_id: "FUZZ".to_owned(),
        created_at_unix_ms: 0,
        original_message_id: message.message_id,
        original_message_type: message.message_type,
        transactions: lines,
    };
    let _ = report.to_pacs002();
});
