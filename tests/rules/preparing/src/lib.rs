//! A compliance rule that prepares. Its preparation does what the config key `prepare`
//! says: `read` (the default) reads the config key `answer` and keeps it; `loop` never
//! ends; `trap` panics; `clock` and `velocity` ask for what only a payment has; `memory`
//! grows its memory without end. Its check holds every payment for review with the code
//! `prepared-<answer>`, the answer as its preparation read it (`unprepared` if it was
//! not prepared). For the test suite only.

use std::cell::RefCell;

use payrules_sdk::config;
use payrules_sdk::velocity::{self, VelocityScope};
use payrules_sdk::{ComplianceRule, Payment, Prepare, Reason, Verdict, clock};

thread_local! {
    static PREPARED: RefCell<Option<String>> = const { RefCell::new(None) };
}

struct Preparing;

impl Prepare for Preparing {
    fn prepare() {
        match config::get("prepare").as_deref().unwrap_or("read") {
            "loop" => {
                let mut spins: u64 = 0;
                loop {
                    spins = std::hint::black_box(spins.wrapping_add(1));
                }
            }
            "trap" => panic!("the preparation panics on purpose"),
            "clock" => {
                let now = clock::now();
                PREPARED.with(|p| *p.borrow_mut() = Some(now.unix_ms.to_string()));
            }
            "velocity" => {
                let figures = velocity::figures(VelocityScope::DebtorAccount, 3_600);
                PREPARED.with(|p| *p.borrow_mut() = Some(format!("{figures:?}")));
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            _ => {
                let answer = config::get("answer").unwrap_or_else(|| "none".to_owned());
                PREPARED.with(|p| *p.borrow_mut() = Some(answer));
            }
        }
    }
}

impl ComplianceRule for Preparing {
    fn check(_payment: Payment) -> Verdict {
        let answer = PREPARED.with(|p| p.borrow().clone());
        let code = match answer {
            Some(answer) => format!("prepared-{answer}"),
            None => "unprepared".to_owned(),
        };
        Verdict::Review(vec![Reason::new(&code, "the answer its preparation read")])
    }
}

payrules_sdk::compliance_rule!(Preparing, prepared);
