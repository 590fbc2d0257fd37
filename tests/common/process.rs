//! The `eventflow` binary as a child process, killed when dropped so that a failing test leaves
//! nothing running.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// A running `eventflow` process.
pub struct Eventflow {
    /// The child process.
    pub child: Child,
}

impl Eventflow {
    /// Runs `eventflow ARGS` in `dir` with `env` on top of a clean EventFlow environment
    /// (warnings only in the logs, which go to the test's stderr; HTTP on a free port).
    pub fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn_logging_to(dir, args, env, Stdio::inherit())
    }

    /// [`Eventflow::spawn`], with its log (stderr) going to `log`.
    pub fn spawn_logging_to(dir: &Path, args: &[&str], env: &[(&str, &str)], log: Stdio) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_eventflow"));
        command
            .args(args)
            .current_dir(dir)
            .env_remove("REDIS_URL")
            .env_remove("DATABASE_URL")
            .env("LOG_LEVEL", "warn")
            // A free port unless the caller names one.
            .env("API_HOST", "127.0.0.1")
            .env("API_PORT", "0")
            .stdout(Stdio::null())
            .stderr(log);
        for (name, value) in env {
            command.env(name, value);
        }
        Self {
            child: command.spawn().expect("eventflow starts"),
        }
    }

    /// Runs `eventflow ARGS` with its HTTP port (the API, or a worker's probes) on `port` and
    /// waits until it answers.
    pub async fn start(dir: &Path, port: u16, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_logging_to(dir, port, args, env, Stdio::inherit()).await
    }

    /// [`Eventflow::start`], with its log (stderr) going to `log`.
    pub async fn start_logging_to(
        dir: &Path,
        port: u16,
        args: &[&str],
        env: &[(&str, &str)],
        log: Stdio,
    ) -> Self {
        let port_text = port.to_string();
        let mut all_env = vec![("API_PORT", port_text.as_str())];
        all_env.extend_from_slice(env);
        let mut server = Self::spawn_logging_to(dir, args, &all_env, log);
        let client = super::http_client();
        for _ in 0..200 {
            if client
                .get(format!("http://127.0.0.1:{port}/health/live"))
                .send()
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server.kill();
        panic!("eventflow did not come up on port {port}");
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash would, and reap it.
    pub fn kill(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }

    /// Sends `signal` (such as `TERM`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{signal} {}", self.pid());
    }

    /// Its exit status, waiting up to `timeout`; `None` if it is still running.
    pub async fn exit_status(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait on the child") {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for Eventflow {
    fn drop(&mut self) {
        self.kill();
    }
}
