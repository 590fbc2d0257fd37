//! An API process and two worker processes on a fresh PostgreSQL schema and a private Redis: the
//! distributed set-up, for tests of what must hold across worker processes.

use std::time::Duration;

use super::Api;
use super::process::Eventflow;
use super::services::{self, PrivateRedis, free_port};

/// An API process and two worker processes on a fresh PostgreSQL schema and a private Redis.
pub struct Cluster {
    /// The API process's client.
    pub api: Api,
    /// The worker processes, with the port of their probes and metrics.
    pub workers: Vec<(Eventflow, u16)>,
    _api_process: Eventflow,
    _redis: PrivateRedis,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts the three processes with `settings` on top of the test defaults.
    pub async fn start(settings: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let postgres = services::postgres_url().await;
        let redis = PrivateRedis::start(dir.path()).await;
        let redis_url = redis.url();
        let mut env = vec![
            ("DATABASE_URL", postgres.as_str()),
            ("REDIS_URL", redis_url.as_str()),
            ("CLAIM_IDLE_MS", "1000"),
            ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true"),
            ("WEBHOOK_TIMEOUT_MS", "2000"),
            ("LOG_LEVEL", "error"),
        ];
        env.extend_from_slice(settings);
        let port = free_port();
        let api_process = Eventflow::start(dir.path(), port, &["serve", "--no-worker"], &env).await;
        let mut workers = Vec::new();
        for _ in 0..2 {
            let port = free_port();
            let worker = Eventflow::start(dir.path(), port, &["worker", "start"], &env).await;
            workers.push((worker, port));
        }
        Self {
            api: Api::on_port(port),
            workers,
            _api_process: api_process,
            _redis: redis,
            _dir: dir,
        }
    }

    /// Waits until every process has reloaded the subscriptions just created (at most a second).
    pub async fn settle() {
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }

    /// The webhook deliveries worker `n` has made, from its `/metrics`.
    pub async fn deliveries_by(&self, n: usize) -> f64 {
        let metrics = super::http_client()
            .get(format!("http://127.0.0.1:{}/metrics", self.workers[n].1))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metrics
            .lines()
            .filter(|line| line.starts_with("eventflow_webhook_deliveries_total{"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}
