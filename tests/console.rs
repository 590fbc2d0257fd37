//! The web console in a real browser: `tests/browser/console.test.mjs` drives Debian's Chromium
//! through playwright-core against a running EventFlow with API keys. It posts events and sees
//! them in the live tail (and held back while paused), opens an event, retries a dead letter
//! from the page and runs a replay dry run; screenshots are kept under the target directory.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::TestServer;
use common::receiver::{Mode, Receiver};

/// Where the screenshots of the last run are kept.
const SCREENSHOTS: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/console-screenshots");
/// The key the browser enters, with every scope.
const API_KEY: &str = "console-test-key";

/// Fails the test unless Node.js, Chromium and the test's npm packages are there (`.ci/run`
/// installs them).
fn require_browser_tools(browser_dir: &Path) {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    let chromium =
        Path::new(&std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into())).exists();
    let packages = browser_dir.join("node_modules/playwright-core").exists();
    common::services::require_tool(
        node && chromium && packages,
        &format!(
            "the browser test's node ({node}), chromium ({chromium}) or npm packages ({packages})"
        ),
        "apt-get install nodejs npm chromium, then npm ci --prefix tests/browser",
    );
}

#[tokio::test]
#[ignore = "needs Node.js, Chromium and the npm packages of tests/browser: see README, Tests"]
async fn the_console_tails_events_and_retries_a_dead_letter_in_a_real_browser() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    require_browser_tools(&browser_dir);
    let server = TestServer::start_with(
        &[
            ("API_KEYS", &format!("console={API_KEY}")),
            ("MAX_RETRIES", "0"),
        ],
        Vec::new(),
    )
    .await;
    let failing = Receiver::start(Mode::Fail(500)).await;
    let script = browser_dir.join("console.test.mjs");
    let args = [
        script.display().to_string(),
        "--url".into(),
        server.url(""),
        "--api-key".into(),
        API_KEY.into(),
        "--webhook-fail-url".into(),
        failing.url.clone(),
        "--screenshots".into(),
        SCREENSHOTS.into(),
    ];
    let run = tokio::process::Command::new("node")
        .args(&args)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the browser test ends within 5 minutes")
        .expect("node runs");
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "browser test failed (screenshots in {SCREENSHOTS}):\n{log}"
    );
    for shot in [
        "live-tail.png",
        "event-detail.png",
        "dead-letters.png",
        "replay.png",
    ] {
        assert!(
            Path::new(SCREENSHOTS).join(shot).exists(),
            "{shot} missing:\n{log}"
        );
    }
}
