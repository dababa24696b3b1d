//! Reloads by the file watcher: what an edit changes, what a broken file
//! leaves in place, and that nothing but an edit reloads.

use std::time::Duration;

use repogate::access::Role;

use super::*;

#[tokio::test]
async fn a_route_added_to_the_file_is_served_after_reload_without_restart() {
    let up = upstream().await;
    let api = "[[routes]]\nprefix = \"/api/\"\nupstream = \"up\"\npreset = \"gitlab\"\n";
    let first = format!("{}{REPOS}", upstream_route(&up, api));
    let ops = Ops::start(&first).await;
    let token = ops
        .gate
        .mint(false, &[("acme/widgets", Role::Viewer)])
        .await;
    let new_path = "/new/acme/widgets/items";

    let before = get(&ops.gate.url(new_path), &token).await;
    assert_eq!(before.status, 404, "{:?}", before.body);
    assert_eq!(before.json()["error"], "no_route");

    // Only the file changes: the watcher notices, nothing calls reload.
    let added = "[[routes]]\nprefix = \"/new/\"\nupstream = \"up\"\n\
                 [[routes.rules]]\nmethods = [\"GET\"]\npath = \"/new/{repo+}/items\"\naction = \"read\"\n";
    ops.rewrite(&format!("{first}{added}"));
    let status = ops
        .wait_for("generation 2", |s| s["generation"].as_u64() >= Some(2))
        .await;
    assert_eq!(status["last_reload"]["ok"], true, "{status:#}");

    let after = get(&ops.gate.url(new_path), &token).await;
    assert_eq!(after.status, 200, "{:?}", after.body);
    let seen = up.last();
    assert_eq!(seen.target, new_path);
    assert_eq!(seen.headers["private-token"], "real-upstream-secret");
}

#[tokio::test]
async fn a_broken_file_keeps_the_old_state_and_status_reports_the_failure() {
    let up = upstream().await;
    let good = format!("{}{REPOS}", upstream_route(&up, GITLAB));
    let ops = Ops::start(&good).await;
    let token = ops
        .gate
        .mint(false, &[("acme/widgets", Role::Viewer)])
        .await;
    assert_eq!(get(&ops.gate.url(ISSUES), &token).await.status, 200);

    // A TOML syntax error, then a reference to an upstream that does not exist.
    let broken = [
        (
            "upstream = \"up\"\npreset = gitlab",
            "preset = gitlab",
            "expected",
        ),
        (
            "upstream = \"gitlub\"\npreset = \"gitlab\"",
            "upstream = \"gitlub\"",
            "no upstream named `gitlub`",
        ),
    ];
    let mut errors_before = 0.0;
    for (body, bad_line, reason) in broken {
        let route = format!("[[routes]]\nprefix = \"/broken/\"\n{body}\n");
        let text = ops.rewrite(&format!("{good}{route}"));
        let failed = ops
            .wait_for(reason, |s| {
                s["last_reload"]["ok"] == false
                    && s["last_reload"]["error"]
                        .as_str()
                        .is_some_and(|e| e.contains(reason))
            })
            .await;

        let error = failed["last_reload"]["error"].as_str().unwrap();
        let at = format!("repogate.toml:{}:", line_of(&text, bad_line));
        assert!(error.contains(&at), "{error:?} does not point at {at}");
        assert_eq!(failed["generation"], 1, "{failed:#}");
        assert_eq!(failed["last_reload"]["generation"], 1, "{failed:#}");

        let served = get(&ops.gate.url(ISSUES), &token).await;
        assert_eq!(
            served.status, 200,
            "the old routes stopped: {:?}",
            served.body
        );
        let metrics = scrape(&ops.gate).await;
        let errors = sample(&metrics, "repogate_config_reloads_total{result=\"error\"}");
        assert!(
            errors > errors_before,
            "no failed reload counted: {metrics}"
        );
        errors_before = errors;
        assert_eq!(sample(&metrics, "repogate_config_generation"), 1.0);
    }

    ops.rewrite(&good);
    let fixed = ops
        .wait_for("the fixed file", |s| s["last_reload"]["ok"] == true)
        .await;
    // At least 2: how many reloads one edit causes has its own tests below.
    assert!(fixed["generation"].as_u64() >= Some(2), "{fixed:#}");
    assert!(fixed["last_reload"]["generation"].as_u64() >= Some(2));
    assert!(fixed["last_reload"]["error"].is_null(), "{fixed:#}");
    let metrics = scrape(&ops.gate).await;
    let ok = sample(&metrics, "repogate_config_reloads_total{result=\"ok\"}");
    assert!(ok >= 1.0, "{metrics}");
    assert_eq!(get(&ops.gate.url(ISSUES), &token).await.status, 200);
}

/// How long a test watches for reloads that should not happen: five
/// debounce windows. Absence cannot be polled for, so this one is a sleep.
const QUIET: Duration = Duration::from_secs(1);

#[tokio::test]
async fn one_edit_of_the_config_file_reloads_it_once() {
    let up = upstream().await;
    let rest = upstream_route(&up, GITLAB);
    let ops = Ops::start(&rest).await;

    ops.rewrite(&format!("{rest}{REPOS}"));
    ops.wait_for("generation 2", |s| s["generation"].as_u64() >= Some(2))
        .await;

    // Nothing touches the file any more, so nothing may reload it.
    tokio::time::sleep(QUIET).await;
    let status = ops.status().await;
    assert_eq!(
        status["generation"], 2,
        "one edit, several reloads: {status:#}"
    );
    let metrics = scrape(&ops.gate).await;
    let ok = sample(&metrics, "repogate_config_reloads_total{result=\"ok\"}");
    assert_eq!(ok, 1.0, "reloads counted for one edit");
}

#[tokio::test]
async fn reading_the_config_file_does_not_reload_it() {
    let up = upstream().await;
    let ops = Ops::start(&upstream_route(&up, GITLAB)).await;

    // What `cat`, a backup agent or `repogate check-config` does to the file.
    let text = std::fs::read_to_string(config_path(&ops.gate)).unwrap();
    assert!(text.contains("[[upstreams]]"));

    tokio::time::sleep(QUIET).await;
    let status = ops.status().await;
    assert_eq!(
        status["generation"], 1,
        "a read reloaded the file: {status:#}"
    );
    assert!(status["last_reload"].is_null(), "{status:#}");
}
