//! What the binary writes to stderr: a line per bound listener, and the
//! access log's one event per request.

use http::Method;
use serde_json::Value;

use super::process::*;
use super::*;

/// A query value that must never reach the log.
const QUERY_NEEDLE: &str = "needle-from-the-query";

fn access_events(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|l| l["target"] == "repogate::access")
        .collect()
}

#[tokio::test]
async fn the_access_log_has_one_event_per_request_with_its_fields_and_no_secret_or_query() {
    let up = upstream().await;
    let rest = format!(
        "[log]\nformat = \"json\"\naccess_log = true\n{}{}{REPOS}",
        admin_user(),
        upstream_route(&up, GITLAB)
    );
    let gate = Process::start(&rest).await;
    let session = gate.login().await;
    let (id, token) = gate.mint(&session).await;
    assert!(
        access_events(&gate.json_lines()).is_empty(),
        "admin requests are not proxied requests:\n{}",
        gate.log()
    );

    // (path, token, status, repo, decision), each with the same query.
    let query = format!("state=opened&search={QUERY_NEEDLE}");
    let requests = [
        (ISSUES, Some(token.as_str()), 200, "acme/widgets", "Allowed"),
        (
            GADGET_ISSUES,
            Some(token.as_str()),
            403,
            "acme/gadgets",
            "Denied",
        ),
        (ISSUES, None, 401, "-", "Denied"),
    ];
    for (path, token, status, ..) in requests {
        let url = gate.url(&format!("{path}?{query}"));
        let reply = match token {
            Some(token) => get(&url, token).await,
            None => send(Method::GET, &url, &[], "").await,
        };
        assert_eq!(reply.status, status, "{path}: {:?}", reply.body);
    }
    assert_eq!(
        up.last().target,
        format!("{ISSUES}?{query}"),
        "the query is forwarded, only kept out of the log"
    );

    let lines = gate
        .wait_for_lines("from the access log", requests.len(), |l| {
            l["target"] == "repogate::access"
        })
        .await;
    assert_eq!(
        lines.len(),
        requests.len(),
        "one event per request: {lines:#?}"
    );
    for ((path, token, status, repo, decision), event) in requests.iter().zip(&lines) {
        let context = format!("{path} -> {status}: {event}");
        assert_eq!(event["level"], "INFO", "{context}");
        assert_eq!(event["method"], "GET", "{context}");
        assert_eq!(
            event["path"], *path,
            "the path without its query; {context}"
        );
        assert_eq!(event["route"], "/", "{context}");
        assert_eq!(event["action"], "read", "{context}");
        assert_eq!(event["decision"], *decision, "{context}");
        assert_eq!(event["status"], *status, "{context}");
        let token_id = if token.is_some() { id.as_str() } else { "-" };
        assert_eq!(event["token.id"], token_id, "{context}");
        if token.is_some() {
            assert_eq!(event["repo"], *repo, "{context}");
        }
        match *status {
            200 => {
                let ms = event["upstream_ms"].as_f64();
                assert!(
                    ms.is_some_and(|ms| ms >= 0.0),
                    "an allowed request has its upstream milliseconds: {context}"
                );
            }
            _ => assert!(
                event.get("upstream_ms").is_none_or(Value::is_null),
                "a refused request never reached the upstream: {context}"
            ),
        }
    }

    let log = gate.log();
    assert!(
        !log.contains(&token),
        "the token secret is in the log:\n{log}"
    );
    assert!(
        !log.contains(&token[16..48]),
        "the secret part is in the log"
    );
    assert!(
        !log.contains(QUERY_NEEDLE),
        "the query is in the log:\n{log}"
    );
    assert!(!log.contains("real-upstream-secret"), "{log}");
}

#[tokio::test]
async fn without_access_log_no_access_event_is_written() {
    let up = upstream().await;
    let rest = format!("[log]\nformat = \"json\"\n{}", upstream_route(&up, GITLAB));
    let gate = Process::start(&rest).await;
    let reply = send(Method::GET, &gate.url(ISSUES), &[], "").await;
    assert_eq!(reply.status, 401);
    // The access event is written before the response goes out: after the
    // reply it would be in the log already.
    let lines = gate.json_lines();
    assert!(access_events(&lines).is_empty(), "log:\n{}", gate.log());
}

/// The log with terminal colour codes removed.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, ended by a letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test]
async fn each_listener_logs_one_info_line_at_start_in_text_format() {
    let gate = Process::start("[log]\nformat = \"text\"\n").await;
    let log = plain(&gate.log());
    for (message, port) in [
        ("proxy listening", gate.proxy),
        ("admin listening", gate.admin),
    ] {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(message)).collect();
        assert_eq!(lines.len(), 1, "{message}:\n{log}");
        let line = lines[0];
        assert!(line.contains(" INFO "), "{line}");
        assert!(
            line.contains(&format!("addr=127.0.0.1:{port}")),
            "the line names the bound address: {line}"
        );
        assert!(
            serde_json::from_str::<Value>(line).is_err(),
            "a text line is not JSON: {line}"
        );
    }
}

#[tokio::test]
async fn each_listener_logs_one_info_line_at_start_in_json_format() {
    let gate = Process::start("[log]\nformat = \"json\"\n").await;
    let lines = gate.json_lines();
    for (message, port) in [
        ("proxy listening", gate.proxy),
        ("admin listening", gate.admin),
    ] {
        let found: Vec<&Value> = lines.iter().filter(|l| l["message"] == message).collect();
        assert_eq!(found.len(), 1, "{message}:\n{}", gate.log());
        assert_eq!(found[0]["level"], "INFO", "{}", found[0]);
        assert_eq!(
            found[0]["addr"],
            format!("127.0.0.1:{port}"),
            "{}",
            found[0]
        );
        assert!(found[0]["timestamp"].is_string(), "{}", found[0]);
    }
    let proxy = lines
        .iter()
        .find(|l| l["message"] == "proxy listening")
        .unwrap();
    assert_eq!(proxy["scheme"], "http", "{proxy}");
    assert_eq!(proxy["workers"], 1, "{proxy}");
}

#[tokio::test]
async fn text_log_lines_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let gate = Process::start("[log]\nformat = \"text\"\n").await;
    let log = gate.log();
    assert!(log.contains("proxy listening"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "escape codes in a log file: {:?}",
        log.lines().next()
    );
}

/// The two messages a refused request is logged under at info: `request
/// denied` (a token that resolved, refused by its validity or the role
/// table) and `request refused` (everything else that is not an upstream
/// failure or a missing token).
const FAILURE_MESSAGES: [&str; 2] = ["request denied", "request refused"];

fn is_failure_event(line: &Value) -> bool {
    FAILURE_MESSAGES.iter().any(|m| line["message"] == *m)
}

/// A token that passes the format check (its checksum is right) but was
/// never minted here.
fn unknown_token() -> (String, String) {
    let minted = repogate::token::generate().unwrap();
    (
        minted.id.as_str().to_owned(),
        minted.secret.expose().to_owned(),
    )
}

/// Revokes `id` through the admin API.
async fn revoke(gate: &Process, session: &str, id: &str) {
    let auth = format!("Bearer {session}");
    let url = gate.admin_url(&format!("/admin/v1/tokens/{id}"));
    let reply = send(Method::DELETE, &url, &[("authorization", &auth)], "").await;
    assert_eq!(reply.status, 204, "revoke: {:?}", reply.body);
}

/// A request on GitLab's project API, refused by the role table for a viewer
/// on acme/widgets: (method, path, repo, action, role held).
const FORBIDDEN: [(Method, &str, &str, &str, &str); 4] = [
    (
        Method::GET,
        GADGET_ISSUES,
        "acme/gadgets",
        "read",
        "no_access",
    ),
    (
        Method::POST,
        "/api/v4/projects/acme%2Fwidgets/merge_requests",
        "acme/widgets",
        "write",
        "viewer",
    ),
    (
        Method::DELETE,
        "/api/v4/projects/acme%2Fwidgets",
        "acme/widgets",
        "maintain",
        "viewer",
    ),
    (
        Method::GET,
        "/api/v4/projects/acme%2Fwidgets/hooks/7",
        "acme/widgets",
        "integrate",
        "viewer",
    ),
];

#[tokio::test]
async fn every_denied_request_logs_one_info_event_with_its_token_id_repo_action_and_reason_and_no_secret(
) {
    let up = upstream().await;
    let rest = format!(
        "[log]\nformat = \"json\"\n{}{}{REPOS}",
        admin_user(),
        upstream_route(&up, GITLAB)
    );
    let gate = Process::start(&rest).await;
    let session = gate.login().await;
    let (id, token) = gate.mint(&session).await;
    let (revoked_id, revoked) = gate.mint(&session).await;
    // Allowed before the revoke, so the revoke has a cached entry to invalidate.
    assert_eq!(get(&gate.url(ISSUES), &revoked).await.status, 200);
    revoke(&gate, &session, &revoked_id).await;
    let unknown: Vec<(String, String)> = (0..3).map(|_| unknown_token()).collect();
    // A well-formed token with one checksum character changed.
    let mut malformed = unknown_token().1;
    let last = if malformed.ends_with('0') { '1' } else { '0' };
    malformed.pop();
    malformed.push(last);
    let before = gate
        .json_lines()
        .into_iter()
        .filter(is_failure_event)
        .count();
    assert_eq!(before, 0, "nothing was refused yet:\n{}", gate.log());

    let auth = format!("Bearer {token}");
    for (method, path, ..) in &FORBIDDEN {
        let reply = send(
            method.clone(),
            &gate.url(path),
            &[("authorization", &auth)],
            "",
        )
        .await;
        assert_eq!(reply.status, 403, "{method} {path}: {:?}", reply.body);
    }
    for (_, secret) in &unknown {
        let reply = get(&gate.url(ISSUES), secret).await;
        assert_eq!(reply.status, 401, "unknown token: {:?}", reply.body);
    }
    let reply = get(&gate.url(ISSUES), &malformed).await;
    assert_eq!(reply.status, 401, "malformed token: {:?}", reply.body);
    let reply = get(&gate.url(ISSUES), &revoked).await;
    assert_eq!(reply.status, 401, "revoked token: {:?}", reply.body);
    let reply = send(Method::GET, &gate.url(ISSUES), &[], "").await;
    assert_eq!(reply.status, 401, "no token: {:?}", reply.body);

    // One event per denied request; none for the request without a token.
    let expected = FORBIDDEN.len() + unknown.len() + 1 + 1;
    let events = gate
        .wait_for_lines("for denied requests", expected, is_failure_event)
        .await;
    assert_eq!(
        events.len(),
        expected,
        "one event per denied request, none for a missing token: {events:#?}"
    );
    for event in &events {
        assert_eq!(event["level"], "INFO", "{event}");
        assert_eq!(event["client.ip"], "127.0.0.1", "{event}");
    }

    // Requests went one after another, so their events are in that order.
    let (forbidden, rest) = events.split_at(FORBIDDEN.len());
    for ((method, path, repo, action, role), event) in FORBIDDEN.iter().zip(forbidden) {
        let context = format!("{method} {path}: {event}");
        assert_eq!(event["message"], "request denied", "{context}");
        assert_eq!(event["status"], 403, "{context}");
        assert_eq!(event["token.id"], id.as_str(), "{context}");
        assert_eq!(event["repo"], *repo, "{context}");
        assert_eq!(event["action"], *action, "{context}");
        assert_eq!(
            event["reason"],
            format!("role {role} on {repo} does not allow {action}"),
            "{context}"
        );
    }
    let (unknown_events, rest) = rest.split_at(unknown.len());
    for ((unknown_id, _), event) in unknown.iter().zip(unknown_events) {
        assert_eq!(event["message"], "request denied", "{event}");
        assert_eq!(event["status"], 401, "{event}");
        assert_eq!(event["token.id"], unknown_id.as_str(), "{event}");
        assert_eq!(
            event["reason"],
            format!("token {unknown_id} is not known"),
            "the reason names the unknown id: {event}"
        );
    }
    let [malformed_event, revoked_event] = rest else {
        panic!("one event each for the malformed and revoked tokens: {rest:#?}");
    };
    assert_eq!(
        malformed_event["message"], "request refused",
        "{malformed_event}"
    );
    assert_eq!(malformed_event["status"], 401, "{malformed_event}");
    assert_eq!(
        malformed_event["code"], "malformed_token",
        "{malformed_event}"
    );
    assert_eq!(
        malformed_event["reason"], "token checksum does not match",
        "{malformed_event}"
    );
    assert_eq!(
        revoked_event["message"], "request denied",
        "{revoked_event}"
    );
    assert_eq!(revoked_event["status"], 401, "{revoked_event}");
    assert_eq!(
        revoked_event["token.id"],
        revoked_id.as_str(),
        "{revoked_event}"
    );
    assert_eq!(revoked_event["repo"], "acme/widgets", "{revoked_event}");
    assert_eq!(revoked_event["action"], "read", "{revoked_event}");
    assert_eq!(
        revoked_event["reason"], "token was revoked",
        "{revoked_event}"
    );

    // The missing token is a debug event, below the default info level.
    let lines = gate.json_lines();
    assert!(
        lines.iter().all(|l| l["message"] != "no token; challenged"),
        "a request without a token is logged at debug only:\n{}",
        gate.log()
    );
    assert!(
        lines.iter().all(|l| l["level"] != "DEBUG"),
        "the default level is info:\n{}",
        gate.log()
    );

    let log = gate.log();
    let secrets = [&token, &revoked, &malformed]
        .into_iter()
        .chain(unknown.iter().map(|(_, secret)| secret));
    for secret in secrets {
        assert!(
            !log.contains(&secret[repogate::token::ID_LEN..]),
            "a token's secret part is in the log:\n{log}"
        );
    }
    assert!(!log.contains("real-upstream-secret"), "{log}");
}

#[tokio::test]
async fn a_request_without_a_token_is_logged_at_debug_and_not_as_a_denial() {
    let up = upstream().await;
    let rest = format!(
        "[log]\nformat = \"json\"\nlevel = \"repogate=debug\"\n{}",
        upstream_route(&up, GITLAB)
    );
    let gate = Process::start(&rest).await;
    let reply = send(Method::GET, &gate.url(ISSUES), &[], "").await;
    assert_eq!(reply.status, 401, "{:?}", reply.body);

    let challenged = gate
        .wait_for_lines("for the missing token", 1, |l| {
            l["message"] == "no token; challenged"
        })
        .await;
    assert_eq!(challenged.len(), 1, "{challenged:#?}");
    assert_eq!(challenged[0]["level"], "DEBUG", "{}", challenged[0]);
    assert_eq!(challenged[0]["status"], 401, "{}", challenged[0]);
    assert_eq!(challenged[0]["client.ip"], "127.0.0.1", "{}", challenged[0]);
    let failures: Vec<Value> = gate
        .json_lines()
        .into_iter()
        .filter(is_failure_event)
        .collect();
    assert!(
        failures.is_empty(),
        "a missing token is not a denial: {failures:#?}"
    );
}

/// DESIGN and README: every denial, a 401 for an unknown token included,
/// names the token id, repo and action as fields.
#[tokio::test]
async fn a_denial_for_an_unknown_token_names_its_token_id_repo_and_action_as_fields() {
    let up = upstream().await;
    let rest = format!(
        "[log]\nformat = \"json\"\n{}{REPOS}",
        upstream_route(&up, GITLAB)
    );
    let gate = Process::start(&rest).await;
    let (unknown_id, secret) = unknown_token();
    let reply = get(&gate.url(ISSUES), &secret).await;
    assert_eq!(reply.status, 401, "{:?}", reply.body);

    let events = gate
        .wait_for_lines("for the unknown token", 1, is_failure_event)
        .await;
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(event["level"], "INFO", "{event}");
    assert_eq!(event["status"], 401, "{event}");
    assert_eq!(event["token.id"], unknown_id.as_str(), "{event}");
    assert_eq!(event["repo"], "acme/widgets", "{event}");
    assert_eq!(event["action"], "read", "{event}");
    assert_eq!(event["client.ip"], "127.0.0.1", "{event}");
    assert!(event["reason"].is_string(), "{event}");
}
