//! The outbound URL guard through the library API: which addresses count as public, and which
//! webhook URLs are refused.

use std::net::IpAddr;

use eventflow::delivery::{GuardError, is_public, vet_webhook_url};

#[test]
fn only_public_internet_addresses_are_public() {
    let refused = [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254", // cloud metadata
        "100.64.0.1",      // CGNAT
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "240.0.0.1",
        "192.0.2.10", // documentation
        "198.18.0.1", // benchmarking
        "::1",
        "::",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:127.0.0.1",     // IPv4-mapped loopback
        "::ffff:10.0.0.1",      // IPv4-mapped private
        "64:ff9b::a9fe:a9fe",   // NAT64 of 169.254.169.254
        "2002:0a00:0001::1",    // 6to4 of 10.0.0.1
        "64:ff9b:1::a9fe:a9fe", // local-use NAT64
        "::ffff:0:a9fe:a9fe",   // SIIT of 169.254.169.254
    ];
    for address in refused {
        let ip: IpAddr = address.parse().unwrap();
        assert!(!is_public(ip), "{address} must not count as public");
    }
    for address in [
        "93.184.216.34",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
    ] {
        let ip: IpAddr = address.parse().unwrap();
        assert!(is_public(ip), "{address} is public");
    }
}

#[tokio::test]
async fn webhook_urls_must_lead_to_the_public_internet() {
    let refused = vet_webhook_url("http://127.0.0.1:9000/hook", false).await;
    assert!(
        matches!(refused, Err(GuardError::NotPublic { ref address, .. }) if address.is_loopback()),
        "{refused:?}"
    );
    let metadata = vet_webhook_url("http://169.254.169.254/latest/meta-data", false).await;
    assert!(matches!(metadata, Err(GuardError::NotPublic { .. })));
    // A name is judged by what it resolves to.
    let localhost = vet_webhook_url("http://localhost:8080/", false).await;
    assert!(
        matches!(localhost, Err(GuardError::NotPublic { .. })),
        "{localhost:?}"
    );
    let message = localhost.unwrap_err().to_string();
    assert!(
        !message.contains("127.0.0.1"),
        "the message maps no network: {message}"
    );
    let v6 = vet_webhook_url("http://[::1]:8080/", false).await;
    assert!(matches!(v6, Err(GuardError::NotPublic { .. })), "{v6:?}");

    for malformed in [
        "ftp://example.com/",
        "not a url",
        "http://",
        "file:///etc/passwd",
    ] {
        let result = vet_webhook_url(malformed, false).await;
        assert!(
            matches!(result, Err(GuardError::Malformed(_))),
            "{malformed}: {result:?}"
        );
    }

    // Allowed explicitly (development, or WEBHOOK_ALLOW_PRIVATE_NETWORKS=true).
    let allowed = vet_webhook_url("http://127.0.0.1:9000/hook", true)
        .await
        .unwrap();
    assert_eq!(allowed, ["127.0.0.1:9000".parse().unwrap()]);
    // A public literal needs no resolver; the scheme's port is the default.
    let public = vet_webhook_url("https://93.184.216.34/hook", false)
        .await
        .unwrap();
    assert_eq!(public, ["93.184.216.34:443".parse().unwrap()]);
}
