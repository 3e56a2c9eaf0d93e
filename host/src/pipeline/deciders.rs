//! A fixed pool of long-lived threads that run [`Pipeline::evaluate`] for async callers.
//!
//! One thread per core. Each keeps its CPU caches and wasmtime's per-thread state warm
//! across payments; a general blocking pool hands each payment to whichever thread is
//! free and, measured under load, made an evaluation about three times slower. Callers
//! queue; the service's concurrency limit bounds the queue. A payment whose caller has
//! gone by the time a decider takes it (a request timed out in the queue) is dropped,
//! not decided.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use super::Pipeline;
use crate::model::{Decision, Payment};
use crate::registry::RuleSet;
use crate::runtime::WarmInstances;

struct Job {
    rules: Arc<RuleSet>,
    payment: Payment,
    payment_id: String,
    now_unix_ms: i64,
    /// The caller's span, so the pipeline's and rules' spans nest under the request's.
    span: tracing::Span,
    reply: tokio::sync::oneshot::Sender<(Payment, Decision)>,
    /// Counted in the live load from queueing until dropped (decided, or not).
    _counted: Counted,
}

/// How busy the deciders are: live payments queued or being decided, against the number
/// of decider threads. The shadow reads it to decide only on a core live work leaves free.
#[derive(Debug)]
pub struct LiveLoad {
    in_flight: AtomicUsize,
    threads: usize,
}

impl LiveLoad {
    /// Whether fewer live payments are queued or being decided than there are deciders.
    pub fn has_free_decider(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) < self.threads
    }
}

/// One live payment in [`LiveLoad`], until dropped.
struct Counted(Arc<LiveLoad>);

impl Counted {
    fn new(load: &Arc<LiveLoad>) -> Counted {
        load.in_flight.fetch_add(1, Ordering::Relaxed);
        Counted(Arc::clone(load))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why no decision came back.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// The pool is stopping.
    #[error("the deciders have stopped")]
    Stopped,
    /// The evaluation panicked: a bug in the host, logged where it happened.
    #[error("the evaluation failed (a host bug; see the log)")]
    Panicked,
}

/// The pool.
pub struct Deciders {
    sender: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    load: Arc<LiveLoad>,
}

impl Deciders {
    /// Starts `threads` deciders on `pipeline`.
    pub fn start(pipeline: Arc<Pipeline>, threads: usize) -> std::io::Result<Deciders> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let threads = threads.max(1);
        let handles = (0..threads)
            .map(|index| {
                let receiver = Arc::clone(&receiver);
                let pipeline = Arc::clone(&pipeline);
                std::thread::Builder::new()
                    .name(format!("payrules-decide-{index}"))
                    .spawn(move || work(&pipeline, &receiver))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Deciders {
            sender: Mutex::new(Some(sender)),
            threads: Mutex::new(handles),
            load: Arc::new(LiveLoad {
                in_flight: AtomicUsize::new(0),
                threads,
            }),
        })
    }

    /// How busy the deciders are.
    pub fn load(&self) -> Arc<LiveLoad> {
        Arc::clone(&self.load)
    }

    /// Decides `payment` with `rules` at `now_unix_ms` on a decider thread; gives the
    /// payment back with its decision.
    pub async fn decide(
        &self,
        rules: Arc<RuleSet>,
        payment: Payment,
        payment_id: String,
        now_unix_ms: i64,
    ) -> Result<(Payment, Decision), DecideError> {
        self.enqueue(rules, payment, payment_id, now_unix_ms)?
            .await
            .map_err(|_| DecideError::Panicked)
    }

    /// Queues a payment and returns where its decision will arrive, so many payments (the
    /// transactions of one message) can be decided on every decider at once.
    pub fn enqueue(
        &self,
        rules: Arc<RuleSet>,
        payment: Payment,
        payment_id: String,
        now_unix_ms: i64,
    ) -> Result<tokio::sync::oneshot::Receiver<(Payment, Decision)>, DecideError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        sender
            .as_ref()
            .ok_or(DecideError::Stopped)?
            .send(Job {
                rules,
                payment,
                payment_id,
                now_unix_ms,
                span: tracing::Span::current(),
                reply,
                _counted: Counted::new(&self.load),
            })
            .map_err(|_| DecideError::Stopped)?;
        Ok(answer)
    }

    /// Lets the queued payments finish, then stops the threads.
    pub fn stop(&self) {
        drop(self.sender.lock().unwrap_or_else(|p| p.into_inner()).take());
        for handle in self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = handle.join();
        }
    }
}

impl Drop for Deciders {
    fn drop(&mut self) {
        self.stop();
    }
}

fn work(pipeline: &Pipeline, jobs: &Mutex<mpsc::Receiver<Job>>) {
    // The warm rules' instances of this decider: kept from payment to payment.
    let mut warm = WarmInstances::new();
    loop {
        let job = {
            let jobs = jobs.lock().unwrap_or_else(|p| p.into_inner());
            match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let Job {
            rules,
            payment,
            payment_id,
            now_unix_ms,
            span,
            reply,
            _counted,
        } = job;
        let _entered = span.enter();
        // A caller that went away while the payment waited (its request timed out, its
        // client disconnected) is answered already and stores nothing: deciding it would
        // only take a decider from the payments still waiting, and count in velocity.
        if reply.is_closed() {
            tracing::debug!(%payment_id, "abandoned by its request before its evaluation: not decided");
            continue;
        }
        let decided = std::panic::catch_unwind(AssertUnwindSafe(|| {
            pipeline.evaluate_warm(&mut warm, &rules, &payment, &payment_id, now_unix_ms)
        }));
        match decided {
            // A caller that went away (timeout, disconnect) no longer wants the answer.
            Ok(decision) => drop(reply.send((payment, decision))),
            // The reply is dropped: the caller answers 500 and the key is released.
            Err(_) => {
                tracing::error!(%payment_id, "the pipeline panicked (a bug in payrules)");
                // Nothing the panic interrupted is reused.
                warm = WarmInstances::new();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decider_is_free_while_fewer_live_payments_are_in_flight_than_deciders() {
        let load = Arc::new(LiveLoad {
            in_flight: AtomicUsize::new(0),
            threads: 2,
        });
        assert!(load.has_free_decider());
        let first = Counted::new(&load);
        assert!(load.has_free_decider());
        let second = Counted::new(&load);
        assert!(!load.has_free_decider(), "both deciders busy");
        let queued = Counted::new(&load);
        drop(second);
        assert!(!load.has_free_decider(), "one busy, one queued");
        drop((first, queued));
        assert!(load.has_free_decider());
        assert_eq!(load.in_flight.load(Ordering::Relaxed), 0);
    }
}
