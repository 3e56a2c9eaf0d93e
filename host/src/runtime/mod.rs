//! The sandbox: the only module that knows wasmtime.
//!
//! - One [`Runtime`] per process: one `wasmtime::Engine` with the pooling allocator,
//!   fuel metering and epoch interruption, and a thread that ticks the epoch every
//!   millisecond.
//! - [`Runtime::compile`] turns a component into a [`CompiledRule`] once per version:
//!   compiled, its imports checked against the capabilities its manifest grants, and
//!   pre-instantiated.
//! - [`Runtime::evaluation`] opens one store for one payment; each rule then gets a fresh
//!   instance from the pool, its own fuel, deadline, memory cap, output cap and host-call
//!   budget, and its answer is checked against the contract before anyone sees it.
//! - A rule whose isolation is [`Isolation::Warm`] runs, on a thread that keeps
//!   [`WarmInstances`] (a decider), in that thread's instance of it, in a store of its own
//!   that outlives payments: the same per-call bounds, no instantiation or teardown per
//!   payment, and whatever the rule left in its memory still there. The instance is
//!   replaced after a failure, a call that grew its memory, `recycle_after` payments, and
//!   for a new rule set.
//!
//! A rule that traps, runs out of fuel or time, asks for too much memory, calls the host
//! too often or answers garbage ends as a [`RuleFailure`]; the host carries on.

mod capabilities;
mod code_cache;
mod convert;
mod limits;
mod preparation;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, InstancePre, Linker, types::ComponentItem};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
};

use crate::lists::NamedList;
use crate::model::{FailureKind, Payment, Rail, RuleKind, RuleLogLine, RuleOutcome};
use crate::velocity::VelocityBook;

pub use capabilities::{Capability, utc_date};
pub use limits::{
    FUEL_CAP, HOST_CALLS_CAP, MEMORY_BYTES_CAP, OUTPUT_BYTES_CAP, RuleLimits, TIMEOUT_MS_CAP,
};

use capabilities::EvalState;

/// Bindings generated from `wit/`, the same files the guest SDK reads.
#[allow(missing_docs, clippy::all)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "payrules:rules/host",
        imports: { default: trappable },
    });
}

/// How long compiling a component may take, per started MiB of it, by default. Cranelift
/// compiles about 1 MiB a second on one core of a small machine (a 90 KB Rust rule in
/// ≈0.15 s, an 18 MB Python rule in ≈9 s on two cores), so this is ten times that: only a
/// component that is pathological for its size reaches it.
pub const COMPILE_TIME_PER_MIB: Duration = Duration::from_secs(10);

/// How often the epoch advances: the granularity of rule deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(1);

/// The engine's instance pool: how many rule instances can be alive at once across all
/// concurrent evaluations. Each payment holds one per rule until its decision is made.
const POOL_COMPONENT_INSTANCES: u32 = 1_000;

/// The WIT interfaces std's `wasm32-wasip2` support imports for its own plumbing. The host
/// answers randomness and the environment deterministically (so `HashMap` and the panic
/// handler work) and satisfies the rest with functions that trap if called: a rule has no
/// stdio and cannot exit.
/// Any other WASI interface (files, sockets, clocks, HTTP) is refused when loading.
const STD_WASI_INTERFACES: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:random/insecure-seed",
    "wasi:random/insecure",
    "wasi:random/random",
];

/// Why a component could not become a rule.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// Not a valid component, or one wasmtime cannot compile.
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    /// It imports something the host does not offer or the manifest does not grant.
    #[error("it imports {import}: {why}")]
    Import {
        /// The import's name.
        import: String,
        /// Why it is refused.
        why: String,
    },
    /// Compiling it took longer than the runtime allows for its size.
    #[error("compiling it took longer than {limit_ms} ms, the most allowed for its size")]
    TooSlow {
        /// The bound, in milliseconds.
        limit_ms: u128,
    },
    /// It was built against another version of the contract.
    #[error(
        "it was built against {found}, and this payrules speaks payrules:rules@{CONTRACT_VERSION}: \
         rebuild it with payrules-sdk {CONTRACT_VERSION} (the SDK's version is the contract's)"
    )]
    ContractVersion {
        /// The contract interface it imports or exports, with its version.
        found: String,
    },
    /// It exports `preparation`, and preparing it failed (a trap or a bound, or the
    /// snapshot of what it prepared).
    #[error("{0}")]
    Preparation(String),
    /// It does not export the interface of its kind.
    #[error(
        "it does not export the {kind} interface of payrules:rules@{CONTRACT_VERSION} ({detail})"
    )]
    WrongWorld {
        /// The kind its manifest says.
        kind: &'static str,
        /// What wasmtime said.
        detail: String,
    },
}

/// The version of the contract (the WIT package `payrules:rules`) this host speaks, and
/// the version of the `payrules-sdk` that binds it.
pub const CONTRACT_VERSION: &str = "0.1.0";
/// How the contract's interfaces are named: `payrules:rules/NAME@VERSION`.
const CONTRACT_PACKAGE: &str = "payrules:rules/";

/// The process-wide engine.
pub struct Runtime {
    engine: Engine,
    ticker_stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
    compile_time_per_mib: Duration,
    code_cache: Option<code_cache::CodeCache>,
    /// Components compiled (not found in the code cache) since the start.
    compiled: std::sync::atomic::AtomicU64,
}

impl Runtime {
    /// Builds the engine: pooling allocator, fuel, epoch deadlines, and the ticker thread.
    pub fn new() -> anyhow::Result<Runtime> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_COMPONENT_INSTANCES)
            .total_core_instances(POOL_COMPONENT_INSTANCES * 8)
            .total_memories(POOL_COMPONENT_INSTANCES)
            .total_tables(POOL_COMPONENT_INSTANCES * 4)
            // A componentize-py rule (CPython and its runtime linked from shared
            // libraries, each with its shims) is 38 core instances, one memory and two
            // tables; a Rust rule a few core instances.
            .max_core_instances_per_component(64)
            .max_memories_per_component(2)
            .max_tables_per_component(8)
            .table_elements(limits::TABLE_ELEMENTS_MAX)
            .max_memory_size(usize::try_from(MEMORY_BYTES_CAP)?)
            // Reset a used memory by rewriting its dirty pages (found with the
            // PAGEMAP_SCAN ioctl where the kernel has it) instead of unmapping it: a rule
            // touches a few pages per payment, and keeping them resident avoids page
            // faults on the next payment.
            .linear_memory_keep_resident(2 * 1024 * 1024)
            .table_keep_resident(64 * 1024)
            .pagemap_scan(Enabled::Auto);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(512 * 1024)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engine = engine.clone();
            let stop = Arc::clone(&ticker_stop);
            std::thread::Builder::new()
                .name("payrules-epoch".to_owned())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })?
        };
        Ok(Runtime {
            engine,
            ticker_stop,
            ticker: Some(ticker),
            compile_time_per_mib: COMPILE_TIME_PER_MIB,
            code_cache: None,
            compiled: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// How many components were compiled since the start (those loaded from the code
    /// cache or reused from a loaded set are not).
    pub fn compiled_total(&self) -> u64 {
        self.compiled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How long compiling a component of `bytes` may take before the load gives up on
    /// it: the runtime's time per MiB for every started MiB.
    pub fn compile_time_max(&self, bytes: usize) -> Duration {
        let mebibytes = bytes.div_ceil(1024 * 1024).max(1);
        self.compile_time_per_mib
            .saturating_mul(u32::try_from(mebibytes).unwrap_or(u32::MAX))
    }

    /// The same runtime with another bound on compile time per started MiB.
    pub fn with_compile_time_per_mib(mut self, limit: Duration) -> Runtime {
        self.compile_time_per_mib = limit;
        self
    }

    /// The same runtime keeping compiled code in `dir` (created, owner-only), by the
    /// sha256 of each component and this engine's compatibility: a component seen before
    /// (at a restart, a rollback, in another rules directory) is loaded, not compiled. The
    /// least recently used files are removed beyond `bytes_max` (the most recent always
    /// stays). The directory holds native code the host will run: it must be writable by
    /// payrules alone, like the store beside it.
    pub fn with_code_cache(mut self, dir: &Path, bytes_max: u64) -> std::io::Result<Runtime> {
        self.code_cache = Some(code_cache::CodeCache::open(dir, bytes_max, &self.engine)?);
        Ok(self)
    }

    /// From the code cache if it holds it, else compiled (within the bound) and kept.
    fn compile_component(&self, wasm: &[u8]) -> Result<Component, CompileError> {
        let Some(cache) = &self.code_cache else {
            return self.compile_bounded(wasm);
        };
        let path = cache.path(wasm);
        if let Some(component) = code_cache::CodeCache::load(&self.engine, &path) {
            return Ok(component);
        }
        let component = self.compile_bounded(wasm)?;
        cache.keep(&path, &component);
        Ok(component)
    }

    /// Compiles on a thread of its own and waits at most `compile_time_max` for its size: a
    /// component that takes longer is refused. Cranelift cannot be interrupted, so the thread runs
    /// to its end (bounded by the component's size) and its result is dropped.
    fn compile_bounded(&self, wasm: &[u8]) -> Result<Component, CompileError> {
        self.compiled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        let engine = self.engine.clone();
        let bytes = wasm.to_vec();
        std::thread::Builder::new()
            .name("payrules-compile".to_owned())
            .spawn(move || {
                let _ = sender.send(Component::new(&engine, &bytes));
            })
            .map_err(|e| CompileError::Invalid(format!("cannot start compiling: {e}")))?;
        let limit = self.compile_time_max(wasm.len());
        match receiver.recv_timeout(limit) {
            Ok(compiled) => compiled.map_err(|e| CompileError::Invalid(format!("{e:#}"))),
            Err(_) => Err(CompileError::TooSlow {
                limit_ms: limit.as_millis(),
            }),
        }
    }

    /// Compiles a rule component (within [`Runtime::compile_time_max`] for its size), checks its
    /// imports against `granted` and its exports against `kind`, and pre-instantiates it.
    pub fn compile(
        &self,
        wasm: &[u8],
        kind: RuleKind,
        granted: &[Capability],
    ) -> Result<CompiledRule, CompileError> {
        let component = self.compile_component(wasm)?;
        let component_type = component.component_type();
        let contract_names = component_type
            .imports(&self.engine)
            .map(|(name, _)| name)
            .chain(component_type.exports(&self.engine).map(|(name, _)| name))
            .filter(|name| name.starts_with(CONTRACT_PACKAGE));
        for name in contract_names {
            if name.split_once('@').map(|(_, version)| version) != Some(CONTRACT_VERSION) {
                return Err(CompileError::ContractVersion {
                    found: name.to_owned(),
                });
            }
        }
        let mut linker: Linker<EvalState> = Linker::new(&self.engine);
        let mut std_wasi = Vec::new();
        for (name, item) in component.component_type().imports(&self.engine) {
            let interface = name.split('@').next().unwrap_or(name);
            if let Some(capability) = Capability::from_import(interface) {
                if !granted.contains(&capability) {
                    return Err(CompileError::Import {
                        import: name.to_owned(),
                        why: format!(
                            "the manifest does not grant the {:?} capability",
                            capability.name()
                        ),
                    });
                }
            } else if interface == "payrules:rules/types" {
                // Types only.
            } else if STD_WASI_INTERFACES.contains(&interface) {
                if let ComponentItem::ComponentInstance(_) = item.ty {
                    std_wasi.push(name.to_owned());
                }
            } else {
                return Err(CompileError::Import {
                    import: name.to_owned(),
                    why: "payrules offers rules no such capability (no files, network, clocks \
                          or environment: use the payrules:rules capabilities)"
                        .to_owned(),
                });
            }
        }
        for capability in granted {
            capability
                .add_to_linker(&mut linker)
                .map_err(|e| CompileError::Invalid(format!("{e:#}")))?;
        }
        capabilities::add_deterministic_wasi(&mut linker, &std_wasi)
            .map_err(|e| CompileError::Invalid(format!("{e:#}")))?;
        linker
            .define_unknown_imports_as_traps(&component)
            .map_err(|e| CompileError::Invalid(format!("{e:#}")))?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| CompileError::Invalid(format!("{e:#}")))?;
        let wrong_world = |e: wasmtime::Error| CompileError::WrongWorld {
            kind: kind.name(),
            detail: format!("{e:#}"),
        };
        let exports = match kind {
            RuleKind::Compliance => KindExports::Compliance(
                bindings::exports::payrules::rules::compliance::GuestIndices::new(&pre)
                    .map_err(wrong_world)?,
            ),
            RuleKind::Fraud => KindExports::Fraud(
                bindings::exports::payrules::rules::fraud::GuestIndices::new(&pre)
                    .map_err(wrong_world)?,
            ),
            RuleKind::Routing => KindExports::Routing(
                bindings::exports::payrules::rules::routing::GuestIndices::new(&pre)
                    .map_err(wrong_world)?,
            ),
        };
        Ok(CompiledRule {
            pre,
            exports,
            prepared: false,
        })
    }

    /// [`Runtime::compile`], and for a component that exports `preparation`, its
    /// preparation: `prepare` run once in `context` (the rule version's configuration,
    /// lists and bounds) on the component instrumented by Wizer, and the component that
    /// starts where it left off compiled instead (see [`preparation`]). Whether it
    /// prepared is [`CompiledRule::prepared`].
    pub fn compile_rule(
        &self,
        wasm: &[u8],
        kind: RuleKind,
        granted: &[Capability],
        context: &Arc<RuleContext>,
    ) -> Result<CompiledRule, CompileError> {
        if !preparation::exported(wasm) {
            return self.compile(wasm, kind, granted);
        }
        let (cx, instrumented) = preparation::instrument(wasm)?;
        let running = self.compile(&instrumented, kind, granted)?;
        let prepared = preparation::prepare(&self.engine, &running, &cx, context)?;
        let mut compiled = self.compile(&prepared, kind, granted)?;
        compiled.prepared = true;
        Ok(compiled)
    }

    /// Opens the sandbox for one payment: one store, in which each rule gets a fresh
    /// instance. Every rule sees the same instant, `now_unix_ms`.
    pub fn evaluation(
        &self,
        payment: &Payment,
        payment_id: &str,
        now_unix_ms: i64,
        velocity: Arc<VelocityBook>,
    ) -> Evaluation<'static> {
        let state = EvalState::new(payment, now_unix_ms, velocity);
        Evaluation {
            store: new_store(&self.engine, state),
            payment: convert::guest_payment(payment, payment_id),
            warm: None,
        }
    }

    /// The same, with the thread's `warm` instances: a rule whose isolation is warm runs
    /// in its instance there (made on first use), every other rule on a fresh one.
    pub fn evaluation_warm<'w>(
        &self,
        payment: &Payment,
        payment_id: &str,
        now_unix_ms: i64,
        velocity: Arc<VelocityBook>,
        warm: &'w mut WarmInstances,
    ) -> Evaluation<'w> {
        warm.prune();
        let evaluation = self.evaluation(payment, payment_id, now_unix_ms, velocity);
        Evaluation {
            store: evaluation.store,
            payment: evaluation.payment,
            warm: Some(warm),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            // The ticker sleeps a millisecond at a time and cannot fail.
            let _ = ticker.join();
        }
    }
}

fn new_store(engine: &Engine, state: EvalState) -> Store<EvalState> {
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    store
}

#[derive(Clone)]
enum KindExports {
    Compliance(bindings::exports::payrules::rules::compliance::GuestIndices),
    Fraud(bindings::exports::payrules::rules::fraud::GuestIndices),
    Routing(bindings::exports::payrules::rules::routing::GuestIndices),
}

/// A rule version compiled, checked and pre-instantiated: ready to be instantiated for
/// a payment in microseconds. Cheap to clone (the compiled code is shared), so a new rule
/// set can reuse the versions it has in common with the old one.
#[derive(Clone)]
pub struct CompiledRule {
    pre: InstancePre<EvalState>,
    exports: KindExports,
    prepared: bool,
}

impl CompiledRule {
    /// Whether its instances start from what its `preparation.prepare` made.
    pub fn prepared(&self) -> bool {
        self.prepared
    }
}

/// What the sandbox needs of a rule besides its code: its name, bounds, configuration
/// and lists.
#[derive(Debug)]
pub struct RuleContext {
    /// The rule's name, for logs.
    pub name: String,
    /// Its bounds.
    pub limits: RuleLimits,
    /// Its `[config]` table, flattened to dotted keys and text values.
    pub config: BTreeMap<String, String>,
    /// Its named lists.
    pub lists: BTreeMap<String, Arc<NamedList>>,
    /// Whether each payment gets a fresh instance of it, or a thread's warm one.
    pub isolation: Isolation,
    /// How its warm runs have been checked against fresh ones (all zero for a fresh rule).
    pub warm: WarmRecord,
}

/// What the checks of a warm rule found, across the threads of this host, for one rule
/// version of one rule set.
#[derive(Debug, Default)]
pub struct WarmRecord {
    runs: AtomicU64,
    verified: AtomicU64,
    mismatches: AtomicU64,
    fresh_again: AtomicBool,
}

/// A [`WarmRecord`] read at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct WarmFigures {
    /// Payments decided on a warm instance.
    pub runs: u64,
    /// Warm answers decided again on a fresh instance and compared.
    pub verified: u64,
    /// Of those, answers that differed: the rule carried something from one payment to
    /// the next.
    pub mismatches: u64,
    /// Whether a mismatch sent the rule back to fresh instances (until the next rule set).
    pub fresh_again: bool,
}

impl WarmRecord {
    /// The figures now.
    pub fn figures(&self) -> WarmFigures {
        WarmFigures {
            runs: self.runs.load(Ordering::Relaxed),
            verified: self.verified.load(Ordering::Relaxed),
            mismatches: self.mismatches.load(Ordering::Relaxed),
            fresh_again: self.fresh_again.load(Ordering::Relaxed),
        }
    }
}

/// How a rule's instances live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Isolation {
    /// A fresh instance for every payment (the default): nothing of one payment can reach
    /// the next.
    #[default]
    Fresh,
    /// An instance per decider thread, reused from payment to payment with every per-call
    /// bound still enforced, and recycled (see [`WarmPolicy`]). For trusted rules: a
    /// reused instance keeps whatever the rule left in its memory.
    Warm(WarmPolicy),
}

/// When a warm instance is replaced by a fresh one. It always is after a call that failed
/// (a trap or any bound), after a call in which its memory grew, and when the rule's
/// version or configuration changes (a new rule set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct WarmPolicy {
    /// The most payments one instance decides.
    pub recycle_after: u32,
    /// About one warm answer in this many (from an instance that decided an earlier
    /// payment) is decided again on a fresh instance and the two compared.
    pub verify_one_in: u32,
}

/// The most payments a warm instance may be asked to decide before it is recycled, and
/// the rarest check.
pub const WARM_RECYCLE_AFTER_CAP: u32 = 1_000_000;

impl Default for WarmPolicy {
    fn default() -> Self {
        WarmPolicy {
            recycle_after: 1_000,
            verify_one_in: 100,
        }
    }
}

impl WarmPolicy {
    /// Checks the bounds; names the first broken.
    pub fn check(&self) -> Result<(), String> {
        for (name, value) in [
            ("recycle-after", self.recycle_after),
            ("verify-one-in", self.verify_one_in),
        ] {
            if value == 0 || value > WARM_RECYCLE_AFTER_CAP {
                return Err(format!(
                    "warm.{name} is {value}; it must be 1..={WARM_RECYCLE_AFTER_CAP}"
                ));
            }
        }
        Ok(())
    }
}

/// The warm instances of one thread (a decider's): at most one per warm rule version,
/// each in a store of its own that outlives payments. A thread that decides without them
/// (a backtest, a reproduction) runs warm rules on fresh instances.
#[derive(Default)]
pub struct WarmInstances {
    slots: Vec<WarmSlot>,
    /// Instances created (the first, and every recycling).
    instantiated: u64,
}

/// One warm rule's instance.
struct WarmSlot {
    /// Held, so that the context's address names this rule version while the slot lives.
    context: Arc<RuleContext>,
    store: Store<EvalState>,
    instance: wasmtime::component::Instance,
    calls: u32,
}

impl WarmInstances {
    /// None yet.
    pub fn new() -> WarmInstances {
        WarmInstances::default()
    }

    /// How many warm instances the thread holds.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// How many instances were created for warm rules on this thread (the first of each
    /// rule version and every recycling).
    pub fn instantiated(&self) -> u64 {
        self.instantiated
    }

    /// Drops the instances of rule versions no rule set holds any more (their contexts
    /// are held by the slots alone).
    fn prune(&mut self) {
        self.slots
            .retain(|slot| Arc::strong_count(&slot.context) > 1);
    }

    /// The slot of `context`'s rule version, taken out.
    fn take(&mut self, context: &Arc<RuleContext>) -> Option<WarmSlot> {
        let at = self
            .slots
            .iter()
            .position(|slot| Arc::ptr_eq(&slot.context, context))?;
        Some(self.slots.swap_remove(at))
    }
}

/// How a rule failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleFailure {
    /// The kind of failure.
    pub kind: FailureKind,
    /// Detail for operators.
    pub message: String,
}

/// One rule's run: its answer (as a decision-trace outcome) or its failure, with cost.
#[derive(Debug)]
pub struct RuleRunResult {
    /// The answer, or why there is none.
    pub outcome: Result<RuleOutcome, RuleFailure>,
    /// Wall time from instantiation to checked answer.
    pub duration: Duration,
    /// The part of `duration` spent instantiating the rule from the pool.
    pub instantiation: Duration,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// What the rule logged.
    pub logs: Vec<RuleLogLine>,
    /// When a warm answer was checked and differed from the fresh one this result holds:
    /// the warm answer.
    pub warm_mismatch: Option<RuleOutcome>,
}

/// The sandbox for one payment.
pub struct Evaluation<'w> {
    store: Store<EvalState>,
    payment: bindings::payrules::rules::types::Payment,
    warm: Option<&'w mut WarmInstances>,
}

impl Evaluation<'_> {
    /// Runs a compliance rule's `check`.
    pub fn check(&mut self, rule: &CompiledRule, context: &Arc<RuleContext>) -> RuleRunResult {
        let KindExports::Compliance(indices) = &rule.exports else {
            return wrong_kind("compliance");
        };
        let payment = &self.payment;
        let limits = context.limits;
        run_rule(
            &mut self.store,
            self.warm.as_deref_mut(),
            rule,
            context,
            |store, instance| {
                let verdict = indices
                    .load(&mut *store, instance)?
                    .call_check(&mut *store, payment)?;
                Ok(convert::verdict(verdict, &limits))
            },
        )
    }

    /// Runs a fraud rule's `score`.
    pub fn score(&mut self, rule: &CompiledRule, context: &Arc<RuleContext>) -> RuleRunResult {
        let KindExports::Fraud(indices) = &rule.exports else {
            return wrong_kind("fraud");
        };
        let payment = &self.payment;
        let limits = context.limits;
        run_rule(
            &mut self.store,
            self.warm.as_deref_mut(),
            rule,
            context,
            |store, instance| {
                let risk = indices
                    .load(&mut *store, instance)?
                    .call_score(&mut *store, payment)?;
                Ok(convert::risk(risk, &limits))
            },
        )
    }

    /// Runs a routing rule's `route` with the rails this deployment can use.
    pub fn route(
        &mut self,
        rule: &CompiledRule,
        context: &Arc<RuleContext>,
        candidates: &[Rail],
    ) -> RuleRunResult {
        let KindExports::Routing(indices) = &rule.exports else {
            return wrong_kind("routing");
        };
        let payment = &self.payment;
        let limits = context.limits;
        let offered: Vec<_> = candidates
            .iter()
            .map(|rail| convert::guest_rail(*rail))
            .collect();
        run_rule(
            &mut self.store,
            self.warm.as_deref_mut(),
            rule,
            context,
            |store, instance| {
                let answer = indices.load(&mut *store, instance)?.call_route(
                    &mut *store,
                    payment,
                    &offered,
                )?;
                Ok(convert::route(answer, candidates, &limits))
            },
        )
    }
}

fn wrong_kind(kind: &str) -> RuleRunResult {
    RuleRunResult {
        outcome: Err(RuleFailure {
            kind: FailureKind::Instantiation,
            message: format!("the rule was not compiled as a {kind} rule"),
        }),
        duration: Duration::ZERO,
        instantiation: Duration::ZERO,
        fuel_used: 0,
        logs: Vec::new(),
        warm_mismatch: None,
    }
}

/// Runs `call` on the rule's warm instance if it has one in `warm`, or else on a fresh one
/// in the payment's `store`. Now and then a warm answer is checked: decided again on a
/// fresh instance (same payment, same facts) and compared; if they differ, the fresh
/// answer is the rule's, and the rule version runs on fresh instances from then on.
fn run_rule(
    store: &mut Store<EvalState>,
    warm: Option<&mut WarmInstances>,
    rule: &CompiledRule,
    context: &Arc<RuleContext>,
    call: impl Fn(
        &mut Store<EvalState>,
        &wasmtime::component::Instance,
    ) -> wasmtime::Result<Result<RuleOutcome, RuleFailure>>,
) -> RuleRunResult {
    if let (Isolation::Warm(policy), Some(warm)) = (context.isolation, warm)
        && !context.warm.fresh_again.load(Ordering::Relaxed)
    {
        let (warm_result, reused) = run_warm(warm, store, rule, context, policy, &call);
        let record = &context.warm;
        let run = record.runs.fetch_add(1, Ordering::Relaxed) + 1;
        // Only an instance that decided an earlier payment can carry anything from it.
        if !reused
            || !run.is_multiple_of(u64::from(policy.verify_one_in))
            || warm_result.outcome.is_err()
        {
            return warm_result;
        }
        let fresh = run_fresh(store, rule, context, &call);
        let Ok(fresh_outcome) = &fresh.outcome else {
            // A fresh instance that fails where the warm one answered (its deadline spent
            // on instantiating, say) proves nothing either way.
            return warm_result;
        };
        record.verified.fetch_add(1, Ordering::Relaxed);
        if warm_result.outcome.as_ref().ok() == Some(fresh_outcome) {
            return warm_result;
        }
        record.mismatches.fetch_add(1, Ordering::Relaxed);
        record.fresh_again.store(true, Ordering::Relaxed);
        // The fresh answer decides: it is what the rule answers with nothing carried over.
        return RuleRunResult {
            warm_mismatch: warm_result.outcome.ok(),
            ..fresh
        };
    }
    run_fresh(store, rule, context, call)
}

/// Runs `call` on a fresh instance in the payment's `store`.
fn run_fresh(
    store: &mut Store<EvalState>,
    rule: &CompiledRule,
    context: &Arc<RuleContext>,
    call: impl FnOnce(
        &mut Store<EvalState>,
        &wasmtime::component::Instance,
    ) -> wasmtime::Result<Result<RuleOutcome, RuleFailure>>,
) -> RuleRunResult {
    let (result, _) = run(store, rule, context, None, call);
    // After a trap, wasmtime refuses to enter any component instance of the store again
    // ("cannot enter component instance"), so the next rule gets a fresh store holding the
    // same state. Only a failing rule pays for this. Output the host refused after a
    // normal return leaves the store usable.
    let trapped = matches!(
        &result.outcome,
        Err(failure) if !matches!(failure.kind, FailureKind::OutputTooLarge | FailureKind::InvalidOutput)
    );
    if trapped {
        let engine = store.engine().clone();
        *store = new_store(&engine, store.data().for_a_new_store());
    }
    result
}

/// Runs `rule` in `store` within its bounds — on `instance` (a warm one) or on one
/// instantiated afresh — and classifies what happened; hands back the instance used.
fn run(
    store: &mut Store<EvalState>,
    rule: &CompiledRule,
    context: &Arc<RuleContext>,
    instance: Option<wasmtime::component::Instance>,
    call: impl FnOnce(
        &mut Store<EvalState>,
        &wasmtime::component::Instance,
    ) -> wasmtime::Result<Result<RuleOutcome, RuleFailure>>,
) -> (RuleRunResult, Option<wasmtime::component::Instance>) {
    let limits = context.limits;
    store.data_mut().begin_rule(context);
    let started = Instant::now();
    let mut instantiated = started;
    let mut used = None;
    let result = store.set_fuel(limits.fuel).and_then(|()| {
        // The deadline is in epoch ticks of one millisecond; one more tick makes sure a
        // rule gets at least its whole timeout whatever the phase of the ticker.
        store.set_epoch_deadline(limits.timeout_ms + 1);
        let instance = match instance {
            Some(instance) => instance,
            None => {
                let instance = rule
                    .pre
                    .instantiate(&mut *store)
                    .map_err(|error| error.context(InstantiationFailed))?;
                // Making the memories is not the rule growing them.
                store.data_mut().limiter.grew = false;
                instance
            }
        };
        instantiated = Instant::now();
        used = Some(instance);
        call(store, &instance)
    });
    let duration = started.elapsed();
    let instantiation = instantiated.duration_since(started);
    let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
    let state = store.data_mut();
    let logs = state.end_rule();
    let outcome = match result {
        Ok(answer) => answer,
        Err(error) => Err(classify(
            &error,
            state.limiter.memory_denied,
            state.host_calls_exceeded,
            state.deadline_passed_in_host,
        )),
    };
    let result = RuleRunResult {
        outcome,
        duration,
        instantiation,
        fuel_used,
        logs,
        warm_mismatch: None,
    };
    (result, used)
}

/// Runs a warm rule in this thread's instance of it (made, and counted, if there is none)
/// and keeps the instance for the next payment unless it must be recycled: after a
/// failure of any kind, a call in which its memory grew (other than its first), or its
/// `recycle_after`-th payment. Also says whether the instance had decided a payment before.
fn run_warm(
    warm: &mut WarmInstances,
    payment: &Store<EvalState>,
    rule: &CompiledRule,
    context: &Arc<RuleContext>,
    policy: WarmPolicy,
    call: impl FnOnce(
        &mut Store<EvalState>,
        &wasmtime::component::Instance,
    ) -> wasmtime::Result<Result<RuleOutcome, RuleFailure>>,
) -> (RuleRunResult, bool) {
    let (mut store, instance, calls) = match warm.take(context) {
        Some(slot) => {
            let mut store = slot.store;
            store.data_mut().take_facts_of(payment.data());
            (store, Some(slot.instance), slot.calls)
        }
        None => {
            warm.instantiated += 1;
            let state = payment.data().for_a_new_store();
            (new_store(payment.engine(), state), None, 0)
        }
    };
    let reused = instance.is_some();
    let (result, instance) = run(&mut store, rule, context, instance, call);
    let calls = calls + 1;
    let grew = calls > 1 && store.data().limiter.grew;
    if let Some(instance) = instance
        && result.outcome.is_ok()
        && !grew
        && calls < policy.recycle_after
    {
        warm.slots.push(WarmSlot {
            context: Arc::clone(context),
            store,
            instance,
            calls,
        });
    }
    (result, reused)
}

/// Marks an error that happened before the rule's code ran.
#[derive(Debug)]
struct InstantiationFailed;

impl std::fmt::Display for InstantiationFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the rule could not be instantiated")
    }
}

/// Names the failure behind a wasmtime error.
fn classify(
    error: &wasmtime::Error,
    memory_denied: bool,
    host_calls_exceeded: bool,
    deadline_passed_in_host: bool,
) -> RuleFailure {
    let message = format!("{error:#}");
    let kind = if host_calls_exceeded {
        FailureKind::HostCallLimit
    } else if deadline_passed_in_host {
        FailureKind::Timeout
    } else if let Some(trap) = error.downcast_ref::<Trap>() {
        match trap {
            Trap::OutOfFuel => FailureKind::FuelExhausted,
            Trap::Interrupt => FailureKind::Timeout,
            Trap::StackOverflow => FailureKind::StackOverflow,
            _ if memory_denied => FailureKind::MemoryLimit,
            _ => FailureKind::Trap,
        }
    } else if memory_denied {
        FailureKind::MemoryLimit
    } else if error.downcast_ref::<InstantiationFailed>().is_some() {
        FailureKind::Instantiation
    } else {
        FailureKind::Trap
    };
    // Rust's panic machinery shows in the guest's backtrace; its message cannot reach us
    // (the rule has no stderr), so say what happened and keep the backtrace.
    let message = if message.contains("panicking") || message.contains("panic_fmt") {
        format!("the rule panicked: {message}")
    } else if message.contains("wasi:cli/std") {
        format!(
            "the rule wrote to standard I/O, which rules do not have (use the log capability): {message}"
        )
    } else {
        message
    };
    RuleFailure { kind, message }
}
