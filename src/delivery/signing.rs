//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): receivers verify deliveries
//! with any Standard Webhooks library.
//!
//! ```
//! use eventflow::delivery::SigningSecret;
//!
//! // The specification's test vector.
//! let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
//! let signature = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
//! assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
//! ```

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use hmac::{KeyInit, Mac};
use sha2::Sha256;

/// The prefix of secrets that carry their key in base64.
const PREFIX: &str = "whsec_";
/// Random bytes in a generated secret.
const GENERATED_KEY_BYTES: usize = 32;
/// Base64 that accepts keys with or without padding, as Standard Webhooks libraries do.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a secret cannot sign.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// The secret is empty.
    #[error("the secret is empty")]
    Empty,
    /// A `whsec_` secret whose key is not base64.
    #[error("a whsec_ secret must continue in base64")]
    NotBase64,
}

/// The key a subscription's deliveries are signed with. Its `Debug` output never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret {
    key: Vec<u8>,
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(…)")
    }
}

impl SigningSecret {
    /// A secret as subscribers give it: `whsec_` and a base64 key, or any other string, whose
    /// bytes are the key.
    pub fn parse(secret: &str) -> Result<Self, SecretError> {
        let key = match secret.strip_prefix(PREFIX) {
            Some(encoded) => LENIENT_BASE64
                .decode(encoded)
                .map_err(|_| SecretError::NotBase64)?,
            None => secret.as_bytes().to_vec(),
        };
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self { key })
    }

    /// A new random secret in the `whsec_` form, for a subscription created without one.
    pub fn generate() -> String {
        let mut key = Vec::with_capacity(GENERATED_KEY_BYTES);
        while key.len() < GENERATED_KEY_BYTES {
            // Version 4 UUIDs come from the operating system's random source.
            key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        }
        key.truncate(GENERATED_KEY_BYTES);
        format!("{PREFIX}{}", STANDARD.encode(key))
    }

    /// The `webhook-signature` header for a delivery: `v1,` and the base64 HMAC-SHA256 of
    /// `{webhook_id}.{timestamp}.{body}`.
    pub fn sign(&self, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(webhook_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}
