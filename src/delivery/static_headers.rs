//! Static request headers a subscription's receiver asks for, such as its own `Authorization`.
//!
//! Their values may be secrets, so they are kept like the signing secret: stored, sent with every
//! delivery, and never shown — the API shows the names only, and `Debug` (hence every log line)
//! shows neither values nor anything derived from them. Names that would let a subscription forge
//! what EventFlow vouches for or break the HTTP exchange are refused: hop-by-hop headers,
//! `Host`, `Content-Type`, `Content-Length`, and anything starting with `webhook-` (the signature)
//! or `ce-` (the binary content mode's attributes).

use serde::{Serialize, Serializer};

/// Most headers one subscription may set.
pub const MAX_HEADERS: usize = 20;
/// Longest header value, in bytes.
const MAX_VALUE_LEN: usize = 4096;

/// Names of headers a subscription may not set (lower case).
const FORBIDDEN: [&str; 13] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-type",
    "content-length",
    "x-correlation-id",
];

/// Name prefixes a subscription may not use (lower case).
const FORBIDDEN_PREFIXES: [&str; 2] = ["webhook-", "ce-"];

/// A subscription's static headers, names and values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StaticHeaders(Vec<(String, String)>);

impl StaticHeaders {
    /// Validates `headers` (name, value); `Err` names the header at fault and why.
    pub fn new(headers: Vec<(String, String)>) -> Result<Self, (String, String)> {
        if headers.len() > MAX_HEADERS {
            return Err((String::new(), format!("at most {MAX_HEADERS} headers")));
        }
        for (name, value) in &headers {
            check(name, value).map_err(|why| (name.clone(), why))?;
        }
        let mut names: Vec<String> = headers
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect();
        names.sort();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err((pair[0].clone(), "given twice".into()));
        }
        Ok(Self(headers))
    }

    /// The headers, to send.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

/// Why `name: value` cannot be a static header, if it cannot.
fn check(name: &str, value: &str) -> Result<(), String> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err("not a header name (letters, digits and !#$%&'*+-.^_`|~)".into());
    }
    let lower = name.to_ascii_lowercase();
    if FORBIDDEN.contains(&lower.as_str())
        || FORBIDDEN_PREFIXES
            .iter()
            .any(|prefix| lower.starts_with(prefix))
    {
        return Err("EventFlow sets this header itself, or it is hop-by-hop".into());
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(format!("the value is longer than {MAX_VALUE_LEN} bytes"));
    }
    if !value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return Err("the value has characters a header cannot carry (control or non-ASCII)".into());
    }
    Ok(())
}

impl Serialize for StaticHeaders {
    /// The names only: values may be secrets.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(name, _)| name))
    }
}

impl std::fmt::Debug for StaticHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, value: &str) -> Result<StaticHeaders, (String, String)> {
        StaticHeaders::new(vec![(name.into(), value.into())])
    }

    #[test]
    fn receivers_may_ask_for_their_own_headers() {
        let headers = one("Authorization", "Bearer s3cret").unwrap();
        assert_eq!(headers.pairs()[0].1, "Bearer s3cret");
        assert!(!format!("{headers:?}").contains("s3cret"));
        assert_eq!(
            serde_json::to_value(&headers).unwrap(),
            serde_json::json!(["Authorization"])
        );
    }

    #[test]
    fn what_eventflow_sets_or_http_forbids_is_refused() {
        for name in [
            "Host",
            "content-type",
            "Webhook-Signature",
            "ce-id",
            "Transfer-Encoding",
            "bad name",
            "",
        ] {
            assert!(one(name, "x").is_err(), "{name}");
        }
        assert!(one("X-Ok", "line\r\nInjected: 1").is_err());
        let twice = vec![("X-A".into(), "1".into()), ("x-a".into(), "2".into())];
        assert!(StaticHeaders::new(twice).is_err());
    }
}
