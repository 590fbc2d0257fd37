//! The web console at `/`: an overview of the last hour in charts, a live tail, event detail,
//! event types with their schemas, subscriptions, dead letters and replays over the API. Its
//! files, uPlot's among them (`console/vendor`), are compiled into the binary (no CDN, works
//! offline); the page holds no data of its own and calls the API with the key the user enters.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// Scripts, styles and API calls only from this origin; the page may not be framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The console's page and assets.
pub fn routes() -> Router {
    Router::new()
        .route(
            "/",
            get(|| {
                asset(
                    "text/html; charset=utf-8",
                    include_str!("../../console/index.html"),
                )
            }),
        )
        .route(
            "/console/app.js",
            get(|| {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("../../console/app.js"),
                )
            }),
        )
        .route(
            "/console/insights.js",
            get(|| {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("../../console/insights.js"),
                )
            }),
        )
        .route(
            "/console/vendor/uPlot.iife.min.js",
            get(|| {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("../../console/vendor/uPlot.iife.min.js"),
                )
            }),
        )
        .route(
            "/console/vendor/uPlot.min.css",
            get(|| {
                asset(
                    "text/css; charset=utf-8",
                    include_str!("../../console/vendor/uPlot.min.css"),
                )
            }),
        )
        .route(
            "/console/app.css",
            get(|| {
                asset(
                    "text/css; charset=utf-8",
                    include_str!("../../console/app.css"),
                )
            }),
        )
}

/// One compiled-in file, revalidated on each load so that an upgrade shows at once.
async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}
