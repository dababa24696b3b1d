//! Slowloris: clients that send their head or their body a byte at a time.

use std::time::{Duration, Instant};

use http::Method;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::*;
use crate::{read_until_closed, Hostile, ISSUES, UPLOAD};

/// Writes `bytes` one at a time, `every` apart, until done or the peer is gone.
fn dribble(mut writer: tokio::net::tcp::OwnedWriteHalf, bytes: Vec<u8>, every: Duration) {
    tokio::spawn(async move {
        for b in bytes {
            tokio::time::sleep(every).await;
            if writer.write_all(&[b]).await.is_err() {
                return;
            }
        }
    });
}

#[tokio::test]
async fn slowloris_headers_are_cut_off_after_the_header_read_timeout_while_others_are_served() {
    let h = Hostile::start().await;
    let stream = TcpStream::connect(h.addr()).await.unwrap();
    let started = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!("GET {ISSUES} HTTP/1.1\r\nHost: gate\r\nX-Slow: ");
    writer.write_all(head.as_bytes()).await.unwrap();
    // One header byte every 300 ms: 20 s to finish a head that never ends.
    dribble(writer, vec![b'a'; 64], Duration::from_millis(300));

    // A normal client meanwhile, while the slow one still holds its connection.
    for _ in 0..3 {
        h.normal_client_is_served().await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    let reply = read_until_closed(&mut reader, started, Duration::from_secs(4)).await;
    assert!(
        reply.closed,
        "still open after {:?}: {reply:?}",
        reply.elapsed
    );
    assert!(
        reply.status().is_none() || reply.status() == Some(408),
        "{reply:?}"
    );
    assert!(
        reply.elapsed < Duration::from_millis(2500),
        "{:?}",
        reply.elapsed
    );
    assert!(
        reply.elapsed >= Duration::from_millis(900),
        "{:?}",
        reply.elapsed
    );
    assert_eq!(h.seen_targets(), [ISSUES; 3], "only the normal requests");
    h.normal_client_is_served().await;
}

#[tokio::test]
async fn slowloris_body_gets_408_and_the_upstream_never_gets_the_whole_body() {
    let h = Hostile::start().await;
    let auth = format!("Bearer {}", h.token);
    // The same request sent at full speed goes through whole.
    let body = "b".repeat(1000);
    let reply = send(
        Method::POST,
        &h.gate.url(UPLOAD),
        &[("authorization", &auth)],
        &body,
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(h.up.last().body_len, 1000);

    let stream = TcpStream::connect(h.addr()).await.unwrap();
    let started = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST {UPLOAD} HTTP/1.1\r\nHost: gate\r\nAuthorization: {auth}\r\nContent-Length: 1000\r\n\r\n"
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    // One body byte every 1.5 s, with `idle_timeout = "1s"`.
    dribble(writer, vec![b'b'; 1000], Duration::from_millis(1500));

    let reply = read_until_closed(&mut reader, started, Duration::from_secs(6)).await;
    match reply.status() {
        Some(status) => {
            assert_eq!(status, 408, "{reply:?}");
            assert!(reply.text.contains("\"body_timeout\""), "{reply:?}");
        }
        None => assert!(reply.closed, "neither answered nor closed: {reply:?}"),
    }
    assert!(
        reply.elapsed < Duration::from_secs(4),
        "{:?}",
        reply.elapsed
    );

    // The upstream may have seen the start of the body, never all of it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = h.up.seen.lock().unwrap().clone();
    let whole = seen.iter().filter(|s| s.body_len == 1000).count();
    assert_eq!(
        whole, 1,
        "only the full-speed request had its whole body: {seen:?}"
    );
    h.normal_client_is_served().await;
}
