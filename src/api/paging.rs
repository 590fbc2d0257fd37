//! Page size and cursor parameters shared by the listings of dead letters and delivery attempts.

use super::problem::ApiError;

/// Page size when none is asked for.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest page.
pub const MAX_LIMIT: u32 = 1000;

/// The page size asked for, from 1 to [`MAX_LIMIT`] (default [`DEFAULT_LIMIT`]).
pub fn limit(asked: Option<u32>) -> Result<u32, ApiError> {
    let limit = asked.unwrap_or(DEFAULT_LIMIT);
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::BadRequest(format!(
            "limit must be from 1 to {MAX_LIMIT}"
        )))
    }
}

/// The position a `cursor` parameter (a previous page's `next_cursor`) stands for.
pub fn cursor(asked: Option<&str>) -> Result<Option<i64>, ApiError> {
    asked
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|position| *position >= 0)
                .ok_or_else(|| {
                    ApiError::BadRequest("cursor must be a next_cursor from a previous page".into())
                })
        })
        .transpose()
}
