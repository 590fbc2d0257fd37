//! The OpenAPI 3.1 document, generated from the handlers and types.

use utoipa::OpenApi;

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
    tags(
        (name = "events", description = "Ingest and query events"),
        (name = "subscriptions", description = "Webhook subscriptions and their delivery log"),
        (name = "dead letters", description = "Deliveries and events that failed for good"),
        (name = "replays", description = "Deliver stored events again"),
        (name = "health", description = "Probes and metrics"),
    )
)]
pub struct ApiDoc;
