//! Interoperability with an independent CloudEvents implementation: the Python SDK sends
//! structured and binary events and reads back what EventFlow stored
//! (`tests/interop/cloudevents_sdk.py`). Skipped when the SDK is missing, unless
//! EVENTFLOW_REQUIRE_SERVICES=1 (as in CI), where a missing SDK fails the test.

mod common;

use common::{TestServer, python};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_cloudevents_sdk_interoperates() {
    if !python::has_module("cloudevents.core.bindings.http", "cloudevents==2.2.0") {
        return;
    }
    let server = TestServer::start().await;
    let stdout = python::run_script(
        "cloudevents_sdk.py",
        vec![server.base.clone()],
        String::new(),
    )
    .await;
    assert!(stdout.contains("cloudevents interop: ok"), "{stdout}");
}
