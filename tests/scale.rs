//! Scale: a store of 100,000 tokens opens and serves quickly, in bounded
//! memory, and the cache never holds more than `cache.max_entries`.
//!
//! The timing assertions are meaningful for an optimised build only, so the
//! test is ignored by default; run it with
//!
//!     cargo test --release --test scale -- --ignored --nocapture

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use http::Method;
use repogate::access::{Scope, TokenKind};
use repogate::store::{Store, StoredToken, TokenRecord};

const TOKENS: usize = 100_000;
const CACHE_BOUND: usize = 1_000;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing and memory bounds hold for --release builds; see the module doc"]
async fn a_store_of_100k_tokens_is_ready_in_under_a_second_within_100_mib() {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("store");
    let mut secrets = Vec::new();
    {
        let store = Store::open(&store_path).unwrap();
        for n in 0..TOKENS {
            let minted = repogate::token::generate().unwrap();
            let record = TokenRecord {
                id: minted.id,
                description: format!("bulk {n}"),
                scope: Scope {
                    kind: TokenKind::Admin,
                    grants: Default::default(),
                    minted_seq: store.next_seq().unwrap(),
                },
                created_at: 0,
                created_by: "scale".into(),
                expires_at: None,
                last_used_at: None,
                revoked_at: None,
            };
            store
                .insert_token(&StoredToken {
                    digest: minted.digest,
                    record,
                })
                .unwrap();
            if n % 50 == 0 {
                secrets.push(minted.secret.expose().to_owned());
            }
        }
        store.flush().await.unwrap();
    }

    let up = upstream().await;
    let (proxy, admin) = (free_port(), free_port());
    let config = dir.path().join("gate.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{proxy}\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n[store]\npath = \"{}\"\n[cache]\nmax_entries = {CACHE_BOUND}\n{}{}",
        store_path.display(),
        admin_user(),
        upstream_route(&up, "[[routes]]\nprefix = \"/\"\nupstream = \"up\"\npreset = \"gitlab\"\n"),
    );
    std::fs::write(&config, text).unwrap();

    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_repogate"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let admin_url = format!("http://127.0.0.1:{admin}");
    let readyz = format!("{admin_url}/readyz");
    let ready = loop {
        if probe(&readyz).await == Some(200) {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never became ready"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };

    // Twice the cache bound of distinct tokens, through the proxy.
    for secret in &secrets {
        let reply = get(
            &format!("http://127.0.0.1:{proxy}/api/v4/projects/anything/issues"),
            secret,
        )
        .await;
        assert_eq!(reply.status, 200);
    }
    let rss = rss_kib(child.id());

    let login = send(
        Method::POST,
        &format!("{admin_url}/admin/v1/login"),
        &[],
        r#"{"user":"admin","password":"pw"}"#,
    )
    .await;
    let session = login.json()["session"].as_str().unwrap().to_owned();
    let auth = format!("Bearer {session}");
    let status = send(
        Method::GET,
        &format!("{admin_url}/admin/v1/status"),
        &[("authorization", &auth)],
        "",
    )
    .await
    .json();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();

    let cached = status["cache"]["entries"].as_u64().unwrap();
    println!("tokens {TOKENS}: ready after {ready:?}, RSS {} MiB after {} distinct tokens, cache entries {cached}", rss / 1024, secrets.len());
    assert_eq!(status["tokens"].as_u64(), Some(TOKENS as u64));
    assert!(
        cached <= CACHE_BOUND as u64,
        "cache holds {cached} > {CACHE_BOUND}"
    );
    assert!(ready < Duration::from_secs(1), "ready after {ready:?}");
    assert!(rss < 100 * 1024, "RSS {rss} KiB");
}
