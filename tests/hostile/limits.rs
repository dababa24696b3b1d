//! Size limits: request heads over `max_header_bytes` or `max_headers`, and
//! admin bodies over `[admin] max_body_bytes` or not JSON.

use http::Method;
use serde_json::json;

use crate::common::*;
use crate::{Hostile, ADMIN_MAX_BODY, ISSUES, MAX_HEADERS, MAX_HEADER_BYTES};

/// Sends a GET of the allowed issues path with the token and `extra` headers.
async fn get_with(h: &Hostile, extra: &[(String, String)]) -> Reply {
    let auth = format!("Bearer {}", h.token);
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    send(Method::GET, &h.gate.url(ISSUES), &headers, "").await
}

#[tokio::test]
async fn oversized_headers_get_431_and_reach_nobody() {
    let h = Hostile::start().await;
    let header = |bytes: usize| vec![("x-big".to_owned(), "a".repeat(bytes))];

    // Well under the limit goes through: the limit is what refuses the next one.
    let reply = get_with(&h, &header(MAX_HEADER_BYTES / 2)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(h.up.last().headers["x-big"].len(), MAX_HEADER_BYTES / 2);

    for bytes in [MAX_HEADER_BYTES + 1, 4 * MAX_HEADER_BYTES] {
        let reply = get_with(&h, &header(bytes)).await;
        assert_eq!(reply.status, 431, "{bytes} bytes: {:?}", reply.body);
    }
    assert_eq!(h.up.count(), 1, "only the request under the limit arrived");
    h.normal_client_is_served().await;
}

#[tokio::test]
async fn too_many_headers_get_431_and_reach_nobody() {
    let h = Hostile::start().await;
    // The client adds host and authorization to these.
    let headers = |n: usize| -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("x-h{i}"), "1".to_owned()))
            .collect()
    };

    let reply = get_with(&h, &headers(MAX_HEADERS - 4)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);

    for n in [MAX_HEADERS + 1, 10 * MAX_HEADERS] {
        let reply = get_with(&h, &headers(n)).await;
        assert_eq!(reply.status, 431, "{n} headers: {:?}", reply.body);
    }
    assert_eq!(h.up.count(), 1, "only the request under the limit arrived");
    h.normal_client_is_served().await;
}

#[tokio::test]
async fn admin_body_over_the_limit_gets_413_and_bad_json_gets_400() {
    let h = Hostile::start().await;
    let login = json!({ "user": "admin", "password": "pw" }).to_string();
    let url = h.gate.admin_url("/admin/v1/login");
    let reply = send(Method::POST, &url, &[], &login).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let auth = format!("Bearer {}", reply.json()["session"].as_str().unwrap());
    let tokens = h.gate.admin_url("/admin/v1/tokens");
    let call = |body: String| {
        let (tokens, auth) = (tokens.clone(), auth.clone());
        async move { send(Method::POST, &tokens, &[("authorization", &auth)], &body).await }
    };
    let minted_before = h.gate.running.gateway.tokens.store().token_count();

    let big = json!({ "description": "x".repeat(ADMIN_MAX_BODY), "admin": true }).to_string();
    let reply = call(big).await;
    assert_eq!(reply.status, 413, "{:?}", reply.body);
    assert_eq!(reply.json()["error"], "too_large");

    for bad in [
        "{",
        "[]",
        "{\"description\": 5}",
        "\u{0}",
        "{\"description\":\"x\"}}",
    ] {
        let reply = call(bad.to_owned()).await;
        assert_eq!(reply.status, 400, "{bad:?}: {:?}", reply.body);
        assert_eq!(reply.json()["error"], "bad_json", "{bad:?}");
    }

    // A login body over the limit is refused before any password work.
    let reply = send(Method::POST, &url, &[], &"x".repeat(ADMIN_MAX_BODY + 1)).await;
    assert_eq!(reply.status, 413, "{:?}", reply.body);

    let minted_after = h.gate.running.gateway.tokens.store().token_count();
    assert_eq!(minted_after, minted_before, "nothing was minted");
}
