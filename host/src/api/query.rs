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
/// epoch, or 400 `FIELD_invalid` (`since_invalid`, `until_invalid`) about `field`.
pub fn instant(text: &str, field: &str) -> Result<i64, ApiError> {
    humantime::parse_rfc3339(text)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                &format!("{field}_invalid"),
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

/// The longest end-to-end id ISO 20022 allows (Max35Text).
pub const END_TO_END_ID_CHARS_MAX: usize = 35;

/// An end-to-end id to search for: 1 to 35 characters, or 400 `end_to_end_id_invalid`.
pub fn end_to_end_id(text: &str) -> Result<String, ApiError> {
    let chars = text.chars().count();
    if chars == 0 || chars > END_TO_END_ID_CHARS_MAX {
        return Err(ApiError::bad_request(
            "end_to_end_id_invalid",
            format!("end_to_end_id must be 1 to {END_TO_END_ID_CHARS_MAX} characters"),
        )
        .field("end_to_end_id"));
    }
    Ok(text.to_owned())
}

/// A rule-set version or its first digits: 4 to 64 lowercase hex digits, or 400
/// `rule_set_version_invalid`.
pub fn rule_set_version(text: &str) -> Result<String, ApiError> {
    let hex = (4..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex {
        return Err(ApiError::bad_request(
            "rule_set_version_invalid",
            "rule_set_version must be 4 to 64 lowercase hex digits (a version or its start)",
        )
        .field("rule_set_version"));
    }
    Ok(text.to_owned())
}

/// A rule's name: 1 to 64 letters, digits, `-` or `_`, or 400 `rule_invalid`.
pub fn rule_name(text: &str) -> Result<String, ApiError> {
    let plain = (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !plain {
        return Err(ApiError::bad_request(
            "rule_invalid",
            "rule must be a rule's name: 1 to 64 letters, digits, - or _",
        )
        .field("rule"));
    }
    Ok(text.to_owned())
}
