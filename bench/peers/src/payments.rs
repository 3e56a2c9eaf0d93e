//! The seeded payments every engine decides, and the history the velocity figures read.
//!
//! The mix is chosen so that every branch of the example rules is taken by some payments:
//! five currencies, amounts from a coffee to over every limit, the three urgencies, agents
//! on and off the instant rails' directories, this institution's own agents, embargoed and
//! high-risk countries, cross-border payments without the debtor's address or the
//! creditor's country, listed names written exactly, loosely and with disguises, and
//! debtors with a busy history. The same seed gives the same payments on every machine.

use payrules::model::Payment;
use payrules::velocity::VelocityBook;

/// The seed of the payments and the history.
const SEED: u64 = 0x5041_5952_554c_4553;

/// Tuesday 2026-11-24 00:00 UTC: the payments fall in the week after it.
pub const WEEK_START_UNIX_MS: i64 = 1_795_478_400_000;

/// One payment and the instant it is decided at.
pub struct Seeded {
    /// The payment, validated as the service would.
    pub payment: Payment,
    /// When it is decided (its rules' `clock.now`).
    pub now_unix_ms: i64,
}

/// splitmix64: small, seeded, the same everywhere.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[usize::try_from(self.below(items.len() as u64)).expect("small")]
    }

    /// True `percent` times in a hundred.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// An IBAN of `country` with valid check digits (ISO 13616: mod 97).
fn iban(country: &str, bban: &str) -> String {
    let digits: String = format!("{bban}{country}00")
        .chars()
        .map(|c| match c.to_digit(36) {
            Some(value) => value.to_string(),
            None => unreachable!("IBAN characters are alphanumeric"),
        })
        .collect();
    let remainder = digits
        .bytes()
        .fold(0_u32, |r, b| (r * 10 + u32::from(b - b'0')) % 97);
    format!("{country}{:02}{bban}", 98 - remainder)
}

/// An account in `country`: an IBAN where the country uses them, else a plain id.
fn account(draw: &mut Draw, country: &str, number: u64) -> String {
    match country {
        "DE" => format!(
            r#"{{"iban": "{}"}}"#,
            iban("DE", &format!("37040044{number:010}"))
        ),
        "NL" => format!(
            r#"{{"iban": "{}"}}"#,
            iban("NL", &format!("ABNA{number:010}"))
        ),
        "GB" => format!(
            r#"{{"iban": "{}"}}"#,
            iban(
                "GB",
                &format!("NWBK{:06}{number:08}", 601_613 + draw.below(3))
            )
        ),
        _ => format!(r#"{{"id": "{country}{number:011}"}}"#),
    }
}

/// Names nobody lists.
const CLEAN_NAMES: &[&str] = &[
    "Muster Maschinenbau GmbH",
    "Van Dijk Onderdelen B.V.",
    "Harbor Coffee Roasters LLC",
    "Maria Gonzalez",
    "Northwind Traders Ltd",
    "Boulangerie Martin SARL",
    "Okafor Logistics Nigeria Ltd",
    "Al Noor General Trading LLC",
    "Sakura Precision KK",
    "Alpine Uhren AG",
    "Jean Dupont",
    "Giulia Romano",
];

/// Names a screening rule must look at: listed names exactly, loosely (a strong match
/// rejects), partly (a weak match, 850..930, holds for review), disguised; and names
/// nobody lists written with disguises (held for review).
const LISTED_NAMES: &[&str] = &[
    "BANCO NACIONAL DE CUBA",
    "Banco Nacional de Kuba",
    "H\u{0430}mas",
    "Tren\u{200b} de Aragua",
    "Joaquin Guzman",
    "Sinaloa Cartel Imports",
    "Osorio Jose",
    "Export Bank of Iran",
    "J\u{043e}hn Smith",
    "Maria\u{200b} Gonzalez",
];

struct Place {
    country: &'static str,
    currency: &'static str,
    /// Agents here: a BIC, a clearing member id, or both.
    agents: &'static [(Option<&'static str>, Option<&'static str>)],
}

const PLACES: &[Place] = &[
    Place {
        country: "US",
        currency: "USD",
        agents: &[
            (None, Some("021000021")),
            (None, Some("121000248")),
            (None, Some("026009593")),
            (None, Some("091000019")),
            (Some("CHASUS33XXX"), Some("021000021")),
            (Some("PAYRUS33"), Some("026073150")),
            (None, Some("122000661")),
        ],
    },
    Place {
        country: "DE",
        currency: "EUR",
        agents: &[
            (Some("COBADEFFXXX"), None),
            (Some("DEUTDEFF"), None),
            (Some("PAYRDEFF"), None),
        ],
    },
    Place {
        country: "NL",
        currency: "EUR",
        agents: &[(Some("ABNANL2A"), None), (Some("INGBNL2A"), None)],
    },
    Place {
        country: "GB",
        currency: "GBP",
        agents: &[(Some("NWBKGB2L"), None), (Some("BARCGB22"), None)],
    },
    Place {
        country: "JP",
        currency: "JPY",
        agents: &[(Some("MHCBJPJT"), None)],
    },
    Place {
        country: "CH",
        currency: "CHF",
        agents: &[(Some("UBSWCHZH80A"), None)],
    },
    Place {
        country: "NG",
        currency: "USD",
        agents: &[(Some("ZEIBNGLA"), None)],
    },
    Place {
        country: "AE",
        currency: "USD",
        agents: &[(Some("EBILAEAD"), None)],
    },
    Place {
        country: "RU",
        currency: "USD",
        agents: &[(Some("SABRRUMM"), None)],
    },
    Place {
        country: "IR",
        currency: "USD",
        agents: &[(Some("MELIIRTH"), None)],
    },
];

fn agent_json(agent: &(Option<&str>, Option<&str>)) -> String {
    let mut fields = Vec::new();
    if let Some(bic) = agent.0 {
        fields.push(format!(r#""bic": "{bic}""#));
    }
    if let Some(member_id) = agent.1 {
        fields.push(format!(r#""member_id": "{member_id}""#));
    }
    format!("{{{}}}", fields.join(", "))
}

/// The debtors whose accounts carry a history (and pay again in the bench).
const DEBTORS: u64 = 60;

/// The `count` seeded payments, and a velocity book holding their parties' history.
pub fn seeded(count: usize) -> (Vec<Seeded>, VelocityBook) {
    let mut draw = Draw(SEED);
    let book = VelocityBook::new();
    // The background: earlier payments of the same debtors over the month before the week
    // and during it, recorded as accepted (the only ones the book counts). Recorded after
    // a payment's instant, they do not count for it.
    for _ in 0..(count * 2) {
        let (mut seeded, _) = payment_and_json(&mut draw, WEEK_START_UNIX_MS, true, false);
        let offset_seconds = i64::try_from(draw.below(37 * 86_400)).expect("small");
        seeded.now_unix_ms = WEEK_START_UNIX_MS + (offset_seconds - 30 * 86_400) * 1_000;
        book.record(&seeded.payment, seeded.now_unix_ms);
    }
    let mut payments = Vec::with_capacity(count);
    for _ in 0..count {
        let at = WEEK_START_UNIX_MS + i64::try_from(draw.below(7 * 96)).expect("small") * 900_000;
        let kind = draw.below(100);
        let (seeded, json) = payment_and_json(&mut draw, at, false, kind < 6);
        // Some debtors have just paid the same creditor several times: a storm of small
        // payments in the last hour (some to a high-risk country), bursts, busy days,
        // repeated pairs.
        let small = || {
            let field = r#""amount": ""#;
            let start = json.find(field).expect("an amount") + field.len();
            let end = start + json[start..].find('"').expect("a closed amount");
            Payment::from_json(&format!("{}1{}", &json[..start], &json[end..]))
                .expect("the same payment for 1")
        };
        let (repeats, within_seconds, of) = match kind {
            0..=9 => (22 + draw.below(5), 3_500, small()),
            10..=17 => (5 + draw.below(4), 3_500, small()),
            18..=21 => (20 + draw.below(5), 86_000, seeded.payment.clone()),
            22..=29 => (3 + draw.below(2), 86_000, seeded.payment.clone()),
            _ => (0, 1, seeded.payment.clone()),
        };
        for _ in 0..repeats {
            let back_ms = 1_000 * (1 + i64::try_from(draw.below(within_seconds)).expect("small"));
            book.record(&of, seeded.now_unix_ms - back_ms);
        }
        payments.push(seeded);
    }
    (payments, book)
}

/// One payment at `at_unix_ms` (to Russia if `high_risk`), and its JSON.
fn payment_and_json(
    draw: &mut Draw,
    at_unix_ms: i64,
    history: bool,
    high_risk: bool,
) -> (Seeded, String) {
    // Mostly domestic, one in six cross-border.
    let from = draw.pick(&PLACES[..6]);
    let to = if high_risk {
        &PLACES[8]
    } else if draw.chance(84) {
        from
    } else {
        draw.pick(PLACES)
    };
    let currency = if draw.chance(90) {
        from.currency
    } else {
        to.currency
    };
    let debtor_number = draw.below(DEBTORS);
    let creditor_number = 1_000 + draw.below(if history { 40 } else { 200 });
    let scale_digits = if currency == "JPY" { 0 } else { 2 };
    // A coffee to a ship: log-spread amounts, a few above every limit.
    let magnitude = match draw.below(100) {
        0..=39 => 2,
        40..=69 => 3,
        70..=84 => 4,
        85..=92 => 5,
        93..=96 => 6,
        _ => 8,
    } + if currency == "JPY" { 2 } else { 0 };
    let whole = (1 + draw.below(9)) * 10_u64.pow(magnitude) + draw.below(10_u64.pow(magnitude));
    let amount = if scale_digits == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{:02}", draw.below(100))
    };
    let urgency = *draw.pick(&["instant", "instant", "urgent", "normal", "normal"]);
    let name = |draw: &mut Draw| {
        let names = if !history && draw.chance(6) {
            LISTED_NAMES
        } else {
            CLEAN_NAMES
        };
        *draw.pick(names)
    };
    let debtor_name = name(draw);
    let creditor_name = name(draw);
    let debtor_address = if draw.chance(85) {
        r#", "address": {"street_name": "Hauptstrasse", "building_number": "12", "town_name": "Muenchen"}"#
    } else {
        ""
    };
    let creditor_country = if draw.chance(90) {
        format!(r#""country": "{}", "#, to.country)
    } else {
        String::new()
    };
    let mut extra = String::new();
    if !history && draw.chance(8) {
        extra.push_str(&format!(
            r#", "ultimate_creditor": {{"name": "{}", "country": "{}"}}"#,
            name(draw),
            draw.pick(PLACES).country
        ));
    }
    if !history && draw.chance(5) {
        let place = draw.pick(PLACES);
        extra.push_str(&format!(
            r#", "intermediary_agents": [{}]"#,
            agent_json(draw.pick(place.agents))
        ));
    }
    let json = format!(
        r#"{{
            "end_to_end_id": "E2E-{:016X}",
            "amount": "{amount}",
            "currency": "{currency}",
            "debtor": {{"name": "{}", "country": "{}"{debtor_address}, "account": {}}},
            "debtor_agent": {},
            "creditor": {{"name": "{}", {creditor_country}"account": {}}},
            "creditor_agent": {},
            "urgency": "{urgency}"{extra}
        }}"#,
        draw.next(),
        escape(debtor_name),
        from.country,
        account(draw, from.country, debtor_number),
        agent_json(draw.pick(from.agents)),
        escape(creditor_name),
        account(draw, to.country, creditor_number),
        agent_json(draw.pick(to.agents)),
    );
    let payment = Payment::from_json(&json)
        .unwrap_or_else(|error| panic!("a seeded payment is valid: {error}\n{json}"));
    let seeded = Seeded {
        payment,
        now_unix_ms: at_unix_ms,
    };
    (seeded, json)
}

fn escape(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '"' => "\\\"".to_owned(),
            c if u32::from(c) > 0x7f => format!("\\u{:04x}", u32::from(c)),
            c => c.to_string(),
        })
        .collect()
}
