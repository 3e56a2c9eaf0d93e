//! payrules: runs payments through sandboxed WebAssembly rules and decides.
//!
//! Modules, in the order a payment flows through them:
//!
//! - [`iso20022`]: pacs.008 and pain.001 messages in, read while streaming, as payments in
//!   the canonical shape.
//! - [`model`]: the payment (its one canonical JSON shape, validated as it is read), exact
//!   money, the decision and its trace, a held payment's review. Plain data.
//! - [`lists`]: named lists (sanctions, blocklists, directories), indexed for look-up and
//!   fuzzy name matching.
//! - [`registry`]: a rule set loaded from a directory: manifests, components, named lists,
//!   the pipeline policy, and the version that names them all.
//! - [`runtime`]: the sandbox. One wasmtime engine; each rule compiled once and
//!   pre-instantiated; a fresh instance per rule per payment with its CPU, memory, output
//!   and host-call bounds; the host capabilities rules import.
//! - [`pipeline`]: validate → compliance → fraud → routing → decision. The combining logic
//!   is pure and lives in [`pipeline::combine`].
//! - [`velocity`]: the figures the `velocity` capability reports, fed by accepted payments.
//! - [`store`]: decisions made durable: payments, decisions, idempotency records and the
//!   reviews of held payments and the authenticated, hash-chained audit log, behind one
//!   interface; the embedded SQLite backend with group commit and the PostgreSQL one.
//! - [`service`]: the application: start-up, and each operation once — submit a payment
//!   or a message (claim, replay or decide, commit, then count), review a held payment,
//!   reload, shadow, queries.
//! - [`api`]: the HTTP service (axum), thin adapters over [`service`]: auth, request
//!   limits, error mapping, OpenAPI.
//! - [`console`]: the operators' web pages at `/console`, server-rendered, over the same
//!   keys and [`service`] operations as [`api`].
//! - [`webhooks`]: decision and review events, from the store's outbox, POSTed signed
//!   to the endpoints in config (the service's relay decides when).
//! - [`config`] and [`telemetry`]: the service's validated settings (and the secret files
//!   they name); logs, traces and metrics. [`tls`]: the TLS clients to the database and
//!   to webhook endpoints.

pub mod api;
pub mod compare;
pub mod config;
pub mod console;
pub mod iso20022;
pub mod lists;
pub mod model;
pub mod pipeline;
pub mod plugin;
pub mod registry;
pub mod runtime;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod velocity;
pub mod webhooks;
