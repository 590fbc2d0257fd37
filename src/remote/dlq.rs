//! `eventflow dlq list|show|retry|delete`: the dead-letter queue.

use eventflow::api::path_segment;

use super::Remote;
use crate::cli::DlqAction;

/// `eventflow dlq …`
pub async fn dlq(remote: &Remote, action: DlqAction) -> anyhow::Result<()> {
    match action {
        DlqAction::List {
            kind,
            subscription,
            page,
        } => {
            let mut query = vec![("kind", kind), ("subscription_id", subscription)];
            query.extend(page.query());
            let columns = [
                ("ID", "/id"),
                ("KIND", "/kind"),
                ("TYPE", "/event_type"),
                ("ATTEMPTS", "/attempts"),
                ("FAILED AT", "/failed_at"),
                ("ERROR", "/error"),
            ];
            remote
                .print_page("api/v1/dlq", &query, "dead_letters", &columns)
                .await?;
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
