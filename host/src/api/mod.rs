//! The HTTP API (axum): routes, auth, idempotency, limits, error mapping.
//!
//! The app is a value: [`router`] builds it from an [`AppState`], and [`serve`] runs it
//! on a listener until a shutdown future resolves, so tests run the real thing on port 0.
//! The OpenAPI document is assembled from the same route registrations, so it cannot
//! drift from them.
//!
//! Every request passes, outermost first: a request id (echoed in `X-Request-Id`) and a
//! span; latency and status into `/metrics`; the concurrency limit (503 and
//! `Retry-After` past it: load is shed, not queued); the request timeout. The body limit
//! is applied where bodies are read.

pub mod auth;
pub mod canary;
pub mod error;
mod hosts;
mod idempotency;
mod messages;
pub mod oauth;
pub mod overview;
mod payments;
pub mod pin;
pub(crate) mod query;
pub mod rate;
mod reviews;
pub mod rule_page;
pub mod rules;
mod service;
pub mod shadow;
mod webhooks;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::Layer;
use tracing::Instrument;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::LimitsConfig;
use crate::service::Service;
use auth::Keys;
use error::ApiError;
use rate::RateLimits;

/// The header that carries the request id.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Streams one HTTP/2 connection may have open at once (each is a request, under the
/// same concurrency limit as any other).
const HTTP2_STREAMS_MAX: u32 = 128;

/// Everything a request can reach: the application, and what the HTTP edge itself keeps.
pub struct AppState {
    /// The application.
    pub service: Arc<Service>,
    /// The API keys.
    pub keys: Keys,
    /// Each key's rate limit.
    pub rates: RateLimits,
    /// Request bounds.
    pub limits: LimitsConfig,
    /// The console's sessions.
    pub console_sessions: crate::console::session::Sessions,
    /// OAuth 2 bearer tokens, if configured.
    pub tokens: Option<Arc<oauth::TokenVerifier>>,
    concurrency: Arc<Semaphore>,
    draining: AtomicBool,
    request_ids: RequestIds,
}

impl AppState {
    /// The HTTP edge of `service`, authenticating with `keys`, each key held to its rate
    /// in `rates`, bounded by `limits`.
    pub fn new(
        service: Arc<Service>,
        keys: Keys,
        rates: RateLimits,
        limits: LimitsConfig,
    ) -> AppState {
        AppState {
            service,
            keys,
            rates,
            console_sessions: crate::console::session::Sessions::default(),
            tokens: None,
            concurrency: Arc::new(Semaphore::new(limits.concurrency_max)),
            limits,
            draining: AtomicBool::new(false),
            request_ids: RequestIds::new(),
        }
    }

    /// From now on `/readyz` says not ready (the service is shutting down).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }
}

/// The OpenAPI document's top: title, security scheme, tags.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "payrules",
        description = "Payments decided by sandboxed WebAssembly rules: submit, read, audit."
    ),
    modifiers(&BearerKeys),
    // The payment's parties and accounts, which its fields name by reference with the
    // constraints between fields (`model::schema`).
    components(schemas(crate::model::Party, crate::model::Account)),
    tags(
        (name = "payments", description = "Submit payments and read their decisions"),
        (name = "reviews", description = "Resolve the payments the rules held for review"),
        (name = "webhooks", description = "Decision and review events delivered to endpoints"),
        (name = "rules", description = "The live rule set"),
        (name = "audit", description = "The hash-chained audit log"),
        (name = "service", description = "Health, readiness, metrics")
    )
)]
struct ApiDoc;

struct BearerKeys;

impl utoipa::Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key from the config (`Bearer pr_…`); with `[oauth]` configured, \
                         a JWT the identity provider signed; with mutual TLS, a client \
                         certificate an API identity lists stands in for either",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every route, registered once: the router and the OpenAPI document both come from here.
fn api() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(payments::submit, payments::list))
        .routes(routes!(payments::get))
        .routes(routes!(payments::reproduction))
        .routes(routes!(reviews::review))
        .routes(routes!(reviews::queue))
        .routes(routes!(messages::status))
        .routes(routes!(webhooks::endpoints))
        .routes(routes!(webhooks::dead_letters))
        .routes(routes!(webhooks::redeliver))
        .routes(routes!(rules::live))
        .routes(routes!(rules::reload_now))
        .routes(routes!(rules::history))
        .routes(routes!(rule_page::rule))
        .routes(routes!(rules::rollback, rules::release_rollback))
        .routes(routes!(
            canary::get_canary,
            canary::start_canary,
            canary::remove_canary
        ))
        .routes(routes!(canary::set_percent))
        .routes(routes!(canary::promote))
        .routes(routes!(
            shadow::install_shadow,
            shadow::get_shadow,
            shadow::remove_shadow
        ))
        .routes(routes!(shadow::report))
        .routes(routes!(pin::pin))
        .routes(routes!(service::audit))
        .routes(routes!(hosts::list))
        .routes(routes!(overview::overview))
        .routes(routes!(service::healthz))
        .routes(routes!(service::readyz))
        .routes(routes!(service::metrics))
        .routes(routes!(service::openapi))
}

/// The app: every route, its OpenAPI document, and the layers around them.
pub fn router(state: Arc<AppState>) -> Router {
    let (router, openapi) = api().split_for_parts();
    let document = openapi
        .to_json()
        .unwrap_or_else(|e| unreachable!("an OpenAPI document serialises: {e}"));
    router
        .merge(crate::console::router())
        .layer(axum::Extension(Arc::new(document)))
        .fallback(service::not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            guard,
        ))
        .with_state(state)
}

/// The OpenAPI document of [`router`], as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}

/// Request ids: a random per-process prefix and a counter, so ids are unique across
/// restarts without a random draw per request.
struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> RequestIds {
        let mut bytes = [0u8; 4];
        // Without randomness the ids are still unique within the process.
        let _ = getrandom::fill(&mut bytes);
        RequestIds {
            prefix: u32::from_le_bytes(bytes),
            next: AtomicU64::new(1),
        }
    }

    fn next(&self) -> String {
        format!(
            "req_{:08x}{:010x}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// A client's request id is kept when it is short and plain; otherwise we make one.
fn client_request_id(request: &Request) -> Option<String> {
    let value = request.headers().get(&REQUEST_ID)?.to_str().ok()?;
    let plain = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    plain.then(|| value.to_owned())
}

/// A method as a metric label: the standard ones by name, any other as `other`, so a
/// client inventing methods cannot grow `/metrics` (and the process) without bound.
fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// The layer around every route: request id, span, metrics, load shedding, timeout.
async fn guard(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = client_request_id(&request).unwrap_or_else(|| state.request_ids.next());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = method_label(request.method());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = %route,
        principal = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    crate::telemetry::continue_trace(&span, request.headers());
    let response = async {
        let Ok(_permit) = Arc::clone(&state.concurrency).try_acquire_owned() else {
            state.service.metrics().shed();
            return ApiError::unavailable(
                "overloaded",
                "the service is at its concurrency limit; retry shortly",
            )
            .into_response();
        };
        let timeout = Duration::from_millis(state.limits.request_timeout_ms);
        match tokio::time::timeout(timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => ApiError::unavailable(
                "request_timed_out",
                format!(
                    "the request took longer than {} ms; retry it (a submission retried with \
                     the same idempotency key returns the decision if one was made)",
                    state.limits.request_timeout_ms
                ),
            )
            .into_response(),
        }
    }
    .instrument(span.clone())
    .await;
    let mut response = response;
    let status = response.status().as_u16();
    span.record("status", status);
    let elapsed = started.elapsed();
    state
        .service
        .metrics()
        .request(&route, method, status, elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(
            latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            "answered {status}"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// A request that came over TLS, and the client certificate its connection presented
/// (verified against `tls.client_ca` in the handshake), if any.
#[derive(Clone, Copy, Debug)]
pub struct TlsConnection {
    /// The certificate's sha256.
    pub client_certificate: Option<auth::PeerCertificate>,
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting, lets the
/// requests in flight finish for at most `limits.shutdown_grace_ms`, and returns.
///
/// Without `tls`, connections are HTTP/1.1. With it, each is TLS first (the handshake
/// bounded by the header-read timeout, on the connection's own task so a slow client
/// holds up no other), then HTTP/2 or HTTP/1.1 as ALPN chose; a client certificate's
/// sha256 goes with each of its requests in a [`TlsConnection`]. HTTP/1.1 has a
/// header-read timeout (a client that trickles its headers is cut off); at most
/// `limits.connections_max` connections are open at once.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &LimitsConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(limits.connections_max));
    let handshake_timeout = Duration::from_millis(limits.header_read_timeout_ms);
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(handshake_timeout)
        .keep_alive(true);
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(HTTP2_STREAMS_MAX)
        .keep_alive_interval(Some(Duration::from_secs(20)));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, a connection reset before accept: wait a
                    // moment rather than spin.
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let Some(acceptor) = &acceptor else {
            let service = TowerToHyperService::new(app.clone());
            let connection = graceful.watch(http1.serve_connection(TokioIo::new(stream), service));
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!("connection ended: {error}");
                }
                drop(permit);
            });
            continue;
        };
        let handshake = acceptor.accept(stream);
        let (app, http1, http2, watcher) = (
            app.clone(),
            http1.clone(),
            http2.clone(),
            graceful.watcher(),
        );
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(handshake_timeout, handshake).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!("TLS handshake refused: {error}");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake not finished in time");
                    return;
                }
            };
            let (_, session) = stream.get_ref();
            let connection = TlsConnection {
                client_certificate: session
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|leaf| auth::PeerCertificate(crate::tls::certificate_sha256(leaf))),
            };
            let h2 = session.alpn_protocol() == Some(b"h2");
            let service = TowerToHyperService::new(
                tower::util::MapRequestLayer::new(
                    move |mut request: hyper::Request<hyper::body::Incoming>| {
                        request.extensions_mut().insert(connection);
                        // HTTP/2 names the host in `:authority`, not `Host`: the same
                        // header for every handler, whichever protocol came.
                        if !request.headers().contains_key(hyper::header::HOST)
                            && let Some(authority) = request.uri().authority()
                            && let Ok(host) = HeaderValue::from_str(authority.as_str())
                        {
                            request.headers_mut().insert(hyper::header::HOST, host);
                        }
                        request
                    },
                )
                .layer(app),
            );
            let io = TokioIo::new(stream);
            let ended = if h2 {
                watcher.watch(http2.serve_connection(io, service)).await
            } else {
                watcher.watch(http1.serve_connection(io, service)).await
            };
            if let Err(error) = ended {
                tracing::debug!("connection ended: {error}");
            }
            drop(permit);
        });
    }
    drop(listener);
    let open = graceful.count();
    tracing::info!(
        connections = open,
        "shutting down: finishing requests in flight"
    );
    let grace = Duration::from_millis(limits.shutdown_grace_ms);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = limits.shutdown_grace_ms,
            "shutdown grace expired; cutting the connections still open"
        );
    }
}
