//! Reloads while thousands of requests are in flight.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use repogate::access::Role;

use super::*;

/// A config whose upstream stamps `version` on every forwarded request, and
/// which has an extra route on odd versions.
fn versioned_config(up: &TestUpstream, version: usize) -> String {
    let extra = match version % 2 {
        1 => "[[routes]]\nprefix = \"/extra/\"\nupstream = \"up\"\npreset = \"gitlab\"\n",
        _ => "",
    };
    format!(
        "[[upstreams]]\nname = \"up\"\nurl = \"http://{}\"\ntimeout = \"10s\"\n\
         headers = {{ \"PRIVATE-TOKEN\" = \"real-upstream-secret\", \"X-Config-Version\" = \"{version}\" }}\n\
         {GITLAB}{extra}{REPOS}",
        up.addr
    )
}

/// Sends `count` reads; pooled clients reuse connections, the others open
/// one per request. Returns how many did not come back 200, with examples.
async fn read_loop(
    url: String,
    token: String,
    count: usize,
    pooled: bool,
    done: Arc<AtomicUsize>,
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut shared = client();
    for _ in 0..count {
        if !pooled {
            shared = client();
        }
        let req = Request::get(&url)
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        match shared.request(req).await {
            Ok(r) if r.status() == StatusCode::OK => {
                let _ = r.into_body().collect().await;
            }
            Ok(r) => failures.push(format!("status {}", r.status())),
            Err(e) => failures.push(format!("connection: {e:?}")),
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_under_continuous_load_loses_no_request() {
    const CLIENTS: usize = 8;
    const EACH: usize = 400;
    const RELOADS: usize = 8;
    let up = upstream().await;
    let gate = gateway(&versioned_config(&up, 1)).await;
    let token = gate.mint(false, &[("acme/widgets", Role::Viewer)]).await;
    let done = Arc::new(AtomicUsize::new(0));

    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (url, token, done) = (gate.url(ISSUES), token.clone(), Arc::clone(&done));
            tokio::spawn(read_loop(url, token, EACH, i % 2 == 0, done))
        })
        .collect();

    // Reload at evenly spread points of progress, so every swap lands mid-traffic.
    let total = CLIENTS * EACH;
    let path = config_path(&gate);
    for i in 0..RELOADS {
        while done.load(Ordering::Relaxed) < (i + 1) * total / (RELOADS + 2) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        rewrite_config(&gate, &versioned_config(&up, i + 2));
        let reloaded = repogate::reload::reload(&gate.running.gateway, &path).await;
        assert!(reloaded.is_ok(), "reload {i}: {reloaded:?}");
    }
    let sent_before_last_reload = done.load(Ordering::Relaxed);

    let mut failures = Vec::new();
    for task in clients {
        failures.extend(task.await.expect("client task"));
    }
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        sent_before_last_reload < total,
        "the reloads ran after the load"
    );
    assert_eq!(up.count(), total);

    // The swaps took effect while the load ran, not only at the end.
    let seen = up.seen.lock().unwrap();
    let mut versions: Vec<String> = seen
        .iter()
        .filter_map(|s| s.headers.get("x-config-version")?.to_str().ok())
        .map(str::to_owned)
        .collect();
    versions.sort();
    versions.dedup();
    assert!(versions.len() > RELOADS / 2, "versions seen: {versions:?}");
    assert!(
        versions.contains(&(RELOADS + 1).to_string()),
        "{versions:?}"
    );
}
