//! Query strings: one way to read them and to bound a page size.

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;

use super::error::ApiError;
use crate::store::LIST_LIMIT_MAX;

/// The parameters, or 400 `query_invalid` saying which one is wrong and why.
pub fn params<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(params)| params)
        .map_err(|e| ApiError::bad_request("query_invalid", e.body_text()))
}

/// A page size: `default` when absent, else 1 to [`LIST_LIMIT_MAX`] or 400
/// `limit_invalid`.
pub fn limit(limit: Option<u32>, default: u32) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(default);
    if !(1..=LIST_LIMIT_MAX).contains(&limit) {
        return Err(ApiError::bad_request(
            "limit_invalid",
            format!("limit must be between 1 and {LIST_LIMIT_MAX}"),
        )
        .field("limit"));
    }
    Ok(limit)
}

/// An instant given as RFC 3339 in UTC (`2026-11-22T08:00:00Z`), in ms since the Unix
/// epoch, or 400 `since_invalid` about `field`.
pub fn instant(text: &str, field: &str) -> Result<i64, ApiError> {
    humantime::parse_rfc3339(text)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "since_invalid",
                format!("{field} must be an RFC 3339 instant in UTC, e.g. 2026-11-22T08:00:00Z"),
            )
            .field(field)
        })
}

/// A page cursor (the `next_cursor` of a previous page), or 400 `cursor_invalid`.
pub fn cursor(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>().ok().filter(|c| *c > 0).ok_or_else(|| {
        ApiError::bad_request(
            "cursor_invalid",
            "cursor must be the next_cursor of a previous page",
        )
        .field("cursor")
    })
}
