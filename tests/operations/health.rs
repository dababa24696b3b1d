//! Readiness as an orchestrator polls it from the moment the process starts,
//! the connection and login-failure metrics, and a second gateway on a port
//! that is already served.

use std::time::{Duration, Instant};

use http::Method;
use tokio::net::TcpStream;

use super::process::*;
use super::*;

/// `/readyz` cannot be caught answering "not ready": the admin listener is
/// bound only after the store is open, the config loaded and the proxy
/// listener bound, so before that it refuses connections. What can be
/// checked is the promise behind a 200: from the first one on, the proxy
/// answers.
#[tokio::test]
async fn readyz_answers_only_200_and_only_once_the_proxy_answers() {
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let (proxy, admin) = (free_port(), free_port());
    let config = dir.path().join("repogate.toml");
    let template = format!("{HEAD}{}", upstream_route(&up, GITLAB));
    std::fs::write(&config, fill(&template, dir.path(), proxy, admin)).unwrap();
    let mut gate = Process::spawn(dir, config, proxy, admin);

    let readyz = gate.admin_url("/readyz");
    let deadline = Instant::now() + STARTUP;
    loop {
        if let Some(status) = gate.exited() {
            panic!("exited with {status}:\n{}", gate.log());
        }
        match probe(&readyz).await {
            Some(200) => break,
            Some(other) => panic!("/readyz answered {other} while starting"),
            None => {}
        }
        assert!(Instant::now() < deadline, "never ready:\n{}", gate.log());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // At once, without retrying: a ready gateway answers proxied requests.
    let reply = send(Method::GET, &gate.url(ISSUES), &[], "").await;
    assert_eq!(reply.status, 401, "{:?}", reply.body);
    let ready = send(Method::GET, &readyz, &[], "").await;
    assert_eq!(ready.json()["status"], "ready", "{:?}", ready.body);
    assert_eq!(ready.json()["generation"], 1, "{:?}", ready.body);
}

/// Polls the scrape until `series` reads `want`.
async fn wait_for_sample(gate: &Gate, series: &str, want: f64) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let metrics = scrape(gate).await;
        let got = sample(&metrics, series);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} stayed {got}, expected {want}:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn held_open_connections_raise_the_open_connections_gauge_until_they_close() {
    let up = upstream().await;
    let gate = gateway(&upstream_route(&up, GITLAB)).await;
    const GAUGE: &str = "repogate_open_connections";
    let metrics = scrape(&gate).await;
    assert!(metrics.contains(GAUGE), "{metrics}");
    assert_eq!(sample(&metrics, GAUGE), 0.0, "{metrics}");

    // Connected and silent: no request, only an open connection.
    let first = TcpStream::connect(gate.running.proxy_addr).await.unwrap();
    wait_for_sample(&gate, GAUGE, 1.0).await;
    let second = TcpStream::connect(gate.running.proxy_addr).await.unwrap();
    wait_for_sample(&gate, GAUGE, 2.0).await;

    drop(first);
    wait_for_sample(&gate, GAUGE, 1.0).await;
    drop(second);
    wait_for_sample(&gate, GAUGE, 0.0).await;
}

#[tokio::test]
async fn a_wrong_admin_password_raises_the_login_failures_counter() {
    let up = upstream().await;
    // Ops::start logs in once, successfully.
    let ops = Ops::start(&upstream_route(&up, GITLAB)).await;
    const COUNTER: &str = "repogate_admin_login_failures_total";
    let metrics = scrape(&ops.gate).await;
    assert!(metrics.contains(COUNTER), "{metrics}");
    assert_eq!(sample(&metrics, COUNTER), 0.0, "a good login counted");

    let url = ops.gate.admin_url("/admin/v1/login");
    let body = r#"{"user":"admin","password":"not-pw"}"#;
    let reply = send(Method::POST, &url, &[], body).await;
    assert_eq!(reply.status, 401, "{:?}", reply.body);

    let metrics = scrape(&ops.gate).await;
    assert_eq!(sample(&metrics, COUNTER), 1.0, "{metrics}");
    assert!(!metrics.contains("not-pw"), "a password reached the scrape");
}

#[tokio::test]
async fn a_second_gateway_refuses_to_start_on_a_port_another_gateway_serves() {
    let up = upstream().await;
    let rest = upstream_route(&up, GITLAB);
    let first = Process::start(&rest).await;

    let dir = tempfile::tempdir().unwrap();
    let admin = free_port();
    let config = dir.path().join("repogate.toml");
    let template = format!("{HEAD}{rest}");
    std::fs::write(&config, fill(&template, dir.path(), first.proxy, admin)).unwrap();
    let mut second = Process::spawn(dir, config, first.proxy, admin);

    match second.wait_ready().await {
        Ok(()) => panic!(
            "a second gateway started on port {} while the first serves it:\n{}",
            first.proxy,
            second.log()
        ),
        Err(log) => assert!(
            log.contains(&format!("cannot listen on 127.0.0.1:{}", first.proxy)),
            "{log}"
        ),
    }
    let status = second.exited().expect("the second gateway exited");
    assert!(!status.success(), "{status}");
    assert_eq!(probe(&first.admin_url("/readyz")).await, Some(200));
}
