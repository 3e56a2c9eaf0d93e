//! A rule's preparation: its `preparation.prepare` run once per rule version when it is
//! loaded, and the instance's state kept as the rule version's starting point.
//!
//! wasmtime's Wizer does the keeping: it instruments the component with exports that
//! read each core instance's memories and globals, the host instantiates that and runs
//! `prepare` under the rule's own bounds with its `config`, `lists` and `log` (and with
//! `velocity` and `clock` refusing: there is no payment), Wizer reads the state out and
//! writes a component whose data segments and globals start where `prepare` left them.
//! That component is compiled and checked like any other; every instance of the rule
//! version starts from it. What it holds depends on the component, the configuration and
//! the lists, which together make the rule version: a new configuration is a new
//! preparation, never a reuse.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use wasmtime::Store;
use wasmtime::component::{Instance, WasmList};
use wasmtime_wizer::{ComponentContext, ComponentInstanceState, Wizer};

use super::capabilities::EvalState;
use super::{CompileError, CompiledRule, RuleContext, RuleFailure, bindings, classify, new_store};

/// The export a rule that prepares has (the `preparation` interface of the contract).
const PREPARATION_EXPORT: &str = "payrules:rules/preparation";

/// Whether the component exports the `preparation` interface (read from its top-level
/// export section, without compiling it). A component that does not parse says no: the
/// compile that follows names what is wrong with it.
pub(super) fn exported(wasm: &[u8]) -> bool {
    let mut depth = 0_u32;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let Ok(payload) = payload else {
            return false;
        };
        match payload {
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::ComponentExportSection(exports) if depth == 0 => {
                for export in exports.into_iter().flatten() {
                    let name = export.name.name;
                    let versioned = name.strip_prefix(PREPARATION_EXPORT);
                    if versioned.is_some_and(|rest| rest.is_empty() || rest.starts_with('@')) {
                        return true;
                    }
                }
            }
            _ => {}
        }
    }
    false
}

/// The component instrumented for reading its state out, and what Wizer knows of it.
pub(super) fn instrument(wasm: &[u8]) -> Result<(ComponentContext<'_>, Vec<u8>), CompileError> {
    Wizer::new()
        .instrument_component(wasm)
        .map_err(|error| CompileError::Preparation(format!("it cannot be prepared: {error:#}")))
}

/// Runs `prepare` on a fresh instance of the instrumented `rule` within `context`'s bounds
/// and returns the component that starts where it left off.
pub(super) fn prepare(
    engine: &wasmtime::Engine,
    rule: &CompiledRule,
    cx: &ComponentContext<'_>,
    context: &Arc<RuleContext>,
) -> Result<Vec<u8>, CompileError> {
    let mut store = new_store(engine, EvalState::preparing());
    let limits = context.limits;
    store.data_mut().begin_rule(context);
    let indices = bindings::exports::payrules::rules::preparation::GuestIndices::new(&rule.pre)
        .map_err(|error| CompileError::Preparation(format!("{error:#}")))?;
    let ran = store.set_fuel(limits.fuel).and_then(|()| {
        store.set_epoch_deadline(limits.timeout_ms + 1);
        let instance = rule.pre.instantiate(&mut store)?;
        indices
            .load(&mut store, &instance)?
            .call_prepare(&mut store)?;
        Ok(instance)
    });
    // What the rule logged went to the `payrules::rule` log target as it logged it; there
    // is no decision to keep it in.
    store.data_mut().end_rule();
    let instance = ran.map_err(|error| {
        let state = store.data();
        let RuleFailure { kind, message } = classify(
            &error,
            state.limiter.memory_denied,
            state.host_calls_exceeded,
            state.deadline_passed_in_host,
        );
        CompileError::Preparation(format!("its preparation failed ({kind:?}): {message}"))
    })?;
    // Reading the state out runs the instrumentation's own exports: not the rule's code,
    // and not bounded by its budget.
    store
        .set_fuel(u64::MAX)
        .map_err(|error| CompileError::Preparation(format!("{error:#}")))?;
    store.set_epoch_deadline(u64::MAX / 2);
    let mut state = Snapshotting {
        store: &mut store,
        instance,
        failed: None,
    };
    let rewritten = complete(Wizer::new().snapshot_component(cx, &mut state))
        .ok_or_else(|| CompileError::Preparation("its snapshot did not complete".to_owned()))?
        .map_err(|error| CompileError::Preparation(format!("its snapshot failed: {error:#}")))?;
    match state.failed {
        Some(why) => Err(CompileError::Preparation(format!(
            "its state could not be read: {why}"
        ))),
        None => Ok(rewritten),
    }
}

/// The prepared instance, read through the instrumentation's exports.
struct Snapshotting<'s> {
    store: &'s mut Store<EvalState>,
    instance: Instance,
    /// The first failure to read: the snapshot is then refused.
    failed: Option<String>,
}

impl Snapshotting<'_> {
    fn call<R: wasmtime::component::Lift + 'static>(
        &mut self,
        interface: &str,
        func: &str,
    ) -> Option<R> {
        let result = (|| {
            let (_, exported) = self
                .instance
                .get_export(&mut *self.store, None, interface)
                .ok_or_else(|| format!("no export {interface}"))?;
            let (_, index) = self
                .instance
                .get_export(&mut *self.store, Some(&exported), func)
                .ok_or_else(|| format!("no export {interface}#{func}"))?;
            let typed = self
                .instance
                .get_typed_func::<(), (R,)>(&mut *self.store, index)
                .map_err(|error| format!("{interface}#{func}: {error:#}"))?;
            let (value,) = typed
                .call(&mut *self.store, ())
                .map_err(|error| format!("{interface}#{func}: {error:#}"))?;
            Ok::<R, String>(value)
        })();
        match result {
            Ok(value) => Some(value),
            Err(why) => {
                self.failed.get_or_insert(why);
                None
            }
        }
    }
}

impl ComponentInstanceState for Snapshotting<'_> {
    fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) -> impl Future<Output = ()> + Send {
        match self.call::<WasmList<u8>>(instance, func) {
            Some(list) => contents(list.as_le_slice(&*self.store)),
            None => contents(&[]),
        }
        std::future::ready(())
    }

    fn call_func_ret_s32(
        &mut self,
        instance: &str,
        func: &str,
    ) -> impl Future<Output = i32> + Send {
        std::future::ready(self.call::<i32>(instance, func).unwrap_or_default())
    }

    fn call_func_ret_s64(
        &mut self,
        instance: &str,
        func: &str,
    ) -> impl Future<Output = i64> + Send {
        std::future::ready(self.call::<i64>(instance, func).unwrap_or_default())
    }

    fn call_func_ret_f32(
        &mut self,
        instance: &str,
        func: &str,
    ) -> impl Future<Output = u32> + Send {
        let bits = self.call::<f32>(instance, func).map(f32::to_bits);
        std::future::ready(bits.unwrap_or_default())
    }

    fn call_func_ret_f64(
        &mut self,
        instance: &str,
        func: &str,
    ) -> impl Future<Output = u64> + Send {
        let bits = self.call::<f64>(instance, func).map(f64::to_bits);
        std::future::ready(bits.unwrap_or_default())
    }
}

/// Drives `future` to its end on this thread: every step of the snapshot is a
/// synchronous call, so it completes at its first poll. `None` if it does not.
fn complete<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}
