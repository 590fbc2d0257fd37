//! `eventflow events get|list`: stored events.

use eventflow::api::path_segment;

use super::Remote;
use crate::cli::EventsAction;

/// `eventflow events …`
pub async fn events(remote: &Remote, action: EventsAction) -> anyhow::Result<()> {
    match action {
        EventsAction::Get { id } => {
            let event = remote
                .call(
                    reqwest::Method::GET,
                    &format!("api/v1/events/{}", path_segment(&id)),
                    &[],
                    None,
                )
                .await?;
            remote.print(&event, |e| {
                serde_json::to_string_pretty(e).unwrap_or_default() + "\n"
            });
        }
        EventsAction::List {
            event_type,
            source,
            stream,
            correlation_id,
            page,
        } => {
            let mut query = vec![
                ("event_type", event_type),
                ("source", source),
                ("stream", stream),
                ("correlation_id", correlation_id),
            ];
            query.extend(page.query());
            let columns = [
                ("SEQ", "/metadata/sequence"),
                ("TIME", "/time"),
                ("TYPE", "/type"),
                ("SOURCE", "/source"),
                ("ID", "/id"),
            ];
            remote
                .print_page("api/v1/events", &query, "events", &columns)
                .await?;
        }
    }
    Ok(())
}
