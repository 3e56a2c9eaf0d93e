//! A compliance rule that tries to leave its sandbox: it reads a file and the wall clock
//! through std, which on `wasm32-wasip2` imports `wasi:filesystem` and `wasi:clocks`.
//! payrules must refuse to load it. For the test suite only.

use payrules_sdk::{ComplianceRule, Payment, Reason, Verdict};

struct Escape;

impl ComplianceRule for Escape {
    fn check(_payment: Payment) -> Verdict {
        let secret = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let now = std::time::SystemTime::now();
        Verdict::Review(vec![Reason::new(
            "escaped",
            format!("{} bytes at {now:?}", secret.len()),
        )])
    }
}

payrules_sdk::compliance_rule!(Escape);
