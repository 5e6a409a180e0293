//! RFC 2136 updates against a real authoritative server (Knot) and a real recursive
//! resolver (Unbound), started by `scripts/test-dns.sh` (`just test` does it).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::rr::Name;
use landlord_worker::dns::update::{DnsUpdater, TsigKey, UpdateError};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run through `just test`, or eval \"$(scripts/test-dns.sh start)\" first")
    })
}

fn server() -> SocketAddr {
    env("LANDLORD_TEST_DNS_UPDATE_SERVER").parse().unwrap()
}

fn key() -> TsigKey {
    env("LANDLORD_TEST_DNS_UPDATE_TSIG").parse().unwrap()
}

fn updater(check: Vec<SocketAddr>) -> DnsUpdater {
    DnsUpdater::new(server(), &key(), check, Duration::from_secs(2)).unwrap()
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// A label no other test run uses.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn a_txt_record_is_written_seen_through_a_resolver_and_removed() {
    let zone = name("acme-dns.test.");
    let record = name(&format!("{}.acme-dns.test.", unique("t")));
    let authoritative = updater(vec![]);
    let resolver: SocketAddr = env("LANDLORD_TEST_DNS_RESOLVER").parse().unwrap();
    let recursive = updater(vec![resolver]);

    assert!(!authoritative.txt_visible(&record, "token-1").await.unwrap());
    authoritative
        .add_txt(&zone, &record, "token-1")
        .await
        .unwrap();
    // A second value for the same name (two validations in flight) keeps the first.
    authoritative
        .add_txt(&zone, &record, "token-2")
        .await
        .unwrap();
    assert!(authoritative.txt_visible(&record, "token-1").await.unwrap());
    assert!(authoritative.txt_visible(&record, "token-2").await.unwrap());
    assert!(recursive.txt_visible(&record, "token-1").await.unwrap());

    authoritative
        .remove_txt(&zone, &record, "token-1")
        .await
        .unwrap();
    assert!(!authoritative.txt_visible(&record, "token-1").await.unwrap());
    assert!(authoritative.txt_visible(&record, "token-2").await.unwrap());
    authoritative
        .remove_txt(&zone, &record, "token-2")
        .await
        .unwrap();
    assert!(!authoritative.txt_visible(&record, "token-2").await.unwrap());
    // Removing what is gone is not an error (a cleanup after a crash may repeat).
    authoritative
        .remove_txt(&zone, &record, "token-2")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_wrong_key_a_refused_zone_and_a_silent_server_are_told_apart() {
    let zone = name("acme-dns.test.");
    let record = name(&format!("{}.acme-dns.test.", unique("t")));

    // The right key name with another secret.
    let key_name = env("LANDLORD_TEST_DNS_UPDATE_TSIG");
    let key_name = key_name.split(':').next().unwrap();
    let wrong: TsigKey =
        format!("{key_name}:hmac-sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
            .parse()
            .unwrap();
    let err = DnsUpdater::new(server(), &wrong, vec![], Duration::from_secs(2))
        .unwrap()
        .add_txt(&zone, &record, "x")
        .await
        .unwrap_err();
    assert!(matches!(err, UpdateError::Tsig { .. }), "{err:?}");
    assert!(
        err.to_string().contains("LANDLORD_DNS_UPDATE_TSIG"),
        "{err}"
    );

    // A zone the key may not update.
    let cust = name("cust-dns.test.");
    let err = updater(vec![])
        .add_txt(&cust, &name("_acme-challenge.shop.cust-dns.test."), "x")
        .await
        .unwrap_err();
    assert!(matches!(err, UpdateError::Refused { .. }), "{err:?}");
    assert!(err.to_string().contains("cust-dns.test"), "{err}");

    // A zone the server does not serve at all.
    let err = updater(vec![])
        .add_txt(&name("elsewhere.test."), &name("x.elsewhere.test."), "x")
        .await
        .unwrap_err();
    assert!(matches!(err, UpdateError::Refused { .. }), "{err:?}");

    // Nothing listens there.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let err = DnsUpdater::new(addr, &key(), vec![], Duration::from_millis(500))
        .unwrap()
        .add_txt(&zone, &record, "x")
        .await
        .unwrap_err();
    assert!(matches!(err, UpdateError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("did not answer"), "{err}");

    // Nothing was written by any of these.
    assert!(!updater(vec![]).txt_visible(&record, "x").await.unwrap());
}
