//! `eventflow events get|list`: stored events.

use eventflow::api::path_segment;

use super::{Remote, items, more, table, text};
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
            limit,
            cursor,
        } => {
            let query = [
                ("event_type", event_type),
                ("source", source),
                ("stream", stream),
                ("correlation_id", correlation_id),
                ("limit", limit.map(|n| n.to_string())),
                ("cursor", cursor),
            ];
            let page = remote
                .call(reqwest::Method::GET, "api/v1/events", &query, None)
                .await?;
            remote.print(&page, |page| {
                let rows = items(&page["events"], |e| {
                    vec![
                        text(&e["metadata"]["sequence"]),
                        text(&e["time"]),
                        text(&e["type"]),
                        text(&e["source"]),
                        text(&e["id"]),
                    ]
                });
                table(&["SEQ", "TIME", "TYPE", "SOURCE", "ID"], rows) + &more(&page["next_cursor"])
            });
        }
    }
    Ok(())
}
