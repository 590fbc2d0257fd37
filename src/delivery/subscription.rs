//! Webhook subscriptions: who wants which events, where, and the patterns that select them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ContentMode, DeliveryOrdering, Filters, StaticHeaders};
use crate::events::Event;
use crate::operations::is_operational;

/// Longest event-type pattern.
const MAX_PATTERN_LEN: usize = 256;
/// Most patterns one subscription may list.
pub const MAX_PATTERNS: usize = 100;
/// Requests in flight to one endpoint unless a subscription says otherwise.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 32;

/// A webhook subscription as the API shows it: everything but its secret.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Subscription {
    /// Its id.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// Event types delivered: exact (`order.created`), a prefix (`order.*`), or `*` for all.
    pub event_types: Vec<String>,
    /// Where deliveries are POSTed.
    pub webhook_url: String,
    /// CloudEvents Subscriptions API filters (`exact`, `prefix`, `suffix`, `all`, `any`, `not`,
    /// `sql`): an event of the subscribed types is delivered only when every one is true.
    #[schema(value_type = Vec<Object>)]
    pub filters: Filters,
    /// How deliveries carry the event: `json` (default: the structured CloudEvent as
    /// `application/json`), `structured` (as `application/cloudevents+json`) or `binary`
    /// (`ce-*` headers, the data as the body).
    pub content_mode: ContentMode,
    /// Static request headers sent with every delivery (such as the receiver's own
    /// `Authorization`); shown by name only, since values may be secrets.
    #[schema(value_type = Vec<String>)]
    pub headers: StaticHeaders,
    /// `partition_key`: events sharing a partition key reach the endpoint one at a time, in the
    /// order they were accepted; `none` (default): deliveries are independent.
    pub ordering: DeliveryOrdering,
    /// Deliveries per second to the endpoint, over all processes together; absent for no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    /// Requests in flight to the endpoint at once, over all processes together (default 32).
    pub max_in_flight: u32,
    /// Until when the endpoint asked not to be called (a 429 or 503 with Retry-After): every
    /// delivery to it waits, without spending an attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_until: Option<DateTime<Utc>>,
    /// False while deliveries are paused (by a PATCH, or because the endpoint answered 410 Gone).
    pub enabled: bool,
    /// Why EventFlow disabled it, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Subscription {
    /// True when `event_type` matches one of the subscription's patterns. EventFlow's own
    /// operational events go only to patterns that name them (`eventflow.*`, an exact type):
    /// `*` means every event of the producers, and an existing `*` receiver is not sent a new
    /// kind of event it never asked for.
    pub fn matches(&self, event_type: &str) -> bool {
        let operational = is_operational(event_type);
        self.event_types
            .iter()
            .any(|pattern| (!operational || pattern != "*") && pattern_matches(pattern, event_type))
    }

    /// True when `event` is one to deliver: its type matches and it passes every filter.
    pub fn accepts(&self, event: &Event) -> bool {
        self.matches(event.event_type()) && self.filters.matches(event)
    }
}

/// A subscription with the secret its deliveries are signed with, as stored. Its `Debug` output
/// never shows the secret.
#[derive(Clone, PartialEq)]
pub struct StoredSubscription {
    /// What the API shows.
    pub subscription: Subscription,
    /// The signing secret, as the subscriber gave it (or as generated).
    pub secret: String,
    /// The secret it replaced in its last rotation, while deliveries still carry its signature.
    pub previous: Option<PreviousSecret>,
}

/// A rotated-out secret, still signing deliveries next to the new one until `until`.
#[derive(Clone, PartialEq)]
pub struct PreviousSecret {
    /// The secret.
    pub secret: String,
    /// When deliveries stop carrying its signature.
    pub until: DateTime<Utc>,
}

impl StoredSubscription {
    /// The secrets deliveries are signed with at `now`: the current one, then the previous one
    /// while its overlap lasts.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> impl Iterator<Item = &str> {
        let previous = self
            .previous
            .as_ref()
            .filter(|previous| previous.until > now)
            .map(|previous| previous.secret.as_str());
        std::iter::once(self.secret.as_str()).chain(previous)
    }
}

impl std::fmt::Debug for StoredSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSubscription")
            .field("subscription", &self.subscription)
            .field("secret", &"…")
            .field("previous_until", &self.previous.as_ref().map(|p| p.until))
            .finish()
    }
}

/// True when `pattern` (`*`, `order.*` or an exact type) selects `event_type`.
pub fn pattern_matches(pattern: &str, event_type: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => event_type.starts_with(prefix),
        None => pattern == event_type,
    }
}

/// Checks a subscription's event-type patterns; the error says which one is wrong and why.
pub fn validate_patterns(patterns: &[String]) -> Result<(), String> {
    if patterns.is_empty() {
        return Err("event_types must list at least one type, prefix (order.*) or *".into());
    }
    if patterns.len() > MAX_PATTERNS {
        return Err(format!(
            "event_types may list at most {MAX_PATTERNS} patterns"
        ));
    }
    for pattern in patterns {
        let body = pattern
            .strip_suffix(".*")
            .unwrap_or(pattern)
            .trim_end_matches('*');
        let well_formed = pattern == "*"
            || (!body.is_empty()
                && pattern.len() <= MAX_PATTERN_LEN
                && (pattern == body || pattern.ends_with(".*"))
                && body.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/')
                }));
        if !well_formed {
            return Err(format!(
                "event_types entry {pattern:?} is not an event type, a prefix ending in .* or *"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exactly_by_prefix_or_all() {
        assert!(pattern_matches("order.created", "order.created"));
        assert!(!pattern_matches("order.created", "order.created.v2"));
        assert!(pattern_matches("order.*", "order.paid"));
        assert!(!pattern_matches("order.*", "orders.paid"));
        assert!(pattern_matches("*", "anything.at.all"));
    }

    #[test]
    fn malformed_patterns_are_named() {
        for bad in ["", "order*", "*.created", "or der", "order.*.x", "**"] {
            let err = validate_patterns(&[bad.to_string()]).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        assert!(validate_patterns(&[]).is_err());
        let good = ["*", "order.*", "user.created", "com.example.thing"].map(String::from);
        assert_eq!(validate_patterns(&good), Ok(()));
    }
}
