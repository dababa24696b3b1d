//! Reloads of the real binary: by SIGHUP, and what a reload of a setting that
//! needs a restart says and leaves running.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use super::process::*;
use super::*;

/// The warning a reload logs for each changed restart-only key.
const RESTART_WARNING: &str =
    "this setting changed in the file but takes effect only after a restart";

/// JSON logs, the admin user, the test upstream with the gitlab preset on
/// `/api/`, and the tests' repositories.
fn base(up: &TestUpstream) -> String {
    let api = "[[routes]]\nprefix = \"/api/\"\nupstream = \"up\"\npreset = \"gitlab\"\n";
    format!(
        "[log]\nformat = \"json\"\n{}{}{REPOS}",
        admin_user(),
        upstream_route(up, api)
    )
}

/// A route the first config lacks.
const NEW_ROUTE: &str = "[[routes]]\nprefix = \"/new/\"\nupstream = \"up\"\n\
                         [[routes.rules]]\nmethods = [\"GET\"]\npath = \"/new/{repo+}/items\"\naction = \"read\"\n";
const NEW_PATH: &str = "/new/acme/widgets/items";

#[tokio::test]
async fn sighup_reloads_an_edit_the_file_watcher_cannot_see() {
    let up = upstream().await;
    let first = base(&up);

    // The config path is a symlink into a subfolder, as a Kubernetes
    // ConfigMap mounts it: the watcher watches the symlink's folder, so an
    // edit of the target (in another folder) is for SIGHUP to pick up.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let target = data.join("repogate.toml");
    let link = dir.path().join("repogate.toml");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (proxy, admin) = (free_port(), free_port());
    let template = format!("{HEAD}{first}");
    std::fs::write(&target, fill(&template, dir.path(), proxy, admin)).unwrap();
    let mut gate = Process::spawn(dir, link, proxy, admin);
    if let Err(log) = gate.wait_ready().await {
        panic!("repogate did not start:\n{log}");
    }
    let session = gate.login().await;
    let (_, token) = gate.mint(&session).await;
    let before = get(&gate.url(NEW_PATH), &token).await;
    assert_eq!(before.status, 404, "{:?}", before.body);

    replace_file(&target, &gate.fill(&format!("{template}{NEW_ROUTE}")));
    // Five debounce windows: had the watcher seen the edit, it would have
    // reloaded by now, and SIGHUP would prove nothing below.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let status = gate.status(&session).await;
    assert_eq!(
        status["generation"], 1,
        "the watcher reloaded an edit behind a symlink; this test needs an edit only SIGHUP sees: {status:#}"
    );
    assert_eq!(get(&gate.url(NEW_PATH), &token).await.status, 404);

    gate.sighup();
    let status = gate
        .wait_for_status(&session, "generation 2 after SIGHUP", |s| {
            s["generation"].as_u64() >= Some(2)
        })
        .await;
    assert_eq!(
        status["generation"], 2,
        "one SIGHUP, one reload: {status:#}"
    );
    assert_eq!(status["last_reload"]["ok"], true, "{status:#}");
    assert_eq!(status["last_reload"]["generation"], 2, "{status:#}");
    let heard = gate
        .json_lines()
        .into_iter()
        .filter(|l| l["message"] == "SIGHUP received; reloading config" && l["level"] == "INFO");
    assert_eq!(heard.count(), 1, "log:\n{}", gate.log());

    let after = get(&gate.url(NEW_PATH), &token).await;
    assert_eq!(
        after.status, 200,
        "the new route is not served: {:?}",
        after.body
    );
    assert_eq!(up.last().target, NEW_PATH);
    // The process survived the signal and still serves the old routes.
    assert!(gate.exited().is_none(), "SIGHUP ended the process");
    assert_eq!(get(&gate.url(ISSUES), &token).await.status, 200);
}

/// The keys of the restart warnings in the log so far.
fn warned_keys(lines: &[Value]) -> BTreeSet<String> {
    lines
        .iter()
        .filter(|l| l["message"] == RESTART_WARNING)
        .map(|l| {
            assert_eq!(l["level"], "WARN", "{l}");
            l["key"]
                .as_str()
                .expect("the warning names its key")
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn moving_server_listen_in_a_reload_warns_that_a_restart_is_needed_and_keeps_serving() {
    let up = upstream().await;
    let rest = base(&up);
    let gate = Process::start(&rest).await;
    let session = gate.login().await;
    let (_, token) = gate.mint(&session).await;

    let elsewhere = free_port();
    let moved = HEAD.replace("{proxy}", &format!("127.0.0.1:{elsewhere}"));
    replace_file(&gate.config, &gate.fill(&format!("{moved}{rest}")));
    gate.wait_for_status(&session, "a reload of the moved listener", |s| {
        s["generation"].as_u64() >= Some(2)
    })
    .await;

    let warnings = gate
        .wait_for_lines("warning about server.listen", 1, |l| {
            l["message"] == RESTART_WARNING
        })
        .await;
    assert_eq!(
        warned_keys(&warnings),
        BTreeSet::from(["server.listen".to_owned()]),
        "only server.listen changed; log:\n{}",
        gate.log()
    );
    assert_eq!(warnings.len(), 1, "one change, one warning: {warnings:?}");

    let served = get(&gate.url(ISSUES), &token).await;
    assert_eq!(
        served.status, 200,
        "the running listener stopped: {:?}",
        served.body
    );
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", elsewhere)).await;
    assert!(
        refused.is_err(),
        "the reload bound the new address without a restart"
    );
    let status = gate.status(&session).await;
    assert_eq!(status["last_reload"]["ok"], true, "{status:#}");
}

/// Every key the README says needs a restart, with a changed value (the
/// first config has the defaults, or `HEAD`'s values).
const RESTART_ONLY: [(&str, &str, &str); 14] = [
    ("server", "listen", "\"{moved_proxy}\""),
    ("server", "workers", "2"),
    ("server", "max_connections", "100"),
    ("server", "header_read_timeout", "\"20s\""),
    ("server", "max_header_bytes", "32768"),
    ("server", "max_headers", "50"),
    ("server", "idle_timeout", "\"30s\""),
    ("admin", "listen", "\"{moved_admin}\""),
    ("admin", "login_concurrency", "1"),
    ("store", "path", "\"{store}-moved\""),
    ("cache", "ttl", "\"1m\""),
    ("cache", "max_entries", "10"),
    ("cache", "last_used_flush", "\"5s\""),
    ("log", "format", "\"text\""),
];

#[tokio::test]
async fn a_reload_warns_about_every_restart_only_key_the_readme_lists() {
    let up = upstream().await;
    let first = format!(
        "[log]\nformat = \"json\"\n{}{}",
        admin_user(),
        upstream_route(&up, GITLAB)
    );
    let gate = Process::start(&first).await;
    let session = gate.login().await;

    // One table per section, each key set to its changed value.
    let mut changed = String::new();
    for table in ["server", "admin", "store", "cache", "log"] {
        changed += &format!("[{table}]\n");
        for (_, key, value) in RESTART_ONLY.iter().filter(|(t, _, _)| *t == table) {
            changed += &format!("{key} = {value}\n");
        }
    }
    let changed = changed
        .replace("{moved_proxy}", &format!("127.0.0.1:{}", free_port()))
        .replace("{moved_admin}", &format!("127.0.0.1:{}", free_port()));
    let text = format!(
        "{}{}{}",
        gate.fill(&changed),
        admin_user(),
        upstream_route(&up, GITLAB)
    );
    replace_file(&gate.config, &text);
    gate.wait_for_status(&session, "a reload of the restart-only keys", |s| {
        s["generation"].as_u64() >= Some(2)
    })
    .await;
    // The warnings are logged before the swap the status shows.
    let warned = warned_keys(&gate.json_lines());

    let missing: Vec<String> = RESTART_ONLY
        .iter()
        .map(|(table, key, _)| format!("{table}.{key}"))
        .filter(|key| {
            // A warning may name the key or its whole table (`cache`, `cache.*`).
            !warned.iter().any(|w| {
                let table = w.trim_end_matches(".*");
                w == key || key.starts_with(&format!("{table}."))
            })
        })
        .collect();
    assert!(
        missing.is_empty(),
        "changed without a restart warning: {missing:?}; warned: {warned:?}"
    );
}
