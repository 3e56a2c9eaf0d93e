//! ISO 20022 over HTTP: `POST /v1/payments` with `Content-Type: application/xml`.
//!
//! The body is a whole pacs.008 or pain.001. Each of its transactions becomes a payment;
//! those valid are decided (on every decider at once), those not are rejected with the
//! reason code of their first fault. All of it is committed in one transaction with the
//! status report, then answered as a pacs.002 (the default) or, with `Accept:
//! application/json`, as JSON with every decision. The message's MsgId is its idempotency
//! key (scoped per API key): the same message again gets the same report; another
//! message under a used MsgId is refused.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use super::auth::Principal;
use super::error::ApiError;
use super::payments::{REPLAYED, new_payment_id, read_body};
use crate::iso20022::report::{StatusReason, StatusReport, TxReport, TxStatus};
use crate::iso20022::{self, IsoError, RawPayment};
use crate::model::{Decision, Payment, Status, Uetr};
use crate::store::{IdempotencyClaim, NewDecision, NewMessage, StoreError, now_unix_ms};

/// The idempotency key of a message: its MsgId, in a namespace of its own.
fn key_of(message_id: &str) -> String {
    format!("iso20022:{message_id}")
}

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
    let canonical = serde_json::to_vec(&message).map_err(ApiError::internal)?;
    let fingerprint = state.store.fingerprint(&canonical);
    let key = key_of(&message.message_id);

    let Some(_claim) = state.in_flight.claim(&principal.name, &key) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "message_in_flight",
            "a message with this MsgId is being decided; retry to get its report",
        )
        .field("MsgId")
        .retry_after(1));
    };
    if let Some(answer) = replay(
        state,
        principal,
        &message.message_id,
        &fingerprint,
        answer_json,
    )
    .await?
    {
        return Ok(answer);
    }

    let rules = state.rule_set();
    let received_at = now_unix_ms();
    let mut pending = Vec::with_capacity(message.payments.len());
    for raw in &message.payments {
        let line = TxReport {
            payment_id: None,
            instruction_id: raw.instruction_id.as_deref().map(max35),
            end_to_end_id: raw.end_to_end_id.as_deref().map(max35),
            uetr: raw
                .uetr
                .clone()
                .filter(|u| Uetr::try_from(u.clone()).is_ok()),
            status: TxStatus::Rejected,
            reasons: Vec::new(),
        };
        match canonical_payment(raw) {
            Ok(payment) => {
                let payment_id = new_payment_id()?;
                let answer = state
                    .deciders
                    .enqueue(Arc::clone(&rules), payment, payment_id.clone(), received_at)
                    .map_err(ApiError::internal)?;
                pending.push((line, Some((payment_id, answer))));
            }
            Err(reason) => {
                let mut line = line;
                line.reasons.push(reason);
                pending.push((line, None));
            }
        }
    }
    let mut lines = Vec::with_capacity(pending.len());
    let mut decisions = Vec::new();
    for (mut line, decided) in pending {
        if let Some((payment_id, answer)) = decided {
            let (payment, decision) = answer.await.map_err(ApiError::internal)?;
            line.payment_id = Some(payment_id.clone());
            line.status = match decision.status {
                Status::Accepted => TxStatus::AcceptedSettlementInProcess,
                Status::PendingReview => TxStatus::Pending,
                Status::Rejected => TxStatus::Rejected,
            };
            line.reasons = decision
                .reasons
                .iter()
                .map(|r| StatusReason {
                    code: r.code.clone(),
                    message: r.message.clone(),
                })
                .collect();
            decisions.push(NewDecision {
                payment_id,
                received_at_unix_ms: received_at,
                submitted_by: principal.name.to_string(),
                payment,
                decision,
                idempotency: IdempotencyClaim {
                    principal: principal.name.to_string(),
                    key: key.clone(),
                    fingerprint,
                },
            });
        }
        lines.push(line);
    }
    let report = StatusReport {
        report_id: new_payment_id()?.replacen("pay_", "PR", 1),
        created_at_unix_ms: now_unix_ms(),
        original_message_id: message.message_id.clone(),
        original_message_type: message.message_type.clone(),
        transactions: lines,
    };
    let decided: Vec<Decision> = decisions.iter().map(|d| d.decision.clone()).collect();
    // The shadow set, if any, decides them once the live answers are on disk.
    let for_shadow: Vec<Payment> = if state.shadow.is_installed() {
        decisions.iter().map(|d| d.payment.clone()).collect()
    } else {
        Vec::new()
    };
    let record = NewMessage {
        principal: principal.name.to_string(),
        message_id: message.message_id.clone(),
        fingerprint,
        received_at_unix_ms: received_at,
        decisions,
        report: serde_json::to_string(&report).map_err(ApiError::internal)?,
    };
    match state.store.commit_message(record).await {
        Ok(()) => {}
        Err(StoreError::KeyTaken) => {
            return replay(
                state,
                principal,
                &message.message_id,
                &fingerprint,
                answer_json,
            )
            .await?
            .ok_or_else(|| ApiError::internal("a message id was taken, then vanished"));
        }
        Err(StoreError::Closed) => {
            return Err(ApiError::unavailable(
                "shutting_down",
                "the service is shutting down; send the message again",
            ));
        }
        Err(error) => return Err(ApiError::internal(error)),
    }
    for decision in &decided {
        state.metrics.decision(decision);
    }
    for (payment, decision) in for_shadow.into_iter().zip(&decided) {
        state.shadow.after(payment, decision);
    }
    tracing::info!(
        message_id = %message.message_id,
        transactions = report.transactions.len(),
        group_status = report.group_status(),
        "message decided"
    );
    let decisions = decided
        .into_iter()
        .map(|d| (d.payment_id.clone(), d))
        .collect();
    Ok(respond(
        StatusCode::CREATED,
        &report,
        answer_json,
        decisions,
    ))
}

/// The stored report for a MsgId already used: the same report for the same message,
/// 422 for another.
async fn replay(
    state: &AppState,
    principal: &Principal,
    message_id: &str,
    fingerprint: &[u8; 32],
    answer_json: bool,
) -> Result<Option<Response>, ApiError> {
    let Some(stored) = state
        .store
        .message(&principal.name, message_id)
        .await
        .map_err(ApiError::internal)?
    else {
        return Ok(None);
    };
    if &stored.fingerprint != fingerprint {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "message_id_reused",
            format!("MsgId {message_id} was used for another message; give each message its own"),
        )
        .field("MsgId"));
    }
    let report: StatusReport = serde_json::from_str(&stored.report).map_err(ApiError::internal)?;
    let mut decisions = std::collections::HashMap::new();
    if answer_json {
        for id in report
            .transactions
            .iter()
            .filter_map(|t| t.payment_id.as_deref())
        {
            if let Some(stored) = state.store.payment(id).await.map_err(ApiError::internal)? {
                decisions.insert(id.to_owned(), stored.decision);
            }
        }
    }
    state.metrics.replay();
    let mut response = respond(StatusCode::OK, &report, answer_json, decisions);
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    Ok(Some(response))
}

/// A raw transaction as a validated payment, or the reason it is not one.
fn canonical_payment(raw: &RawPayment) -> Result<Payment, StatusReason> {
    let json = serde_json::to_string(raw).map_err(|e| StatusReason {
        code: "FF01".to_owned(),
        message: e.to_string(),
    })?;
    Payment::from_json(&json).map_err(|invalid| StatusReason {
        code: invalid.code.to_owned(),
        message: if invalid.field.is_empty() {
            invalid.reason
        } else {
            format!("{}: {}", invalid.field, invalid.reason)
        },
    })
}

fn max35(text: &str) -> String {
    text.chars().take(35).collect()
}

/// Whether the client asked for JSON rather than the pacs.002.
fn wants_json(headers: &HeaderMap) -> bool {
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
    decision: Option<Decision>,
}

fn respond(
    status: StatusCode,
    report: &StatusReport,
    answer_json: bool,
    mut decisions: std::collections::HashMap<String, Decision>,
) -> Response {
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
                        .and_then(|id| decisions.remove(id)),
                })
                .collect(),
        };
        return (status, Json(body)).into_response();
    }
    (
        status,
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        report.to_pacs002(),
    )
        .into_response()
}
