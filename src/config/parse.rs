//! Reading one variable: lookups with the table's defaults, and the parsers of each form of
//! value (whole numbers, booleans, durations, URLs), each failing with a [`ConfigError`] that
//! names the variable and the expected form.

use std::time::Duration;

use super::ConfigError;
use super::settings::SETTINGS;

/// Environment lookups with defaults from [`SETTINGS`].
pub(super) struct Vars<'a> {
    pub(super) lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Vars<'_> {
    /// The variable's value, or its default from the table.
    pub(super) fn raw(&self, name: &'static str) -> String {
        (self.lookup)(name).unwrap_or_else(|| default_of(name).to_string())
    }

    /// The value, refused when blank.
    pub(super) fn non_empty(&self, name: &'static str) -> Result<String, ConfigError> {
        let value = self.raw(name);
        if value.trim().is_empty() {
            return Err(invalid(name, &value, "a non-empty string"));
        }
        Ok(value)
    }

    /// The value through `parse`, refused (naming `expected`) when it gives nothing.
    pub(super) fn parse<T>(
        &self,
        name: &'static str,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, ConfigError> {
        let value = self.raw(name);
        parse(value.trim()).ok_or_else(|| invalid(name, &value, expected))
    }
}

/// True for `postgres://` and `postgresql://` URLs.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `url` without its password, for logs and messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    // The host follows the last `@` of the authority: an unencoded password may contain one.
    match authority.rsplit_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{path}")
        }
        _ => url.to_string(),
    }
}

/// The table's default of `name` (empty when it has none).
fn default_of(name: &str) -> &'static str {
    SETTINGS
        .iter()
        .find(|s| s.name == name)
        .map_or("", |s| s.default)
}

/// The error for `name`'s `value`, with any password in it redacted.
pub(super) fn invalid(name: &'static str, value: &str, expected: &str) -> ConfigError {
    ConfigError {
        name,
        // Error messages end up in logs: never with a password.
        value: redact_url(value),
        expected: expected.to_string(),
    }
}

/// `true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off`, in any case.
pub(super) fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Whole milliseconds from `min` to `max`.
pub(super) fn millis(value: &str, min: u64, max: u64) -> Option<Duration> {
    let ms: u64 = value.parse().ok()?;
    (min..=max).contains(&ms).then(|| Duration::from_millis(ms))
}

/// Seconds, fractions allowed, up to a day.
pub(super) fn seconds(value: &str) -> Option<Duration> {
    let secs: f64 = value.parse().ok()?;
    (secs.is_finite() && (0.0..=86_400.0).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

/// Parses a duration written as seconds (`3600`) or a whole number with a unit: `s`, `m`, `h`
/// or `d` (`90m`, `24h`, `7d`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let unit_at = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_at);
    let number: u64 = number.parse().ok()?;
    let unit_seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return None,
    };
    number.checked_mul(unit_seconds).map(Duration::from_secs)
}
