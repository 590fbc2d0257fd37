//! The external services tests may use: PostgreSQL and Redis named by
//! `EVENTFLOW_TEST_DATABASE_URL` and `EVENTFLOW_TEST_REDIS_URL`, and private `redis-server`
//! processes a test can kill and restart.
//!
//! The tests that need a service are `#[ignore]`d with the reason, so that a plain `cargo test`
//! passes on a machine with nothing installed and reports them as not run; included
//! (`-- --include-ignored`, as `.ci/run` does), they fail when a service is missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::Connection;

const DATABASE_VAR: &str = "EVENTFLOW_TEST_DATABASE_URL";
const REDIS_VAR: &str = "EVENTFLOW_TEST_REDIS_URL";

/// Fails the test, saying how to install `what`, unless it was `found`. Tests that need a tool
/// are `#[ignore]`d with the reason, so that `cargo test` reports them as not run; when
/// included (`-- --include-ignored`, as `.ci/run` does), a missing tool fails them.
pub fn require_tool(found: bool, what: &str, install: &str) {
    assert!(
        found,
        "this test needs {what}: {install} (see README, Tests)"
    );
}

/// The value of `var`; the test fails when it is not set.
fn service_url(var: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("this test needs {var} (see README, Tests)"))
}

/// A PostgreSQL URL whose connections use a new, empty schema of their own, so that tests
/// running at the same time never see each other's rows.
pub async fn postgres_url() -> String {
    let base = service_url(DATABASE_VAR);
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|err| panic!("{DATABASE_VAR}={base} is unreachable: {err}"));
    let schema = format!("test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await
        .expect("create a test schema");
    conn.close().await.ok();
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options[search_path]={schema}")
}

/// The shared Redis, after checking it answers.
pub async fn redis_url() -> String {
    let url = service_url(REDIS_VAR);
    let client = redis::Client::open(url.as_str()).expect("a valid Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|err| panic!("{REDIS_VAR}={url} is unreachable: {err}"));
    let _: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .expect("Redis answers PING");
    url
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// A `redis-server` of the test's own, on a free port, with an append-only file in `dir` so
/// that a restart keeps its streams (as a production Redis for EventFlow is configured).
pub struct PrivateRedis {
    /// Its port.
    pub port: u16,
    dir: PathBuf,
    process: Option<Child>,
}

impl PrivateRedis {
    /// Starts one (`redis-server` must be installed).
    pub async fn start(dir: &Path) -> Self {
        let mut redis = Self {
            port: free_port(),
            dir: dir.to_path_buf(),
            process: None,
        };
        redis.restart().await;
        redis
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill().ok();
            process.wait().ok();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing answers, as with a hung
    /// host.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Lets a frozen server run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    fn signal(&self, signal: &str) {
        let process = self.process.as_ref().expect("redis-server is running");
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(process.id().to_string())
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{signal} redis-server");
    }

    /// Starts the server again on the same port and data, and waits until it answers.
    pub async fn restart(&mut self) {
        self.kill();
        let process = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (install the redis-server package)");
        self.process = Some(process);
        let client = redis::Client::open(self.url()).expect("valid URL");
        for _ in 0..100 {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("private redis-server on port {} did not start", self.port);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
