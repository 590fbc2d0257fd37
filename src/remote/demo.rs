//! `eventflow demo`: realistic events sent to a running EventFlow, after registering the event
//! types they use.

use std::collections::BTreeSet;

use anyhow::Context;
use eventflow::api::path_segment;
use serde_json::Value;

use super::Remote;

/// `eventflow demo`: sends `events` in batches of 100, or one per request at `rate` per second,
/// with progress on a terminal and a summary at the end.
pub async fn demo(remote: &Remote, events: Vec<Value>, rate: Option<u32>) -> anyhow::Result<()> {
    let types: BTreeSet<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    let registered = register_missing_types(remote, &types).await?;
    let started = tokio::time::Instant::now();
    let total = events.len();
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
        remote.progress(&format!("sent {sent}/{total} events"));
    }
    remote.progress("");
    let seconds = started.elapsed().as_secs_f64();
    let summary = serde_json::json!({"sent": sent, "refused": refused, "types": types.len(),
                                     "registered": registered, "seconds": seconds});
    remote.print(&summary, |_| {
        let registered = if registered.is_empty() {
            String::new()
        } else {
            format!("registered {}; ", registered.join(", "))
        };
        format!(
            "{registered}sent {sent} events of {} types in {seconds:.1}s ({refused} refused)\n",
            types.len()
        )
    });
    Ok(())
}

/// Registers each of `types` that the server does not have (EventFlow registers them at its
/// first start, but an operator may have deleted some) with its built-in schema, and leaves the
/// registered ones as they are, so that an operator's change to a type survives a demo. Returns
/// the types registered.
async fn register_missing_types(
    remote: &Remote,
    types: &BTreeSet<&str>,
) -> anyhow::Result<Vec<String>> {
    let listed = remote
        .call(reqwest::Method::GET, "api/v1/event-types", &[], None)
        .await
        .context("listing the registered event types")?;
    let known: BTreeSet<&str> = listed["event_types"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["type"].as_str())
        .collect();
    let declarations = eventflow::schemas::built_in_types();
    let mut registered = Vec::new();
    for name in types.difference(&known) {
        let Some(declaration) = declarations.get(*name) else {
            continue;
        };
        let path = format!("api/v1/event-types/{}", path_segment(name));
        remote
            .call(
                reqwest::Method::PUT,
                &path,
                &[],
                Some(&serde_json::to_value(declaration)?),
            )
            .await
            .with_context(|| format!("registering {name} (an admin key may do it)"))?;
        registered.push(name.to_string());
    }
    Ok(registered)
}
