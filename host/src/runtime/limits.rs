//! The bounds every rule runs within, and the limiter that enforces the memory and
//! table bounds of the rule being run.

use serde::{Deserialize, Serialize};

/// The largest linear memory any rule may ask for; the engine's pool is sized for it.
pub const MEMORY_BYTES_CAP: u64 = 64 * 1024 * 1024;
/// The most fuel any rule may ask for per evaluation.
pub const FUEL_CAP: u64 = 1_000_000_000;
/// The longest wall-clock deadline any rule may ask for.
pub const TIMEOUT_MS_CAP: u64 = 5_000;
/// The largest answer any rule may ask to return.
pub const OUTPUT_BYTES_CAP: u64 = 1024 * 1024;
/// The most host calls any rule may ask for per evaluation.
pub const HOST_CALLS_CAP: u32 = 100_000;
/// The most table elements one rule instance may have.
pub const TABLE_ELEMENTS_MAX: usize = 20_000;

/// One rule's bounds for one evaluation. Manifests set them under `[limits]`; each
/// default is the value a typical rule needs with a wide margin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RuleLimits {
    /// Fuel per evaluation: about one unit per WebAssembly instruction.
    pub fuel: u64,
    /// The largest the rule's linear memory may grow, in bytes.
    pub memory_bytes_max: u64,
    /// Wall-clock deadline per evaluation, in milliseconds (checked every millisecond).
    pub timeout_ms: u64,
    /// The largest answer, in bytes of strings and list items.
    pub output_bytes_max: u64,
    /// The most calls to host capabilities per evaluation.
    pub host_calls_max: u32,
}

impl Default for RuleLimits {
    fn default() -> Self {
        RuleLimits {
            fuel: 10_000_000,
            memory_bytes_max: 16 * 1024 * 1024,
            timeout_ms: 100,
            output_bytes_max: 16 * 1024,
            host_calls_max: 1_000,
        }
    }
}

impl RuleLimits {
    /// Checks every bound is positive and within the host's caps; names the first that is
    /// not.
    pub fn check(&self) -> Result<(), String> {
        let bounds: [(&str, u64, u64); 5] = [
            ("fuel", self.fuel, FUEL_CAP),
            ("memory-bytes-max", self.memory_bytes_max, MEMORY_BYTES_CAP),
            ("timeout-ms", self.timeout_ms, TIMEOUT_MS_CAP),
            ("output-bytes-max", self.output_bytes_max, OUTPUT_BYTES_CAP),
            (
                "host-calls-max",
                u64::from(self.host_calls_max),
                u64::from(HOST_CALLS_CAP),
            ),
        ];
        for (name, value, cap) in bounds {
            if value == 0 || value > cap {
                return Err(format!("limits.{name} is {value}; it must be 1..={cap}"));
            }
        }
        Ok(())
    }
}

/// Enforces the memory and table bounds of the rule currently running in a store. The
/// store runs one rule at a time, so the evaluation sets the bounds before each rule.
#[derive(Debug, Default)]
pub(crate) struct RuleLimiter {
    pub(crate) memory_bytes_max: usize,
    /// Set when the rule asked for more memory than it may have.
    pub(crate) memory_denied: bool,
    /// Set when a memory grew (a warm instance that grows is recycled after the call).
    pub(crate) grew: bool,
}

impl wasmtime::ResourceLimiter for RuleLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes_max {
            self.memory_denied = true;
            return Ok(false);
        }
        self.grew |= desired > current;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= TABLE_ELEMENTS_MAX)
    }
}
