//! End-to-end tests: the real `payrules` library and binary with the real rule
//! components, built from this repository for `wasm32-wasip2`.
//!
//! - `sandbox`: rules that break their bounds on purpose are stopped, their failure policy
//!   applies, and the host carries on.
//! - `loading`: rules directories that must be refused, and why.
//! - `examples`: the example rules decide the example payments as the docs say.
//! - `cli`: `payrules evaluate` as a user runs it.
//! - `iso20022`: `payrules parse` and the reader, on fixtures and hostile input.
//! - `compare`: a backtest of a store and a shadow rule set on live traffic, each against
//!   a hand-computed comparison.
//! - `console`: the operators' console in Debian's Chromium (WebDriver), and its CSRF and
//!   CSP from outside the browser.
//! - `docs`: the rule guide keeps up with the contract.
//! - `api`: `payrules serve` over real HTTP: submit, retry, conflict, auth, listing, bad
//!   input, metrics, OpenAPI, logs.
//! - `messages`: pacs.008 and pain.001 over HTTP, answered with pacs.002 / pain.002 or
//!   JSON, and followed up once held transactions are reviewed.
//! - `reviews`: held payments reviewed over HTTP: the queue, who may, what the submitter
//!   sees, two reviewers at once, four eyes, the deadline, the audit chain after.
//! - `oauth`: OAuth 2 bearer tokens signed with the test's own keys, from a JWKS file and
//!   from a JWKS server on loopback; every forgery refused.
//! - `plugins`: rule projects scaffolded, built and tested; test vectors that fail.
//! - `reload`: the rules directory changed under load: swapped whole or refused.
//! - `overview`: the overview's figures against a hand count, from memory and from the
//!   store, across a restart.
//! - `preparation`: a rule's `prepare` run once per rule version at load, under its
//!   bounds and without a payment; every instance starts from what it made.
//! - `pin`: a shadow divergence pinned as a test vector, checked on both versions.
//! - `reproduce`: a past decision decided again by the kept rule set that made it.
//! - `rule_page`: a rule's vectors, measured figures and changes since the last set.
//! - `rollback`: an earlier rule set made live again under load, held until the directory
//!   changes or it is released, across a restart.
//! - `canary`: a candidate deciding a share of traffic by debtor account, its report
//!   against a hand count, aborted by a failing rule, promoted by the API or a deployment.
//! - `durability`: kill -9 mid-burst, a tampered store, SIGTERM with requests in flight,
//!   slow and excess clients.
//! - `security`: each security control against the attack it stops.
//! - `service`: the payment path in process: what counts once a decision is stored.
//! - `hosts`: several `payrules serve` processes on one PostgreSQL database: a key sent
//!   to two hosts at once, a host killed mid-burst, the database dropping every
//!   connection (`postgres` makes each test its database).
//! - `tls`: the listener over TLS 1.3 with HTTP/2, a certificate renewed under it, and
//!   clients authenticated by their certificates.
//! - `warm`: rules with warm isolation keep an instance per thread from payment to payment,
//!   every bound still enforced, recycled after a failure, a growth, N payments, a new set.
//! - `webhooks`: events delivered to a real receiver on loopback that is down, slow, then
//!   up; after a kill -9; dead letters sent again.

mod api;
mod canary;
mod cli;
mod compare;
mod console;
mod docs;
mod durability;
mod examples;
mod hosts;
mod iso20022;
mod loading;
mod messages;
mod oauth;
mod overview;
mod pin;
mod plugins;
mod postgres;
mod preparation;
mod reload;
mod reproduce;
mod reviews;
mod rollback;
mod rule_page;
mod sandbox;
mod security;
mod server;
mod service;
mod support;
mod telemetry;
mod tls;
mod warm;
mod webhooks;
