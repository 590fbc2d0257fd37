//! Operator commands against a running EventFlow, over its HTTP API: events, dead letters,
//! replays and demo data, as tables for people or JSON (`--json`) for scripts. Failures are one
//! line and a non-zero exit.

mod bench;
mod bench_e2e;
mod bench_receiver;
mod bench_replay;
mod demo;
mod dlq;
mod events;
mod replay;
mod types;

pub use bench::bench;
pub use demo::demo;
pub use dlq::dlq;
pub use events::events;
pub use replay::replay;
pub use types::types;

use anyhow::{Context, anyhow};
use serde_json::Value;
use url::Url;

use eventflow::delivery::{innermost_cause, install_crypto_provider};

/// Longest text shown in a table cell.
const CELL: usize = 48;

/// A client of one EventFlow API.
#[derive(Clone)]
pub struct Remote {
    base: Url,
    http: reqwest::Client,
    json: bool,
    /// Sent as a bearer token on every request.
    api_key: Option<String>,
}

impl Remote {
    /// A client of the API at `base` (such as `http://127.0.0.1:8000`), sending `api_key`.
    pub fn new(base: &str, json: bool, api_key: Option<String>) -> anyhow::Result<Self> {
        let base = Url::parse(base).with_context(|| format!("--url {base:?} is not a URL"))?;
        install_crypto_provider();
        Ok(Self {
            base,
            http: reqwest::Client::new(),
            json,
            api_key,
        })
    }

    /// A request to `path` of the API, with the API key.
    pub(super) fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        let mut request = self.http.request(method, self.base.join(path)?);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        Ok(request)
    }

    /// Sends a request (with a JSON body, if any); returns the JSON answer (`null` when empty), or the problem as an error.
    pub(super) async fn call(
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
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
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

    /// GETs one page of a listing and prints it: as JSON, or as a table with one column per
    /// (header, JSON pointer into each item of `items`) and the next-page hint.
    pub(super) async fn print_page(
        &self,
        path: &str,
        query: &[(&str, Option<String>)],
        items_field: &str,
        columns: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let page = self.call(reqwest::Method::GET, path, query, None).await?;
        self.print(&page, |page| {
            let rows = items(&page[items_field], |item| {
                columns
                    .iter()
                    .map(|(_, pointer)| text(item.pointer(pointer).unwrap_or(&Value::Null)))
                    .collect()
            });
            let header: Vec<&str> = columns.iter().map(|(header, _)| *header).collect();
            table(&header, rows) + &more(&page["next_cursor"])
        });
        Ok(())
    }

    /// Prints `value` as JSON, or as `table` renders it.
    pub(super) fn print(&self, value: &Value, table: impl FnOnce(&Value) -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            print!("{}", table(value));
        }
    }

    /// Shows `line` in place of the previous progress line, on a terminal and without `--json`;
    /// an empty `line` ends the progress display.
    pub(super) fn progress(&self, line: &str) {
        use std::io::{IsTerminal, Write};
        if self.json || !std::io::stderr().is_terminal() {
            return;
        }
        if line.is_empty() {
            eprintln!();
        } else {
            eprint!("\r{line}");
            let _ = std::io::stderr().flush();
        }
    }
}

/// The rows of a JSON array.
pub(super) fn items(list: &Value, row: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    list.as_array()
        .map(|items| items.iter().map(row).collect())
        .unwrap_or_default()
}

/// A value as a table cell: strings bare, one line, cut to [`CELL`] characters.
pub(super) fn text(value: &Value) -> String {
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
pub(super) fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
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
pub(super) fn more(next_cursor: &Value) -> String {
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
