//! `eventflow dlq list|show|retry|delete`: the dead-letter queue.

use eventflow::api::path_segment;

use super::{Remote, items, more, table, text};
use crate::cli::DlqAction;

/// `eventflow dlq …`
pub async fn dlq(remote: &Remote, action: DlqAction) -> anyhow::Result<()> {
    match action {
        DlqAction::List {
            kind,
            subscription,
            limit,
            cursor,
        } => {
            let query = [
                ("kind", kind),
                ("subscription_id", subscription),
                ("limit", limit.map(|n| n.to_string())),
                ("cursor", cursor),
            ];
            let page = remote
                .call(reqwest::Method::GET, "api/v1/dlq", &query, None)
                .await?;
            remote.print(&page, |page| {
                let rows = items(&page["dead_letters"], |letter| {
                    vec![
                        text(&letter["id"]),
                        text(&letter["kind"]),
                        text(&letter["event_type"]),
                        text(&letter["attempts"]),
                        text(&letter["failed_at"]),
                        text(&letter["error"]),
                    ]
                });
                table(
                    &["ID", "KIND", "TYPE", "ATTEMPTS", "FAILED AT", "ERROR"],
                    rows,
                ) + &more(&page["next_cursor"])
            });
        }
        DlqAction::Show { id } => {
            let letter = remote
                .call(
                    reqwest::Method::GET,
                    &format!("api/v1/dlq/{}", path_segment(&id)),
                    &[],
                    None,
                )
                .await?;
            remote.print(&letter, |l| {
                serde_json::to_string_pretty(l).unwrap_or_default() + "\n"
            });
        }
        DlqAction::Retry { id } => {
            let path = format!("api/v1/dlq/{}/retry", path_segment(&id));
            let done = remote.call(reqwest::Method::POST, &path, &[], None).await?;
            remote.print(&done, |_| {
                format!("dead letter {id} is back in processing\n")
            });
        }
        DlqAction::Delete { id } => {
            let path = format!("api/v1/dlq/{}", path_segment(&id));
            remote
                .call(reqwest::Method::DELETE, &path, &[], None)
                .await?;
            remote.print(&serde_json::json!({"deleted": id}), |_| {
                format!("dead letter {id} deleted\n")
            });
        }
    }
    Ok(())
}
