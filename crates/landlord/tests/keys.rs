//! API keys across API processes, and master key rotation (`landlord keys rotate`) with a
//! `kill -9` in the middle, against real processes and PostgreSQL.

mod support;

use std::time::Duration;

use landlord_store::MasterKey;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::*;

/// A second master key for the rotation (test only).
const NEW_MASTER_KEY: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

fn key_of(b64: &str) -> [u8; 32] {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
        .try_into()
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_revoked_key_is_refused_at_once_by_every_api_process(pool: PgPool) {
    let mut p = Platform::start(pool, &[]).await;
    let other = p.spawn("api", &[("LANDLORD_API_ADDR", "127.0.0.1:0")]);
    let other = format!(
        "http://127.0.0.1:{}",
        p.bound(other, "LANDLORD_API_ADDR").await
    );
    let first = p.tenant().await;
    let created: Value = p
        .client
        .post(format!("{}/v1/keys", p.api))
        .bearer_auth(&first)
        .json(&json!({"name": "deploy bot"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second = created["api_key"].as_str().unwrap().to_owned();
    let status = |api: String, key: String| {
        let client = p.client.clone();
        async move {
            client
                .get(format!("{api}/v1/keys"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(other.clone(), second.clone()).await, 200);
    // Revoked through one process; the other refuses it on the very next request.
    let res = p
        .client
        .delete(format!(
            "{}/v1/keys/{}",
            p.api,
            created["id"].as_str().unwrap()
        ))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(status(other.clone(), second.clone()).await, 401);
    assert_eq!(status(p.api.clone(), second).await, 401);
    assert_eq!(status(other, first).await, 200);
}

/// Values still sealed under another key than `key`, per table.
async fn stale(pool: &PgPool, key: &MasterKey) -> Vec<(String, i64)> {
    let id = key.id_bytes().to_vec();
    let mut out = Vec::new();
    for (table, col) in [
        ("certificates", "key_sealed"),
        ("domains", "order_key_sealed"),
        ("acme_accounts", "credentials_sealed"),
        ("webhooks", "secret_sealed"),
        ("local_ca", "key_sealed"),
    ] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE {col} IS NOT NULL AND substring({col} FROM 2 FOR 8) <> $1"
        )))
        .bind(&id)
        .fetch_one(pool)
        .await
        .unwrap();
        out.push((table.to_owned(), n));
    }
    out
}

/// The rollout the README gives: every process gets the new key with the old one as
/// previous; `landlord keys rotate` (here SIGKILLed halfway, then run again); the previous
/// key dropped. Afterwards processes with only the new key read everything, and the old
/// key alone reads nothing.
#[sqlx::test(migrations = false)]
async fn the_master_key_rotates_resumably_and_the_old_key_can_go(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let (old, new) = (
        MasterKey::new(key_of(MASTER_KEY)),
        MasterKey::new(key_of(NEW_MASTER_KEY)),
    );
    let mut p = Platform::start(pool.clone(), &[("LANDLORD_ISSUER", "local")]).await;
    p.spawn("worker", &[]);
    let key = p.tenant().await;
    p.put_file(&key, "index.html", "text/html", "sealed").await;
    let mut hosts = Vec::new();
    for _ in 0..6 {
        let host = unique("rotate");
        let id = p.add_pointed_domain(&key, &host).await;
        hosts.push((host, id));
    }
    for (_, id) in &hosts {
        p.wait_domain(&key, id, Duration::from_secs(60), |d| {
            d["status"] == "active"
        })
        .await;
    }
    // An ACME account's credentials, as a worker using a CA would have stored them.
    let directory = "https://acme.example.test/directory";
    sqlx::query("INSERT INTO acme_accounts (directory_url, credentials_sealed) VALUES ($1, $2)")
        .bind(directory)
        .bind(old.seal(
            br#"{"id":"acct"}"#,
            &landlord_store::acme_account_context(directory),
        ))
        .execute(&pool)
        .await
        .unwrap();
    // A webhook's secret, sealed by the API.
    let hook: Value = p
        .client
        .post(format!("{}/v1/webhooks", p.api))
        .bearer_auth(&key)
        .json(&json!({"url": "https://hooks.example.com/landlord"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hook_id: uuid::Uuid = hook["id"].as_str().unwrap().parse().unwrap();
    assert!(stale(&pool, &old).await.iter().all(|(_, n)| *n == 0));

    // Step 1 of the rollout: processes restarted with the new key and the old as previous.
    let rotating = [
        ("LANDLORD_MASTER_KEY", NEW_MASTER_KEY),
        ("LANDLORD_MASTER_KEY_PREVIOUS", MASTER_KEY),
    ];
    for proc in &mut p.procs[1..] {
        proc.kill9();
    }
    p.spawn("worker", &rotating);
    let mut cmd = p.command("edge");
    cmd.arg("--no-migrate")
        .env("LANDLORD_HTTP_ADDR", "127.0.0.1:0")
        .env("LANDLORD_HTTPS_ADDR", "127.0.0.1:0");
    for (k, v) in rotating {
        cmd.env(k, v);
    }
    let edge = p.spawn_command("edge", cmd);
    let https = p.bound(edge, "LANDLORD_HTTPS_ADDR").await;

    // Step 2, interrupted: the rotation is held at the ACME accounts (a lock this test
    // takes) after the certificate keys are done, and SIGKILLed there.
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE acme_accounts IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let mut cmd = p.command("keys");
    cmd.args(["rotate", "--batch", "2", "--no-migrate"]);
    for (k, v) in rotating {
        cmd.env(k, v);
    }
    let rotation = p.spawn_command("rotate", cmd);
    p.wait_for(
        "the rotation to wait at the ACME accounts",
        Duration::from_secs(30),
        |p| {
            let pool = p.pool.clone();
            async move {
                sqlx::query_scalar::<_, bool>(
                    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                 AND query LIKE '%acme_accounts%' AND datname = current_database())",
                )
                .fetch_one(&pool)
                .await
                .unwrap()
            }
        },
    )
    .await;
    p.procs[rotation].kill9();
    lock.rollback().await.unwrap();
    let log = p.log(rotation);
    assert!(log.contains("certificate keys: 6 of 6 resealed"), "{log}");
    let halfway: std::collections::HashMap<_, _> = stale(&pool, &new).await.into_iter().collect();
    assert_eq!(halfway["certificates"], 0, "{halfway:?}");
    assert_eq!(halfway["acme_accounts"], 1, "{halfway:?}");
    assert_eq!(halfway["local_ca"], 1, "{halfway:?}");
    // Meanwhile the rotating edge serves with either key.
    for (host, _) in &hosts {
        assert_eq!(
            p.local_ca_page(host.clone(), https).await.as_deref(),
            Some("sealed")
        );
    }

    // Run again: it resumes and finishes.
    let mut cmd = p.command("keys");
    cmd.args(["rotate", "--no-migrate"]);
    for (k, v) in rotating {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("LANDLORD_MASTER_KEY_PREVIOUS can be removed"),
        "{stderr}"
    );
    assert!(
        stale(&pool, &new).await.iter().all(|(_, n)| *n == 0),
        "{:?}",
        stale(&pool, &new).await
    );
    let opened: Vec<u8> = sqlx::query_scalar("SELECT credentials_sealed FROM acme_accounts")
        .fetch_one(&pool)
        .await
        .map(|sealed: Vec<u8>| {
            new.open(&sealed, &landlord_store::acme_account_context(directory))
                .unwrap()
        })
        .unwrap();
    assert_eq!(opened, br#"{"id":"acct"}"#);
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT secret_sealed FROM webhooks WHERE id = $1")
        .bind(hook_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    let secret = new
        .open(
            &sealed,
            &landlord_store::webhooks::webhook_secret_context(hook_id),
        )
        .unwrap();
    assert_eq!(secret, hook["secret"].as_str().unwrap().as_bytes());

    // Step 3: the previous key dropped. A new edge and worker with only the new key serve
    // every certificate and issue from the local CA; the old key alone opens nothing.
    for proc in &mut p.procs[1..] {
        proc.kill9();
    }
    let only_new = [("LANDLORD_MASTER_KEY", NEW_MASTER_KEY)];
    p.spawn("worker", &only_new);
    let mut cmd = p.command("edge");
    cmd.arg("--no-migrate")
        .env("LANDLORD_HTTP_ADDR", "127.0.0.1:0")
        .env("LANDLORD_HTTPS_ADDR", "127.0.0.1:0")
        .env("LANDLORD_MASTER_KEY", NEW_MASTER_KEY);
    let edge = p.spawn_command("edge", cmd);
    let https = p.bound(edge, "LANDLORD_HTTPS_ADDR").await;
    let late = unique("rotate-late");
    let late_id = p.add_pointed_domain(&key, &late).await;
    p.wait_domain(&key, &late_id, Duration::from_secs(60), |d| {
        d["status"] == "active"
    })
    .await;
    for host in hosts.iter().map(|(h, _)| h).chain([&late]) {
        let h = host.clone();
        p.wait_for(
            "the page under the new key alone",
            Duration::from_secs(20),
            |p| {
                let f = p.local_ca_page(h.clone(), https);
                async move { f.await.as_deref() == Some("sealed") }
            },
        )
        .await;
    }
    let out = p
        .command("ca")
        .args(["export", "--no-migrate"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("another master key"), "{stderr}");
}

/// Backup and restore as the README describes it: a dump restored into a new database
/// serves every certificate with the same master key; with another key, the edge says
/// which key the values need instead of serving.
#[sqlx::test(migrations = false)]
async fn a_restored_dump_serves_with_its_master_key_and_names_the_key_without_it(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let mut p = Platform::start(pool.clone(), &[("LANDLORD_ISSUER", "local")]).await;
    p.spawn("worker", &[]);
    let key = p.tenant().await;
    p.put_file(&key, "index.html", "text/html", "restored")
        .await;
    let host = unique("restore");
    let id = p.add_pointed_domain(&key, &host).await;
    p.wait_domain(&key, &id, Duration::from_secs(60), |d| {
        d["status"] == "active"
    })
    .await;

    let dir = std::env::temp_dir().join(format!("landlord-restore-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dump = dir.join("landlord.dump");
    let out = std::process::Command::new("pg_dump")
        .args(["-Fc", "-f"])
        .arg(&dump)
        .arg(&p.db_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = format!("restored_{}", std::process::id());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .unwrap();
    let restored = format!("{}/{name}", p.db_url.rsplit_once('/').unwrap().0);
    let out = std::process::Command::new("pg_restore")
        .args(["--no-owner", "-d", &restored])
        .arg(&dump)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);

    let edge = |p: &mut Platform, master: &str| {
        let mut cmd = p.command("edge");
        cmd.arg("--no-migrate")
            .env("DATABASE_URL", &restored)
            .env("LANDLORD_MASTER_KEY", master)
            .env("LANDLORD_HTTP_ADDR", "127.0.0.1:0")
            .env("LANDLORD_HTTPS_ADDR", "127.0.0.1:0");
        p.spawn_command("edge", cmd)
    };
    let with_key = edge(&mut p, MASTER_KEY);
    let https = p.bound(with_key, "LANDLORD_HTTPS_ADDR").await;
    let h = host.clone();
    p.wait_for("the restored page", Duration::from_secs(20), |p| {
        let f = p.local_ca_page(h.clone(), https);
        async move { f.await.as_deref() == Some("restored") }
    })
    .await;
    let without = edge(&mut p, NEW_MASTER_KEY);
    let https = p.bound(without, "LANDLORD_HTTPS_ADDR").await;
    assert_eq!(p.local_ca_page(host.clone(), https).await, None);
    let log = p.log(without);
    assert!(log.contains("another master key"), "{log}");
    assert!(
        log.contains(&MasterKey::new(key_of(MASTER_KEY)).id()),
        "{log}"
    );

    drop(p);
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&pool)
    .await;
}
