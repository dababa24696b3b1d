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
