//! ISO 20022 over HTTP: `POST /v1/payments` with `Content-Type: application/xml`, and
//! `GET /v1/messages/{msg_id}/status`.
//!
//! The body is a whole pacs.008 or pain.001, read here and decided by the service
//! ([`crate::service::messages`]), then answered with a status report — a pacs.002 for a
//! pacs.008, a pain.002 for a pain.001 — or, with `Accept: application/json`, as JSON
//! with every decision. Once the transactions held for review are reviewed, the
//! message's status is the report followed up with their outcomes.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use super::auth::{DecisionView, Principal};
use super::error::{ApiError, ErrorBody};
use super::payments::{REPLAYED, read_body};
use crate::config::Role;
use crate::iso20022::report::{StatusReport, TxReport};
use crate::iso20022::{self, IsoError};
use crate::model::Decision;
use crate::service::ServiceError;

/// Handles an XML submission (the caller has checked the role and content type).
pub async fn submit(
    state: &Arc<AppState>,
    principal: &Principal,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let answer_json = wants_json(headers);
    let body = read_body(body, state.limits.body_bytes_max).await?;
    let message = iso20022::parse(&body).map_err(refused)?;
    let answer = state
        .service
        .submit_message(&principal.name, message, answer_json)
        .await
        .map_err(|error| match error {
            ServiceError::InFlight => ApiError::new(
                StatusCode::CONFLICT,
                "message_in_flight",
                "a message with this MsgId is being decided; retry to get its report",
            )
            .field("MsgId")
            .retry_after(1),
            ServiceError::KeyReused { previous } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "message_id_reused",
                format!("MsgId {previous} was used for another message; give each message its own"),
            )
            .field("MsgId"),
            other => other.into(),
        })?;
    let status = if answer.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut response = respond(
        status,
        principal,
        answer.report,
        answer_json,
        answer.decisions,
    );
    if answer.replayed {
        response
            .headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The status of an ISO 20022 message this key sent, now: its status report (a pacs.002
/// for a pacs.008, a pain.002 for a pain.001), with each transaction that was held for
/// review and has been reviewed since given its outcome (`ACSP` or `RJCT` with the
/// reason code), under a report id of its own. `Accept: application/json` gives JSON.
#[utoipa::path(
    get,
    path = "/v1/messages/{msg_id}/status",
    tag = "payments",
    params(("msg_id" = String, Path, min_length = 1, max_length = 35,
        description = "The message's GrpHdr/MsgId (percent-encoded in the path)")),
    responses(
        (status = 200, description = "The message's status report: pacs.002.001.10 or pain.002.001.10 (XML), or JSON",
            content((String = "application/xml"), (String = "application/json"))),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Not a submitter", body = ErrorBody),
        (status = 404, description = "This key sent no message with that MsgId", body = ErrorBody),
        (status = 410, description = "The report's personal data was erased at the end of its retention", body = ErrorBody),
        (status = 503, description = "The store is unavailable; retry", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn status(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    Path(message_id): Path<String>,
) -> Result<Response, ApiError> {
    principal.require(&[Role::Submitter])?;
    let not_found = || {
        ApiError::not_found(
            "message_not_found",
            "this API key sent no message with that MsgId",
        )
    };
    if message_id.is_empty() || message_id.chars().count() > 35 {
        return Err(not_found());
    }
    let report = state
        .service
        .message_status(&principal.name, &message_id)
        .await?
        .ok_or_else(not_found)?;
    Ok(respond(
        StatusCode::OK,
        &principal,
        report,
        wants_json(headers),
        std::collections::HashMap::new(),
    ))
}

/// Whether the client asked for JSON rather than the status report's XML.
fn wants_json(headers: impl std::borrow::Borrow<HeaderMap>) -> bool {
    let headers = headers.borrow();
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept.contains("application/json") && !accept.contains("xml")
}

/// A message refused as a whole: 400 when it is not a readable pacs.008 or pain.001
/// (FF01), 422 when it contradicts itself (AM18, AM10, ...).
fn refused(error: IsoError) -> ApiError {
    let status = if error.code == "FF01" {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let mut api = ApiError::new(status, "message_refused", error.message).reason_code(error.code);
    if let Some(path) = error.path {
        api = api.field(path);
    }
    api
}

/// The JSON answer: the report, and each decided transaction's decision.
#[derive(Serialize)]
struct JsonReport<'a> {
    report_id: &'a str,
    original_message_id: &'a str,
    original_message_type: &'a str,
    group_status: &'a str,
    transactions: Vec<JsonTransaction<'a>>,
}

#[derive(Serialize)]
struct JsonTransaction<'a> {
    #[serde(flatten)]
    line: &'a TxReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<DecisionView>,
}

/// The answer, as `principal` may see it: a submitting system gets each decided
/// transaction's reason codes without the rules' messages (in `AddtlInf` and in JSON), as
/// it gets decisions.
fn respond(
    status: StatusCode,
    principal: &Principal,
    mut report: StatusReport,
    answer_json: bool,
    mut decisions: std::collections::HashMap<String, Decision>,
) -> Response {
    // A transaction refused before any rule saw it keeps its message: it is about the
    // client's own input (an IBAN's check digits).
    if !principal.sees_whole_decisions() {
        for line in report
            .transactions
            .iter_mut()
            .filter(|line| line.payment_id.is_some())
        {
            for reason in &mut line.reasons {
                reason.message.clear();
            }
        }
    }
    if answer_json {
        let body = JsonReport {
            report_id: &report.report_id,
            original_message_id: &report.original_message_id,
            original_message_type: &report.original_message_type,
            group_status: report.group_status(),
            transactions: report
                .transactions
                .iter()
                .map(|line| JsonTransaction {
                    line,
                    decision: line
                        .payment_id
                        .as_deref()
                        .and_then(|id| decisions.remove(id))
                        .map(|decision| principal.view(decision)),
                })
                .collect(),
        };
        return (status, Json(body)).into_response();
    }
    (
        status,
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        report.to_xml(),
    )
        .into_response()
}
