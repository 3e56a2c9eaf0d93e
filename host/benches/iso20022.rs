//! Run: `cargo bench -p payrules --bench iso20022`
//!
//! Parse throughput of the ISO 20022 reader beside a plain quick-xml scan of the same
//! bytes (the floor: every event read, nothing kept): a typical pacs.008 with one
//! transaction (in a FedNow envelope), and a pain.001 with 1,000 transactions.

#![allow(missing_docs)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use quick_xml::Reader;
use quick_xml::events::Event;

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/iso20022")
        .join(name);
    std::fs::read_to_string(path).expect("fixture")
}

/// A pain.001 with `count` transactions in one payment information, each like the
/// fixture's first.
fn large_pain001(count: usize) -> String {
    let transaction = |i: usize| {
        format!(
            "<CdtTrfTxInf><PmtId><InstrId>I-{i}</InstrId><EndToEndId>E2E-{i:06}</EndToEndId></PmtId>\
             <Amt><InstdAmt Ccy=\"EUR\">{}.{:02}</InstdAmt></Amt>\
             <CdtrAgt><FinInstnId><BICFI>ABNANL2A</BICFI></FinInstnId></CdtrAgt>\
             <Cdtr><Nm>Supplier {i} B.V.</Nm><PstlAdr><TwnNm>Amsterdam</TwnNm><Ctry>NL</Ctry></PstlAdr></Cdtr>\
             <CdtrAcct><Id><IBAN>NL91ABNA0417164300</IBAN></Id></CdtrAcct>\
             <RmtInf><Ustrd>Invoice 2026-{i:05}</Ustrd></RmtInf></CdtTrfTxInf>\n",
            100 + i,
            i % 100
        )
    };
    let total: u64 = (0..count)
        .map(|i| (100 + i as u64) * 100 + (i as u64 % 100))
        .sum();
    let transactions: String = (0..count).map(transaction).collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.001.001.09\"><CstmrCdtTrfInitn>\
         <GrpHdr><MsgId>BULK-1</MsgId><CreDtTm>2026-11-24T09:00:00</CreDtTm><NbOfTxs>{count}</NbOfTxs>\
         <CtrlSum>{}.{:02}</CtrlSum><InitgPty><Nm>Muster GmbH</Nm></InitgPty></GrpHdr>\
         <PmtInf><PmtInfId>P1</PmtInfId><PmtMtd>TRF</PmtMtd><ReqdExctnDt><Dt>2026-11-24</Dt></ReqdExctnDt>\
         <Dbtr><Nm>Muster GmbH</Nm></Dbtr><DbtrAcct><Id><IBAN>DE89370400440532013000</IBAN></Id></DbtrAcct>\
         <DbtrAgt><FinInstnId><BICFI>COBADEFFXXX</BICFI></FinInstnId></DbtrAgt>\n{transactions}</PmtInf>\
         </CstmrCdtTrfInitn></Document>\n",
        total / 100,
        total % 100
    )
}

/// The floor: read every event of the message, keep nothing.
fn scan(xml: &str) -> usize {
    let mut reader = Reader::from_str(xml);
    let mut events = 0;
    loop {
        match reader.read_event() {
            Ok(Event::Eof) => return events,
            Ok(_) => events += 1,
            Err(error) => panic!("the benchmark input is well-formed: {error}"),
        }
    }
}

fn throughput(c: &mut Criterion) {
    let typical = fixture("pacs008-fednow-envelope.xml");
    let large = large_pain001(1_000);
    assert_eq!(
        payrules::iso20022::parse(large.as_bytes())
            .expect("valid")
            .payments
            .len(),
        1_000
    );
    for (name, xml) in [
        ("pacs.008, 1 transaction", &typical),
        ("pain.001, 1,000 transactions", &large),
    ] {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(xml.len() as u64));
        group.bench_function("payrules parse", |b| {
            b.iter(|| {
                black_box(payrules::iso20022::parse(black_box(xml.as_bytes())).expect("valid"))
            });
        });
        group.bench_function("quick-xml scan (floor)", |b| {
            b.iter(|| black_box(scan(black_box(xml))))
        });
        group.finish();
    }
}

criterion_group!(benches, throughput);
criterion_main!(benches);
