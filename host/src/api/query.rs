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
