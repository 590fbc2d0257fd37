//! API keys: who may call the API, and what each key may do, from API_KEYS.
//!
//! The format is a comma-separated list of entries, each `KEY`, `NAME=KEY` or
//! `NAME=KEY[SCOPE+SCOPE]`, where a scope is `events:write`, `events:read` or `admin`
//! (subscriptions, dead letters, replays). A key without scopes may do everything, so
//! `API_KEYS=secret1,secret2` gives two full-access keys (named `key-1` and `key-2`). Logs and
//! errors name a key, never show it; a presented key is compared with every configured one in
//! constant time.

use std::fmt;

use sha2::{Digest, Sha256};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Send events.
    EventsWrite,
    /// Read events.
    EventsRead,
    /// Manage subscriptions, dead letters and replays.
    Admin,
}

impl Scope {
    /// Every scope: what a key without a scope list may do.
    pub const ALL: [Scope; 3] = [Scope::EventsWrite, Scope::EventsRead, Scope::Admin];

    /// The name used in API_KEYS and in errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EventsWrite => "events:write",
            Self::EventsRead => "events:read",
            Self::Admin => "admin",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == name)
    }
}

/// One configured key. Its `Debug` output shows the name and scopes, never the key.
#[derive(Clone)]
pub struct ApiKey {
    name: String,
    secret: String,
    digest: [u8; 32],
    scopes: Vec<Scope>,
}

impl ApiKey {
    fn new(name: String, secret: String, scopes: Vec<Scope>) -> Self {
        let digest = Sha256::digest(secret.as_bytes()).into();
        Self {
            name,
            secret,
            digest,
            scopes,
        }
    }

    /// The key's name, for logs and errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True when the key may act within `scope`.
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// The key itself, for a client sending it (the CLI).
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// The configured keys; none leaves the API open.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    keys: Vec<ApiKey>,
}

impl ApiKeys {
    /// Parses the API_KEYS format; the error says what is wrong without showing a key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut keys: Vec<ApiKey> = Vec::new();
        let entries = text.split(',').map(str::trim).filter(|e| !e.is_empty());
        for (position, entry) in entries.enumerate() {
            let key = parse_entry(entry, position + 1)?;
            if keys.iter().any(|k| k.name == key.name) {
                return Err(format!("the name {:?} is used twice", key.name));
            }
            if keys.iter().any(|k| k.digest == key.digest) {
                return Err(format!("the key named {:?} is listed twice", key.name));
            }
            keys.push(key);
        }
        Ok(Self { keys })
    }

    /// A list of one full-access key named `name` (METRICS_API_KEY, for one).
    pub fn single(name: &str, secret: &str) -> Self {
        Self {
            keys: vec![ApiKey::new(
                name.to_string(),
                secret.to_string(),
                Scope::ALL.to_vec(),
            )],
        }
    }

    /// True when no key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The configured key equal to `presented`, compared with every key in constant time.
    pub fn find(&self, presented: &str) -> Option<&ApiKey> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for key in &self.keys {
            let difference = key
                .digest
                .iter()
                .zip(digest)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if difference == 0 {
                found = Some(key);
            }
        }
        found
    }

    /// The key a client on this machine sends: the first with every scope, else the first.
    pub fn for_client(&self) -> Option<&ApiKey> {
        self.keys
            .iter()
            .find(|key| Scope::ALL.iter().all(|scope| key.allows(*scope)))
            .or_else(|| self.keys.first())
    }
}

/// Parses `KEY`, `NAME=KEY` or `NAME=KEY[SCOPE+SCOPE]`. An entry whose text after its first
/// `=` is only more `=` (base64 padding, as in `openssl rand -base64 16` output) is a bare key.
/// Errors name the entry by position, never by anything that could be part of a key.
fn parse_entry(entry: &str, position: usize) -> Result<ApiKey, String> {
    let named = entry
        .split_once('=')
        .filter(|(_, rest)| !rest.trim().chars().all(|c| c == '='));
    let (name, rest) = match named {
        Some((name, rest)) => (name.trim().to_string(), rest.trim()),
        None => (format!("key-{position}"), entry),
    };
    let fault = |what: &str| format!("entry {position}: {what}");
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(fault("a key name is letters, digits, '-', '_' or '.'"));
    }
    let (secret, scopes) = match rest.strip_suffix(']') {
        Some(with_scopes) => {
            let (secret, list) = with_scopes
                .split_once('[')
                .ok_or_else(|| fault("a scope list opens with '['"))?;
            let scopes = list
                .split('+')
                .map(|s| {
                    Scope::parse(s.trim())
                        .ok_or_else(|| fault("scopes are events:write, events:read and admin"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            (secret, scopes)
        }
        None => (rest, Scope::ALL.to_vec()),
    };
    if secret.is_empty()
        || secret
            .chars()
            .any(|c| c.is_whitespace() || "[]".contains(c))
    {
        return Err(fault(
            "a key is a non-empty string without spaces or brackets",
        ));
    }
    Ok(ApiKey::new(name, secret.to_string(), scopes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_keys_have_every_scope_and_named_keys_the_scopes_listed() {
        let keys = ApiKeys::parse(
            "secret1, secret2,shop=sk_shop[events:write],ops=sk_ops[events:read+admin],all=sk_all",
        )
        .unwrap();
        let first = keys.find("secret1").unwrap();
        assert_eq!(first.name(), "key-1");
        assert!(Scope::ALL.iter().all(|s| first.allows(*s)));
        assert_eq!(keys.find("secret2").unwrap().name(), "key-2");
        let shop = keys.find("sk_shop").unwrap();
        assert!(shop.allows(Scope::EventsWrite) && !shop.allows(Scope::EventsRead));
        let ops = keys.find("sk_ops").unwrap();
        assert!(ops.allows(Scope::Admin) && ops.allows(Scope::EventsRead));
        assert!(!ops.allows(Scope::EventsWrite));
        assert!(keys.find("sk_shop[events:write]").is_none());
        assert!(keys.find("").is_none());
        assert_eq!(keys.for_client().unwrap().secret(), "secret1");
        assert!(ApiKeys::parse(" , ").unwrap().is_empty());
    }

    #[test]
    fn base64_keys_with_padding_are_bare_keys_and_a_key_with_equals_can_be_named() {
        let keys = ApiKeys::parse("Zm9vYmFyYmF6cXV4cXV1eA==,c2hvcnQ=,ops=ab=cd").unwrap();
        let padded = keys.find("Zm9vYmFyYmF6cXV4cXV1eA==").unwrap();
        assert_eq!(padded.name(), "key-1");
        assert!(Scope::ALL.iter().all(|s| padded.allows(*s)));
        assert_eq!(keys.find("c2hvcnQ=").unwrap().name(), "key-2");
        assert_eq!(keys.find("ab=cd").unwrap().name(), "ops");
        assert!(keys.find("=").is_none() && keys.find("==").is_none());
    }

    #[test]
    fn bad_entries_are_refused_without_showing_the_key() {
        for (text, expected) in [
            ("a=k1,a=k2", "used twice"),
            ("k1,x=k1", "listed twice"),
            ("shop=sk_secret_1[write]", "scopes are"),
            ("shop=sk_secret_1 x", "without spaces"),
            ("sh op=sk_secret_1", "key name"),
            ("shop=[admin]", "non-empty"),
            ("shop=sk_secret_1events:write]", "opens with"),
        ] {
            let err = ApiKeys::parse(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(!err.contains("sk_secret_1"), "{text}: {err}");
        }
    }

    #[test]
    fn debug_output_names_keys_without_showing_them() {
        let keys = ApiKeys::parse("ops=sk_hidden_value[admin]").unwrap();
        let shown = format!("{keys:?}");
        assert!(
            shown.contains("ops") && !shown.contains("sk_hidden_value"),
            "{shown}"
        );
    }
}
