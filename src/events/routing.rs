//! Which broker stream an event type travels on.

/// Stream of `user.*` events.
pub const USER_STREAM: &str = "events:user";
/// Stream of `system.*` events.
pub const SYSTEM_STREAM: &str = "events:system";
/// Stream of orders, payments and notifications.
pub const BUSINESS_STREAM: &str = "events:business";
/// Stream of page views, feature use and conversions.
pub const ANALYTICS_STREAM: &str = "events:analytics";

/// Stream of EventFlow's own operational events (`eventflow.*`).
pub const OPERATIONS_STREAM: &str = "events:eventflow";

/// The streams of the known families, in a fixed order.
pub const FAMILY_STREAMS: [&str; 5] = [
    USER_STREAM,
    SYSTEM_STREAM,
    BUSINESS_STREAM,
    ANALYTICS_STREAM,
    OPERATIONS_STREAM,
];

/// Routes event types to streams by their prefix; unknown families go to a default stream.
#[derive(Debug, Clone)]
pub struct StreamRouter {
    default_stream: String,
}

impl StreamRouter {
    /// A router sending unknown families to `default_stream`.
    pub fn new(default_stream: impl Into<String>) -> Self {
        Self {
            default_stream: default_stream.into(),
        }
    }

    /// The stream for `event_type`.
    pub fn stream_for(&self, event_type: &str) -> &str {
        let family = event_type.split('.').next().unwrap_or_default();
        match family {
            "user" => USER_STREAM,
            "system" => SYSTEM_STREAM,
            "order" | "payment" | "notification" => BUSINESS_STREAM,
            "page" | "feature" | "conversion" => ANALYTICS_STREAM,
            "eventflow" => OPERATIONS_STREAM,
            _ => &self.default_stream,
        }
    }

    /// Every stream an event can be routed to: what a worker must read.
    pub fn all_streams(&self) -> Vec<String> {
        let mut streams: Vec<String> = FAMILY_STREAMS.iter().map(|s| s.to_string()).collect();
        if !streams.contains(&self.default_stream) {
            streams.push(self.default_stream.clone());
        }
        streams
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_family() {
        let router = StreamRouter::new("events:default");
        assert_eq!(router.stream_for("user.login"), USER_STREAM);
        assert_eq!(router.stream_for("system.error"), SYSTEM_STREAM);
        assert_eq!(router.stream_for("payment.completed"), BUSINESS_STREAM);
        assert_eq!(router.stream_for("notification.sent"), BUSINESS_STREAM);
        assert_eq!(router.stream_for("conversion.tracked"), ANALYTICS_STREAM);
        assert_eq!(router.stream_for("com.example.thing"), "events:default");
        assert_eq!(
            router.stream_for("eventflow.subscription.disabled"),
            OPERATIONS_STREAM
        );
        assert_eq!(router.all_streams().len(), 6);
        assert_eq!(StreamRouter::new(USER_STREAM).all_streams().len(), 5);
    }
}
