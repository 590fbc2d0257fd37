//! Operator commands against a running EventFlow, over its HTTP API: events and dead letters, as
//! tables for people or JSON (`--json`) for scripts. Failures are one line and a non-zero exit.

use anyhow::{Context, anyhow};
use serde_json::Value;
use url::Url;

use eventflow::api::path_segment;
use eventflow::delivery::{innermost_cause, install_crypto_provider};

use crate::cli::{DlqAction, EventsAction};

/// Longest text shown in a table cell.
const CELL: usize = 48;

/// A client of one EventFlow API.
pub struct Remote {
    base: Url,
    http: reqwest::Client,
    json: bool,
}

impl Remote {
    /// A client of the API at `base` (such as `http://127.0.0.1:8000`).
    pub fn new(base: &str, json: bool) -> anyhow::Result<Self> {
        let base = Url::parse(base).with_context(|| format!("--url {base:?} is not a URL"))?;
        install_crypto_provider();
        Ok(Self {
            base,
            http: reqwest::Client::new(),
            json,
        })
    }

    /// Sends a request (with a JSON body, if any); returns the JSON answer (`null` when empty), or the problem as an error.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, Option<String>)],
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut url = self.base.join(path)?;
        for (name, value) in query {
            if let Some(value) = value {
                url.query_pairs_mut().append_pair(name, value);
            }
        }
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|err| {
            anyhow!(
                "cannot reach EventFlow at {}: {}",
                self.base,
                innermost_cause(&err)
            )
        })?;
        let status = response.status();
        let text = response.text().await?;
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            return Ok(body);
        }
        let detail = body["detail"].as_str().unwrap_or_default();
        Err(anyhow!("{status}: {detail}"))
    }

    /// Prints `value` as JSON, or as `table` renders it.
    fn print(&self, value: &Value, table: impl FnOnce(&Value) -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            print!("{}", table(value));
        }
    }
}

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

/// `eventflow demo`: sends `events` in batches of 100, or one per request at `rate` per second,
/// with progress on a terminal and a summary at the end.
pub async fn demo(remote: &Remote, events: Vec<Value>, rate: Option<u32>) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    let started = tokio::time::Instant::now();
    let total = events.len();
    let show_progress = std::io::stderr().is_terminal() && !remote.json;
    let (mut sent, mut refused) = (0, 0);
    let chunk = if rate.is_some() { 1 } else { 100 };
    let interval = rate.map(|r| std::time::Duration::from_secs_f64(1.0 / f64::from(r.max(1))));
    for (n, batch) in events.chunks(chunk).enumerate() {
        if let Some(interval) = interval {
            tokio::time::sleep_until(started + interval * n as u32).await;
        }
        let (path, body) = match batch {
            [one] if rate.is_some() => ("api/v1/events", one.clone()),
            _ => ("api/v1/events/batch", Value::from(batch.to_vec())),
        };
        let answer = remote
            .call(reqwest::Method::POST, path, &[], Some(&body))
            .await?;
        refused += answer["rejected"].as_u64().unwrap_or_default();
        sent += batch.len();
        if show_progress {
            eprint!("\rsent {sent}/{total} events");
            let _ = std::io::stderr().flush();
        }
    }
    if show_progress {
        eprintln!();
    }
    let types: std::collections::BTreeSet<&str> =
        events.iter().filter_map(|e| e["type"].as_str()).collect();
    let seconds = started.elapsed().as_secs_f64();
    let summary = serde_json::json!({"sent": sent, "refused": refused, "types": types.len(),
                                     "seconds": seconds});
    remote.print(&summary, |_| {
        format!(
            "sent {sent} events of {} types in {seconds:.1}s ({refused} refused)\n",
            types.len()
        )
    });
    Ok(())
}

/// The rows of a JSON array.
fn items(list: &Value, row: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    list.as_array()
        .map(|items| items.iter().map(row).collect())
        .unwrap_or_default()
}

/// A value as a table cell: strings bare, one line, cut to [`CELL`] characters.
fn text(value: &Value) -> String {
    let full = match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let line = full.replace(['\n', '\r', '\t'], " ");
    if line.chars().count() > CELL {
        line.chars().take(CELL - 1).collect::<String>() + "…"
    } else {
        line
    }
}

/// Rows under a header, in aligned columns.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    if rows.is_empty() {
        return "(none)\n".into();
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out += &line(row);
    }
    out
}

/// The hint for the next page, when there is one.
fn more(next_cursor: &Value) -> String {
    match next_cursor.as_str() {
        Some(cursor) => format!("more: --cursor {cursor}\n"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_cut_long_cells() {
        let rows = vec![
            vec!["1".into(), "a".repeat(60)],
            vec!["22".into(), "b".into()],
        ];
        let out = table(
            &["N", "TEXT"],
            rows.into_iter()
                .map(|r| r.iter().map(|c| text(&Value::String(c.clone()))).collect())
                .collect(),
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "N   TEXT");
        assert!(lines[1].starts_with("1   aaa") && lines[1].ends_with('…'));
        assert_eq!(lines[2], "22  b");
        assert_eq!(table(&["N"], Vec::new()), "(none)\n");
    }
}
