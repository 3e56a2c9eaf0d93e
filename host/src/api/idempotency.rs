//! The `Idempotency-Key` header (IETF draft): read and checked here; what a key means
//! (claims, replays) is the service's ([`crate::service::payments`]).

use axum::http::HeaderMap;

use super::error::ApiError;

/// The header.
pub const HEADER: &str = "idempotency-key";
/// The longest key accepted.
pub const KEY_BYTES_MAX: usize = 255;

/// Reads the key: a structured-field string (`"…"`, as the draft writes it) or the same
/// characters bare, 1 to 255 visible ASCII characters.
pub fn key(headers: &HeaderMap) -> Result<String, ApiError> {
    let invalid = |why: &str| {
        ApiError::bad_request("idempotency_key_invalid", format!("Idempotency-Key {why}"))
            .field("Idempotency-Key")
    };
    let mut values = headers.get_all(HEADER).iter();
    let Some(value) = values.next() else {
        return Err(ApiError::bad_request(
            "idempotency_key_missing",
            "send an Idempotency-Key header (a unique string per payment) so retries are safe",
        )
        .field("Idempotency-Key"));
    };
    if values.next().is_some() {
        return Err(invalid("must be sent once"));
    }
    let text = value
        .to_str()
        .map_err(|_| invalid("must be visible ASCII"))?
        .trim();
    let text = match text.strip_prefix('"') {
        Some(rest) => rest
            .strip_suffix('"')
            .ok_or_else(|| invalid("opens a quoted string it does not close"))?,
        None => text,
    };
    if text.is_empty() || text.len() > KEY_BYTES_MAX {
        return Err(invalid("must have 1 to 255 characters"));
    }
    if !text
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        return Err(invalid(
            "must be visible ASCII without quotes or backslashes",
        ));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(value: &str) -> Result<String, String> {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, value.parse().unwrap());
        key(&headers).map_err(|e| e.code().to_owned())
    }

    #[test]
    fn keys_are_read_quoted_or_bare() {
        assert_eq!(read("\"8e03978e-40d5\"").unwrap(), "8e03978e-40d5");
        assert_eq!(read("order-42").unwrap(), "order-42");
        for bad in ["\"\"", "\"open", "a b", &"k".repeat(256)] {
            assert_eq!(read(bad).unwrap_err(), "idempotency_key_invalid", "{bad}");
        }
        assert_eq!(
            key(&HeaderMap::new()).unwrap_err().code(),
            "idempotency_key_missing"
        );
    }
}
