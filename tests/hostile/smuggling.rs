//! Request smuggling: heads whose body framing is ambiguous. Each carries a
//! valid token on an allowed route and, in what could be read as its body, a
//! second allowed request marked `smuggled`; neither may reach the upstream.

use std::time::Duration;

use crate::{raw, Hostile, UPLOAD};

/// The second request hidden where a confused parser would find it.
fn smuggled(token: &str) -> String {
    format!(
        "GET /api/v4/projects/acme%2Fwidgets/issues?smuggled=1 HTTP/1.1\r\nHost: gate\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    )
}

/// A POST head with `framing` lines, a chunked terminator and the smuggled request.
fn ambiguous(token: &str, framing: &str) -> String {
    let body = format!("0\r\n\r\n{}", smuggled(token));
    format!(
        "POST {UPLOAD} HTTP/1.1\r\nHost: gate\r\nAuthorization: Bearer {token}\r\n{framing}\r\n{body}"
    )
}

#[tokio::test]
async fn ambiguous_framing_gets_400_and_reaches_nobody() {
    let h = Hostile::start().await;
    let cases = [
        (
            "differing content-lengths",
            "Content-Length: 5\r\nContent-Length: 60\r\n",
        ),
        ("a content-length list", "Content-Length: 5, 60\r\n"),
        ("a signed content-length", "Content-Length: +5\r\n"),
        (
            "obsolete line folding",
            "Content-Length: 5\r\nX-Folded: a\r\n Transfer-Encoding: chunked\r\n",
        ),
        (
            "a folded transfer-encoding",
            "Transfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n",
        ),
        (
            "a space before the colon",
            "Content-Length : 5\r\nTransfer-Encoding: chunked\r\n",
        ),
        (
            "chunked, then another coding",
            "Transfer-Encoding: chunked, identity\r\n",
        ),
        (
            "an unknown transfer coding",
            "Transfer-Encoding: xchunked\r\n",
        ),
    ];

    for (what, framing) in cases {
        let request = ambiguous(&h.token, framing);
        let reply = raw(h.addr(), request.as_bytes(), Duration::from_secs(3)).await;
        assert!(
            reply.status() == Some(400) || (reply.status().is_none() && reply.closed),
            "{what}: {reply:?}"
        );
        assert!(
            reply.responses() <= 1,
            "{what}: a second response {reply:?}"
        );
        assert!(reply.closed, "{what}: the connection stays open");
        assert_eq!(h.seen_targets(), Vec::<String>::new(), "{what}");
    }
    h.normal_client_is_served().await;
}

/// hyper reads such a request by its Transfer-Encoding, drops the
/// Content-Length and closes the connection after answering (RFC 9112 §6.1),
/// so the upstream gets one unambiguous request and the smuggled one is
/// never read. Refusing it outright would need a second parse of the raw
/// head; the README lists that under known limits.
#[tokio::test]
async fn content_length_with_transfer_encoding_never_lets_a_smuggled_request_through() {
    let h = Hostile::start().await;
    for framing in [
        "Content-Length: 60\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 60\r\n",
    ] {
        let request = ambiguous(&h.token, framing);
        let reply = raw(h.addr(), request.as_bytes(), Duration::from_secs(3)).await;

        assert!(
            reply.closed,
            "{framing:?}: the connection stays open: {reply:?}"
        );
        assert!(reply.responses() <= 1, "{framing:?}: {reply:?}");
        let seen = h.up.seen.lock().unwrap().clone();
        assert!(
            seen.iter().all(|s| !s.target.contains("smuggled")),
            "{framing:?}: {seen:?}"
        );
        assert!(
            seen.iter().all(|s| s.body_len == 0),
            "{framing:?}: {seen:?}"
        );
    }
    h.normal_client_is_served().await;
}

/// hyper reads two equal `Content-Length` values as one (RFC 9110 §8.6
/// allows it), so the head frames exactly five body bytes. What follows them
/// is a request of its own, which the gateway decides itself: here one for a
/// repository the token may not touch, which a framing slip would carry to
/// the upstream inside the first request's body or on its connection.
#[tokio::test]
async fn two_identical_content_lengths_frame_five_bytes_and_nothing_behind_them_reaches_the_upstream(
) {
    let h = Hostile::start().await;
    let token = &h.token;
    let behind = format!(
        "GET /api/v4/projects/acme%2Fgadgets/issues?smuggled=1 HTTP/1.1\r\nHost: gate\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    let request = format!(
        "POST {UPLOAD} HTTP/1.1\r\nHost: gate\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 5\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{behind}"
    );
    let reply = raw(h.addr(), request.as_bytes(), Duration::from_secs(3)).await;

    // The upstream got one request, framed once, with the five bytes only.
    let seen = h.up.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0].method, http::Method::POST);
    assert_eq!(seen[0].target, UPLOAD);
    assert_eq!(seen[0].body_len, 5, "{seen:#?}");
    let lengths: Vec<_> = seen[0].headers.get_all("content-length").iter().collect();
    assert_eq!(lengths, ["5"], "{seen:#?}");

    // The client got the upstream's 200, then the gateway's own 403 for the
    // bytes behind the body, and the idle connection was closed.
    assert_eq!(reply.status(), Some(200), "{reply:?}");
    assert_eq!(reply.responses(), 2, "{reply:?}");
    let second = &reply.text[reply.text.rfind("HTTP/1.1 ").unwrap()..];
    assert!(second.starts_with("HTTP/1.1 403 "), "{reply:?}");
    assert!(second.contains("\"repo\":\"acme/gadgets\""), "{reply:?}");
    assert!(reply.closed, "{reply:?}");
    h.normal_client_is_served().await;
}
