//! EventFlow's webhook signatures verified by an independent Standard Webhooks implementation
//! (the Python reference library, `tests/interop/standardwebhooks_verify.py`).

mod common;

use common::python;
use eventflow::delivery::{SecretError, SigningSecret};
use serde_json::json;

#[tokio::test]
#[ignore = "needs the Python package standardwebhooks==1.1.0: see README, Tests"]
async fn the_standard_webhooks_library_verifies_our_signatures() {
    python::require_module("standardwebhooks", "standardwebhooks==1.1.0");
    let generated = SigningSecret::generate();
    assert!(generated.starts_with("whsec_"), "{generated}");
    let body = json!({"specversion": "1.0", "id": "evt_1", "type": "user.created",
                      "source": "api", "data": {"user_id": "usr_12345"}})
    .to_string();
    let timestamp = chrono::Utc::now().timestamp();
    let deliveries: Vec<_> = [(generated.as_str(), false), ("your-webhook-secret", true)]
        .into_iter()
        .enumerate()
        .map(|(n, (secret, raw_secret))| {
            let id = format!("msg_{n}");
            let signature =
                SigningSecret::parse(secret)
                    .unwrap()
                    .sign(&id, timestamp, body.as_bytes());
            json!({"secret": secret, "raw_secret": raw_secret, "id": id,
               "timestamp": timestamp, "body": body, "signature": signature})
        })
        .collect();
    let stdout = python::run_script(
        "standardwebhooks_verify.py",
        Vec::new(),
        json!(deliveries).to_string(),
    )
    .await;
    assert!(stdout.contains("verified 2 deliveries: ok"), "{stdout}");
}

#[test]
fn unusable_secrets_are_refused_and_never_printed() {
    assert_eq!(SigningSecret::parse(""), Err(SecretError::Empty));
    assert_eq!(SigningSecret::parse("whsec_"), Err(SecretError::Empty));
    assert_eq!(
        SigningSecret::parse("whsec_not base64!"),
        Err(SecretError::NotBase64)
    );
    let secret = SigningSecret::parse("your-webhook-secret").unwrap();
    assert!(!format!("{secret:?}").contains("your-webhook-secret"));
    // Unpadded base64 keys work, as in other Standard Webhooks libraries.
    assert_eq!(
        SigningSecret::parse("whsec_dGVzdA").unwrap(),
        SigningSecret::parse("whsec_dGVzdA==").unwrap()
    );
}
