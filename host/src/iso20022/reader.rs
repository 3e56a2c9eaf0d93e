//! The streaming reader behind [`parse`].

use std::str::FromStr;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::{NsReader, XmlVersion};
use rust_decimal::Decimal;

use super::limits::{ATTRIBUTES_MAX, DEPTH_MAX, INPUT_BYTES_MAX, TEXT_BYTES_MAX, TRANSACTIONS_MAX};
use super::{IsoError, ParsedMessage, RawAccount, RawAddress, RawAgent, RawParty, RawPayment};
use crate::model::{AMOUNT_DIGITS_MAX, Currency, Date, Money};

const ISO_NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:";

/// The versions read, by message: their fields used here are the same in each.
const PACS_008_VERSIONS: std::ops::RangeInclusive<u8> = 2..=13;
const PAIN_001_VERSIONS: std::ops::RangeInclusive<u8> = 3..=12;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pacs008,
    Pain001,
}

/// Reads one pacs.008 or pain.001 message (XML, UTF-8, optionally with a BOM, inside any
/// wrapper) into its transactions, or says with an ISO 20022 code why it must be refused.
pub fn parse(bytes: &[u8]) -> Result<ParsedMessage, IsoError> {
    if bytes.len() > INPUT_BYTES_MAX {
        return Err(IsoError::new(
            "FF01",
            format!(
                "the message is {} bytes, more than the {INPUT_BYTES_MAX} allowed",
                bytes.len()
            ),
        ));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes)
        .map_err(|e| IsoError::new("FF01", format!("the message is not UTF-8: {e}")))?;
    Reader::new(text).read()
}

/// A transaction being read, with the paths of what it still has to be checked for.
#[derive(Default)]
struct Transaction {
    payment: RawPayment,
    /// `(amount text, currency, path)` of the amount, checked when the transaction ends.
    amount: Option<(String, Option<String>, String)>,
    /// pain.001 `EqvtAmt/Amt`, used when there is no `InstdAmt`.
    equivalent: Option<(String, Option<String>, String)>,
    service_level: Option<String>,
    local_instrument: Option<String>,
    priority: Option<String>,
    path: String,
}

/// What a pain.001 `PmtInf` gives all its transactions.
#[derive(Default)]
struct PaymentInfo {
    debtor: RawParty,
    debtor_agent: RawAgent,
    ultimate_debtor: Option<RawParty>,
    charge_bearer: Option<String>,
    category_purpose: Option<String>,
    service_level: Option<String>,
    local_instrument: Option<String>,
    priority: Option<String>,
    requested_execution_date: Option<String>,
    number_of_transactions: Option<(u64, String)>,
    control_sum: Option<(Decimal, String)>,
    first_transaction: usize,
}

struct Reader<'i> {
    xml: NsReader<&'i [u8]>,
    kind: Option<Kind>,
    message: ParsedMessage,
    /// Local names from the `Document` down; empty outside it.
    path: Vec<String>,
    /// Depth of every open element, wrappers included.
    depth: usize,
    document_depth: usize,
    document_done: bool,
    text: String,
    text_depth: usize,
    currencies: Vec<Option<String>>,
    transaction: Option<Transaction>,
    payment_info: Option<PaymentInfo>,
    group_transactions: Option<(u64, String)>,
    group_control_sum: Option<(Decimal, String)>,
    group_total: Option<(Decimal, String)>,
    group_settlement_date: Option<String>,
    root_seen: bool,
}

impl<'i> Reader<'i> {
    fn new(text: &'i str) -> Self {
        let mut xml = NsReader::from_str(text);
        let config = xml.config_mut();
        config.expand_empty_elements = true;
        config.check_end_names = true;
        config.trim_text(false);
        Reader {
            xml,
            kind: None,
            message: ParsedMessage::default(),
            path: Vec::new(),
            depth: 0,
            document_depth: 0,
            document_done: false,
            text: String::new(),
            text_depth: 0,
            currencies: Vec::new(),
            transaction: None,
            payment_info: None,
            group_transactions: None,
            group_control_sum: None,
            group_total: None,
            group_settlement_date: None,
            root_seen: false,
        }
    }

    fn position_error(&self, error: impl std::fmt::Display) -> IsoError {
        IsoError::new(
            "FF01",
            format!(
                "not well-formed XML at byte {}: {error}",
                self.xml.error_position()
            ),
        )
    }

    fn read(mut self) -> Result<ParsedMessage, IsoError> {
        loop {
            let (resolved, event) = match self.xml.read_resolved_event() {
                Ok((resolved, event)) => {
                    let namespace = match resolved {
                        ResolveResult::Bound(namespace) => Some(namespace.as_ref().to_owned()),
                        _ => None,
                    };
                    (namespace, event.into_owned())
                }
                Err(error) => return Err(self.position_error(error)),
            };
            match event {
                Event::DocType(_) => {
                    return Err(IsoError::new("FF01", "DTDs are refused (<!DOCTYPE ...>)"));
                }
                Event::Start(start) => self.start(&start, resolved)?,
                Event::End(_) => self.end()?,
                Event::Text(text) => self.push_text(&text.xml10_content())?,
                Event::CData(data) => self.push_text(&data.into_inner())?,
                Event::GeneralRef(reference) => {
                    let resolved = match reference.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        Ok(None) => {
                            let name = reference.into_inner();
                            match name.as_ref() {
                                "amp" => "&".to_owned(),
                                "lt" => "<".to_owned(),
                                "gt" => ">".to_owned(),
                                "quot" => "\"".to_owned(),
                                "apos" => "'".to_owned(),
                                other => {
                                    return Err(IsoError::new(
                                        "FF01",
                                        format!(
                                            "the entity &{other}; is not defined (entities are never expanded)"
                                        ),
                                    ));
                                }
                            }
                        }
                        Err(error) => return Err(self.position_error(error)),
                    };
                    self.push_text(&resolved)?;
                }
                Event::Eof => break,
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::Empty(_) => {}
            }
        }
        if self.depth != 0 {
            return Err(IsoError::new(
                "FF01",
                "the message ends before its elements close",
            ));
        }
        if !self.document_done {
            return Err(IsoError::new(
                "FF01",
                "no ISO 20022 pacs.008 or pain.001 Document found",
            ));
        }
        self.finish()
    }

    fn push_text(&mut self, text: &str) -> Result<(), IsoError> {
        if self.text_depth == self.depth && !self.path.is_empty() {
            if self.text.len() + text.len() > TEXT_BYTES_MAX {
                return Err(IsoError::at(
                    "FF01",
                    &self.path_string(),
                    format!("an element's text is longer than {TEXT_BYTES_MAX} bytes"),
                ));
            }
            self.text.push_str(text);
        }
        Ok(())
    }

    fn path_string(&self) -> String {
        format!("/Document/{}", self.path.join("/"))
    }

    fn start(&mut self, start: &BytesStart<'_>, namespace: Option<String>) -> Result<(), IsoError> {
        self.depth += 1;
        if self.depth > DEPTH_MAX {
            return Err(IsoError::new(
                "FF01",
                format!("elements are nested deeper than {DEPTH_MAX}"),
            ));
        }
        let mut currency = None;
        for (index, attribute) in start.attributes().enumerate() {
            if index >= ATTRIBUTES_MAX {
                return Err(IsoError::new(
                    "FF01",
                    format!("an element has more than {ATTRIBUTES_MAX} attributes"),
                ));
            }
            let attribute = attribute.map_err(|e| self.position_error(e))?;
            if attribute.key.local_name().as_ref() == "Ccy" {
                let value = attribute
                    .normalized_value(XmlVersion::Implicit1_0)
                    .map_err(|e| self.position_error(e))?;
                currency = Some(value.into_owned());
            }
        }
        let local = start.local_name().as_ref().to_owned();
        self.text.clear();
        self.text_depth = self.depth;
        if self.document_depth == 0 {
            if local == "Document" && !self.document_done {
                self.open_document(namespace)?;
            }
            return Ok(());
        }
        self.path.push(local);
        self.currencies.push(currency);
        let names: Vec<&str> = self.path.iter().map(String::as_str).collect();
        match names.as_slice() {
            [root] => {
                let expected = match self.kind {
                    Some(Kind::Pacs008) => "FIToFICstmrCdtTrf",
                    _ => "CstmrCdtTrfInitn",
                };
                if *root != expected || self.root_seen {
                    return Err(IsoError::at(
                        "FF01",
                        &self.path_string(),
                        format!("expected {expected} as the Document's only child, found {root}"),
                    ));
                }
                self.root_seen = true;
            }
            [_, "CdtTrfTxInf"] | [_, "PmtInf", "CdtTrfTxInf"] => {
                if self.message.payments.len() >= TRANSACTIONS_MAX {
                    return Err(IsoError::new(
                        "FF01",
                        format!("the message has more than {TRANSACTIONS_MAX} transactions"),
                    ));
                }
                self.transaction = Some(Transaction {
                    path: self.path_string(),
                    ..Transaction::default()
                });
            }
            [_, "PmtInf"] => {
                self.payment_info = Some(PaymentInfo {
                    first_transaction: self.message.payments.len(),
                    ..PaymentInfo::default()
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn open_document(&mut self, namespace: Option<String>) -> Result<(), IsoError> {
        let Some(namespace) = namespace else {
            return Err(IsoError::new(
                "FF01",
                "the Document has no namespace, so no ISO 20022 message type",
            ));
        };
        let Some(message_type) = namespace.strip_prefix(ISO_NAMESPACE) else {
            return Err(IsoError::new(
                "FF01",
                format!("the Document's namespace {namespace:?} is not an ISO 20022 one"),
            ));
        };
        let version = |prefix: &str| {
            message_type
                .strip_prefix(prefix)
                .filter(|v| v.len() == 2)
                .and_then(|v| v.parse::<u8>().ok())
        };
        let kind = if let Some(v) = version("pacs.008.001.") {
            PACS_008_VERSIONS.contains(&v).then_some(Kind::Pacs008)
        } else if let Some(v) = version("pain.001.001.") {
            PAIN_001_VERSIONS.contains(&v).then_some(Kind::Pain001)
        } else {
            return Err(IsoError::new(
                "FF01",
                format!("{message_type} is not a pacs.008 or pain.001 message"),
            ));
        };
        let Some(kind) = kind else {
            return Err(IsoError::new(
                "FF01",
                format!("{message_type} is a version payrules does not read"),
            ));
        };
        self.kind = Some(kind);
        self.message.message_type = message_type.to_owned();
        self.document_depth = self.depth;
        Ok(())
    }

    fn end(&mut self) -> Result<(), IsoError> {
        if self.document_depth != 0 && self.depth == self.document_depth {
            self.document_depth = 0;
            self.document_done = true;
        } else if self.document_depth != 0 {
            let leaf = self.text_depth == self.depth;
            let text = std::mem::take(&mut self.text);
            if leaf {
                self.assign(text)?;
            }
            self.close()?;
            self.path.pop();
            self.currencies.pop();
        }
        self.text_depth = 0;
        self.depth = self.depth.saturating_sub(1);
        Ok(())
    }

    /// The element at the end of `path` is closing: finish a transaction or a `PmtInf`.
    fn close(&mut self) -> Result<(), IsoError> {
        let names: Vec<&str> = self.path.iter().map(String::as_str).collect();
        match names.as_slice() {
            [_, "CdtTrfTxInf"] | [_, "PmtInf", "CdtTrfTxInf"] => {
                let transaction = self.transaction.take().unwrap_or_default();
                let payment = self.finish_transaction(transaction)?;
                self.message.payments.push(payment);
            }
            [_, "PmtInf"] => {
                let info = self.payment_info.take().unwrap_or_default();
                self.finish_payment_info(info)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn finish_transaction(&mut self, mut transaction: Transaction) -> Result<RawPayment, IsoError> {
        if transaction.payment.end_to_end_id.is_none() {
            return Err(IsoError::at(
                "FF08",
                &format!("{}/PmtId/EndToEndId", transaction.path),
                "the transaction has no EndToEndId",
            ));
        }
        let amount = transaction.amount.take().or(transaction.equivalent.take());
        let Some((text, currency, path)) = amount else {
            return Err(IsoError::at(
                "AM12",
                &transaction.path,
                "the transaction has no amount",
            ));
        };
        let (value, currency) = check_amount(&text, currency.as_deref(), &path)?;
        transaction.payment.amount = Some(value.to_string());
        transaction.payment.currency = Some(currency.code().to_owned());
        let info = self.payment_info.as_ref();
        let service_level = transaction
            .service_level
            .as_deref()
            .or(info.and_then(|i| i.service_level.as_deref()));
        let local_instrument = transaction
            .local_instrument
            .as_deref()
            .or(info.and_then(|i| i.local_instrument.as_deref()));
        let priority = transaction
            .priority
            .as_deref()
            .or(info.and_then(|i| i.priority.as_deref()));
        transaction.payment.urgency = if local_instrument == Some("INST") {
            Some("instant")
        } else if matches!(service_level, Some("URGP" | "SDVA")) || priority == Some("HIGH") {
            Some("urgent")
        } else {
            None
        };
        if transaction.payment.requested_execution_date.is_none() {
            transaction.payment.requested_execution_date = self.group_settlement_date.clone();
        }
        Ok(transaction.payment)
    }

    fn finish_payment_info(&mut self, info: PaymentInfo) -> Result<(), IsoError> {
        let transactions = &mut self.message.payments[info.first_transaction..];
        if let Some((count, path)) = &info.number_of_transactions
            && *count != transactions.len() as u64
        {
            return Err(IsoError::at(
                "AM20",
                path,
                format!(
                    "PmtInf/NbOfTxs is {count} but the payment information holds {} transactions",
                    transactions.len()
                ),
            ));
        }
        if let Some((sum, path)) = &info.control_sum {
            let total = sum_amounts(transactions);
            if *sum != total {
                return Err(IsoError::at(
                    "AM10",
                    path,
                    format!("PmtInf/CtrlSum is {sum} but its transactions add up to {total}"),
                ));
            }
        }
        for payment in transactions {
            payment.debtor = info.debtor.clone();
            payment.debtor_agent = info.debtor_agent.clone();
            if payment.ultimate_debtor.is_none() {
                payment.ultimate_debtor = info.ultimate_debtor.clone();
            }
            if payment.charge_bearer.is_none() {
                payment.charge_bearer = info.charge_bearer.clone();
            }
            if payment.category_purpose.is_none() {
                payment.category_purpose = info.category_purpose.clone();
            }
            if payment.requested_execution_date.is_none() {
                payment.requested_execution_date = info.requested_execution_date.clone();
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<ParsedMessage, IsoError> {
        let root = match self.kind {
            Some(Kind::Pacs008) => "FIToFICstmrCdtTrf",
            _ => "CstmrCdtTrfInitn",
        };
        if self.message.message_id.is_empty() {
            return Err(IsoError::at(
                "FF01",
                &format!("/Document/{root}/GrpHdr/MsgId"),
                "GrpHdr/MsgId is missing",
            ));
        }
        let count = self.message.payments.len();
        if let Some((declared, path)) = &self.group_transactions
            && *declared != count as u64
        {
            return Err(IsoError::at(
                "AM18",
                path,
                format!("GrpHdr/NbOfTxs is {declared} but the message holds {count} transactions"),
            ));
        }
        let total = sum_amounts(&self.message.payments);
        for (declared, what) in [
            (&self.group_control_sum, "CtrlSum"),
            (&self.group_total, "TtlIntrBkSttlmAmt"),
        ] {
            if let Some((sum, path)) = declared
                && *sum != total
            {
                return Err(IsoError::at(
                    "AM10",
                    path,
                    format!("GrpHdr/{what} is {sum} but the transactions add up to {total}"),
                ));
            }
        }
        if count == 0 {
            return Err(IsoError::new(
                "FF01",
                "the message holds no credit transfer transaction",
            ));
        }
        self.message.payments.shrink_to_fit();
        Ok(self.message)
    }

    /// Stores the text of the leaf element at the end of `path`.
    fn assign(&mut self, text: String) -> Result<(), IsoError> {
        let path = self.path_string();
        let currency = self.currencies.last().cloned().flatten();
        let names: Vec<&str> = self.path.iter().map(String::as_str).collect();
        match names.as_slice() {
            [_, "GrpHdr", "MsgId"] => self.message.message_id = text,
            [_, "GrpHdr", "NbOfTxs"] => {
                self.group_transactions = Some((count(&text, &path)?, path))
            }
            [_, "GrpHdr", "CtrlSum"] => {
                self.group_control_sum = Some((decimal(&text, &path)?, path))
            }
            [_, "GrpHdr", "TtlIntrBkSttlmAmt"] => {
                let (value, _) = check_amount(&text, currency.as_deref(), &path)?;
                self.group_total = Some((value, path));
            }
            [_, "GrpHdr", "IntrBkSttlmDt"] => {
                self.group_settlement_date = Some(date(&text, &path)?)
            }
            [_, "CdtTrfTxInf", rest @ ..] | [_, "PmtInf", "CdtTrfTxInf", rest @ ..] => {
                let rest: Vec<&str> = rest.to_vec();
                if let Some(transaction) = self.transaction.as_mut() {
                    transaction_field(transaction, &rest, text, currency, path)?;
                }
            }
            [_, "PmtInf", rest @ ..] => {
                let rest: Vec<&str> = rest.to_vec();
                if let Some(info) = self.payment_info.as_mut() {
                    payment_info_field(info, &rest, text, path)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn transaction_field(
    transaction: &mut Transaction,
    rest: &[&str],
    text: String,
    currency: Option<String>,
    path: String,
) -> Result<(), IsoError> {
    let payment = &mut transaction.payment;
    match rest {
        ["PmtId", "InstrId"] => payment.instruction_id = Some(text),
        ["PmtId", "EndToEndId"] => payment.end_to_end_id = Some(text),
        ["PmtId", "UETR"] => payment.uetr = Some(text),
        ["PmtTpInf", "SvcLvl", "Cd"] => transaction.service_level = Some(text),
        ["PmtTpInf", "LclInstrm", "Cd"] => transaction.local_instrument = Some(text),
        ["PmtTpInf", "InstrPrty"] => transaction.priority = Some(text),
        ["PmtTpInf", "CtgyPurp", "Cd"] => payment.category_purpose = Some(text),
        ["IntrBkSttlmAmt"] | ["Amt", "InstdAmt"] => {
            transaction.amount = Some((text, currency, path))
        }
        ["Amt", "EqvtAmt", "Amt"] => transaction.equivalent = Some((text, currency, path)),
        ["IntrBkSttlmDt"] => payment.requested_execution_date = Some(date(&text, &path)?),
        ["ChrgBr"] => payment.charge_bearer = Some(text),
        ["Purp", "Cd"] => payment.purpose = Some(text),
        ["Purp", "Prtry"] => {
            payment.purpose.get_or_insert(text);
        }
        ["RmtInf", "Ustrd"] => {
            payment.remittance.get_or_insert(text);
        }
        ["Dbtr", rest @ ..] => party_field(&mut payment.debtor, rest, text),
        ["Cdtr", rest @ ..] => party_field(&mut payment.creditor, rest, text),
        ["UltmtDbtr", rest @ ..] => {
            party_field(payment.ultimate_debtor.get_or_insert_default(), rest, text)
        }
        ["UltmtCdtr", rest @ ..] => party_field(
            payment.ultimate_creditor.get_or_insert_default(),
            rest,
            text,
        ),
        ["DbtrAcct", rest @ ..] => account_field(&mut payment.debtor, rest, text, "AC02", &path)?,
        ["CdtrAcct", rest @ ..] => account_field(&mut payment.creditor, rest, text, "AC03", &path)?,
        ["DbtrAgt", rest @ ..] => {
            agent_field(&mut payment.debtor_agent, rest, text, "RC03", &path)?
        }
        ["CdtrAgt", rest @ ..] => {
            agent_field(&mut payment.creditor_agent, rest, text, "RC04", &path)?
        }
        [
            agent @ ("IntrmyAgt1" | "IntrmyAgt2" | "IntrmyAgt3"),
            rest @ ..,
        ] => {
            let index = usize::from(agent.as_bytes()[9] - b'1');
            if payment.intermediary_agents.len() <= index {
                payment
                    .intermediary_agents
                    .resize(index + 1, RawAgent::default());
            }
            agent_field(
                &mut payment.intermediary_agents[index],
                rest,
                text,
                "RC11",
                &path,
            )?;
        }
        _ => {}
    }
    Ok(())
}

fn payment_info_field(
    info: &mut PaymentInfo,
    rest: &[&str],
    text: String,
    path: String,
) -> Result<(), IsoError> {
    match rest {
        ["NbOfTxs"] => info.number_of_transactions = Some((count(&text, &path)?, path)),
        ["CtrlSum"] => info.control_sum = Some((decimal(&text, &path)?, path)),
        ["ReqdExctnDt"] | ["ReqdExctnDt", "Dt"] => {
            info.requested_execution_date = Some(date(&text, &path)?)
        }
        ["ReqdExctnDt", "DtTm"] => {
            let day = text.get(..10).unwrap_or(&text);
            info.requested_execution_date = Some(date(day, &path)?);
        }
        ["PmtTpInf", "SvcLvl", "Cd"] => info.service_level = Some(text),
        ["PmtTpInf", "LclInstrm", "Cd"] => info.local_instrument = Some(text),
        ["PmtTpInf", "InstrPrty"] => info.priority = Some(text),
        ["PmtTpInf", "CtgyPurp", "Cd"] => info.category_purpose = Some(text),
        ["ChrgBr"] => info.charge_bearer = Some(text),
        ["Dbtr", rest @ ..] => party_field(&mut info.debtor, rest, text),
        ["UltmtDbtr", rest @ ..] => {
            party_field(info.ultimate_debtor.get_or_insert_default(), rest, text)
        }
        ["DbtrAcct", rest @ ..] => account_field(&mut info.debtor, rest, text, "AC02", &path)?,
        ["DbtrAgt", rest @ ..] => agent_field(&mut info.debtor_agent, rest, text, "RC03", &path)?,
        _ => {}
    }
    Ok(())
}

fn party_field(party: &mut RawParty, rest: &[&str], text: String) {
    let address = || RawAddress::default();
    match rest {
        ["Nm"] => party.name = Some(text),
        ["PstlAdr", "Ctry"] => party.country = Some(text),
        ["CtryOfRes"] => {
            party.country.get_or_insert(text);
        }
        ["PstlAdr", "StrtNm"] => party.address.get_or_insert_with(address).street_name = Some(text),
        ["PstlAdr", "BldgNb"] => {
            party.address.get_or_insert_with(address).building_number = Some(text)
        }
        ["PstlAdr", "PstCd"] => party.address.get_or_insert_with(address).post_code = Some(text),
        ["PstlAdr", "TwnNm"] => party.address.get_or_insert_with(address).town_name = Some(text),
        ["PstlAdr", "CtrySubDvsn"] => {
            party
                .address
                .get_or_insert_with(address)
                .country_sub_division = Some(text);
        }
        ["PstlAdr", "AdrLine"] => party
            .address
            .get_or_insert_with(address)
            .address_lines
            .push(text),
        _ => {}
    }
}

fn account_field(
    party: &mut RawParty,
    rest: &[&str],
    text: String,
    code: &'static str,
    path: &str,
) -> Result<(), IsoError> {
    match rest {
        ["Id", "IBAN"] => {
            if !is_iban_form(&text) {
                return Err(IsoError::at(
                    code,
                    path,
                    format!("{text:?} does not have the form of an IBAN"),
                ));
            }
            party.account.get_or_insert_with(RawAccount::default).iban = Some(text);
        }
        ["Id", "Othr", "Id"] => {
            let account = party.account.get_or_insert_with(RawAccount::default);
            if account.iban.is_none() {
                account.id = Some(text);
            }
        }
        _ => {}
    }
    Ok(())
}

fn agent_field(
    agent: &mut RawAgent,
    rest: &[&str],
    text: String,
    code: &'static str,
    path: &str,
) -> Result<(), IsoError> {
    match rest {
        ["FinInstnId", "BICFI" | "BIC"] => {
            if !is_bic_form(&text) {
                return Err(IsoError::at(
                    code,
                    path,
                    format!("{text:?} does not have the form of a BIC"),
                ));
            }
            agent.bic = Some(text);
        }
        ["FinInstnId", "ClrSysMmbId", "MmbId"] => agent.member_id = Some(text),
        ["FinInstnId", "Nm"] => agent.name = Some(text),
        ["FinInstnId", "PstlAdr", "Ctry"] => agent.country = Some(text),
        _ => {}
    }
    Ok(())
}

/// ISO 20022 `IBAN2007Identifier`: two letters, two digits, 1 to 30 letters or digits.
fn is_iban_form(text: &str) -> bool {
    let bytes = text.as_bytes();
    (5..=34).contains(&bytes.len())
        && bytes[..2].iter().all(u8::is_ascii_uppercase)
        && bytes[2..4].iter().all(u8::is_ascii_digit)
        && bytes[4..].iter().all(u8::is_ascii_alphanumeric)
}

/// ISO 20022 `BICFIDec2014Identifier`.
fn is_bic_form(text: &str) -> bool {
    let bytes = text.as_bytes();
    let upper_alnum = |b: &u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    matches!(bytes.len(), 8 | 11)
        && bytes[..4].iter().all(upper_alnum)
        && bytes[4..6].iter().all(u8::is_ascii_uppercase)
        && bytes[6..].iter().all(upper_alnum)
}

fn count(text: &str, path: &str) -> Result<u64, IsoError> {
    if text.is_empty() || text.len() > 15 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IsoError::at(
            "FF01",
            path,
            format!("{text:?} is not a number of transactions"),
        ));
    }
    text.parse().map_err(|_| {
        IsoError::at(
            "FF01",
            path,
            format!("{text:?} is not a number of transactions"),
        )
    })
}

/// A plain non-negative decimal of at most 18 digits (ISO 20022 `DecimalNumber`).
fn decimal(text: &str, path: &str) -> Result<Decimal, IsoError> {
    plain_decimal(text)
        .ok_or_else(|| IsoError::at("FF01", path, format!("{text:?} is not a decimal number")))
}

fn plain_decimal(text: &str) -> Option<Decimal> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let plain = !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
        && !text.ends_with('.');
    let digits = whole.trim_start_matches('0').len() + fraction.len();
    if !plain || digits > AMOUNT_DIGITS_MAX as usize {
        return None;
    }
    Decimal::from_str(text).ok()
}

/// An amount and its currency attribute: AM11 for a missing or unknown currency, AM12 for
/// an amount that is not a positive decimal of at most 18 digits fitting the currency's
/// minor units, AM01 for zero.
fn check_amount(
    text: &str,
    currency: Option<&str>,
    path: &str,
) -> Result<(Decimal, Currency), IsoError> {
    let currency = match currency {
        Some(code) => {
            Currency::parse(code).map_err(|e| IsoError::at("AM11", path, format!("Ccy: {e}")))?
        }
        None => return Err(IsoError::at("AM11", path, "the amount has no Ccy")),
    };
    let value = plain_decimal(text).ok_or_else(|| {
        IsoError::at(
            "AM12",
            path,
            format!(
                "{text:?} is not a positive decimal amount of at most {AMOUNT_DIGITS_MAX} digits"
            ),
        )
    })?;
    Money::new(value, currency).map_err(|e| IsoError::at(e.reason_code(), path, e.to_string()))?;
    Ok((value, currency))
}

fn date(text: &str, path: &str) -> Result<String, IsoError> {
    text.parse::<Date>()
        .map(|_| text.to_owned())
        .map_err(|e| IsoError::at("DT01", path, e))
}

fn sum_amounts(payments: &[RawPayment]) -> Decimal {
    payments
        .iter()
        .filter_map(|p| p.amount.as_deref().and_then(|a| Decimal::from_str(a).ok()))
        .fold(Decimal::ZERO, |sum, amount| sum.saturating_add(amount))
}
