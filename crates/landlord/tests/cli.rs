//! The `landlord` binary as an operator runs it: exit codes and one-line errors.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sqlx::PgPool;

const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn landlord(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_landlord"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("landlord runs")
}

/// The process failed with `code` and said why in exactly one line.
fn assert_one_line_failure(out: &Output, code: i32, fragment: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("landlord: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "stderr: {stderr}");
    assert!(
        errors[0].contains(fragment),
        "{:?} lacks {fragment:?}",
        errors[0]
    );
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
}

/// DATABASE_URL for the per-test database sqlx created.
async fn url_of(pool: &PgPool) -> String {
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set by `just test`");
    let (server, _) = base.rsplit_once('/').unwrap();
    format!("{server}/{db}")
}

#[test]
fn missing_database_url_is_exit_2() {
    let out = landlord(&["migrate"], &[]);
    assert_one_line_failure(&out, 2, "DATABASE_URL");
}

#[test]
fn unreachable_database_is_a_one_line_error() {
    let out = landlord(
        &["migrate"],
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")],
    );
    assert_one_line_failure(&out, 1, "cannot connect to the database");
}

#[test]
fn malformed_database_url_is_a_configuration_error() {
    let out = landlord(&["migrate"], &[("DATABASE_URL", "mysql://nope")]);
    assert_one_line_failure(&out, 2, "DATABASE_URL: must be a postgres://");
}

/// Settings are checked before anything connects: the setting's error, not the
/// database's, and every bad setting in the same line.
#[test]
fn edge_settings_are_checked_before_connecting() {
    let env = [
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none"),
        ("LANDLORD_MASTER_KEY", MASTER_KEY),
        ("LANDLORD_IDLE_TIMEOUT", "soon"),
        ("LANDLORD_EDGE_FILE_CACHE_BYTES", "0"),
    ];
    let started = Instant::now();
    let out = landlord(&["edge"], &env);
    assert_one_line_failure(&out, 2, "LANDLORD_IDLE_TIMEOUT: `soon` is not a duration");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("LANDLORD_EDGE_FILE_CACHE_BYTES must be above zero"),
        "{stderr}"
    );
    assert!(!stderr.contains("connect"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "it did not wait for the database"
    );
}

#[test]
fn help_shows_the_defaults() {
    let out = landlord(&["edge", "--help"], &[]);
    let help = String::from_utf8_lossy(&out.stdout);
    for default in [
        "[default: 10000]",
        "[default: max-age=31536000]",
        "[default: 60s]",
        "[default: 300/3h]",
        "[default: 127.0.0.1:8080; dev: 127.0.0.1:3000]",
    ] {
        assert!(help.contains(default), "{default} missing from --help");
    }
}

/// `--config FILE`: the file's settings apply, the environment wins over them, and an
/// unknown key is an error.
#[test]
fn a_configuration_file_adds_settings_and_the_environment_wins() {
    let dir = std::env::temp_dir().join(format!("landlord-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("landlord.toml");
    std::fs::write(
        &file,
        "DATABASE_URL = \"postgres://postgres@127.0.0.1:1/none\"\n\
         LANDLORD_MASTER_KEY = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"\n\
         LANDLORD_MAX_CONNECTIONS = 0\n\
         LANDLORD_EDGE_IPS = [\"192.0.2.1\", \"bogus\"]\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let out = landlord(
        &["worker", "--config", path],
        &[("LANDLORD_CNAME_TARGET", "edge.example.net")],
    );
    assert_one_line_failure(&out, 2, "LANDLORD_MAX_CONNECTIONS must be above zero");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"bogus\" is not an IP address"),
        "lists from arrays: {stderr}"
    );

    let env = [
        ("LANDLORD_CONFIG", path),
        ("LANDLORD_CNAME_TARGET", "edge.example.net"),
        ("LANDLORD_MAX_CONNECTIONS", "1000"),
        ("LANDLORD_EDGE_IPS", "192.0.2.1"),
    ];
    let out = landlord(&["worker"], &env);
    assert_one_line_failure(&out, 1, "cannot connect to the database");

    std::fs::write(&file, "LANDLORD_NO_SUCH_THING = 1\n").unwrap();
    let out = landlord(&["worker", "--config", path], &[]);
    assert_one_line_failure(&out, 2, "unknown setting LANDLORD_NO_SUCH_THING");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn api_without_master_key_is_exit_2() {
    let env = [
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none"),
        ("LANDLORD_CNAME_TARGET", "edge.example.net"),
    ];
    assert_one_line_failure(
        &landlord(&["api"], &env),
        2,
        "LANDLORD_MASTER_KEY is not set",
    );
}

#[test]
fn bad_configuration_values_are_exit_2() {
    let base = [
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none"),
        ("LANDLORD_CNAME_TARGET", "edge.example.net"),
        ("LANDLORD_MASTER_KEY", MASTER_KEY),
    ];
    let with = |k: &'static str, v: &'static str| {
        let mut env: Vec<(&str, &str)> = base
            .iter()
            .filter(|(name, _)| *name != k)
            .copied()
            .collect();
        if !v.is_empty() {
            env.push((k, v));
        }
        landlord(&["api"], &env)
    };
    assert_one_line_failure(&with("LANDLORD_MASTER_KEY", "c2hvcnQ="), 2, "32 bytes");
    assert_one_line_failure(&with("LANDLORD_MASTER_KEY", "!!!"), 2, "base64");
    assert_one_line_failure(
        &with("LANDLORD_CNAME_TARGET", ""),
        2,
        "LANDLORD_CNAME_TARGET is not set",
    );
    assert_one_line_failure(
        &with("LANDLORD_CNAME_TARGET", "not a host"),
        2,
        "LANDLORD_CNAME_TARGET is invalid",
    );
    assert_one_line_failure(&with("LANDLORD_EDGE_IPS", "192.0.2.1,bogus"), 2, "bogus");
    let out = landlord(
        &["api"],
        &[base[0], base[1], base[2], ("LANDLORD_API_ADDR", "nowhere")],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = landlord(
        &["api"],
        &[base[0], base[1], base[2], ("LANDLORD_LOG_FORMAT", "xml")],
    );
    assert_one_line_failure(&out, 2, "LANDLORD_LOG_FORMAT");
}

#[sqlx::test(migrations = false)]
async fn migrate_then_create_tenant_prints_json(pool: PgPool) {
    let url = url_of(&pool).await;
    let out = landlord(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = landlord(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(again.status.success(), "migrate is idempotent");

    let out = landlord(
        &["tenant", "create", "Acme Inc"],
        &[("DATABASE_URL", &url), ("RUST_LOG", "off")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "one JSON object: {stdout}"
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["name"], "Acme Inc");
    assert!(v["id"].as_str().unwrap().len() == 36);
    assert!(v["api_key"].as_str().unwrap().starts_with("ll_"));
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(tenants, 1);
}

#[sqlx::test(migrations = false)]
async fn tenants_are_listed_suspended_and_unsuspended(pool: PgPool) {
    let url = url_of(&pool).await;
    let env = [("DATABASE_URL", url.as_str()), ("RUST_LOG", "off")];
    let created = landlord(&["tenant", "create", "Shady"], &env);
    let created: serde_json::Value =
        serde_json::from_slice(&created.stdout).expect("tenant create prints JSON");
    let id = created["id"].as_str().unwrap().to_owned();
    let json_lines = |args: &[&str]| -> Vec<serde_json::Value> {
        let out = landlord(args, &env);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let listed = json_lines(&["tenant", "list"]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["domains"], 0);
    assert!(listed[0]["suspended_at"].is_null());

    let suspended = json_lines(&[
        "tenant",
        "suspend",
        &id,
        "--reason",
        "spam",
        "--operator",
        "bob",
    ]);
    assert!(suspended[0]["suspended_at"].is_string());
    assert_eq!(suspended[0]["suspended_reason"], "spam");
    let audit: (String, String, Option<String>) =
        sqlx::query_as("SELECT action, reason, operator FROM audit_log ORDER BY id DESC LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        audit,
        ("tenant_suspended".into(), "spam".into(), Some("bob".into()))
    );

    let unsuspended = json_lines(&["tenant", "unsuspend", &id]);
    assert!(unsuspended[0]["suspended_at"].is_null());
    let out = landlord(
        &["tenant", "suspend", "00000000-0000-0000-0000-000000000000"],
        &env,
    );
    assert_eq!(out.status.code(), Some(2), "an unknown id is a usage error");
}

#[sqlx::test(migrations = false)]
async fn api_serves_and_stops_cleanly_on_sigterm(pool: PgPool) {
    let url = url_of(&pool).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_landlord"))
        .arg("api")
        .env("DATABASE_URL", &url)
        .env("LANDLORD_API_ADDR", &addr)
        .env("LANDLORD_CNAME_TARGET", "edge.example.net")
        .env("LANDLORD_MASTER_KEY", MASTER_KEY)
        .env("LANDLORD_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(res) = client.get(format!("http://{addr}/healthz")).send().await {
            assert_eq!(res.status(), 200);
            break;
        }
        assert!(Instant::now() < deadline, "the API did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON log lines");
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    assert!(stderr.contains("shutdown requested"));
}
