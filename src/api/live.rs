//! `GET /api/v1/events/stream`: new events as Server-Sent Events, as they are stored.
//!
//! Each client reads the store on its own, from its position: the sequence of the last event
//! it was sent, which is also each message's `id`. It is woken by this process's commits, and
//! reads at least every second for the commits of other API processes. `Last-Event-ID` resumes
//! from the store, so a reconnecting client misses nothing. Ingestion never waits for a reader:
//! a client that leaves its buffer nearly full for [`SLOW_CLIENT_GRACE`] gets a final `dropped`
//! message and is closed, and resumes from its last id.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use chrono::Utc;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::time::Instant;
use utoipa::IntoParams;

use super::ApiContext;
use super::problem::{ApiError, ApiQuery, Problem};
use crate::events::Event;
use crate::observability::metrics;
use crate::store::TypeFilter;

/// Events read from the store at once.
const PAGE: u32 = 500;
/// Events waiting for a client, at most.
const BUFFER: usize = 1024;
/// How long a client may leave its buffer nearly full before it is dropped.
const SLOW_CLIENT_GRACE: Duration = Duration::from_secs(5);
/// The longest wait between two reads: other API processes store events too.
const POLL: Duration = Duration::from_secs(1);
/// How long a gap in the sequence is waited for, from when this stream first met it: a
/// concurrent transaction that took the missing numbers may not have committed yet (PostgreSQL
/// commits concurrent appends in any order). A gap still open after this was a rolled-back or
/// duplicate insert, and is passed.
const GAP_WAIT: Duration = Duration::from_secs(2);
/// A gap before an event received longer ago than this is history, passed at once: no
/// transaction holds numbers that long (store calls give up after seconds), and catching up
/// from an old Last-Event-ID must not wait at every old gap.
const SETTLED_AGE: Duration = Duration::from_secs(60);
/// Comment lines sent while nothing happens, so that proxies keep the connection.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Pause after the store failed, before reading again.
const STORE_WAIT: Duration = Duration::from_secs(1);

/// Which events a stream sends; each filter is optional.
#[derive(Debug, Deserialize, IntoParams)]
pub struct StreamParams {
    /// Exact type, a prefix ending in `*` such as `order.*`, or `*`.
    event_type: Option<String>,
    /// Exact source.
    source: Option<String>,
    /// Stream, such as `events:user`.
    stream: Option<String>,
    /// Exact subject.
    subject: Option<String>,
}

/// The filters of one stream, ready to test events.
struct LiveFilter {
    event_type: Option<TypeFilter>,
    source: Option<String>,
    stream: Option<String>,
    subject: Option<String>,
}

impl LiveFilter {
    /// Whether `event` is sent.
    fn admits(&self, event: &Event) -> bool {
        let equal = |wanted: &Option<String>, actual: Option<&str>| {
            wanted
                .as_deref()
                .is_none_or(|wanted| Some(wanted) == actual)
        };
        self.event_type
            .as_ref()
            .is_none_or(|filter| filter.matches(event.event_type()))
            && equal(&self.source, Some(&event.envelope.source))
            && equal(&self.stream, Some(&event.metadata.stream))
            && equal(&self.subject, event.envelope.subject.as_deref())
    }
}

/// Streams new events as Server-Sent Events (`event: event`, `id:` the store sequence, `data:`
/// the event as GET /api/v1/events/{id} returns it); `Last-Event-ID` resumes after that event.
#[utoipa::path(
    get, path = "/api/v1/events/stream", tag = "events", params(StreamParams,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event (the `id` of the last message received)")),
    responses(
        (status = 200, description = "An endless stream of `event` messages; a final `dropped` message when the client fell behind", content_type = "text/event-stream", body = String),
        (status = 400, description = "Bad parameter or Last-Event-ID", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable, or LIVE_STREAM_MAX_CLIENTS streams open", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn stream_events(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<StreamParams>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let resume = headers
        .get("last-event-id")
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<i64>().ok())
                .filter(|sequence| *sequence >= 0)
                .ok_or_else(|| {
                    ApiError::BadRequest("Last-Event-ID is not an id this stream sent".into())
                })
        })
        .transpose()?;
    let position = match resume {
        Some(sequence) => sequence,
        None => ctx.store.last_sequence().await?,
    };
    let filter = LiveFilter {
        event_type: params.event_type.as_deref().map(TypeFilter::parse),
        source: params.source,
        stream: params.stream,
        subject: params.subject,
    };
    let slot = ctx
        .live_streams
        .clone()
        .try_acquire_owned()
        .map(StreamSlot::taken)
        .map_err(|_| {
            ApiError::Unavailable(
                "as many live streams are open as LIVE_STREAM_MAX_CLIENTS allows; retry shortly"
                    .into(),
            )
        })?;
    let (events, buffered) = mpsc::channel(BUFFER);
    let (dropped, why) = oneshot::channel();
    tokio::spawn(async move {
        if let Some(reason) = follow(ctx, filter, position, events).await {
            let _ = dropped.send(reason);
        }
    });
    // The slot goes with the body: a client that stopped reading keeps it (and no more than
    // its buffer) until its connection closes.
    let messages = futures_util::stream::unfold((buffered, slot), |(mut buffered, slot)| async {
        let event = buffered.recv().await?;
        Some((Ok(message(&event)), (buffered, slot)))
    })
    .chain(
        futures_util::stream::once(why).filter_map(|reason| async move {
            let reason = reason.ok()?;
            Some(Ok(SseEvent::default()
                .event("dropped")
                .data(serde_json::json!({ "reason": reason }).to_string())))
        }),
    );
    Ok(Sse::new(messages).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")))
}

/// A place among the LIVE_STREAM_MAX_CLIENTS streams, counted in `eventflow_live_streams`
/// while it is held.
struct StreamSlot {
    /// Given back when the slot is dropped.
    _permit: OwnedSemaphorePermit,
}

impl StreamSlot {
    /// Counts a stream that took `permit`.
    fn taken(permit: OwnedSemaphorePermit) -> Self {
        metrics::live_streams(1.0);
        Self { _permit: permit }
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        metrics::live_streams(-1.0);
    }
}

/// The message carrying `event`.
fn message(event: &Event) -> SseEvent {
    let data = serde_json::to_string(event).unwrap_or_default();
    SseEvent::default()
        .event("event")
        .id(event.metadata.sequence.unwrap_or_default().to_string())
        .data(data)
}

/// Reads the store after `position` and hands matching events to the client until it goes
/// away or the process shuts down (`None`), or it falls behind (`Some(why)`).
async fn follow(
    ctx: Arc<ApiContext>,
    filter: LiveFilter,
    mut position: i64,
    client: mpsc::Sender<Event>,
) -> Option<String> {
    let mut stored = ctx.producer.stored_updates();
    let mut behind_since: Option<Instant> = None;
    // The gap being waited for: the position before it, and when it was first met.
    let mut gap: Option<(i64, Instant)> = None;
    loop {
        let page = match ctx.store.stored_after(position, PAGE).await {
            Ok(page) => page,
            Err(err) => {
                tracing::warn!(error = %err, "live stream cannot read the store");
                tokio::select! {
                    _ = tokio::time::sleep(STORE_WAIT) => continue,
                    _ = client.closed() => return None,
                    _ = ctx.shutdown.cancelled() => return None,
                }
            }
        };
        let full_page = page.len() == PAGE as usize;
        let mut waiting_for_gap = false;
        for event in page {
            let sequence = event.metadata.sequence.unwrap_or(position + 1);
            if sequence != position + 1 && !settled(&event) {
                let (at, since) = *gap.get_or_insert((position, Instant::now()));
                if at != position {
                    gap = Some((position, Instant::now()));
                }
                if at != position || since.elapsed() < GAP_WAIT {
                    waiting_for_gap = true;
                    break;
                }
            }
            gap = None;
            position = sequence;
            if !filter.admits(&event) {
                continue;
            }
            if client.capacity() < BUFFER / 10 {
                let since = *behind_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= SLOW_CLIENT_GRACE {
                    return Some(format!(
                        "the client read too slowly and fell {BUFFER} events behind; reconnect with Last-Event-ID to resume"
                    ));
                }
            } else {
                behind_since = None;
            }
            tokio::select! {
                sent = client.send(event) => if sent.is_err() { return None },
                _ = tokio::time::sleep(SLOW_CLIENT_GRACE) => {
                    return Some("the client stopped reading; reconnect with Last-Event-ID to resume".into());
                }
            }
        }
        if full_page && !waiting_for_gap {
            // Catching up: go on at once, unless the client left or the process stops.
            if client.is_closed() || ctx.shutdown.is_cancelled() {
                return None;
            }
            continue;
        }
        let wait = if waiting_for_gap { POLL / 10 } else { POLL };
        tokio::select! {
            Ok(()) = stored.changed() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = client.closed() => return None,
            _ = ctx.shutdown.cancelled() => return None,
        }
    }
}

/// Whether `event` arrived so long ago that a gap before it can no longer fill.
fn settled(event: &Event) -> bool {
    let age = Utc::now().signed_duration_since(event.metadata.received_at);
    age.num_milliseconds() > SETTLED_AGE.as_millis() as i64
}
