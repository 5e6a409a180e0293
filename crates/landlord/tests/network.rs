//! The edge's listeners on the network: dual-stack by default, and PROXY protocol v2
//! behind a TCP load balancer (the client it names is what the per-client cap sees;
//! connections without a header, or from untrusted senders, are closed unanswered).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use sqlx::PgPool;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A PROXY protocol v2 header for a TCP connection from `client` (IPv4) to 192.0.2.1:443.
fn proxy_header(client: [u8; 4], port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&client);
    h.extend_from_slice(&[192, 0, 2, 1]);
    h.extend_from_slice(&port.to_be_bytes());
    h.extend_from_slice(&443u16.to_be_bytes());
    h
}

/// Send `prefix` and a GET on a new connection to `addr`; the status line, or `None` when
/// the edge closed the connection without answering.
async fn status_line(addr: SocketAddr, prefix: &[u8]) -> Option<String> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(prefix).await.ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: unknown.example.test\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    text.lines()
        .next()
        .filter(|l| l.starts_with("HTTP/"))
        .map(str::to_owned)
}

/// A page on a new domain issued by the local CA: the platform, its key and the hostname.
async fn with_a_page(pool: PgPool) -> (Platform, String) {
    let mut p = Platform::start(pool, &[("LANDLORD_ISSUER", "local")]).await;
    p.spawn("worker", &[]);
    let key = p.tenant().await;
    p.put_file(&key, "index.html", "text/html", "both families")
        .await;
    let host = unique("net");
    let id = p.add_pointed_domain(&key, &host).await;
    p.wait_domain(&key, &id, Duration::from_secs(60), |d| {
        d["status"] == "active"
    })
    .await;
    (p, host)
}

fn edge(p: &mut Platform, env: &[(&str, &str)]) -> usize {
    let mut all = vec![
        ("LANDLORD_HTTP_ADDR", "[::]:0"),
        ("LANDLORD_HTTPS_ADDR", "[::]:0"),
    ];
    all.extend_from_slice(env);
    p.spawn("edge", &all)
}

#[sqlx::test(migrations = false)]
async fn an_edge_on_the_ipv6_wildcard_serves_ipv6_and_ipv4_clients(pool: PgPool) {
    let (mut p, host) = with_a_page(pool).await;
    let i = edge(&mut p, &[]);
    let https = p.bound(i, "LANDLORD_HTTPS_ADDR").await;
    let http = p.bound(i, "LANDLORD_HTTP_ADDR").await;
    let log = p.log(i);
    assert!(log.contains(&format!("[::]:{https}")), "{log}");
    for ip in ["::1", "127.0.0.1"] {
        let addr = SocketAddr::new(ip.parse().unwrap(), https);
        let h = host.clone();
        p.wait_for(
            "the page over both families",
            Duration::from_secs(20),
            |p| {
                let f = p.local_ca_page_at(h.clone(), addr);
                async move { f.await.as_deref() == Some("both families") }
            },
        )
        .await;
        let line = status_line(SocketAddr::new(ip.parse().unwrap(), http), b"").await;
        assert_eq!(line.as_deref(), Some("HTTP/1.1 404 Not Found"), "{ip}");
    }
}

#[sqlx::test(migrations = false)]
async fn behind_a_proxy_the_edge_counts_the_client_the_header_names(pool: PgPool) {
    let (mut p, host) = with_a_page(pool).await;
    let i = edge(
        &mut p,
        &[
            ("LANDLORD_PROXY_PROTOCOL", "v2"),
            ("LANDLORD_PROXY_TRUSTED", "127.0.0.0/8"),
            ("LANDLORD_MAX_CONNECTIONS_PER_IP", "2"),
            ("LANDLORD_HEADER_READ_TIMEOUT", "2s"),
            ("LANDLORD_ACCESS_LOG", "on"),
            ("LANDLORD_METRICS_ADDR", "127.0.0.1:0"),
            ("LANDLORD_METRICS_TENANTS", "1"),
        ],
    );
    let http = SocketAddr::from(([127, 0, 0, 1], p.bound(i, "LANDLORD_HTTP_ADDR").await));
    let https = SocketAddr::from(([127, 0, 0, 1], p.bound(i, "LANDLORD_HTTPS_ADDR").await));
    let visitor = [198, 51, 100, 7];

    // With a header from a trusted sender: answered.
    p.wait_for(
        "the edge behind the balancer",
        Duration::from_secs(20),
        |_| async move {
            status_line(http, &proxy_header(visitor, 40_000))
                .await
                .as_deref()
                == Some("HTTP/1.1 404 Not Found")
        },
    )
    .await;
    // Without one, or with PROXY v1's text, or from a sender not trusted (::1): closed
    // unanswered.
    assert_eq!(status_line(http, b"").await, None);
    assert_eq!(
        status_line(http, b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 443\r\n").await,
        None
    );
    let untrusted = SocketAddr::new("::1".parse().unwrap(), http.port());
    assert_eq!(
        status_line(untrusted, &proxy_header(visitor, 40_001)).await,
        None
    );

    // The per-client cap counts the visitor, not the balancer: two held connections of the
    // visitor's fill its share; its third is refused, another visitor's is answered.
    let mut held = Vec::new();
    for port in [40_010, 40_011] {
        let mut s = TcpStream::connect(http).await.unwrap();
        s.write_all(&proxy_header(visitor, port)).await.unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        status_line(http, &proxy_header(visitor, 40_012)).await,
        None
    );
    assert_eq!(
        status_line(http, &proxy_header([198, 51, 100, 8], 40_013))
            .await
            .as_deref(),
        Some("HTTP/1.1 404 Not Found")
    );
    drop(held);

    // HTTPS: the header, then the TLS handshake and the page; the access log and the
    // tenant's counters name the visitor and the tenant.
    let response = proxied_https(&p, https, &host, visitor, 40_020).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("both families"), "{response}");
    let tenant: uuid::Uuid =
        sqlx::query_scalar("SELECT tenant_id FROM domains WHERE hostname = $1")
            .bind(&host)
            .fetch_one(&p.pool)
            .await
            .unwrap();
    let log = p.log(i);
    let line = log
        .lines()
        .find(|l| l.contains("landlord::access") && l.contains(&host))
        .unwrap_or_else(|| panic!("no access log line for {host}:\n{log}"));
    for field in [
        "198.51.100.7:40020",
        "status=200",
        "TLSv1.3",
        "HTTP/1.1",
        &tenant.to_string(),
        "method=GET",
    ] {
        assert!(strip_ansi(line).contains(field), "{field} in {line}");
    }
    // The plain-HTTP listener logs too, with the header's client.
    let plain = log
        .lines()
        .map(strip_ansi)
        .find(|l| l.contains("landlord::access") && l.contains("198.51.100.7:40000"))
        .unwrap_or_else(|| panic!("no access log line for the plain-HTTP request:\n{log}"));
    assert!(
        plain.contains("status=404") && plain.contains("tls=\"-\""),
        "{plain}"
    );
    let metrics = format!("127.0.0.1:{}", p.bound(i, "LANDLORD_METRICS_ADDR").await);
    let mine = [("tenant", tenant.to_string())];
    let mine: Vec<(&str, &str)> = mine.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert!(metric(&metrics, "landlord_tenant_requests_total", &mine).await >= 1.0);
    assert!(
        metric(&metrics, "landlord_tenant_response_bytes_total", &mine).await
            >= "both families".len() as f64
    );

    // Past LANDLORD_METRICS_TENANTS (1 here), tenants share the label "other".
    let other_key = p.tenant().await;
    p.put_file(&other_key, "index.html", "text/html", "second")
        .await;
    let other = unique("net-other");
    let id = p.add_pointed_domain(&other_key, &other).await;
    p.wait_domain(&other_key, &id, Duration::from_secs(60), |d| {
        d["status"] == "active"
    })
    .await;
    let response = proxied_https(&p, https, &other, visitor, 40_021).await;
    assert!(response.ends_with("second"), "{response}");
    assert_eq!(
        metric(
            &metrics,
            "landlord_tenant_requests_total",
            &[("tenant", "other")]
        )
        .await,
        1.0
    );
}

/// GET / of `host` over HTTPS through a PROXY header naming `client`:`port`: the whole
/// response, once the edge knows the host's certificate (it follows the change log a few
/// milliseconds behind the API: a handshake refused for an unknown name is tried again).
async fn proxied_https(
    p: &Platform,
    https: SocketAddr,
    host: &str,
    client: [u8; 4],
    port: u16,
) -> String {
    let started = std::time::Instant::now();
    loop {
        match proxied_https_once(p, https, host, client, port).await {
            Some(response) => return response,
            None if started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None => panic!("{host} was never served over HTTPS through the PROXY header"),
        }
    }
}

/// One attempt of [`proxied_https`]; `None` when the handshake is refused.
async fn proxied_https_once(
    p: &Platform,
    https: SocketAddr,
    host: &str,
    client: [u8; 4],
    port: u16,
) -> Option<String> {
    let root: String = sqlx::query_scalar("SELECT cert_pem FROM local_ca")
        .fetch_one(&p.pool)
        .await
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(trusting(root.as_bytes()));
    let body = async {
        let mut tcp = TcpStream::connect(https).await.unwrap();
        tcp.write_all(&proxy_header(client, port)).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from(host.to_owned()).unwrap();
        let mut tls = connector.connect(name, tcp).await.ok()?;
        tls.write_all(
            format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        Some(String::from_utf8_lossy(&out).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), body)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn proxy_settings_are_checked(pool: PgPool) {
    let p = Platform::start(pool, &[]).await;
    for (env, says) in [
        (
            vec![("LANDLORD_PROXY_PROTOCOL", "v2")],
            "needs LANDLORD_PROXY_TRUSTED",
        ),
        (vec![("LANDLORD_PROXY_PROTOCOL", "v1")], "must be v2 or off"),
        (
            vec![
                ("LANDLORD_PROXY_PROTOCOL", "v2"),
                ("LANDLORD_PROXY_TRUSTED", "10.0.0.0/8,balancer.example"),
            ],
            "\"balancer.example\" is not an IP address or CIDR block",
        ),
    ] {
        let mut cmd = p.command("edge");
        cmd.arg("--no-migrate");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{stderr}");
    }
}
