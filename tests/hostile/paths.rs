//! Path tricks: dot segments, encodings, NUL, backslashes and path
//! parameters, one by one and then at random against what an upstream that
//! decodes and normalises would make of the forwarded path.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use percent_encoding::percent_decode_str;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

use crate::common::*;
use crate::{raw, Hostile, ISSUES};

#[tokio::test]
async fn path_tricks_get_400_bad_path_and_reach_nobody() {
    let h = Hostile::start().await;
    assert_eq!(get(&h.gate.url(ISSUES), &h.token).await.status, 200);

    let p = "/api/v4/projects";
    let tricks = [
        format!("{p}/acme%2Fwidgets/../../acme%2Fgadgets/issues"),
        format!("{p}/acme%2Fwidgets/./issues"),
        format!("{p}/acme%2Fwidgets/%2e%2e/%2e%2e/acme%2Fgadgets/issues"),
        format!("{p}/acme%2Fwidgets/%2E%2e/issues"),
        format!("{p}/acme%2Fwidgets%2F%2e%2e%2Fgadgets/issues"),
        format!("{p}/acme%2Fwidgets%00/issues"),
        format!("{p}/acme%2Fwidgets/%252e%252e/issues"),
        format!("{p}/acme%2Fwidgets%252F..%252Fgadgets/issues"),
        format!("{p}/acme%2Fwidgets%5c..%5cgadgets/issues"),
        format!("{p}/acme%2Fwidgets;/issues"),
        format!("{p}/acme%2Fwidgets/..;/acme%2Fgadgets/issues"),
        format!("{p}//acme%2Fwidgets/issues"),
        "/acme/widgets/../gadgets.git/info/refs?service=git-upload-pack".to_owned(),
        "/raw/acme/widgets/%2e%2e/gadgets/files/x".to_owned(),
        "/git/acme/widgets%2F..%2F..%2Facme/gadgets.git/info/refs?service=git-upload-pack"
            .to_owned(),
    ];
    for path in &tricks {
        let reply = get(&h.gate.url(path), &h.token).await;
        assert_eq!(reply.status, 400, "{path}: {:?}", reply.body);
        assert_eq!(reply.json()["error"], "bad_path", "{path}");
    }
    assert_eq!(h.seen_targets(), [ISSUES], "no trick reached the upstream");
}

#[tokio::test]
async fn raw_nul_and_backslash_in_the_request_target_are_refused_and_reach_nobody() {
    let h = Hostile::start().await;
    let p = "/api/v4/projects";
    let targets = [
        format!("{p}/acme%2Fwidgets\0/issues"),
        format!("{p}/acme%2Fwidgets/\0../issues"),
        format!("{p}/acme%2Fwidgets\\..\\..\\acme%2Fgadgets/issues"),
        format!("{p}/acme%2Fwidgets/..\\issues"),
        format!("{p}/acme%2Fwidgets\t/issues"),
    ];
    for target in &targets {
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: gate\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            h.token
        );
        let reply = raw(h.addr(), request.as_bytes(), Duration::from_secs(3)).await;
        // hyper's parser refuses some of these before repogate sees them
        // (a bare 400), repogate the rest (a 400 `bad_path`).
        assert!(
            reply.status() == Some(400) || (reply.status().is_none() && reply.closed),
            "{target:?}: {reply:?}"
        );
        if reply.text.contains("\"error\"") {
            assert!(reply.text.contains("\"bad_path\""), "{target:?}: {reply:?}");
        }
    }
    assert_eq!(h.seen_targets(), Vec::<String>::new());
    h.normal_client_is_served().await;
}

/// Pieces a random repository part is built from, around a core that names
/// the granted repository or a neighbour of it.
const PIECES: [&str; 18] = [
    "acme", "widgets", "gadgets", "other", "/", "//", "%2F", "%2f", "..", ".", "%2e", "%2E%2e",
    "%252e", "%252F", ";", "%00", "%5C", ".git",
];
const CORES: [&str; 6] = [
    "acme/widgets",
    "acme%2Fwidgets",
    "acme%2fwidgets",
    "acme/gadgets",
    "acme%2Fgadgets",
    "other%2Fwidgets",
];

/// Request templates, the route they hit, and the path prefix that precedes
/// the repository in what the upstream receives.
const TEMPLATES: [(&str, &str, &str); 3] = [
    ("/api/v4/projects/", "/issues", "/api/v4/projects/"),
    ("/raw/", "/files/x", "/raw/"),
    // `/git/` is stripped before forwarding.
    ("/git/", ".git/info/refs?service=git-upload-pack", "/"),
];

/// The path as an upstream that decodes would see it: each segment decoded
/// once, then dot segments resolved (RFC 3986 §5.2.4).
fn as_upstream_sees_it(target: &str) -> String {
    let path = target.split('?').next().unwrap_or_default();
    let decoded: Vec<String> = path
        .split('/')
        .map(|seg| percent_decode_str(seg).decode_utf8_lossy().into_owned())
        .collect();
    remove_dot_segments(&decoded.join("/"))
}

/// RFC 3986 §5.2.4, step by step.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path.to_owned();
    let mut output = String::new();
    let pop = |output: &mut String| {
        let cut = output.rfind('/').unwrap_or(0);
        output.truncate(cut);
    };
    while !input.is_empty() {
        if input.starts_with("../") {
            input.drain(..3);
        } else if input.starts_with("./") {
            input.drain(..2);
        } else if input.starts_with("/./") {
            input.replace_range(..3, "/");
        } else if input == "/." {
            input = "/".to_owned();
        } else if input.starts_with("/../") {
            input.replace_range(..4, "/");
            pop(&mut output);
        } else if input == "/.." {
            input = "/".to_owned();
            pop(&mut output);
        } else if input == "." || input == ".." {
            input.clear();
        } else {
            let skip = usize::from(input.starts_with('/'));
            let end = input[skip..].find('/').map_or(input.len(), |i| i + skip);
            output.push_str(&input[..end]);
            input.drain(..end);
        }
    }
    output
}

#[test]
fn remove_dot_segments_follows_the_rfc_examples() {
    assert_eq!(remove_dot_segments("/a/b/c/./../../g"), "/a/g");
    assert_eq!(remove_dot_segments("mid/content=5/../6"), "mid/6");
    assert_eq!(remove_dot_segments("/a/../../b"), "/b");
    assert_eq!(
        as_upstream_sees_it("/x/acme%2Fwidgets%2F..%2Fgadgets/y?q"),
        "/x/acme/gadgets/y"
    );
}

/// For random paths around `acme/widgets`, with a token that holds
/// developer on `acme/widgets` only: either the request is refused and
/// nothing reaches the upstream, or the upstream, decoding and normalising
/// the path it receives, finds `acme/widgets` and no other repository.
#[test]
fn random_paths_either_are_refused_or_reach_the_upstream_naming_only_the_granted_repository() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let h = rt.block_on(Hostile::start());
    let http = rt.block_on(async {
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            // Under the gateway's 1 s header read timeout, so a pooled
            // connection is never one the gateway is closing.
            .pool_idle_timeout(Duration::from_millis(300))
            .build_http::<Full<Bytes>>()
    });
    let allowed = AtomicUsize::new(0);

    // Often nothing around the core, so enough cases are allowed
    // for the "reaches the upstream" half of the property to be exercised.
    let around = || {
        prop_oneof![
            2 => Just(Vec::new()),
            1 => prop::collection::vec(prop::sample::select(PIECES.to_vec()), 1..4),
        ]
    };
    let strategy = (
        0..TEMPLATES.len(),
        around(),
        prop::sample::select(CORES.to_vec()),
        around(),
    );
    let mut runner = TestRunner::new(ProptestConfig::with_cases(200));
    let outcome = runner.run(&strategy, |(template, before, core, after)| {
        let (head, tail, base) = TEMPLATES[template];
        let path = format!("{head}{}{core}{}{tail}", before.concat(), after.concat());
        let seen_before = h.up.count();
        let req = Request::get(h.gate.url(&path))
            .header("authorization", format!("Bearer {}", h.token))
            .body(Full::new(Bytes::new()))
            .map_err(|e| TestCaseError::reject(format!("not a URI: {e}")))?;
        let status = rt.block_on(async {
            let response = http.request(req).await.expect("the gateway answers");
            let status = response.status();
            response
                .into_body()
                .collect()
                .await
                .expect("the body reads");
            status
        });

        if status != 200 {
            prop_assert!(
                [400, 401, 403, 404].contains(&status.as_u16()),
                "{path}: {status}"
            );
            prop_assert_eq!(
                h.up.count(),
                seen_before,
                "{} was refused but forwarded",
                path
            );
            return Ok(());
        }
        allowed.fetch_add(1, Ordering::Relaxed);
        prop_assert_eq!(h.up.count(), seen_before + 1);
        let target = h.up.last().target;
        let seen = as_upstream_sees_it(&target);
        let repo_part = seen.strip_prefix(base).unwrap_or_default();
        let names_widgets = repo_part == "acme/widgets"
            || repo_part.starts_with("acme/widgets/")
            || repo_part.starts_with("acme/widgets.git/");
        prop_assert!(
            names_widgets,
            "{} was allowed and reached the upstream as {} ({})",
            path,
            target,
            seen
        );
        Ok(())
    });

    if let Err(e) = outcome {
        panic!("{e}");
    }
    let allowed = allowed.into_inner();
    assert!(
        allowed >= 10,
        "only {allowed} of 200 cases were allowed: too few to mean much"
    );
    drop(h);
}
