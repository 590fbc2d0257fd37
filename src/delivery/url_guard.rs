//! The outbound URL guard: webhook URLs must lead to the public internet, so that a subscription
//! cannot make EventFlow call into its own network (loopback, private ranges, the cloud metadata
//! address at 169.254.169.254, …).
//!
//! A URL is vetted when a subscription is created and again before each connection, against the
//! addresses its host resolves to then; the caller connects to those vetted addresses, so a DNS
//! answer that changes in between (DNS rebinding) cannot slip past.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::Url;

/// Why a webhook URL is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GuardError {
    /// Not an absolute http(s) URL with a host.
    #[error("webhook_url must be an absolute http or https URL: {0}")]
    Malformed(String),
    /// The host does not resolve (the resolver's answer is kept for logs, not shown).
    #[error("webhook_url host {host} does not resolve")]
    Unresolvable {
        /// The host.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
    /// The host resolves to an address outside the public internet (the address is kept for
    /// logs, not shown: the message must not map an internal network for whoever asks).
    #[error("webhook_url host {host} does not resolve to a public address")]
    NotPublic {
        /// The host.
        host: String,
        /// The address refused.
        address: IpAddr,
    },
}

/// Checks `url` and returns the addresses to connect to: every address its host resolves to
/// now, all of them public unless `allow_private`.
pub async fn vet_webhook_url(
    url: &str,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, GuardError> {
    let parsed = Url::parse(url).map_err(|err| GuardError::Malformed(err.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(GuardError::Malformed(format!(
            "scheme {} is not http or https",
            parsed.scheme()
        )));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| GuardError::Malformed("no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| GuardError::Malformed("no port".into()))?;
    let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|err| GuardError::Unresolvable {
                host: host.clone(),
                reason: err.to_string(),
            })?
            .collect(),
    };
    check_resolved(host, addresses, allow_private)
}

/// Checks the addresses `host` resolved to: at least one, and all of them public unless
/// `allow_private`. Used when a URL is vetted and by the resolver of every webhook connection.
pub(crate) fn check_resolved(
    host: String,
    addresses: Vec<SocketAddr>,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, GuardError> {
    if addresses.is_empty() {
        return Err(GuardError::Unresolvable {
            host,
            reason: "no addresses".into(),
        });
    }
    // One non-public answer refuses the host: a mixed answer is how rebinding attacks start.
    if !allow_private && let Some(bad) = addresses.iter().find(|a| !is_public(a.ip())) {
        return Err(GuardError::NotPublic {
            host,
            address: bad.ip(),
        });
    }
    Ok(addresses)
}

/// True for addresses of the public internet; false for loopback, private, link-local, CGNAT,
/// multicast, documentation, benchmarking, reserved and unspecified ranges, and for IPv6 forms
/// that embed such an IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments 192.0.0.0/24
        || (a == 198 && (18..20).contains(&b)) // benchmarking 198.18.0.0/15
        || a >= 240; // reserved 240.0.0.0/4
    !refused
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    let embedded_v4 = |high: u16, low: u16| {
        Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8)
    };
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    match segments {
        // NAT64 64:ff9b::/96 and SIIT ::ffff:0:0/96 carry an IPv4 address in their last 32 bits.
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] | [0, 0, 0, 0, 0xffff, 0, high, low] => {
            is_public_v4(embedded_v4(high, low))
        }
        // Local-use NAT64 64:ff9b:1::/48 leads into the operator's own network.
        [0x64, 0xff9b, 1, ..] => false,
        // 6to4 2002::/16 carries one in bits 16..48.
        [0x2002, high, low, ..] => is_public_v4(embedded_v4(high, low)),
        _ => {
            let refused = ip.is_unspecified()
                || ip.is_loopback()
                || ip.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (segments[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (segments[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
                || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
                || (segments[0] == 0x2001 && segments[1] == 0) // Teredo 2001::/32
                || segments[..6] == [0, 0, 0, 0, 0, 0]; // IPv4-compatible ::a.b.c.d
            !refused
        }
    }
}
