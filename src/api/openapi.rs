//! The OpenAPI 3.1 document, generated from the handlers and types.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// EventFlow's API description, served at `/openapi.json` and rendered at `/docs`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "EventFlow",
        description = "Event-driven backend: ingest CloudEvents, stream them through consumer groups, deliver them.",
    ),
    paths(
        super::events::create_event,
        super::events::create_batch,
        super::events::list_events,
        super::events::get_event,
        super::subscriptions::create_subscription,
        super::subscriptions::list_subscriptions,
        super::subscriptions::get_subscription,
        super::subscriptions::update_subscription,
        super::subscriptions::delete_subscription,
        super::subscriptions::rotate_secret,
        super::subscriptions::list_deliveries,
        super::dlq::list_dead_letters,
        super::dlq::get_dead_letter,
        super::dlq::retry_dead_letter,
        super::dlq::retry_dead_letters,
        super::dlq::delete_dead_letter,
        super::replays::create_replay,
        super::replays::list_replays,
        super::replays::get_replay,
        super::replays::cancel_replay,
        super::health::health,
        super::health::live,
        super::health::ready,
        super::health::metrics,
    ),
    modifiers(&ApiKeySecurity),
    security(("bearer" = []), ("api_key" = [])),
    tags(
        (name = "events", description = "Ingest and query events"),
        (name = "subscriptions", description = "Webhook subscriptions and their delivery log"),
        (name = "dead letters", description = "Deliveries and events that failed for good"),
        (name = "replays", description = "Deliver stored events again"),
        (name = "health", description = "Probes and metrics"),
    )
)]
pub struct ApiDoc;

/// Declares how API keys are sent: `Authorization: Bearer <key>` or `X-API-Key: <key>`.
struct ApiKeySecurity;

impl Modify for ApiKeySecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key from API_KEYS (scopes: events:write, events:read, admin)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}
