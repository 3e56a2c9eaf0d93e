//! The operators' console at `/console`: server-rendered pages (askama templates, checked
//! at compile time, every value escaped as HTML), served by the same binary, with the same
//! keys and roles as the API, over the same service operations.
//!
//! Built so far: login with an API key (exchanged for a session cookie), the overview's
//! charts (decisions by status, latency, each rule's time, fuel and failures), each rule's
//! page (vector results, measured figures by version, the change from another kept set),
//! the review queue,
//! decisions searched by status and time, a payment's decision with each rule's trace and
//! its reproduction by the rule set that made it, approve / reject, the rules (the live set, the last refused candidate with the file at
//! fault, a reload, the history with a rollback to a kept version and its release, the
//! canary with its figures, share, promotion and removal, the shadow set's report), and
//! the audit log with a check of the whole chain. Every page works
//! without JavaScript — links, GET pages, forms that POST and redirect (POST-redirect-GET)
//! — and none has any script: the Content-Security-Policy forbids it
//! (`default-src 'none'`), with styles only from the console's own stylesheet. Every POST
//! carries the session's CSRF token, and the cookie is `HttpOnly; SameSite=Strict`.

mod chart;
mod overview;
mod pin;
mod rule;
pub mod session;

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::api::AppState;
use crate::config::Role;
use crate::model::{RuleOutcome, Verdict, final_status};
use crate::service::ServiceError;
use crate::service::reviews::ReviewRequest;
use crate::store::{ReviewQuery, ReviewState};
use session::{COOKIE, Session};

/// The console's stylesheet, in the binary: nothing is fetched from elsewhere.
const STYLESHEET: &str = include_str!("console.css");
/// Its icon (a page without one makes the browser ask for `/favicon.ico`).
const FAVICON: &str = include_str!("favicon.svg");
/// What a console page may load and do: its own stylesheet, forms to itself, nothing else.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// Rows of the queue per page.
const QUEUE_PAGE: u32 = 50;
/// The roles that have console pages.
const CONSOLE_ROLES: [Role; 3] = [Role::Reviewer, Role::Operator, Role::Auditor];

/// The console's routes, under `/console`.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/console", get(home))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/overview", get(overview::overview))
        .route("/console/reviews", get(reviews))
        .route("/console/payments", get(payments))
        .route("/console/payments/{id}", get(payment))
        .route("/console/payments/{id}/reproduction", get(reproduction))
        .route("/console/rules", get(rules))
        .route("/console/rules/reload", post(reload))
        .route("/console/rules/shadow", get(shadow_report))
        .route("/console/rules/by-name/{name}", get(rule::rule))
        .route("/console/rules/shadow/pin", post(pin::pin))
        .route("/console/rules/rollback", post(rollback))
        .route("/console/rules/release", post(release_rollback))
        .route("/console/rules/canary/percent", post(canary_percent))
        .route("/console/rules/canary/promote", post(canary_promote))
        .route("/console/rules/canary/remove", post(canary_remove))
        .route("/console/audit", get(audit))
        .route("/console/audit/verify", post(verify_audit))
        .route("/console/payments/{id}/review", post(review))
        .route("/console/static/console.css", get(stylesheet))
        .route("/console/static/favicon.svg", get(favicon))
        .layer(axum::middleware::map_response(secure_headers))
}

/// Every console answer: the CSP, no sniffing, no referrer to other sites (same-origin: a
/// no-referrer policy would make the browser send `Origin: null` on the console's own
/// forms), no caching.
async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// What every page's frame shows: the title, who is logged in, the CSRF token for its
/// forms, a notice.
struct Frame {
    title: &'static str,
    who: Option<String>,
    roles: String,
    csrf: String,
    notice: Option<String>,
    /// Whether the key reads payments (the queue, decisions): reviewers and auditors.
    reads_payments: bool,
    /// Whether it reads the rules: operators and auditors.
    reads_rules: bool,
    /// Whether it reads the audit log: auditors.
    reads_audit: bool,
}

impl Frame {
    fn anonymous(title: &'static str, notice: Option<String>) -> Frame {
        Frame {
            title,
            who: None,
            roles: String::new(),
            csrf: String::new(),
            notice,
            reads_payments: false,
            reads_rules: false,
            reads_audit: false,
        }
    }

    fn of(session: &Session, title: &'static str, notice: Option<String>) -> Frame {
        Frame {
            title,
            who: Some(session.principal.name.to_string()),
            roles: session.principal.role_names(),
            csrf: session.csrf.clone(),
            notice,
            reads_payments: session
                .principal
                .require(&[Role::Reviewer, Role::Auditor])
                .is_ok(),
            reads_rules: session
                .principal
                .require(&[Role::Operator, Role::Auditor])
                .is_ok(),
            reads_audit: session.principal.has(Role::Auditor),
        }
    }
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    frame: Frame,
}

#[derive(Template)]
#[template(path = "console/reviews.html")]
struct ReviewsPage {
    frame: Frame,
    rows: Vec<QueueRow>,
    next: Option<i64>,
}

struct QueueRow {
    payment_id: String,
    received: String,
    submitted_by: String,
    end_to_end_id: String,
    amount: String,
    currency: String,
    reasons: Vec<(String, String)>,
    deadline: String,
}

#[derive(Template)]
#[template(path = "console/payment.html")]
struct PaymentPage {
    frame: Frame,
    p: PaymentFacts,
}

struct PaymentFacts {
    payment_id: String,
    status: &'static str,
    final_status: &'static str,
    amount: String,
    currency: String,
    debtor: String,
    creditor: String,
    remittance: String,
    end_to_end_id: String,
    submitted_by: String,
    received: String,
    rule_set_version: String,
    rules: Vec<RuleRow>,
    review: Option<String>,
    can_review: bool,
}

struct RuleRow {
    name: String,
    kind: &'static str,
    version: String,
    outcome: String,
    reasons: Vec<String>,
    fuel: u64,
    duration_us: u64,
}

/// A page, rendered (a template that fails to render is a bug: 500, logged).
fn page(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(error) => {
            tracing::error!("a console page did not render: {error}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be made",
            )
                .into_response()
        }
    }
}

/// The session of the request's cookie, if it is live and its identity still is: a
/// session whose key was removed from the config or has expired ends here.
fn session_of(state: &AppState, headers: &HeaderMap) -> Option<(String, Session)> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    let id = cookies
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())?;
    let session = state.console_sessions.get(&id)?;
    if !state.keys.holds(&session.principal.name) {
        state.console_sessions.end(&id);
        return None;
    }
    Some((id, session))
}

/// The session (its id and itself), or a redirect to the login page.
#[allow(clippy::result_large_err)]
fn logged_in(state: &AppState, headers: &HeaderMap) -> Result<(String, Session), Response> {
    session_of(state, headers).ok_or_else(|| Redirect::to("/console/login").into_response())
}

async fn home(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match session_of(&state, &headers) {
        Some((_, session))
            if session
                .principal
                .require(&[Role::Reviewer, Role::Auditor])
                .is_ok() =>
        {
            Redirect::to("/console/reviews").into_response()
        }
        Some(_) => Redirect::to("/console/overview").into_response(),
        None => Redirect::to("/console/login").into_response(),
    }
}

async fn login_page() -> Response {
    page(&LoginPage {
        frame: Frame::anonymous("Log in", None),
    })
}

#[derive(Deserialize)]
struct LoginForm {
    key: String,
}

async fn login(
    State(state): State<Arc<AppState>>,
    tls: Option<axum::Extension<crate::api::TlsConnection>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers) {
        return cross_origin_refused();
    }
    let refused = |status: StatusCode, notice: &str| {
        let mut response = page(&LoginPage {
            frame: Frame::anonymous("Log in", Some(notice.to_owned())),
        });
        *response.status_mut() = status;
        response
    };
    let Ok(principal) = state.keys.authenticate(form.key.trim()) else {
        return refused(StatusCode::UNAUTHORIZED, "That is not a valid API key.");
    };
    if principal.require(&CONSOLE_ROLES).is_err() {
        return refused(
            StatusCode::FORBIDDEN,
            "This key has no console pages: the console is for reviewers, operators and auditors.",
        );
    }
    let Ok(id) = state.console_sessions.start(principal) else {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "No session could be made; try again.",
        );
    };
    // Secure when the client reached us over TLS: ours, or a terminating proxy's that
    // says so.
    let secure = tls.is_some()
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let cookie = format!(
        "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{}",
        session::LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    let mut response = Redirect::to("/console").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !same_origin(&headers) {
        return cross_origin_refused();
    }
    if let Some((id, session)) = session_of(&state, &headers) {
        if !session.csrf_matches(&form.csrf) {
            return csrf_refused();
        }
        state.console_sessions.end(&id);
    }
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "payrules_console=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}

/// A page's session, if its key holds one of `roles`: else the login page (no session),
/// or 403 saying the key's roles do not allow `what`.
#[allow(clippy::result_large_err)]
fn viewer(
    state: &AppState,
    headers: &HeaderMap,
    roles: &[Role],
    title: &'static str,
    what: &str,
) -> Result<(String, Session), Response> {
    let (id, session) = logged_in(state, headers)?;
    if session.principal.require(roles).is_err() {
        return Err(forbidden(&session, title, what));
    }
    Ok((id, session))
}

/// A form's session: posted from the console's own origin, carrying the session's CSRF
/// token, by a key holding one of `roles`; else the refusal.
#[allow(clippy::result_large_err)]
fn posted(
    state: &AppState,
    headers: &HeaderMap,
    csrf: &str,
    roles: &[Role],
    title: &'static str,
    what: &str,
) -> Result<(String, Session), Response> {
    if !same_origin(headers) {
        return Err(cross_origin_refused());
    }
    let (id, session) = logged_in(state, headers)?;
    if !session.csrf_matches(csrf) {
        return Err(csrf_refused());
    }
    if session.principal.require(roles).is_err() {
        return Err(forbidden(&session, title, what));
    }
    Ok((id, session))
}

/// Whether a POST comes from a console page: a browser's `Origin`, when it sends one, must
/// name this host (so another site cannot log a victim in as someone else, nor post a
/// form, even where a cookie would be sent).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let authority = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, authority)| authority);
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

fn cross_origin_refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        "this form was sent from another site: console forms are accepted from the console only",
    )
        .into_response()
}

fn csrf_refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        "the form's CSRF token is missing or not this session's: reload the page and try again",
    )
        .into_response()
}

fn forbidden(session: &Session, title: &'static str, what: &str) -> Response {
    let mut response = page(&LoginPage {
        frame: Frame::of(
            session,
            title,
            Some(format!("Your key's roles do not allow {what}.")),
        ),
    });
    *response.status_mut() = StatusCode::FORBIDDEN;
    response
}

fn unavailable(error: &ServiceError) -> Response {
    tracing::warn!("a console page could not be made: {error}");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the store cannot be reached right now; reload to retry",
    )
        .into_response()
}

#[derive(Deserialize)]
struct QueueParams {
    cursor: Option<i64>,
}

async fn reviews(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<QueueParams>,
) -> Response {
    let (id, session) = match viewer(
        &state,
        &headers,
        &[Role::Reviewer, Role::Auditor],
        "Review queue",
        "the review queue",
    ) {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let query = ReviewQuery {
        state: ReviewState::Open,
        submitted_by: None,
        since_unix_ms: None,
        received_before_unix_ms: None,
        cursor: params.cursor.filter(|c| *c > 0),
        limit: QUEUE_PAGE,
    };
    let page_of = match state.service.reviews(query).await {
        Ok(page) => page,
        Err(error) => return unavailable(&error),
    };
    let deadline_ms =
        i64::try_from(state.service.review_policy().deadline.as_millis()).unwrap_or(i64::MAX);
    let rows = page_of
        .items
        .into_iter()
        .map(|item| QueueRow {
            deadline: instant(item.summary.received_at_unix_ms.saturating_add(deadline_ms)),
            received: instant(item.summary.received_at_unix_ms),
            payment_id: item.summary.payment_id,
            submitted_by: item.summary.submitted_by,
            end_to_end_id: item.summary.end_to_end_id,
            amount: item.summary.amount,
            currency: item.summary.currency,
            reasons: item
                .reasons
                .into_iter()
                .map(|r| (r.code, r.message))
                .collect(),
        })
        .collect();
    page(&ReviewsPage {
        frame: Frame::of(
            &session,
            "Review queue",
            state.console_sessions.take_flash(&id),
        ),
        rows,
        next: page_of.next_cursor,
    })
}

/// Whether `id` has the shape of a payment id (`pay_` and hex digits).
fn is_payment_id(id: &str) -> bool {
    id.len() <= 64
        && id
            .strip_prefix("pay_")
            .is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

async fn payment(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (session_id, session) = match viewer(
        &state,
        &headers,
        &[Role::Reviewer, Role::Auditor],
        "Payment",
        "reading payments",
    ) {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    if !is_payment_id(&id) {
        return (StatusCode::NOT_FOUND, "no such payment").into_response();
    }
    let stored = match state.service.payment(&id).await {
        Ok(Some(stored)) => stored,
        Ok(_) => return (StatusCode::NOT_FOUND, "no such payment").into_response(),
        Err(error) => return unavailable(&error),
    };
    let decision = &stored.decision;
    let review_text = stored.review.as_ref().map(|r| {
        format!(
            "{} by {} at {}{}{}{}",
            r.verdict.name(),
            r.reviewer,
            instant(r.reviewed_at_unix_ms),
            r.reason_code
                .as_deref()
                .map(|c| format!(", reason {c}"))
                .unwrap_or_default(),
            r.note
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default(),
            if r.expired {
                " (the review deadline passed)"
            } else {
                ""
            },
        )
    });
    let facts = PaymentFacts {
        status: decision.status.name(),
        final_status: final_status(decision.status, stored.review.as_ref().map(|r| r.verdict))
            .name(),
        can_review: session.principal.has(Role::Reviewer)
            && stored.review.is_none()
            && decision.status == crate::model::Status::PendingReview,
        review: review_text,
        amount: stored.payment.amount.value().to_string(),
        currency: stored.payment.currency.code().to_owned(),
        debtor: party_name(stored.payment.debtor.name.as_ref()),
        creditor: party_name(stored.payment.creditor.name.as_ref()),
        remittance: stored
            .payment
            .remittance
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        end_to_end_id: stored.payment.end_to_end_id.to_string(),
        submitted_by: stored.submitted_by.clone(),
        received: instant(stored.received_at_unix_ms),
        rule_set_version: decision.rule_set_version.clone(),
        rules: decision.rules.iter().map(rule_row).collect(),
        payment_id: stored.payment_id.clone(),
    };
    page(&PaymentPage {
        frame: Frame::of(
            &session,
            "Payment",
            state.console_sessions.take_flash(&session_id),
        ),
        p: facts,
    })
}

fn party_name(name: Option<&crate::model::Text<140>>) -> String {
    name.map(ToString::to_string).unwrap_or_default()
}

fn rule_row(run: &crate::model::RuleRun) -> RuleRow {
    let (outcome, reasons) = match &run.outcome {
        RuleOutcome::Pass => ("pass".to_owned(), Vec::new()),
        RuleOutcome::Review { findings } => (
            "review".to_owned(),
            findings
                .iter()
                .map(|r| format!("{}: {}", r.code, r.message))
                .collect(),
        ),
        RuleOutcome::Reject { reason } => (
            "reject".to_owned(),
            vec![format!("{}: {}", reason.code, reason.message)],
        ),
        RuleOutcome::Score { score, reasons } => (
            format!("score {score}"),
            reasons
                .iter()
                .map(|r| format!("{} (+{}): {}", r.code, r.points, r.message))
                .collect(),
        ),
        RuleOutcome::Route { rail, explanation } => {
            (format!("route {}", rail.name()), vec![explanation.clone()])
        }
        RuleOutcome::Decline { reason } => (
            "decline".to_owned(),
            vec![format!("{}: {}", reason.code, reason.message)],
        ),
        RuleOutcome::Failed {
            failure,
            message,
            policy,
        } => (
            format!("failed ({failure:?}, policy {policy:?})"),
            vec![message.clone()],
        ),
    };
    RuleRow {
        name: run.name.clone(),
        kind: run.kind.name(),
        version: run.version.chars().take(12).collect(),
        outcome,
        reasons,
        fuel: run.fuel_used,
        duration_us: run.duration_us,
    }
}

#[derive(Deserialize)]
struct ReviewForm {
    csrf: String,
    verdict: String,
    reason_code: Option<String>,
    note: Option<String>,
}

async fn review(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ReviewForm>,
) -> Response {
    if !is_payment_id(&id) {
        return (StatusCode::NOT_FOUND, "no such payment").into_response();
    }
    let (session_id, session) = match posted(
        &state,
        &headers,
        &form.csrf,
        &[Role::Reviewer],
        "Payment",
        "reviewing payments",
    ) {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let Some(verdict) = Verdict::parse(&form.verdict) else {
        return (StatusCode::BAD_REQUEST, "the verdict is approve or reject").into_response();
    };
    let blank_to_none =
        |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let request = ReviewRequest {
        verdict,
        reason_code: blank_to_none(form.reason_code),
        note: blank_to_none(form.note),
    };
    let back = |notice: String| {
        state.console_sessions.flash(&session_id, notice);
        Redirect::to(&format!("/console/payments/{id}")).into_response()
    };
    match state
        .service
        .review_payment(&session.principal.name, &id, request)
        .await
    {
        Ok(reviewed) => back(format!(
            "Recorded: {}.",
            match reviewed.review.verdict {
                Verdict::Approve => "approved",
                Verdict::Reject => "rejected",
            }
        )),
        Err(error) => {
            // The same refusals, in the same words, as the API's.
            let api = crate::api::error::ApiError::from(error);
            back(format!("Not recorded: {}", api.message()))
        }
    }
}

async fn favicon() -> Response {
    ([(header::CONTENT_TYPE, "image/svg+xml")], FAVICON).into_response()
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
        .into_response()
}

/// An instant as RFC 3339 in UTC, to the second.
fn instant(unix_ms: i64) -> String {
    let at = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(u64::try_from(unix_ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

#[derive(Template)]
#[template(path = "console/payments.html")]
struct PaymentsPage {
    frame: Frame,
    statuses: Vec<StatusOption>,
    since: String,
    until: String,
    end_to_end_id: String,
    rule: String,
    rule_set_version: String,
    rows: Vec<DecisionRow>,
    next: Option<String>,
}

struct StatusOption {
    value: &'static str,
    selected: bool,
}

struct DecisionRow {
    payment_id: String,
    received: String,
    submitted_by: String,
    end_to_end_id: String,
    amount: String,
    currency: String,
    status: &'static str,
    final_status: &'static str,
}

#[derive(Deserialize)]
struct SearchParams {
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
    end_to_end_id: Option<String>,
    rule: Option<String>,
    rule_set_version: Option<String>,
    cursor: Option<i64>,
}

/// A search field as typed (trimmed, at most 80 characters), and its value if it is valid;
/// else `notice` says what it must be.
fn field<T>(
    text: Option<String>,
    notice: &mut Option<String>,
    what: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> (String, Option<T>) {
    let text: String = text.unwrap_or_default().trim().chars().take(80).collect();
    if text.is_empty() {
        return (text, None);
    }
    let value = parse(&text);
    if value.is_none() {
        *notice = Some(what.to_owned());
    }
    (text, value)
}

/// Decisions, newest first: by status, time received, end-to-end id, a rule that fired,
/// and the rule set that decided.
async fn payments(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<SearchParams>,
) -> Response {
    use crate::api::query;
    let (session_id, session) = match viewer(
        &state,
        &headers,
        &[Role::Reviewer, Role::Auditor],
        "Decisions",
        "reading payments",
    ) {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let mut notice = state.console_sessions.take_flash(&session_id);
    let (status_text, status) = field(
        params.status,
        &mut notice,
        "Status is accepted, rejected or pending_review.",
        crate::store::parse_status,
    );
    let at = |text: &str| query::instant(text, "since").ok();
    let (since, since_unix_ms) = field(
        params.since,
        &mut notice,
        "Received since is an instant in UTC, e.g. 2026-11-26T08:00:00Z.",
        at,
    );
    let (until, until_unix_ms) = field(
        params.until,
        &mut notice,
        "Received before is an instant in UTC, e.g. 2026-11-26T18:00:00Z.",
        at,
    );
    let (end_to_end_id_text, end_to_end_id) = field(
        params.end_to_end_id,
        &mut notice,
        "An end-to-end id has 1 to 35 characters.",
        |text| query::end_to_end_id(text).ok(),
    );
    let (rule_text, rule_fired) = field(
        params.rule,
        &mut notice,
        "A rule's name has 1 to 64 letters, digits, - or _.",
        |text| query::rule_name(text).ok(),
    );
    let (version_text, rule_set_version) = field(
        params.rule_set_version,
        &mut notice,
        "A rule-set version is 4 to 64 lowercase hex digits (a version or its start).",
        |text| query::rule_set_version(text).ok(),
    );
    // The search as a query string, for the next page's link.
    let search = {
        let mut search = form_urlencoded::Serializer::new(String::new());
        for (name, text, valid) in [
            ("status", &status_text, status.is_some()),
            ("since", &since, since_unix_ms.is_some()),
            ("until", &until, until_unix_ms.is_some()),
            (
                "end_to_end_id",
                &end_to_end_id_text,
                end_to_end_id.is_some(),
            ),
            ("rule", &rule_text, rule_fired.is_some()),
            (
                "rule_set_version",
                &version_text,
                rule_set_version.is_some(),
            ),
        ] {
            if valid {
                search.append_pair(name, text);
            }
        }
        search.finish()
    };
    let query = crate::store::ListQuery {
        status,
        since_unix_ms,
        until_unix_ms,
        end_to_end_id,
        rule_set_version,
        rule_fired,
        cursor: params.cursor.filter(|c| *c > 0),
        limit: QUEUE_PAGE,
        submitted_by: None,
    };
    let found = match state.service.list(query).await {
        Ok(found) => found,
        Err(error) => return unavailable(&error),
    };
    let next = found.next_cursor.map(|cursor| {
        if search.is_empty() {
            format!("/console/payments?cursor={cursor}")
        } else {
            format!("/console/payments?cursor={cursor}&{search}")
        }
    });
    let rows = found
        .payments
        .into_iter()
        .map(|p| DecisionRow {
            received: instant(p.received_at_unix_ms),
            status: p.status.name(),
            final_status: p.final_status.name(),
            payment_id: p.payment_id,
            submitted_by: p.submitted_by,
            end_to_end_id: p.end_to_end_id,
            amount: p.amount,
            currency: p.currency,
        })
        .collect();
    page(&PaymentsPage {
        frame: Frame::of(&session, "Decisions", notice),
        statuses: ["accepted", "rejected", "pending_review"]
            .into_iter()
            .map(|value| StatusOption {
                value,
                selected: status.is_some_and(|s| s.name() == value),
            })
            .collect(),
        since,
        until,
        end_to_end_id: end_to_end_id_text,
        rule: rule_text,
        rule_set_version: version_text,
        rows,
        next,
    })
}

#[derive(Template)]
#[template(path = "console/rules.html")]
struct RulesPage {
    frame: Frame,
    version: String,
    loaded_at: String,
    dir: String,
    can_reload: bool,
    last_refused: Option<String>,
    /// The rollback in force: what it holds over.
    rollback: Option<String>,
    rules: Vec<RuleLine>,
    history: Vec<HistoryLine>,
    shadow: Option<String>,
    canary: Option<CanaryBlock>,
}

/// The canary running (or the last one that ended) on the rules page.
struct CanaryBlock {
    /// `running`, `aborted`, `removed` or `promoted`.
    state: &'static str,
    version: String,
    percent: u8,
    /// Where it came from and since when.
    origin: String,
    /// How it ended, if it did.
    ended: Option<String>,
    /// Each set's figures: live first, then the canary.
    sides: [CanarySide; 2],
}

/// One set's figures while the canary ran.
struct CanarySide {
    name: &'static str,
    decisions: u64,
    accepted: u64,
    rejected: u64,
    pending_review: u64,
    with_rule_failure: u64,
    p50_us: u64,
    p99_us: u64,
}

impl CanarySide {
    fn of(name: &'static str, figures: crate::registry::canary::ArmFigures) -> CanarySide {
        CanarySide {
            name,
            decisions: figures.decisions,
            accepted: figures.accepted,
            rejected: figures.rejected,
            pending_review: figures.pending_review,
            with_rule_failure: figures.with_rule_failure,
            p50_us: figures.rules_p50_us,
            p99_us: figures.rules_p99_us,
        }
    }
}

/// How many lines of the rule-set history the rules page shows.
const HISTORY_LINES: u32 = 20;

/// One line of the rule-set history.
struct HistoryLine {
    at: String,
    /// `loaded`, `refused`, `rolled back` or `released`.
    outcome: &'static str,
    /// The version that went live (or, refused, the one that stayed), first 12 digits.
    version: String,
    /// The whole version, when an operator may make it live again from here (kept on
    /// this host, not live).
    rollback_to: Option<String>,
    trigger: String,
    /// How many rules and after which version; or, refused, why (bounded).
    what: String,
}

struct RuleLine {
    name: String,
    kind: &'static str,
    version: String,
    order: i32,
    failure_policy: String,
    capabilities: String,
    fuel: u64,
    memory: String,
    timeout_ms: u64,
    /// Its circuit on this host (`closed`, `open`, `half_open`; empty when circuits are
    /// off), and how often it opened.
    circuit: String,
}

/// The live rule set, the last candidate refused (with the file at fault), and a reload.
async fn rules(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let (session_id, session) = match viewer(
        &state,
        &headers,
        &[Role::Operator, Role::Auditor],
        "Rules",
        "reading the rules",
    ) {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let service = &state.service;
    let live = service.live_rules();
    let set = service.rule_set();
    let rules = set
        .rules()
        .iter()
        .map(|rule| {
            let m = &rule.manifest;
            RuleLine {
                name: m.name.clone(),
                kind: m.kind.name(),
                version: rule.version.chars().take(12).collect(),
                order: m.order,
                failure_policy: format!("{:?}", m.failure_policy).to_lowercase(),
                capabilities: m
                    .capabilities
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                fuel: m.limits.fuel,
                memory: format!("{} KiB", m.limits.memory_bytes_max / 1024),
                timeout_ms: m.limits.timeout_ms,
                circuit: service
                    .breaker_policy()
                    .map(|_| {
                        let circuit = rule.breaker.snapshot();
                        match circuit.opened {
                            0 => circuit.state.name().to_owned(),
                            n => format!("{} (opened {n}×)", circuit.state.name()),
                        }
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    // The history: the last versions that went live and candidates refused, newest first
    // (from the audit log, as `GET /v1/rules/history`).
    use crate::service::canary;
    use crate::service::rollback::{ROLLBACK_RELEASED, ROLLED_BACK};
    use crate::service::rules::{LOADED, REJECTED};
    let history = match service
        .audit_of(&crate::api::rules::HISTORY_ACTIONS, HISTORY_LINES)
        .await
    {
        Ok(entries) => entries,
        Err(error) => return unavailable(&error),
    };
    let can_reload = session.principal.has(Role::Operator);
    let history = history
        .into_iter()
        .map(|entry| {
            let detail: serde_json::Value = serde_json::from_str(&entry.detail).unwrap_or_default();
            let text = |key: &str| detail[key].as_str().unwrap_or_default().to_owned();
            let short = |version: &str| version.chars().take(12).collect::<String>();
            let outcome = match entry.action.as_str() {
                LOADED => "loaded",
                ROLLED_BACK => "rolled back",
                ROLLBACK_RELEASED => "released",
                REJECTED => "refused",
                canary::CANARY_STARTED => "canary started",
                canary::CANARY_PERCENT => "canary share",
                canary::CANARY_ABORTED => "canary aborted",
                canary::CANARY_REMOVED => "canary removed",
                _ => "canary promoted",
            };
            let loaded = matches!(outcome, "loaded" | "rolled back");
            let rollback_to = (can_reload
                && loaded
                && entry.subject != set.version
                && live
                    .kept()
                    .is_some_and(|k| k.path_of(&entry.subject).is_some()))
            .then(|| entry.subject.clone());
            let what = match outcome {
                "rolled back" => format!(
                    "from {}, held over the directory's {}",
                    short(&text("previous_version")),
                    short(&text("over_directory_version"))
                ),
                "released" => format!(
                    "the directory's {} again",
                    short(&text("over_directory_version"))
                ),
                "canary started" | "canary share" => {
                    format!("{}% of traffic", detail["percent"].as_u64().unwrap_or(0))
                }
                "canary aborted" | "canary removed" | "canary promoted" => text("why"),
                _ => String::new(),
            };
            HistoryLine {
                at: instant(entry.at_unix_ms),
                outcome,
                version: short(&entry.subject),
                rollback_to,
                trigger: match outcome {
                    "loaded" | "refused" => text("trigger"),
                    _ => text("by"),
                },
                what: if !what.is_empty() {
                    what
                } else if loaded {
                    let previous = text("previous_version");
                    let rules = detail["rules"].as_array().map_or(0, Vec::len);
                    if previous.is_empty() {
                        format!("{rules} rules")
                    } else {
                        format!(
                            "{rules} rules, after {}",
                            previous.chars().take(12).collect::<String>()
                        )
                    }
                } else {
                    text("error").chars().take(300).collect()
                },
            }
        })
        .collect();
    let shadow = service.shadow().installed().map(|installed| {
        format!(
            "{} from {}, {} rules",
            installed.rules.version,
            installed.dir.display(),
            installed.rules.rules().len()
        )
    });
    page(&RulesPage {
        frame: Frame::of(
            &session,
            "Rules",
            state.console_sessions.take_flash(&session_id),
        ),
        version: set.version.clone(),
        loaded_at: instant(live.loaded_at_unix_ms()),
        dir: live.dir().display().to_string(),
        can_reload,
        rollback: live.held().map(|held| {
            format!(
                "Rolled back: {} is live, held over the directory's {} until the directory \
                 changes or the rollback is released.",
                held.version, held.over
            )
        }),
        last_refused: live.last_rejected().map(|r| {
            format!(
                "{} ({}, {}): {}",
                instant(r.at_unix_ms),
                r.trigger,
                "nothing changed live",
                r.error
            )
        }),
        rules,
        history,
        shadow,
        canary: canary_block(service),
    })
}

/// The canary block of the rules page, if a canary ran since the start.
fn canary_block(service: &crate::service::Service) -> Option<CanaryBlock> {
    let (canary, ended, live, candidate) = service.canary_figures()?;
    Some(CanaryBlock {
        state: ended.as_ref().map_or("running", |e| e.outcome),
        version: canary.rules.version.clone(),
        percent: canary.percent(),
        origin: format!(
            "from {} ({}), since {}",
            canary.dir.display(),
            match canary.source {
                crate::service::canary::CanarySource::Directory => "the rules directory's canary/",
                crate::service::canary::CanarySource::Api => "an operator",
            },
            instant(canary.started_at_unix_ms)
        ),
        ended: ended.map(|e| {
            format!(
                "{} {} by {}: {}",
                e.outcome,
                instant(e.at_unix_ms),
                e.by,
                e.why
            )
        }),
        sides: [
            CanarySide::of("live set", live),
            CanarySide::of("canary", candidate),
        ],
    })
}

/// The form that changes the canary's share.
#[derive(Deserialize)]
struct PercentForm {
    csrf: String,
    percent: u16,
}

/// Changes the canary's share, as `POST /v1/rules/canary/percent` would.
async fn canary_percent(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<PercentForm>,
) -> Response {
    let service = &state.service;
    let percent = form.percent;
    rules_action(
        &state,
        &headers,
        &form.csrf,
        "changing the canary's share",
        |actor| async move {
            match service.set_canary_percent(percent, &actor).await {
                Ok(()) => format!("The canary now decides {percent}% of traffic."),
                Err(error) => format!("Not changed: {error}"),
            }
        },
    )
    .await
}

/// Promotes the canary, as `POST /v1/rules/canary/promote` would.
async fn canary_promote(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    use crate::registry::live::ReloadOutcome;
    let service = &state.service;
    rules_action(
        &state,
        &headers,
        &form.csrf,
        "promoting the canary",
        |actor| async move {
            match service.promote_canary(&actor).await {
                Ok(ReloadOutcome::Swapped { to, .. }) => format!("Promoted: {to} is live."),
                Ok(ReloadOutcome::Unchanged { version }) => {
                    format!("Unchanged: {version} stays live.")
                }
                Ok(ReloadOutcome::Rejected(rejected)) => format!(
                    "Written, but the rules directory does not load, so the live set stays: {}",
                    rejected.error
                ),
                Err(error) => format!("Not promoted: {error}"),
            }
        },
    )
    .await
}

/// Removes the canary, as `DELETE /v1/rules/canary` would.
async fn canary_remove(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let service = &state.service;
    rules_action(
        &state,
        &headers,
        &form.csrf,
        "removing the canary",
        |actor| async move {
            match service.remove_canary(&actor).await {
                Ok(()) => "Removed: the live set decides every payment.".to_owned(),
                Err(error) => format!("Not removed: {error}"),
            }
        },
    )
    .await
}

/// An operator's action on the rules page: the session, its CSRF token and the operator
/// role checked as for any post, then `act` with the actor's name (`console:KEY-NAME`),
/// and what it says shown on the rules page (POST-redirect-GET).
async fn rules_action<F>(
    state: &AppState,
    headers: &HeaderMap,
    csrf: &str,
    what: &str,
    act: impl FnOnce(String) -> F,
) -> Response
where
    F: std::future::Future<Output = String>,
{
    let (session_id, session) = match posted(state, headers, csrf, &[Role::Operator], "Rules", what)
    {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let notice = act(format!("console:{}", session.principal.name)).await;
    state.console_sessions.flash(&session_id, notice);
    Redirect::to("/console/rules").into_response()
}

/// Rescans the rules directory now, as the watcher would; the outcome shows on the rules
/// page.
async fn reload(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    use crate::registry::live::ReloadOutcome;
    let service = &state.service;
    rules_action(
        &state,
        &headers,
        &form.csrf,
        "reloading the rules",
        |trigger| async move {
            match service.reload(&trigger).await {
                ReloadOutcome::Unchanged { version } => {
                    format!("Unchanged: the directory holds the live set ({version}).")
                }
                ReloadOutcome::Swapped { from, to, .. } => format!("Swapped: {from} → {to}."),
                ReloadOutcome::Rejected(rejected) => {
                    format!("Refused, nothing changed live: {}", rejected.error)
                }
            }
        },
    )
    .await
}

/// The form of a rollback: the version to make live again.
#[derive(Deserialize)]
struct RollbackForm {
    csrf: String,
    version: String,
}

/// Makes a kept version live again, as `POST /v1/rules/rollback` would; the outcome shows
/// on the rules page.
async fn rollback(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<RollbackForm>,
) -> Response {
    let service = &state.service;
    let version = form.version;
    rules_action(
        &state,
        &headers,
        &form.csrf,
        "rolling the rules back",
        |actor| async move {
            match service.rollback(Some(version), &actor).await {
                Ok(done) => format!(
                    "Rolled back: {} → {} ({} ms, {} compiled).",
                    done.from, done.to, done.load_ms, done.compiled
                ),
                Err(error) => format!("Not rolled back, nothing changed live: {error}"),
            }
        },
    )
    .await
}

/// Ends the rollback in force, as `DELETE /v1/rules/rollback` would.
async fn release_rollback(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    use crate::registry::live::ReloadOutcome;
    let service = &state.service;
    rules_action(
        &state,
        &headers,
        &form.csrf,
        "releasing the rollback",
        |actor| async move {
            match service.release_rollback(&actor).await {
                Ok(ReloadOutcome::Swapped { from, to, .. }) => {
                    format!("Released: the directory's {to} is live again (was {from}).")
                }
                Ok(ReloadOutcome::Unchanged { version }) => {
                    format!("Released: {version} stays live (the directory holds it).")
                }
                Ok(ReloadOutcome::Rejected(rejected)) => format!(
                    "Released, but the directory does not load, so the live set stays: {}",
                    rejected.error
                ),
                Err(error) => format!("Not released: {error}"),
            }
        },
    )
    .await
}

#[derive(Template)]
#[template(path = "console/shadow.html")]
struct ShadowPage {
    frame: Frame,
    /// The shadow set: version, directory, rules.
    about: String,
    report: crate::compare::Comparison,
    /// The share of compared payments that would change, in words.
    changed_share: String,
}

/// The shadow set's decisions beside the live ones, as `GET /v1/rules/shadow/report`.
async fn shadow_report(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let (session_id, session) = match viewer(
        &state,
        &headers,
        &[Role::Operator, Role::Auditor],
        "Shadow report",
        "reading the shadow report",
    ) {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let Some(installed) = state.service.shadow().installed() else {
        state
            .console_sessions
            .flash(&session_id, "No shadow set runs.".to_owned());
        return Redirect::to("/console/rules").into_response();
    };
    let report = match state
        .service
        .shadow_report(installed.rules.version.clone())
        .await
    {
        Ok(report) => report,
        Err(error) => return unavailable(&error),
    };
    let changed_share = match report.compared {
        0 => "nothing compared yet".to_owned(),
        compared => format!(
            "{} of {compared} would change ({}.{}%)",
            report.changed,
            report.changed * 100 / compared,
            report.changed * 1000 / compared % 10
        ),
    };
    page(&ShadowPage {
        frame: Frame::of(
            &session,
            "Shadow report",
            state.console_sessions.take_flash(&session_id),
        ),
        about: format!(
            "{} from {}, {} rules",
            installed.rules.version,
            installed.dir.display(),
            installed.rules.rules().len()
        ),
        report,
        changed_share,
    })
}

#[derive(Template)]
#[template(path = "console/reproduction.html")]
struct ReproductionPage {
    frame: Frame,
    payment_id: String,
    rule_set_version: String,
    /// `Same decision` or what differs.
    verdict: String,
    differences: Vec<String>,
    velocity_payments: usize,
    rules: Vec<ReproducedRule>,
}

/// One rule's part, recorded and reproduced.
struct ReproducedRule {
    name: String,
    recorded: String,
    reproduced: String,
    recorded_fuel: u64,
    reproduced_fuel: u64,
}

/// A past decision decided again by the rule set that made it, as
/// `GET /v1/payments/{id}/reproduction` does.
async fn reproduction(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    use crate::service::reproduce::ReproduceError;
    let (session_id, session) = match viewer(
        &state,
        &headers,
        &[Role::Reviewer, Role::Auditor],
        "Reproduction",
        "reproducing decisions",
    ) {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    if !is_payment_id(&id) {
        return (StatusCode::NOT_FOUND, "no such payment").into_response();
    }
    let done = match state.service.reproduce(&id).await {
        Ok(done) => done,
        Err(ReproduceError::Service(ServiceError::NotFound)) => {
            return (StatusCode::NOT_FOUND, "no such payment").into_response();
        }
        Err(ReproduceError::Service(error)) => return unavailable(&error),
        Err(error) => {
            state
                .console_sessions
                .flash(&session_id, format!("Not reproduced: {error}"));
            return Redirect::to(&format!("/console/payments/{id}")).into_response();
        }
    };
    let outcome = |run: Option<&crate::model::RuleRun>| {
        run.map_or_else(|| "did not run".to_owned(), |r| r.outcome.summary())
    };
    let count = done.recorded.rules.len().max(done.reproduced.rules.len());
    let rules = (0..count)
        .map(|index| {
            let (a, b) = (
                done.recorded.rules.get(index),
                done.reproduced.rules.get(index),
            );
            ReproducedRule {
                name: a.or(b).map(|r| r.name.clone()).unwrap_or_default(),
                recorded: outcome(a),
                reproduced: outcome(b),
                recorded_fuel: a.map_or(0, |r| r.fuel_used),
                reproduced_fuel: b.map_or(0, |r| r.fuel_used),
            }
        })
        .collect();
    page(&ReproductionPage {
        frame: Frame::of(
            &session,
            "Reproduction",
            state.console_sessions.take_flash(&session_id),
        ),
        verdict: if done.same {
            "Same decision: the rule set that made it decides it again as recorded.".to_owned()
        } else {
            format!("Differs in {} ways.", done.differences.len())
        },
        payment_id: done.payment_id,
        rule_set_version: done.rule_set_version,
        differences: done.differences,
        velocity_payments: done.velocity_payments,
        rules,
    })
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    frame: Frame,
    entries: Vec<EntryRow>,
    next: Option<i64>,
}

struct EntryRow {
    seq: i64,
    at: String,
    actor: String,
    action: String,
    subject: String,
    detail: String,
}

/// Entries of the audit log shown per page.
const AUDIT_PAGE: u32 = 100;
/// The most of an entry's detail shown, characters.
const DETAIL_CHARS_MAX: usize = 240;

#[derive(Deserialize)]
struct AuditParams {
    after: Option<i64>,
}

/// The audit log, oldest first, a page at a time.
async fn audit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<AuditParams>,
) -> Response {
    let (session_id, session) = match viewer(
        &state,
        &headers,
        &[Role::Auditor],
        "Audit log",
        "reading the audit log",
    ) {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let after = params.after.unwrap_or(0).max(0);
    let entries = match state.service.audit(after, AUDIT_PAGE).await {
        Ok(entries) => entries,
        Err(error) => return unavailable(&error),
    };
    let next = (entries.len() == AUDIT_PAGE as usize)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    page(&AuditPage {
        frame: Frame::of(
            &session,
            "Audit log",
            state.console_sessions.take_flash(&session_id),
        ),
        entries: entries
            .into_iter()
            .map(|e| EntryRow {
                seq: e.seq,
                at: instant(e.at_unix_ms),
                actor: e.actor,
                action: e.action,
                subject: e.subject,
                detail: e.detail.chars().take(DETAIL_CHARS_MAX).collect(),
            })
            .collect(),
        next,
    })
}

/// Checks the whole chain, as `payrules audit verify` does; the verdict shows on the page.
async fn verify_audit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (session_id, _) = match posted(
        &state,
        &headers,
        &form.csrf,
        &[Role::Auditor],
        "Audit log",
        "checking the audit log",
    ) {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let notice = match state.service.verify_audit().await {
        Ok(Some(Ok(verified))) => format!(
            "Intact: {} entries checked, every payment and review matches its entry{}.",
            verified.entries,
            verified
                .last_checkpoint
                .map(|seq| format!(", the chain passes the last checkpoint (entry {seq})"))
                .unwrap_or_default()
        ),
        Ok(Some(Err(fault))) => format!("BROKEN: {fault}"),
        Ok(None) => "This host has no audit keys to check with.".to_owned(),
        Err(error) => {
            tracing::error!("the audit chain could not be checked: {error}");
            "Not checked: the store could not be read (the log says why); try again.".to_owned()
        }
    };
    state.console_sessions.flash(&session_id, notice);
    Redirect::to("/console/audit").into_response()
}
