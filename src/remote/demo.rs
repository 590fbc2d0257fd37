//! `eventflow demo`: realistic events sent to a running EventFlow.

use serde_json::Value;

use super::Remote;

/// `eventflow demo`: sends `events` in batches of 100, or one per request at `rate` per second,
/// with progress on a terminal and a summary at the end.
pub async fn demo(remote: &Remote, events: Vec<Value>, rate: Option<u32>) -> anyhow::Result<()> {
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
