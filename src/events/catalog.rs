//! The known event types and their typed payloads.
//!
//! Each payload struct is the `data` of one type: required identifying fields, optional
//! descriptive ones, and nothing else (unknown fields are refused). They serve producers in Rust
//! through [`crate::events::EventBuilder::typed`]; ingest checks these types against their
//! registered JSON Schemas ([`crate::schemas::built_in_types`]), which accept what the structs do.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// A payload with a fixed event type: what makes a struct usable with the event factory.
pub trait KnownPayload: Serialize + DeserializeOwned {
    /// The CloudEvents `type` this payload belongs to.
    const EVENT_TYPE: &'static str;
}

fn non_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let value = String::deserialize(deserializer)?;
    if value.trim().is_empty() {
        return Err(D::Error::custom("must not be empty"));
    }
    Ok(value)
}

/// `user.created`: a new user registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreated {
    /// The user.
    #[serde(deserialize_with = "non_empty")]
    pub user_id: String,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Login name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
    /// Subscription plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

/// `user.updated`: a user's profile changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdated {
    /// The user.
    #[serde(deserialize_with = "non_empty")]
    pub user_id: String,
    /// Changed fields with their new values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub changes: Option<Map<String, Value>>,
}

/// `user.deleted`: a user account was removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserDeleted {
    /// The user.
    #[serde(deserialize_with = "non_empty")]
    pub user_id: String,
    /// Why the account was removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `user.login`: a user signed in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserLogin {
    /// The user.
    #[serde(deserialize_with = "non_empty")]
    pub user_id: String,
    /// Client address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    /// Client software.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Sign-in method, such as password or sso.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The session it opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// `user.logout`: a user signed out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserLogout {
    /// The user.
    #[serde(deserialize_with = "non_empty")]
    pub user_id: String,
    /// The session it closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Session length in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_duration_seconds: Option<f64>,
}

/// `system.health_check`: a service reported its health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemHealthCheck {
    /// The reporting service.
    #[serde(deserialize_with = "non_empty")]
    pub service: String,
    /// Its state, such as healthy, degraded or unhealthy.
    #[serde(deserialize_with = "non_empty")]
    pub status: String,
    /// Check latency in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Further details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Map<String, Value>>,
}

/// `system.error`: a system error occurred.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemError {
    /// What went wrong.
    #[serde(deserialize_with = "non_empty")]
    pub message: String,
    /// Where it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Machine-readable error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Severity, such as warning, error or critical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Stack trace, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<String>,
}

/// `system.config_changed`: a configuration value changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemConfigChanged {
    /// The setting.
    #[serde(deserialize_with = "non_empty")]
    pub key: String,
    /// Value before the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_value: Option<Value>,
    /// Value after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_value: Option<Value>,
    /// Who changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_by: Option<String>,
}

/// `order.created`: a new order was placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderCreated {
    /// The order.
    #[serde(deserialize_with = "non_empty")]
    pub order_id: String,
    /// The customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Line items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub items: Option<Vec<Value>>,
    /// Order total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<f64>,
    /// ISO 4217 currency code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// `order.updated`: an order's status changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderUpdated {
    /// The order.
    #[serde(deserialize_with = "non_empty")]
    pub order_id: String,
    /// New status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Status before the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_status: Option<String>,
    /// The customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// `payment.completed`: a payment went through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentCompleted {
    /// The payment.
    #[serde(deserialize_with = "non_empty")]
    pub payment_id: String,
    /// Amount paid.
    pub amount: f64,
    /// ISO 4217 currency code.
    #[serde(deserialize_with = "non_empty")]
    pub currency: String,
    /// The order it paid for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// The payer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Payment method, such as card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// `notification.sent`: a notification was delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationSent {
    /// The notification.
    #[serde(deserialize_with = "non_empty")]
    pub notification_id: String,
    /// Channel, such as email, sms or push.
    #[serde(deserialize_with = "non_empty")]
    pub channel: String,
    /// The recipient user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Template used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// `page.view`: a page was viewed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PageView {
    /// The page.
    #[serde(deserialize_with = "non_empty")]
    pub url: String,
    /// The viewer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The viewer's session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Where the viewer came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// Page title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Time on page in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// `feature.used`: a product feature was used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeatureUsed {
    /// The feature.
    #[serde(deserialize_with = "non_empty")]
    pub feature: String,
    /// The user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// What was done with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Further properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub properties: Option<Map<String, Value>>,
}

/// `conversion.tracked`: a conversion goal was reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversionTracked {
    /// The goal, such as signup or purchase.
    #[serde(deserialize_with = "non_empty")]
    pub goal: String,
    /// The user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Conversion value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// ISO 4217 currency code of the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Marketing campaign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
}

/// Declares the catalog: each type name with its payload struct, once.
macro_rules! catalog {
    ($($event_type:literal => $payload:ident),* $(,)?) => {
        $(impl KnownPayload for $payload {
            const EVENT_TYPE: &'static str = $event_type;
        })*

        /// Every event type with a typed payload.
        pub const KNOWN_TYPES: &[&str] = &[$($event_type),*];

    };
}

catalog! {
    "user.created" => UserCreated,
    "user.updated" => UserUpdated,
    "user.deleted" => UserDeleted,
    "user.login" => UserLogin,
    "user.logout" => UserLogout,
    "system.health_check" => SystemHealthCheck,
    "system.error" => SystemError,
    "system.config_changed" => SystemConfigChanged,
    "order.created" => OrderCreated,
    "order.updated" => OrderUpdated,
    "payment.completed" => PaymentCompleted,
    "notification.sent" => NotificationSent,
    "page.view" => PageView,
    "feature.used" => FeatureUsed,
    "conversion.tracked" => ConversionTracked,
}
