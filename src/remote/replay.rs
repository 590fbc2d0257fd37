//! `eventflow replay`: queue a replay and follow it, or list, show and cancel replays.

use std::time::Duration;

use anyhow::{anyhow, bail};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use eventflow::api::path_segment;
use eventflow::config::parse_duration;

use super::{Remote, text};
use crate::cli::{ReplayAction, ReplayArgs};

/// How often a followed replay is looked at.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

/// `eventflow replay …`
pub async fn replay(
    remote: &Remote,
    request: ReplayArgs,
    action: Option<ReplayAction>,
) -> anyhow::Result<()> {
    match action {
        None => start(remote, request).await,
        Some(ReplayAction::List { page }) => {
            let columns = [
                ("ID", "/id"),
                ("STATUS", "/status"),
                ("STREAM", "/stream"),
                ("START", "/start_time"),
                ("END", "/end_time"),
                ("MATCHED", "/matched"),
                ("REPLAYED", "/replayed"),
                ("DRY RUN", "/dry_run"),
            ];
            remote
                .print_page("api/v1/replays", &page.query(), "replays", &columns)
                .await
        }
        Some(ReplayAction::Show { id }) => {
            let path = format!("api/v1/replays/{}", path_segment(&id));
            let replay = remote.call(reqwest::Method::GET, &path, &[], None).await?;
            remote.print(&replay, describe);
            Ok(())
        }
        Some(ReplayAction::Cancel { id }) => {
            let path = format!("api/v1/replays/{}/cancel", path_segment(&id));
            let replay = remote.call(reqwest::Method::POST, &path, &[], None).await?;
            remote.print(&replay, describe);
            Ok(())
        }
    }
}

/// Queues a replay, then follows it to its end unless told to detach.
async fn start(remote: &Remote, request: ReplayArgs) -> anyhow::Result<()> {
    let now = Utc::now();
    let (Some(stream), Some(since)) = (request.stream, request.since) else {
        bail!("--stream and --since are required");
    };
    let mut body = json!({
        "stream": stream,
        "start_time": moment(&since, now).map_err(|e| anyhow!("--since: {e}"))?,
        "end_time": moment(&request.until, now).map_err(|e| anyhow!("--until: {e}"))?,
        "dry_run": request.dry_run,
    });
    if !request.event_types.is_empty() {
        body["event_types"] = json!(request.event_types);
    }
    if let Some(subscription) = request.subscription {
        body["subscription_id"] = json!(subscription);
    }
    let queued = remote
        .call(
            reqwest::Method::POST,
            "api/v1/events/replay",
            &[],
            Some(&body),
        )
        .await?;
    if request.detach {
        remote.print(&queued, describe);
        return Ok(());
    }
    let id = queued["id"].as_str().unwrap_or_default().to_string();
    let finished = follow(remote, &id).await?;
    remote.print(&finished, describe);
    match finished["status"].as_str() {
        Some("failed") => bail!("replay {id} failed: {}", text(&finished["error"])),
        Some("cancelled") => bail!("replay {id} was cancelled"),
        _ => Ok(()),
    }
}

/// Polls a replay until it has finished, showing its counts on a terminal; returns it then.
async fn follow(remote: &Remote, id: &str) -> anyhow::Result<Value> {
    let path = format!("api/v1/replays/{}", path_segment(id));
    loop {
        let replay = remote.call(reqwest::Method::GET, &path, &[], None).await?;
        let status = replay["status"].as_str().unwrap_or_default();
        if matches!(status, "completed" | "cancelled" | "failed") {
            remote.progress("");
            return Ok(replay);
        }
        remote.progress(&format!(
            "replay {id} {status}: {} matched, {} replayed, {} deliveries",
            replay["matched"], replay["replayed"], replay["deliveries"]
        ));
        tokio::time::sleep(FOLLOW_INTERVAL).await;
    }
}

/// A time given as RFC 3339, as a duration before `now` (`90m`, `24h`, `7d`), or `now`.
fn moment(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if text == "now" {
        return Ok(now);
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    parse_duration(text)
        .and_then(|ago| chrono::Duration::from_std(ago).ok())
        .and_then(|ago| now.checked_sub_signed(ago))
        .ok_or_else(|| {
            format!(
                "{text:?} is neither an RFC 3339 time (2024-01-01T00:00:00Z) nor a duration ago \
                 (90m, 24h, 7d)"
            )
        })
}

/// One replay for people: what it covers and how far it got.
fn describe(replay: &Value) -> String {
    let dry_run = if replay["dry_run"] == Value::Bool(true) {
        " (dry run)"
    } else {
        ""
    };
    let types = match replay["event_types"].as_array() {
        Some(types) if !types.is_empty() => types.iter().map(text).collect::<Vec<_>>().join(", "),
        _ => "all".into(),
    };
    let to = match replay["subscription_id"].as_str() {
        Some(id) => format!("subscription {id}"),
        None => "every matching subscription".into(),
    };
    let mut out = format!(
        "replay {} {}{dry_run}\n",
        text(&replay["id"]),
        text(&replay["status"])
    );
    let mut line = |name: &str, value: String| out.push_str(&format!("  {name:<11} {value}\n"));
    line("stream", text(&replay["stream"]));
    line(
        "window",
        format!(
            "{} to {}",
            text(&replay["start_time"]),
            text(&replay["end_time"])
        ),
    );
    line("types", types);
    line("to", to);
    line("matched", text(&replay["matched"]));
    line("replayed", text(&replay["replayed"]));
    line("deliveries", text(&replay["deliveries"]));
    if !replay["error"].is_null() {
        line("error", text(&replay["error"]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_are_rfc3339_times_durations_ago_or_now() {
        let now: DateTime<Utc> = "2024-01-02T00:00:00Z".parse().unwrap();
        assert_eq!(moment("now", now), Ok(now));
        assert_eq!(
            moment("2024-01-01T12:00:00+02:00", now),
            Ok("2024-01-01T10:00:00Z".parse().unwrap())
        );
        assert_eq!(
            moment("24h", now),
            Ok("2024-01-01T00:00:00Z".parse().unwrap())
        );
        assert!(moment("yesterday", now).unwrap_err().contains("RFC 3339"));
    }
}
