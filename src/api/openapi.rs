//! The OpenAPI 3.1 document, generated from the handlers and types.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
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
        super::live::stream_events,
        super::subscriptions::create_subscription,
        super::subscriptions::list_subscriptions,
        super::subscriptions::get_subscription,
        super::subscriptions::update_subscription,
        super::subscriptions::delete_subscription,
        super::subscriptions::rotate_secret,
        super::subscriptions::list_deliveries,
        super::filters::evaluate,
        super::event_types::put_event_type,
        super::event_types::list_event_types,
        super::event_types::get_event_type,
        super::event_types::get_schema_version,
        super::event_types::delete_event_type,
        super::event_types::validate_payload,
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
        super::stats::stats,
        super::insights::timeseries,
    ),
    modifiers(&ApiKeySecurity),
    security(("bearer" = []), ("api_key" = [])),
    tags(
        (name = "events", description = "Ingest and query events"),
        (name = "subscriptions", description = "Webhook subscriptions and their delivery log"),
        (name = "event types", description = "The schema registry: JSON Schemas enforced at ingest"),
        (name = "dead letters", description = "Deliveries and events that failed for good"),
        (name = "replays", description = "Deliver stored events again"),
        (name = "health", description = "Probes and metrics"),
    )
)]
pub struct ApiDoc;

/// Every documented operation as (method, route template): the routes whose request metrics
/// exist from the start.
pub fn documented_routes() -> Vec<(&'static str, String)> {
    let openapi = ApiDoc::openapi();
    let mut routes = Vec::new();
    for (path, item) in &openapi.paths.paths {
        let operations = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, operation) in operations {
            if operation.is_some() {
                routes.push((method, path.clone()));
            }
        }
    }
    routes
}

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
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                if path.starts_with("/api/") {
                    add_access_problems(operation);
                } else {
                    // Probes and metrics need no API key (an empty requirement).
                    operation.security = Some(vec![SecurityRequirement::default()]);
                }
            }
        }
    }
}

/// The answers every `/api` operation may give besides its own: no or a wrong key, a key
/// without the scope, too many requests.
fn add_access_problems(operation: &mut Operation) {
    let problems = [
        ("401", "No API key, or one that is not valid"),
        ("403", "The API key lacks the scope this operation needs"),
        (
            "429",
            "The API key's rate limit is reached; see Retry-After",
        ),
    ];
    for (status, description) in problems {
        let problem = ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build();
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert(problem.into());
    }
}
