//! Interoperability with an independent CloudEvents implementation: the Python SDK sends
//! structured and binary events and reads back what EventFlow stored
//! (`tests/interop/cloudevents_sdk.py`). Ignored unless included, since it needs the SDK.

mod common;

use common::{TestServer, python};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Python package cloudevents==2.2.0: see README, Tests"]
async fn python_cloudevents_sdk_interoperates() {
    python::require_module("cloudevents.core.bindings.http", "cloudevents==2.2.0");
    let server = TestServer::start().await;
    let stdout = python::run_script(
        "cloudevents_sdk.py",
        vec![server.base.clone()],
        String::new(),
    )
    .await;
    assert!(stdout.contains("cloudevents interop: ok"), "{stdout}");
}
