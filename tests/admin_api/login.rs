//! Login, sessions, logout and the failed-login limiter.

use std::time::Duration;

use http::Method;

use crate::common::*;
use crate::{assert_error, login, Admin};

const CHALLENGE: &str = "Bearer realm=\"repogate-admin\"";

/// The wait in ms a 429 reply names in its message ("retry in N ms").
fn retry_ms(reply: &Reply) -> u64 {
    let message = assert_error(reply, 429, "too_many_attempts");
    let after = message
        .split("retry in ")
        .nth(1)
        .unwrap_or_else(|| panic!("a wait in {message:?}"));
    after
        .trim_end_matches(" ms")
        .parse()
        .unwrap_or_else(|_| panic!("a number of ms in {message:?}"))
}

#[tokio::test]
async fn a_login_returns_a_session_that_expires_after_the_configured_ttl() {
    let gate = gateway(&admin_user()).await;

    let reply = login(&gate, "admin", "pw").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let body = reply.json();
    let session = body["session"].as_str().unwrap();
    assert!(
        session.starts_with("rgs_") && session.len() == 52,
        "{session}"
    );

    // The default ttl is 15 minutes.
    let expires = humantime::parse_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
    let left = expires
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(
        left > Duration::from_secs(14 * 60) && left <= Duration::from_secs(15 * 60),
        "{left:?}"
    );
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_401() {
    let gate = gateway(&admin_user()).await;

    let wrong = login(&gate, "admin", "not-pw").await;
    let wrong_message = assert_error(&wrong, 401, "wrong_password");
    assert_eq!(wrong.headers["www-authenticate"], CHALLENGE);

    // Wait out the limiter's first delay so the second attempt is judged too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let unknown = login(&gate, "nobody", "pw").await;
    assert_eq!(assert_error(&unknown, 401, "wrong_password"), wrong_message);
    assert_eq!(unknown.headers["www-authenticate"], CHALLENGE);
    assert!(
        !wrong_message.contains("admin") && !wrong_message.contains("nobody"),
        "{wrong_message}"
    );
}

#[tokio::test]
async fn every_admin_route_refuses_a_request_without_a_session() {
    let gate = gateway(&admin_user()).await;
    let routes = [
        (Method::POST, "/admin/v1/logout"),
        (Method::GET, "/admin/v1/tokens"),
        (Method::POST, "/admin/v1/tokens"),
        (Method::GET, "/admin/v1/tokens/rgt_000000000000"),
        (Method::DELETE, "/admin/v1/tokens/rgt_000000000000"),
        (Method::GET, "/admin/v1/tokens/export.csv"),
        (Method::GET, "/admin/v1/repos"),
        (Method::POST, "/admin/v1/repos"),
        (Method::DELETE, "/admin/v1/repos/acme%2Fwidgets"),
        (Method::GET, "/admin/v1/settings"),
        (Method::PUT, "/admin/v1/settings"),
        (Method::GET, "/admin/v1/audit"),
        (Method::GET, "/admin/v1/status"),
    ];

    for (method, path) in routes {
        let reply = send(method.clone(), &gate.admin_url(path), &[], "{}").await;
        assert_error(&reply, 401, "no_session");
        assert_eq!(
            reply.headers["www-authenticate"], CHALLENGE,
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn a_garbage_forged_or_misplaced_session_is_refused() {
    let admin = Admin::start("").await;
    let access_token = admin.gate.mint(true, &[]).await;
    let mut forged = admin.session.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });

    let presented = [
        "Bearer garbage".to_owned(),
        format!("Bearer rgs_{}", "A".repeat(48)),
        format!("Bearer {forged}"),
        format!("Basic {}", admin.session),
        format!("Bearer {access_token}"),
        "Bearer ".to_owned(),
    ];
    for auth in &presented {
        let reply = send(
            Method::GET,
            &admin.gate.admin_url("/admin/v1/status"),
            &[("authorization", auth)],
            "",
        )
        .await;
        assert_eq!(reply.status, 401, "{auth}");
        assert_error(&reply, 401, "no_session");
    }

    // The real session still works: the refusals were about what was presented.
    assert_eq!(admin.get("/admin/v1/status").await.status, 200);
}

#[tokio::test]
async fn logout_ends_that_session_and_only_that_one() {
    let admin = Admin::start("").await;
    let other = login(&admin.gate, "admin", "pw").await.json()["session"]
        .as_str()
        .unwrap()
        .to_owned();

    let reply = admin.call(Method::POST, "/admin/v1/logout", "").await;
    assert_eq!(reply.status, 204, "{:?}", reply.body);

    assert_error(&admin.get("/admin/v1/tokens").await, 401, "no_session");
    assert_error(
        &admin.call(Method::POST, "/admin/v1/logout", "").await,
        401,
        "no_session",
    );
    assert_eq!(
        get(&admin.gate.admin_url("/admin/v1/tokens"), &other)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_failed_login_makes_the_next_attempt_wait_and_the_wait_doubles() {
    let gate = gateway(&admin_user()).await;

    assert_eq!(login(&gate, "admin", "nope").await.status, 401);
    // Refused inside the window even with the right password.
    let first = login(&gate, "admin", "pw").await;
    let first_wait = retry_ms(&first);
    assert!(first_wait > 0 && first_wait <= 250, "{first_wait}");
    assert_eq!(first.headers["retry-after"], "1");

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(login(&gate, "admin", "nope").await.status, 401);
    let second_wait = retry_ms(&login(&gate, "admin", "pw").await);
    assert!(second_wait > 250 && second_wait <= 500, "{second_wait}");

    // After the wait a right password gets in again.
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert_eq!(login(&gate, "admin", "pw").await.status, 200);
}

#[tokio::test]
async fn concurrent_failed_logins_from_one_address_are_not_all_checked() {
    let gate = gateway(&admin_user()).await;

    // Eight guesses sent at once: the limiter must not let them all through
    // to the password check just because none has failed yet.
    let attempts = (0..8).map(|i| {
        let url = gate.admin_url("/admin/v1/login");
        let body =
            serde_json::json!({ "user": "admin", "password": format!("guess-{i}") }).to_string();
        async move {
            send(
                Method::POST,
                &url,
                &[("content-type", "application/json")],
                &body,
            )
            .await
        }
    });
    let tasks: Vec<_> = attempts.map(tokio::spawn).collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("the login task finishes"));
    }

    let checked = replies.iter().filter(|r| r.status == 401).count();
    let limited = replies.iter().filter(|r| r.status == 429).count();
    assert_eq!(checked + limited, replies.len());
    assert!(
        checked <= 2,
        "{checked} of 8 concurrent guesses reached the password check"
    );
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    // The harness writes `[admin]` itself, so this gateway gets its own config
    // with a one-hour session ttl, which paused tokio time runs out without a
    // real wait (sessions expire on `tokio::time::Instant`; the exact boundary
    // is a unit test).
    let ttl = Duration::from_secs(3600);
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\nsession_ttl = \"1h\"\n[store]\npath = \"{}\"\n{}",
        dir.path().join("db").display(),
        admin_user()
    );
    let gate = gateway_from_text(dir, &text).await;

    let session = login(&gate, "admin", "pw").await.json()["session"]
        .as_str()
        .unwrap()
        .to_owned();
    let status = gate.admin_url("/admin/v1/status");
    assert_eq!(get(&status, &session).await.status, 200);

    // Time is moved only around the jumps; the HTTP calls run on real time,
    // which keeps the offset the jumps added.
    tokio::time::pause();
    tokio::time::advance(ttl - Duration::from_secs(60)).await;
    tokio::time::resume();
    assert_eq!(
        get(&status, &session).await.status,
        200,
        "a minute before its ttl the session still works"
    );

    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(61)).await;
    tokio::time::resume();
    assert_error(&get(&status, &session).await, 401, "no_session");
}

#[tokio::test]
async fn the_proxy_listener_does_not_serve_the_admin_api() {
    let admin = Admin::start("").await;
    let body = serde_json::json!({ "user": "admin", "password": "pw" }).to_string();

    let login = send(Method::POST, &admin.gate.url("/admin/v1/login"), &[], &body).await;
    assert_ne!(login.status, 200, "{:?}", login.body);
    let status = get(&admin.gate.url("/admin/v1/status"), &admin.session).await;
    assert_ne!(status.status, 200, "{:?}", status.body);
    assert!(!String::from_utf8_lossy(&status.body).contains("version"));
}
