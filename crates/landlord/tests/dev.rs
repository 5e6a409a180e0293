//! `landlord dev` as a newcomer runs it, and `landlord ca export`: the local issuer end
//! to end, with no Pebble: a `.localhost` name registered with the demo key becomes
//! active, and the edge presents a certificate that verifies against the exported CA.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use support::{Proc, bound_port, db_url, trusting};

#[sqlx::test(migrations = false)]
async fn dev_issues_from_the_local_ca_that_ca_export_prints(pool: PgPool) {
    let url = db_url(&pool).await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("dev-{}", url.rsplit('/').next().unwrap()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log_path = dir.join("dev.log");
    let mut dev = Proc {
        child: Command::new(env!("CARGO_BIN_EXE_landlord"))
            .args([
                "dev",
                "--api-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
                "--https-addr",
                "127.0.0.1:0",
            ])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &url)
            .env("LANDLORD_DEV_DIR", dir.join("state"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
        name: "dev".into(),
    };
    let port = |setting: &'static str| {
        let log_path = log_path.clone();
        async move {
            let end = Instant::now() + Duration::from_secs(60);
            loop {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                if let Some(port) = bound_port(&log, setting) {
                    return port;
                }
                assert!(Instant::now() < end, "dev never bound {setting}:\n{log}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let api = format!("http://127.0.0.1:{}", port("LANDLORD_API_ADDR").await);
    let https = port("LANDLORD_HTTPS_ADDR").await;
    let state = dir.join("state");
    let key = std::fs::read_to_string(state.join("demo-api-key")).unwrap();

    let client = reqwest::Client::new();
    let res = client
        .post(format!("{api}/v1/domains"))
        .bearer_auth(key.trim())
        .json(&serde_json::json!({"hostname": "shop.localhost"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let id = res.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let d: serde_json::Value = client
            .get(format!("{api}/v1/domains/{id}"))
            .bearer_auth(key.trim())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if d["status"] == "active" {
            let issuer = d["certificate"]["issuer"].as_str().unwrap_or_default();
            assert!(issuer.contains("Landlord local CA"), "{d}");
            break;
        }
        assert!(Instant::now() < end, "never active: {d}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // `ca export` against the same database and master key prints the CA dev wrote.
    let master = std::fs::read_to_string(state.join("master.key")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_landlord"))
        .args(["ca", "export"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &url)
        .env("LANDLORD_MASTER_KEY", master.trim())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported = String::from_utf8(out.stdout).unwrap();
    assert!(
        exported.starts_with("-----BEGIN CERTIFICATE-----"),
        "{exported}"
    );
    assert_eq!(
        exported,
        std::fs::read_to_string(state.join("local-ca.pem")).unwrap()
    );

    // The edge presents a certificate for the name that verifies against it.
    let config = trusting(exported.as_bytes());
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", https))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("shop.localhost").unwrap();
        match tokio_rustls::TlsConnector::from(config.clone())
            .connect(name, tcp)
            .await
        {
            Ok(_) => break,
            // The edge learns of the certificate through the change log.
            Err(e) => assert!(Instant::now() < end, "handshake failed: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(dev.terminate().success(), "dev stops cleanly on SIGTERM");
}
