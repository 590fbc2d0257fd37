//! Interoperability with an independent CloudEvents implementation: the Python SDK sends
//! structured and binary events and reads back what EventFlow stored
//! (`tests/interop/cloudevents_sdk.py`). Skipped when the SDK is missing, unless
//! EVENTFLOW_REQUIRE_SERVICES=1 (as in CI), where a missing SDK fails the test.

mod common;

use std::process::Command;

use common::TestServer;

fn sdk_available() -> bool {
    Command::new("python3")
        .args(["-c", "import cloudevents.core.bindings.http"])
        .status()
        .is_ok_and(|status| status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_cloudevents_sdk_interoperates() {
    if !sdk_available() {
        assert!(
            std::env::var("EVENTFLOW_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "the Python CloudEvents SDK is required: pip install cloudevents==2.2.0"
        );
        eprintln!(
            "skipped: the Python CloudEvents SDK is not installed (pip install cloudevents==2.2.0)"
        );
        return;
    }
    let server = TestServer::start().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/cloudevents_sdk.py"
    );
    let base = server.base.clone();
    let output =
        tokio::task::spawn_blocking(move || Command::new("python3").arg(script).arg(base).output())
            .await
            .unwrap()
            .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "SDK script failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("cloudevents interop: ok"), "{stdout}");
}
