//! Crash safety with the real binary: repogate is killed with SIGKILL while a
//! client mints and revokes through the admin API, restarted on the same
//! store, and every promise it made is checked: each token whose secret was
//! returned works, each revocation that returned 204 holds. Then backup and
//! restore carry the same promises to a new store.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use http::Method;

const ROUNDS: usize = 4;

struct Gateway {
    child: Child,
    admin: String,
    proxy: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(dir: &Path, store: &Path, up: &TestUpstream, proxy: u16, admin: u16) -> PathBuf {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{proxy}\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n[store]\npath = \"{}\"\n{}{}",
        store.display(),
        admin_user(),
        upstream_route(up, "[[routes]]\nprefix = \"/\"\nupstream = \"up\"\npreset = \"gitlab\"\n"),
    );
    let path = dir.join(format!("gate-{proxy}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

async fn start(config: &Path, proxy: u16, admin: u16) -> Gateway {
    let child = Command::new(env!("CARGO_BIN_EXE_repogate"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let gate = Gateway {
        child,
        admin: format!("http://127.0.0.1:{admin}"),
        proxy: format!("http://127.0.0.1:{proxy}"),
    };
    let healthz = format!("{}/healthz", gate.admin);
    for _ in 0..200 {
        if probe(&healthz).await == Some(200) {
            return gate;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("repogate did not become healthy (store failed to open after the crash?)");
}

/// Sends without panicking when the gateway is gone (it is killed mid-loop).
async fn try_send(method: Method, url: &str, session: &str, body: &str) -> Option<Reply> {
    let auth = format!("Bearer {session}");
    let mut req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", auth);
    if !body.is_empty() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_owned(),
        )))
        .unwrap();
    let response = client().request(req).await.ok()?;
    let (parts, body) = response.into_parts();
    let body = http_body_util::BodyExt::collect(body)
        .await
        .ok()?
        .to_bytes();
    Some(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

async fn login(gate: &Gateway) -> String {
    let reply = send(
        Method::POST,
        &format!("{}/admin/v1/login", gate.admin),
        &[],
        r#"{"user":"admin","password":"pw"}"#,
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.json()["session"].as_str().unwrap().to_owned()
}

#[derive(Default)]
struct Promises {
    /// (id, secret) of every token whose create call returned 201.
    minted: Vec<(String, String)>,
    /// Ids whose revoke call returned 204.
    revoked: Vec<String>,
    /// Ids whose revoke was sent but got no answer: either outcome is honest.
    uncertain: Vec<String>,
}

/// Mints and revokes until the gateway stops answering.
async fn churn(gate: &Gateway, session: &str, promises: &mut Promises) {
    for n in 0.. {
        if n % 3 == 2
            && promises.minted.len() > promises.revoked.len() + promises.uncertain.len() + 1
        {
            let victim = promises
                .minted
                .iter()
                .map(|(id, _)| id.clone())
                .find(|id| !promises.revoked.contains(id) && !promises.uncertain.contains(id))
                .unwrap();
            let url = format!("{}/admin/v1/tokens/{victim}", gate.admin);
            match try_send(Method::DELETE, &url, session, "").await {
                Some(r) if r.status == 204 => promises.revoked.push(victim),
                Some(r) => panic!("revoke answered {}: {:?}", r.status, r.body),
                None => {
                    promises.uncertain.push(victim);
                    return;
                }
            }
            continue;
        }
        let body = format!(r#"{{"description":"crash {n}","grants":{{"acme/widgets":"viewer"}}}}"#);
        match try_send(
            Method::POST,
            &format!("{}/admin/v1/tokens", gate.admin),
            session,
            &body,
        )
        .await
        {
            Some(r) if r.status == 201 => {
                let json = r.json();
                promises.minted.push((
                    json["id"].as_str().unwrap().to_owned(),
                    json["token"].as_str().unwrap().to_owned(),
                ));
            }
            Some(r) => panic!("mint answered {}: {:?}", r.status, r.body),
            None => return,
        }
    }
}

/// Checks every promise against a running gateway; returns (working, refused).
async fn check(gate: &Gateway, promises: &Promises) -> (usize, usize) {
    let (mut working, mut refused) = (0, 0);
    for (id, secret) in &promises.minted {
        let reply = get(
            &format!("{}/api/v4/projects/acme%2Fwidgets/issues", gate.proxy),
            secret,
        )
        .await;
        if promises.uncertain.contains(id) {
            assert!(
                reply.status == 200 || reply.status == 401,
                "{id}: {}",
                reply.status
            );
        } else if promises.revoked.contains(id) {
            assert_eq!(
                reply.status, 401,
                "revoked token {id} works again after the crash"
            );
            refused += 1;
        } else {
            assert_eq!(
                reply.status, 200,
                "token {id} was handed out but is lost after the crash: {:?}",
                reply.body
            );
            working += 1;
        }
    }
    (working, refused)
}

/// Whether `needle` occurs anywhere in `haystack` (std's substring search:
/// a byte-window scan of every token over a megabyte is minutes unoptimised).
fn holds(haystack: &str, needle: &str) -> bool {
    haystack.contains(needle)
}

/// The backup holds every minted token's record (its id, once each line's
/// base64 is decoded) and no token secret: neither the whole token nor its
/// 32 secret characters, in the file's bytes or in any decoded key or value.
fn assert_no_secret_in_backup(file: &Path, promises: &Promises) {
    use base64::Engine as _;
    let bytes = std::fs::read(file).unwrap();
    let text = std::str::from_utf8(&bytes).expect("a backup is JSON lines");
    let mut decoded = Vec::new();
    for line in text.lines().skip(1) {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        for field in ["key", "value"] {
            let b64 = record[field]
                .as_str()
                .expect("key and value are base64 text");
            decoded.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap(),
            );
            decoded.push(b'\n');
        }
    }
    // Tokens and ids are ASCII, so a lossy view of the decoded bytes finds them.
    let decoded = String::from_utf8_lossy(&decoded);
    assert!(!promises.minted.is_empty());
    for (id, token) in &promises.minted {
        assert!(holds(&decoded, id), "the backup lacks token {id}");
        for (what, secret) in [("token", token.as_str()), ("secret part", &token[16..48])] {
            assert!(
                !holds(text, secret),
                "the {what} of {id} is in the backup file"
            );
            assert!(
                !holds(&decoded, secret),
                "the {what} of {id} is in a decoded backup record"
            );
        }
    }
}

/// Runs `repogate SUBCOMMAND --config CONFIG FLAG FILE` to completion.
fn cli(subcommand: &str, config: &Path, flag: &str, file: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_repogate"))
        .args([subcommand, "--config"])
        .arg(config)
        .arg(flag)
        .arg(file)
        .output()
        .unwrap()
}

fn kill(child: &mut Child, signal: &str) {
    Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_token_and_no_revocation_and_backup_restore_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream().await;
    let store = dir.path().join("store");
    let (proxy, admin) = (free_port(), free_port());
    let config = write_config(dir.path(), &store, &up, proxy, admin);

    // The repository exists before any token, so the grants name it.
    {
        let mut gate = start(&config, proxy, admin).await;
        let session = login(&gate).await;
        let reply = try_send(
            Method::POST,
            &format!("{}/admin/v1/repos", gate.admin),
            &session,
            r#"{"name":"acme/widgets"}"#,
        )
        .await;
        assert_eq!(reply.unwrap().status, 201);
        kill(&mut gate.child, "-TERM");
    }

    let mut promises = Promises::default();
    for round in 0..ROUNDS {
        let mut gate = start(&config, proxy, admin).await;
        check(&gate, &promises).await;
        let session = login(&gate).await;
        let pid = gate.child.id();
        // Kill at a different moment each round, while the client is busy.
        let delay = Duration::from_millis(150 + 170 * round as u64);
        let killer = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .unwrap();
        });
        churn(&gate, &session, &mut promises).await;
        killer.await.unwrap();
        gate.child.wait().unwrap();
    }

    let gate = start(&config, proxy, admin).await;
    let (working, refused) = check(&gate, &promises).await;
    assert!(
        working > 0 && refused > 0,
        "the loop did too little: {working} working, {refused} refused"
    );
    let mut gate = gate;

    // A backup taken while the gateway runs is refused, not taken in motion.
    let file = dir.path().join("store.backup");
    let busy = cli("backup", &config, "--to", &file);
    assert!(!busy.status.success());
    assert!(String::from_utf8_lossy(&busy.stderr).contains("in use by another process"));
    kill(&mut gate.child, "-TERM");

    let backup = cli("backup", &config, "--to", &file);
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    assert_no_secret_in_backup(&file, &promises);

    // Restore into a fresh store and serve from it: the same promises hold.
    let (proxy2, admin2) = (free_port(), free_port());
    let restored = write_config(
        dir.path(),
        &dir.path().join("restored"),
        &up,
        proxy2,
        admin2,
    );
    let restore = cli("restore", &restored, "--from", &file);
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    let again = cli("restore", &restored, "--from", &file);
    assert!(
        !again.status.success(),
        "restoring over data must be refused"
    );

    let mut gate = start(&restored, proxy2, admin2).await;
    assert_eq!(check(&gate, &promises).await, (working, refused));
    kill(&mut gate.child, "-TERM");
}

#[test]
fn a_damaged_backup_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.backup");
    std::fs::write(&file, "{\"repogate_backup\":1,\"store_format\":1,\"created_at\":\"x\"}\n{\"tree\":\"tokens\",\"key\":\"!!\",\"value\":\"\"}\n").unwrap();
    let store = dir.path().join("store");
    let err = repogate::backup::restore(&store, &file).unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
    let opened = repogate::store::Store::open(&store).unwrap();
    assert!(!opened.holds_data().unwrap());
}
