//! The one error type of the HTTP edge.
//!
//! Every error answers `{"error": {"code", "message", "field"}}`: a stable machine code
//! that reads as a sentence, one human sentence, and the path of the field at fault when
//! there is one. Internal failures are logged with their detail and answered with a
//! generic message.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::model::InvalidPayment;
use crate::service::ServiceError;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorDetail,
    retry_after_s: Option<u32>,
    authenticate: bool,
    /// The key's rate, for a 429's `RateLimit-Policy` and `RateLimit` headers.
    rate_limit: Option<Box<super::rate::Limited>>,
}

/// The body of every error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine code, e.g. `amount_must_be_positive`, `idempotency_key_missing`.
    pub code: String,
    /// One sentence for people.
    pub message: String,
    /// The path of the field at fault (`debtor.account.iban`), or the header or query
    /// parameter; absent when the error is not about one field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The ISO 20022 status reason code for a payment refused before any rule saw it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
}

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorDetail {
                code: code.to_owned(),
                message: message.into(),
                field: None,
                reason_code: None,
            },
            retry_after_s: None,
            authenticate: false,
            rate_limit: None,
        }
    }

    /// The same error, about `field`.
    pub fn field(mut self, field: impl Into<String>) -> ApiError {
        self.body.field = Some(field.into());
        self
    }

    /// The same error, with the ISO 20022 status reason code that names its cause.
    pub fn reason_code(mut self, code: &str) -> ApiError {
        self.body.reason_code = Some(code.to_owned());
        self
    }

    /// The same error, telling the client to retry after `seconds`.
    pub fn retry_after(mut self, seconds: u32) -> ApiError {
        self.retry_after_s = Some(seconds);
        self
    }

    /// 429: the key is past its rate; with `Retry-After` and the IETF `RateLimit-Policy`
    /// (quota per window) and `RateLimit` (none left, window reset) headers.
    pub fn rate_limited(limited: &super::rate::Limited) -> ApiError {
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "this API {} may send {} requests a second (bursts of {}); retry after {} s",
                if limited.policy == "tenant" {
                    "key's tenant"
                } else {
                    "key"
                },
                limited.per_second,
                limited.burst,
                limited.retry_after_seconds
            ),
        )
        .retry_after(limited.retry_after_seconds);
        error.rate_limit = Some(Box::new(limited.clone()));
        error
    }

    /// 400: the request cannot be read.
    pub fn bad_request(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no key, or not a key we know.
    pub fn unauthenticated(message: &str) -> ApiError {
        let mut error = ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message);
        error.authenticate = true;
        error
    }

    /// 404.
    pub fn not_found(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 503, with `Retry-After`.
    pub fn unavailable(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message).retry_after(1)
    }

    /// 500: a failure of ours. `detail` is logged, never returned.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!("internal error: {detail}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the service failed; the request may be retried with the same idempotency key",
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine code.
    pub fn code(&self) -> &str {
        &self.body.code
    }

    /// The sentence for people.
    pub fn message(&self) -> &str {
        &self.body.message
    }
}

/// The answers every operation shares. The two that depend on what was submitted (a key
/// in flight, a key reused) are mapped by the handler, which knows the field's name; here
/// they are a bug (500). The review's refusals are the review operation's only.
impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Unavailable(reason) => {
                tracing::warn!("the store is unavailable: {reason}");
                ApiError::unavailable(
                    "store_unavailable",
                    "the database cannot be reached right now; retry with the same \
                     idempotency key",
                )
            }
            ServiceError::ShuttingDown => ApiError::unavailable(
                "shutting_down",
                "the service is shutting down; retry with the same idempotency key",
            ),
            ServiceError::NotFound => ApiError::not_found("payment_not_found", "no such payment"),
            ServiceError::NotHeld { status } => ApiError::new(
                StatusCode::CONFLICT,
                "payment_not_held",
                format!(
                    "the payment was {}, not held for review: only a pending_review payment \
                     can be reviewed",
                    status.name()
                ),
            ),
            ServiceError::AlreadyReviewed(review) => ApiError::new(
                StatusCode::CONFLICT,
                "payment_already_reviewed",
                format!(
                    "the payment was reviewed already: {} by {}{}; a payment is reviewed once",
                    review.verdict.name(),
                    review.reviewer,
                    if review.expired {
                        " at the review deadline"
                    } else {
                        ""
                    }
                ),
            ),
            ServiceError::Erased => ApiError::new(
                StatusCode::GONE,
                "personal_data_erased",
                "the payment's personal data was erased at the end of its retention \
                 (personal_data.retention_days); its summary is still listed",
            ),
            ServiceError::OwnPayment => ApiError::new(
                StatusCode::FORBIDDEN,
                "four_eyes_own_payment",
                "four eyes: this key submitted the payment, so another reviewer must review it",
            ),
            ServiceError::Invalid {
                field,
                code,
                message,
            } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).field(field),
            other @ (ServiceError::InFlight
            | ServiceError::KeyReused { .. }
            | ServiceError::Internal(_)) => ApiError::internal(other),
        }
    }
}

impl From<InvalidPayment> for ApiError {
    /// A payment refused while read: malformed JSON is 400, a valid document with a bad
    /// value is 422; the code names the cause.
    fn from(invalid: InvalidPayment) -> ApiError {
        let (status, code) = payment_error_code(&invalid);
        let mut error = ApiError::new(status, code, invalid.reason.clone());
        if !invalid.field.is_empty() && !invalid.malformed {
            error.body.field = Some(invalid.field.clone());
        }
        error.body.reason_code = Some(invalid.code.to_owned());
        error
    }
}

/// The status and machine code for a refused payment.
fn payment_error_code(invalid: &InvalidPayment) -> (StatusCode, &'static str) {
    let reason = invalid.reason.as_str();
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    if invalid.malformed {
        return (StatusCode::BAD_REQUEST, "malformed_json");
    }
    if reason.starts_with("missing field") {
        return (unprocessable, "field_missing");
    }
    if reason.starts_with("unknown field") {
        return (unprocessable, "field_unknown");
    }
    if reason.starts_with("invalid type") {
        return (unprocessable, "field_type_invalid");
    }
    let code = match invalid.code {
        "AM01" => "amount_must_be_positive",
        "AM12" if reason.contains("not a plain decimal") => "amount_not_a_plain_decimal",
        "AM12" if reason.contains("more decimals") => "amount_has_too_many_decimals",
        "AM12" if reason.contains("digits") => "amount_has_too_many_digits",
        "AM12" => "amount_invalid",
        "AM11" => "currency_unknown",
        "AC01" if invalid.field.ends_with("iban") => "iban_invalid",
        "AC01" => "account_invalid",
        "AC02" | "AC03" => "account_missing",
        "RC01" => "bic_invalid",
        "RC08" => "member_id_invalid",
        "RC03" | "RC04" => "agent_missing",
        "BE08" | "BE22" => "party_name_missing",
        "BE09" => "country_invalid",
        "DT01" => "date_invalid",
        "FF08" => "end_to_end_id_invalid",
        "CH17" => "ultimate_party_has_account",
        _ => "field_invalid",
    };
    (unprocessable, code)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(ErrorBody { error: self.body })).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(limited) = self.rate_limit {
            let policy = format!("\"{}\";q={};w=1", limited.policy, limited.per_second);
            let state = format!(
                "\"{}\";r=0;t={}",
                limited.policy, limited.retry_after_seconds
            );
            for (name, value) in [("ratelimit-policy", policy), ("ratelimit", state)] {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(name, value);
                }
            }
        }
        if self.authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"payrules\""),
            );
        }
        response
    }
}
