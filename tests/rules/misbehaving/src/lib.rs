//! A compliance rule that breaks its bounds on purpose, the way its configuration's
//! `behaviour` says. Built by the test suite only, never shipped as an example.
//!
//! | behaviour | what it does |
//! |---|---|
//! | `pass` | passes (the control) |
//! | `infinite-loop` | loops forever |
//! | `memory-growth` | allocates without end |
//! | `panic` | panics |
//! | `deep-recursion` | recurses without end |
//! | `huge-output` | returns a finding of `output-bytes` bytes (default 1 MiB) |
//! | `host-call-flood` | calls `config.get` without end |
//! | `bad-reason-code` | rejects with a code that is not ISO 20022 |
//! | `use-hashmap` | uses std's `HashMap` (seeded through `wasi:random`) and passes |
//! | `chatty` | logs 40 lines, the first 5,000 bytes long, and passes |
//! | `panic-on-break` | panics when the end-to-end id contains `BREAK`, else passes |
//! | `remember` | holds for review with the number of payments this instance has seen, as the finding's message and in its code `seen-N` (a warm instance counts up; a fresh one always says 1); first allocates `grow-bytes` (default 0) and keeps them; panics on `BREAK` |

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

use payrules_sdk::log::{self, Level};
use payrules_sdk::{ComplianceRule, Payment, Reason, Verdict, config};

struct Misbehaving;

/// Payments this instance has seen: what a reused instance carries from one to the next.
static SEEN: AtomicU32 = AtomicU32::new(0);

/// Recursion with no end and no allocation: only the call stack grows.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    std::hint::black_box(recurse(std::hint::black_box(depth + 1))) ^ depth
}

impl ComplianceRule for Misbehaving {
    fn check(payment: Payment) -> Verdict {
        match config::get("behaviour").as_deref() {
            Some("infinite-loop") => {
                let mut counter: u64 = 0;
                loop {
                    counter = std::hint::black_box(counter.wrapping_add(1));
                }
            }
            Some("memory-growth") => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(std::hint::black_box(vec![1_u8; 1024 * 1024]));
                }
            }
            Some("panic") => panic!("rule bug on {}", payment.end_to_end_id),
            Some("panic-on-break") if payment.end_to_end_id.contains("BREAK") => {
                panic!("rule bug on {}", payment.end_to_end_id)
            }
            Some("deep-recursion") => {
                let depth = recurse(0);
                Verdict::Review(vec![Reason::new("deep", depth.to_string())])
            }
            Some("huge-output") => {
                let bytes = config::number("output-bytes", 1024 * 1024_usize);
                Verdict::Review(vec![Reason::new("huge", "x".repeat(bytes))])
            }
            Some("host-call-flood") => {
                let mut seen = 0_usize;
                loop {
                    seen += config::get("behaviour").map_or(0, |b| b.len());
                    std::hint::black_box(seen);
                }
            }
            Some("remember") => {
                let seen = SEEN.fetch_add(1, Ordering::Relaxed) + 1;
                let bytes = config::number("grow-bytes", 0_usize);
                std::mem::forget(std::hint::black_box(vec![1_u8; bytes]));
                if payment.end_to_end_id.contains("BREAK") {
                    panic!("rule bug on {}", payment.end_to_end_id)
                }
                Verdict::Review(vec![Reason::new(&format!("seen-{seen}"), seen.to_string())])
            }
            Some("bad-reason-code") => Verdict::Reject(Reason::new("XX99", "not an ISO code")),
            Some("use-hashmap") => {
                let mut counts: HashMap<&str, u32> = HashMap::new();
                *counts.entry(payment.amount.currency.as_str()).or_default() += 1;
                if counts.len() == 1 {
                    Verdict::Pass
                } else {
                    Verdict::Reject(Reason::new("MS03", "hashmap broke"))
                }
            }
            Some("chatty") => {
                log::emit(Level::Info, &"é".repeat(2_500));
                for line in 1..40 {
                    log::emit(
                        Level::Debug,
                        &format!("line {line} about {}", payment.end_to_end_id),
                    );
                }
                Verdict::Pass
            }
            _ => Verdict::Pass,
        }
    }
}

payrules_sdk::compliance_rule!(Misbehaving);
