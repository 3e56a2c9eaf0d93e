//! The streaming reader behind [`parse`].

use std::str::FromStr;

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader as XmlReader, XmlVersion};
use rust_decimal::Decimal;

use super::limits::{ATTRIBUTES_MAX, DEPTH_MAX, INPUT_BYTES_MAX, TEXT_BYTES_MAX, TRANSACTIONS_MAX};
use super::{IsoError, ParsedMessage, RawAccount, RawAddress, RawAgent, RawParty, RawPayment};
use crate::model::{AMOUNT_DIGITS_MAX, Bic, Currency, Date, Money};

const ISO_NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:";

/// About the fewest bytes a transaction takes in a message (`<CdtTrfTxInf>` and its
/// closing tag, an `EndToEndId`, an amount with its currency, a creditor): how many
/// transactions a message of a given length is taken to hold when room is made for them
/// ahead. Only a size hint: a message with smaller transactions still reads, its vector
/// growing as it goes.
const TRANSACTION_BYTES_MIN: usize = 150;

/// The versions read, by message: their fields used here are the same in each.
const PACS_008_VERSIONS: std::ops::RangeInclusive<u8> = 2..=13;
const PAIN_001_VERSIONS: std::ops::RangeInclusive<u8> = 3..=12;
/// National variants in the ISO namespace with pain.001.001.03's structure: the German
/// banking industry's (DK) SEPA credit transfer.
const NATIONAL_PAIN_001: &[&str] = &["pain.001.003.03"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pacs008,
    Pain001,
}

impl Kind {
    /// The message element, the `Document`'s only child.
    fn root(self) -> &'static str {
        match self {
            Kind::Pacs008 => "FIToFICstmrCdtTrf",
            Kind::Pain001 => "CstmrCdtTrfInitn",
        }
    }
}

/// Reads one pacs.008 or pain.001 message (XML, UTF-8, optionally with a BOM, inside any
/// The longest MsgId: ISO 20022 `Max35Text`.
pub const MSG_ID_CHARS_MAX: usize = 35;

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
    amount: Option<(String, Option<String>, ShortPath)>,
    /// pain.001 `EqvtAmt/Amt`, used when there is no `InstdAmt`.
    equivalent: Option<(String, Option<String>, ShortPath)>,
    service_level: Option<String>,
    local_instrument: Option<String>,
    priority: Option<String>,
    /// Where the transaction is; joined into text only for an error.
    path: ShortPath,
}

/// The path of a transaction or of its amount (at most six names deep), kept without an
/// allocation for the error message it may never need.
#[derive(Clone, Copy, Default)]
struct ShortPath {
    tags: [Tag; 8],
    len: usize,
}

impl ShortPath {
    /// The first eight names of `path` (the paths kept have fewer).
    fn of(path: &[Tag]) -> ShortPath {
        let mut short = ShortPath::default();
        short.len = path.len().min(short.tags.len());
        short.tags[..short.len].copy_from_slice(&path[..short.len]);
        short
    }

    fn tags(&self) -> &[Tag] {
        &self.tags[..self.len]
    }
}

/// What a pain.001 `PmtInf` gives all its transactions.
#[derive(Default)]
struct PaymentInfo {
    /// `PmtInfId`: what a pain.002 names the group by.
    id: Option<String>,
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
    xml: XmlReader<&'i [u8]>,
    /// Namespace declarations of the open elements outside the `Document`:
    /// `(depth, prefix, namespace)`, the prefix empty for a default namespace. Inside the
    /// `Document` no namespace work is done: the message type is known.
    namespaces: Vec<(usize, String, String)>,
    kind: Option<Kind>,
    message: ParsedMessage,
    /// Local names from the `Document` down, interned; empty outside it.
    path: Vec<Tag>,
    /// How many of `path` are [`Tag::Other`] (a name the reader does not know).
    unknown_open: usize,
    /// The message's length.
    input_bytes: usize,
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
        let mut xml = XmlReader::from_str(text);
        let config = xml.config_mut();
        config.expand_empty_elements = true;
        config.check_end_names = true;
        config.trim_text(false);
        Reader {
            xml,
            namespaces: Vec::new(),
            kind: None,
            message: ParsedMessage::default(),
            path: Vec::new(),
            unknown_open: 0,
            input_bytes: text.len(),
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
            let event = match self.xml.read_event() {
                Ok(event) => event,
                Err(error) => return Err(self.position_error(error)),
            };
            match event {
                Event::DocType(_) => {
                    return Err(IsoError::new("FF01", "DTDs are refused (<!DOCTYPE ...>)"));
                }
                Event::Start(start) => self.start(&start)?,
                Event::End(_) => self.end()?,
                // Text is decoded only where it can be a field's (not the indentation
                // between elements, nor text under an element the reader does not read).
                Event::Text(text) if self.wants_text() => {
                    self.push_text(&text.xml10_content())?;
                }
                Event::CData(data) if self.wants_text() => self.push_text(&data.into_inner())?,
                Event::Text(_) | Event::CData(_) => {}
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

    /// Whether text here can be a field's: inside the `Document`, directly in the element
    /// opened last, whose path is made of names the reader knows.
    fn wants_text(&self) -> bool {
        self.text_depth == self.depth && !self.path.is_empty() && self.unknown_open == 0
    }

    fn push_text(&mut self, text: &str) -> Result<(), IsoError> {
        if self.wants_text() {
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
        join_path(&self.path)
    }

    fn start(&mut self, start: &BytesStart<'_>) -> Result<(), IsoError> {
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
            let key = attribute.key.as_ref();
            if attribute.key.local_name().as_ref() == "Ccy" {
                let value = attribute
                    .normalized_value(XmlVersion::Implicit1_0)
                    .map_err(|e| self.position_error(e))?;
                currency = Some(value.into_owned());
            } else if self.document_depth == 0 && (key == "xmlns" || key.starts_with("xmlns:")) {
                let prefix = key
                    .strip_prefix("xmlns")
                    .unwrap_or("")
                    .trim_start_matches(':');
                let value = attribute
                    .normalized_value(XmlVersion::Implicit1_0)
                    .map_err(|e| self.position_error(e))?;
                self.namespaces
                    .push((self.depth, prefix.to_owned(), value.into_owned()));
            }
        }
        let local_name = start.local_name();
        let name = local_name.as_ref();
        self.text.clear();
        self.text_depth = self.depth;
        if self.document_depth == 0 {
            if name == "Document" && !self.document_done {
                let qualified = start.name();
                let prefix = qualified.prefix().map_or("", |p| p.into_inner());
                let namespace = self
                    .namespaces
                    .iter()
                    .rev()
                    .find(|(_, declared, _)| declared == prefix)
                    .map(|(_, _, namespace)| namespace.clone())
                    .filter(|namespace| !namespace.is_empty());
                self.open_document(namespace)?;
            }
            return Ok(());
        }
        let tag = intern(name);
        self.unknown_open += usize::from(tag == Tag::Other);
        self.path.push(tag);
        self.currencies.push(currency);
        match self.path.as_slice() {
            [_] => {
                let root = name;
                let expected = self.kind.map_or("", Kind::root);
                if root != expected || self.root_seen {
                    return Err(IsoError::at(
                        "FF01",
                        &self.path_string(),
                        format!("expected {expected} as the Document's only child, found {root}"),
                    ));
                }
                self.root_seen = true;
            }
            [_, Tag::CdtTrfTxInf] | [_, Tag::PmtInf, Tag::CdtTrfTxInf] => {
                if self.message.payments.len() >= TRANSACTIONS_MAX {
                    return Err(IsoError::new(
                        "FF01",
                        format!("the message has more than {TRANSACTIONS_MAX} transactions"),
                    ));
                }
                self.transaction = Some(Transaction {
                    path: ShortPath::of(&self.path),
                    ..Transaction::default()
                });
            }
            [_, Tag::PmtInf] => {
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
        } else if NATIONAL_PAIN_001.contains(&message_type) {
            Some(Kind::Pain001)
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
        while self
            .namespaces
            .last()
            .is_some_and(|(depth, _, _)| *depth == self.depth)
        {
            self.namespaces.pop();
        }
        if self.document_depth != 0 && self.depth == self.document_depth {
            self.document_depth = 0;
            self.document_done = true;
        } else if self.document_depth != 0 {
            // Only a leaf whose whole path is made of names the reader knows can be a
            // field; any other text is dropped without a copy.
            let field = self.text_depth == self.depth && self.unknown_open == 0;
            if field {
                let text = std::mem::take(&mut self.text);
                self.assign(text)?;
            }
            self.text.clear();
            self.close()?;
            if self.path.pop() == Some(Tag::Other) {
                self.unknown_open -= 1;
            }
            self.currencies.pop();
        }
        self.text_depth = 0;
        self.depth = self.depth.saturating_sub(1);
        Ok(())
    }

    /// The element at the end of `path` is closing: finish a transaction or a `PmtInf`.
    fn close(&mut self) -> Result<(), IsoError> {
        match self.path.as_slice() {
            [_, Tag::CdtTrfTxInf] | [_, Tag::PmtInf, Tag::CdtTrfTxInf] => {
                let transaction = self.transaction.take().unwrap_or_default();
                let payment = self.finish_transaction(transaction)?;
                self.message.payments.push(payment);
            }
            [_, Tag::PmtInf] => {
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
                &format!("{}/PmtId/EndToEndId", join_path(transaction.path.tags())),
                "the transaction has no EndToEndId",
            ));
        }
        let amount = transaction.amount.take().or(transaction.equivalent.take());
        let Some((text, currency, path)) = amount else {
            return Err(IsoError::at(
                "AM12",
                &join_path(transaction.path.tags()),
                "the transaction has no amount",
            ));
        };
        let (value, currency) = check_amount(&text, currency.as_deref(), path.tags())?;
        // The amount as written when that is its canonical form (no leading zero), which
        // it nearly always is; else as the decimal prints it.
        let canonical = !text.starts_with('0') || text.starts_with("0.") || text == "0";
        transaction.payment.amount = Some(if canonical { text } else { value.to_string() });
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
        let Some(id) = info.id.filter(|id| !id.trim().is_empty()) else {
            return Err(IsoError::new(
                "FF01",
                "a PmtInf has no PmtInfId (every pain.001 version requires one)",
            ));
        };
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
            payment.payment_information_id = Some(id.clone());
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
        let root = self.kind.map_or("", Kind::root);
        let msg_id_path = format!("/Document/{root}/GrpHdr/MsgId");
        if self.message.message_id.is_empty() {
            return Err(IsoError::at(
                "FF01",
                &msg_id_path,
                "GrpHdr/MsgId is missing",
            ));
        }
        // Max35Text: it is the idempotency key, stored and logged, so its bounds are kept.
        let msg_id_chars = self.message.message_id.chars().count();
        if msg_id_chars > MSG_ID_CHARS_MAX {
            return Err(IsoError::at(
                "FF01",
                &msg_id_path,
                format!(
                    "GrpHdr/MsgId is {msg_id_chars} characters; ISO 20022 allows {MSG_ID_CHARS_MAX} (Max35Text)"
                ),
            ));
        }
        if self.message.message_id.chars().any(char::is_control) {
            return Err(IsoError::at(
                "FF01",
                &msg_id_path,
                "GrpHdr/MsgId holds a control character (a line break, an escape)",
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
        // Moved out and back so the match can borrow it while fields change.
        let path = std::mem::take(&mut self.path);
        let result = self.assign_at(&path, text);
        self.path = path;
        result
    }

    fn assign_at(&mut self, path: &[Tag], text: String) -> Result<(), IsoError> {
        match path {
            [_, Tag::GrpHdr, Tag::MsgId] => self.message.message_id = text,
            [_, Tag::GrpHdr, Tag::NbOfTxs] => {
                let transactions = count(&text, path)?;
                // Room for the transactions the header announces, made once (growing a
                // vector of a thousand payments by doubling was a fifth of the reading):
                // never more than about what the message can hold, whatever the header says.
                let room = usize::try_from(transactions)
                    .unwrap_or(usize::MAX)
                    .min(TRANSACTIONS_MAX)
                    .min(self.input_bytes / TRANSACTION_BYTES_MIN);
                self.message.payments.reserve(room);
                self.group_transactions = Some((transactions, join_path(path)));
            }
            [_, Tag::GrpHdr, Tag::CtrlSum] => {
                self.group_control_sum = Some((decimal(&text, path)?, join_path(path)));
            }
            [_, Tag::GrpHdr, Tag::TtlIntrBkSttlmAmt] => {
                let currency = self.currencies.last_mut().and_then(Option::take);
                let (value, _) = check_amount(&text, currency.as_deref(), path)?;
                self.group_total = Some((value, join_path(path)));
            }
            [_, Tag::GrpHdr, Tag::IntrBkSttlmDt] => {
                self.group_settlement_date = Some(date(&text, path)?);
            }
            [_, Tag::CdtTrfTxInf, rest @ ..] | [_, Tag::PmtInf, Tag::CdtTrfTxInf, rest @ ..] => {
                let currency = self.currencies.last_mut().and_then(Option::take);
                if let Some(transaction) = self.transaction.as_mut() {
                    transaction_field(transaction, rest, text, currency, path)?;
                }
            }
            [_, Tag::PmtInf, rest @ ..] => {
                if let Some(info) = self.payment_info.as_mut() {
                    payment_info_field(info, rest, text, path)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The path of an element for error messages: `/Document/...`.
fn join_path(path: &[Tag]) -> String {
    let names: Vec<&str> = path.iter().map(|tag| tag.name()).collect();
    format!("/Document/{}", names.join("/"))
}

/// Declares [`Tag`], the element names the reader matches on, with their text and the
/// look-up from text: one list, so the three cannot disagree.
macro_rules! tags {
    ($($name:ident),+ $(,)?) => {
        /// An element's local name, interned: the reader's path is a stack of these and
        /// its patterns compare integers, not strings. Any name not listed is `Other`.
        // The variants are the ISO 20022 element names, spelled as the schema spells them.
        #[allow(clippy::upper_case_acronyms)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        enum Tag {
            $($name,)+
            #[default]
            Other,
        }

        /// The listed names with their tags.
        const NAMES: &[(&str, Tag)] = &[$((stringify!($name), Tag::$name),)+];

        /// The tag of an element's local name.
        fn intern(name: &str) -> Tag {
            match name {
                $(stringify!($name) => Tag::$name,)+
                _ => Tag::Other,
            }
        }
    };
}

tags! {
    AdrLine, Amt, BIC, BICFI, BldgNb, Cd, CdtTrfTxInf, Cdtr, CdtrAcct, CdtrAgt, ChrgBr, ClrSysMmbId, CstmrCdtTrfInitn, CtgyPurp, CtrlSum, Ctry, CtryOfRes, CtrySubDvsn, Dbtr, DbtrAcct, DbtrAgt, Dt, DtTm, EndToEndId, EqvtAmt, FIToFICstmrCdtTrf, FinInstnId, GrpHdr, IBAN, Id, InstdAmt, InstrId, InstrPrty, IntrBkSttlmAmt, IntrBkSttlmDt, IntrmyAgt1, IntrmyAgt2, IntrmyAgt3, LclInstrm, MmbId, MsgId, NbOfTxs, Nm, Othr, PmtId, PmtInf, PmtInfId, PmtTpInf, Prtry, PstCd, PstlAdr, Purp, ReqdExctnDt, RmtInf, StrtNm, SvcLvl, TtlIntrBkSttlmAmt, TwnNm, UETR, UltmtCdtr, UltmtDbtr, Ustrd,
}

impl Tag {
    /// The name as in the message (`*` for names the reader does not read).
    fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, tag)| *tag == self)
            .map_or("*", |(name, _)| name)
    }
}

fn transaction_field(
    transaction: &mut Transaction,
    rest: &[Tag],
    text: String,
    currency: Option<String>,
    path: &[Tag],
) -> Result<(), IsoError> {
    let payment = &mut transaction.payment;
    match rest {
        [Tag::PmtId, Tag::InstrId] => payment.instruction_id = Some(text),
        [Tag::PmtId, Tag::EndToEndId] => payment.end_to_end_id = Some(text),
        [Tag::PmtId, Tag::UETR] => payment.uetr = Some(text),
        [Tag::PmtTpInf, Tag::SvcLvl, Tag::Cd] => transaction.service_level = Some(text),
        [Tag::PmtTpInf, Tag::LclInstrm, Tag::Cd] => transaction.local_instrument = Some(text),
        [Tag::PmtTpInf, Tag::InstrPrty] => transaction.priority = Some(text),
        [Tag::PmtTpInf, Tag::CtgyPurp, Tag::Cd] => payment.category_purpose = Some(text),
        [Tag::IntrBkSttlmAmt] | [Tag::Amt, Tag::InstdAmt] => {
            transaction.amount = Some((text, currency, ShortPath::of(path)));
        }
        [Tag::Amt, Tag::EqvtAmt, Tag::Amt] => {
            transaction.equivalent = Some((text, currency, ShortPath::of(path)));
        }
        [Tag::IntrBkSttlmDt] => payment.requested_execution_date = Some(date(&text, path)?),
        [Tag::ChrgBr] => payment.charge_bearer = Some(text),
        [Tag::Purp, Tag::Cd] => payment.purpose = Some(text),
        [Tag::Purp, Tag::Prtry] => {
            payment.purpose.get_or_insert(text);
        }
        [Tag::RmtInf, Tag::Ustrd] => {
            payment.remittance.get_or_insert(text);
        }
        [Tag::Dbtr, rest @ ..] => party_field(&mut payment.debtor, rest, text),
        [Tag::Cdtr, rest @ ..] => party_field(&mut payment.creditor, rest, text),
        [Tag::UltmtDbtr, rest @ ..] => {
            party_field(payment.ultimate_debtor.get_or_insert_default(), rest, text)
        }
        [Tag::UltmtCdtr, rest @ ..] => party_field(
            payment.ultimate_creditor.get_or_insert_default(),
            rest,
            text,
        ),
        [Tag::DbtrAcct, rest @ ..] => account_field(&mut payment.debtor, rest, text, "AC02", path)?,
        [Tag::CdtrAcct, rest @ ..] => {
            account_field(&mut payment.creditor, rest, text, "AC03", path)?
        }
        [Tag::DbtrAgt, rest @ ..] => {
            agent_field(&mut payment.debtor_agent, rest, text, "RC03", path)?
        }
        [Tag::CdtrAgt, rest @ ..] => {
            agent_field(&mut payment.creditor_agent, rest, text, "RC04", path)?
        }
        [
            agent @ (Tag::IntrmyAgt1 | Tag::IntrmyAgt2 | Tag::IntrmyAgt3),
            rest @ ..,
        ] => {
            let index = match agent {
                Tag::IntrmyAgt1 => 0,
                Tag::IntrmyAgt2 => 1,
                _ => 2,
            };
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
                path,
            )?;
        }
        _ => {}
    }
    Ok(())
}

fn payment_info_field(
    info: &mut PaymentInfo,
    rest: &[Tag],
    text: String,
    path: &[Tag],
) -> Result<(), IsoError> {
    match rest {
        [Tag::PmtInfId] => info.id = Some(text),
        [Tag::NbOfTxs] => {
            info.number_of_transactions = Some((count(&text, path)?, join_path(path)))
        }
        [Tag::CtrlSum] => info.control_sum = Some((decimal(&text, path)?, join_path(path))),
        [Tag::ReqdExctnDt] | [Tag::ReqdExctnDt, Tag::Dt] => {
            info.requested_execution_date = Some(date(&text, path)?)
        }
        [Tag::ReqdExctnDt, Tag::DtTm] => {
            let day = text.get(..10).unwrap_or(&text);
            info.requested_execution_date = Some(date(day, path)?);
        }
        [Tag::PmtTpInf, Tag::SvcLvl, Tag::Cd] => info.service_level = Some(text),
        [Tag::PmtTpInf, Tag::LclInstrm, Tag::Cd] => info.local_instrument = Some(text),
        [Tag::PmtTpInf, Tag::InstrPrty] => info.priority = Some(text),
        [Tag::PmtTpInf, Tag::CtgyPurp, Tag::Cd] => info.category_purpose = Some(text),
        [Tag::ChrgBr] => info.charge_bearer = Some(text),
        [Tag::Dbtr, rest @ ..] => party_field(&mut info.debtor, rest, text),
        [Tag::UltmtDbtr, rest @ ..] => {
            party_field(info.ultimate_debtor.get_or_insert_default(), rest, text)
        }
        [Tag::DbtrAcct, rest @ ..] => account_field(&mut info.debtor, rest, text, "AC02", path)?,
        [Tag::DbtrAgt, rest @ ..] => agent_field(&mut info.debtor_agent, rest, text, "RC03", path)?,
        _ => {}
    }
    Ok(())
}

fn party_field(party: &mut RawParty, rest: &[Tag], text: String) {
    let address = || RawAddress::default();
    match rest {
        [Tag::Nm] => party.name = Some(text),
        [Tag::PstlAdr, Tag::Ctry] => party.country = Some(text),
        [Tag::CtryOfRes] => {
            party.country.get_or_insert(text);
        }
        [Tag::PstlAdr, Tag::StrtNm] => {
            party.address.get_or_insert_with(address).street_name = Some(text)
        }
        [Tag::PstlAdr, Tag::BldgNb] => {
            party.address.get_or_insert_with(address).building_number = Some(text)
        }
        [Tag::PstlAdr, Tag::PstCd] => {
            party.address.get_or_insert_with(address).post_code = Some(text)
        }
        [Tag::PstlAdr, Tag::TwnNm] => {
            party.address.get_or_insert_with(address).town_name = Some(text)
        }
        [Tag::PstlAdr, Tag::CtrySubDvsn] => {
            party
                .address
                .get_or_insert_with(address)
                .country_sub_division = Some(text);
        }
        [Tag::PstlAdr, Tag::AdrLine] => party
            .address
            .get_or_insert_with(address)
            .address_lines
            .push(text),
        _ => {}
    }
}

fn account_field(
    party: &mut RawParty,
    rest: &[Tag],
    text: String,
    code: &'static str,
    path: &[Tag],
) -> Result<(), IsoError> {
    match rest {
        [Tag::Id, Tag::IBAN] => {
            if !is_iban_form(&text) {
                return Err(IsoError::at(
                    code,
                    &join_path(path),
                    format!("{text:?} does not have the form of an IBAN"),
                ));
            }
            party.account.get_or_insert_with(RawAccount::default).iban = Some(text);
        }
        [Tag::Id, Tag::Othr, Tag::Id] => {
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
    rest: &[Tag],
    text: String,
    code: &'static str,
    path: &[Tag],
) -> Result<(), IsoError> {
    match rest {
        [Tag::FinInstnId, Tag::BICFI | Tag::BIC] => {
            if !Bic::has_form(&text) {
                return Err(IsoError::at(
                    code,
                    &join_path(path),
                    format!("{text:?} does not have the form of a BIC"),
                ));
            }
            agent.bic = Some(text);
        }
        [Tag::FinInstnId, Tag::ClrSysMmbId, Tag::MmbId] => agent.member_id = Some(text),
        [Tag::FinInstnId, Tag::Nm] => agent.name = Some(text),
        [Tag::FinInstnId, Tag::PstlAdr, Tag::Ctry] => agent.country = Some(text),
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

fn count(text: &str, path: &[Tag]) -> Result<u64, IsoError> {
    let refuse = || {
        IsoError::at(
            "FF01",
            &join_path(path),
            format!("{text:?} is not a number of transactions"),
        )
    };
    if text.is_empty() || text.len() > 15 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse());
    }
    text.parse().map_err(|_| refuse())
}

/// A plain non-negative decimal of at most 18 digits (ISO 20022 `DecimalNumber`).
fn decimal(text: &str, path: &[Tag]) -> Result<Decimal, IsoError> {
    plain_decimal(text).ok_or_else(|| {
        IsoError::at(
            "FF01",
            &join_path(path),
            format!("{text:?} is not a decimal number"),
        )
    })
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
    path: &[Tag],
) -> Result<(Decimal, Currency), IsoError> {
    let path = || join_path(path);
    let path = &path;
    let currency = match currency {
        Some(code) => {
            Currency::parse(code).map_err(|e| IsoError::at("AM11", &path(), format!("Ccy: {e}")))?
        }
        None => return Err(IsoError::at("AM11", &path(), "the amount has no Ccy")),
    };
    let value = plain_decimal(text).ok_or_else(|| {
        IsoError::at(
            "AM12",
            &path(),
            format!(
                "{text:?} is not a positive decimal amount of at most {AMOUNT_DIGITS_MAX} digits"
            ),
        )
    })?;
    Money::new(value, currency)
        .map_err(|e| IsoError::at(e.reason_code(), &path(), e.to_string()))?;
    Ok((value, currency))
}

fn date(text: &str, path: &[Tag]) -> Result<String, IsoError> {
    text.parse::<Date>()
        .map(|_| text.to_owned())
        .map_err(|e| IsoError::at("DT01", &join_path(path), e))
}

fn sum_amounts(payments: &[RawPayment]) -> Decimal {
    payments
        .iter()
        .filter_map(|p| p.amount.as_deref().and_then(|a| Decimal::from_str(a).ok()))
        .fold(Decimal::ZERO, |sum, amount| sum.saturating_add(amount))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_interns_to_its_tag_and_back() {
        for (name, tag) in NAMES {
            assert_eq!(intern(name), *tag);
            assert_eq!(tag.name(), *name);
        }
        assert_eq!(intern("SplmtryData"), Tag::Other);
    }

    /// An amount is kept as written when that is its canonical decimal form, and written
    /// canonically otherwise (leading zeros dropped; the scale kept either way).
    #[test]
    fn amounts_come_out_canonical() {
        let message = |amount: &str| {
            format!(
                "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08\"><FIToFICstmrCdtTrf>\
                 <GrpHdr><MsgId>M</MsgId><NbOfTxs>1</NbOfTxs><IntrBkSttlmDt>2026-11-24</IntrBkSttlmDt></GrpHdr>\
                 <CdtTrfTxInf><PmtId><EndToEndId>E</EndToEndId></PmtId>\
                 <IntrBkSttlmAmt Ccy=\"EUR\">{amount}</IntrBkSttlmAmt></CdtTrfTxInf>\
                 </FIToFICstmrCdtTrf></Document>"
            )
        };
        for (written, read) in [
            ("150.00", "150.00"),
            ("0.50", "0.50"),
            ("000150.00", "150.00"),
            ("00.5", "0.5"),
            ("7", "7"),
        ] {
            let parsed = parse(message(written).as_bytes()).expect("a valid message");
            assert_eq!(
                parsed.payments[0].amount.as_deref(),
                Some(read),
                "{written}"
            );
        }
    }
}
