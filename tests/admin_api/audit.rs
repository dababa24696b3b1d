//! The audit trail, status and health endpoints.

use http::Method;
use serde_json::{json, Value};

use crate::common::*;
use crate::{assert_error, login, Admin};

/// The audit entries of one page and its `next_before`.
async fn page(admin: &Admin, query: &str) -> (Vec<Value>, Value) {
    let reply = admin.get(&format!("/admin/v1/audit?{query}")).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let body = reply.json();
    (
        body["entries"]
            .as_array()
            .expect("an entries array")
            .clone(),
        body["next_before"].clone(),
    )
}

#[tokio::test]
async fn audit_lists_each_admin_action_newest_first_and_pages_back() {
    let admin = Admin::start("").await;
    let minted = admin.mint(json!({"description": "ci"})).await;
    assert_eq!(
        admin
            .delete(&format!("/admin/v1/tokens/{}", minted.id))
            .await
            .status,
        204
    );
    admin.add_repo("acme/widgets").await;
    assert_eq!(
        admin.delete("/admin/v1/repos/acme%2Fwidgets").await.status,
        204
    );
    assert_eq!(
        admin
            .put("/admin/v1/settings", &json!({"default_role": "viewer"}))
            .await
            .status,
        200
    );
    assert_eq!(
        admin
            .get("/admin/v1/tokens/export.csv?kind=enterprise&columns=id")
            .await
            .status,
        200
    );
    assert_eq!(login(&admin.gate, "mallory", "guess").await.status, 401);

    let (entries, next) = page(&admin, "").await;
    assert!(next.is_null(), "one page holds everything: {next}");
    let seen: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("login", "mallory", ""),
        ("token.export", "admin", "kind=enterprise&columns=id"),
        ("settings.default_role", "admin", "viewer"),
        ("repo.remove", "admin", "acme/widgets"),
        ("repo.add", "admin", "acme/widgets"),
        ("token.revoke", "admin", minted.id.as_str()),
        ("token.mint", "admin", minted.id.as_str()),
        ("login", "admin", ""),
    ];
    assert_eq!(seen, expected);

    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );
    for entry in &entries {
        assert_eq!(entry["client"], "127.0.0.1", "{entry}");
        assert!(
            humantime::parse_rfc3339(entry["at"].as_str().unwrap()).is_ok(),
            "{entry}"
        );
    }
    assert_ne!(
        entries[0]["outcome"], "ok",
        "the failed login is recorded as failed"
    );
    assert!(
        entries[2..].iter().all(|e| e["outcome"] == "ok"),
        "{entries:?}"
    );

    let (first, next) = page(&admin, "limit=2").await;
    assert_eq!(first, entries[..2]);
    assert_eq!(next, seqs[1]);
    let (second, next) = page(&admin, &format!("limit=2&before={next}")).await;
    assert_eq!(second, entries[2..4]);
    let (rest, last) = page(&admin, &format!("limit=10&before={next}")).await;
    assert_eq!(rest, entries[4..]);
    assert!(last.is_null(), "{last}");
}

#[tokio::test]
async fn status_shows_the_version_and_first_config_generation() {
    let admin = Admin::start("").await;
    admin.mint(json!({"description": "ci"})).await;

    let status = admin.get("/admin/v1/status").await;
    assert_eq!(status.status, 200, "{:?}", status.body);
    let body = status.json();
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["generation"], 1);
    assert_eq!(body["plan"], "enterprise");
    assert_eq!(body["tokens"], 1);
}

#[tokio::test]
async fn health_and_readiness_answer_without_a_session() {
    let gate = gateway(&admin_user()).await;

    for path in ["/healthz", "/readyz"] {
        let reply = send(Method::GET, &gate.admin_url(path), &[], "").await;
        assert_eq!(reply.status, 200, "{path}: {:?}", reply.body);
    }
    assert_eq!(
        send(Method::GET, &gate.admin_url("/readyz"), &[], "")
            .await
            .json()["generation"],
        1
    );
    assert_error(
        &send(Method::GET, &gate.admin_url("/admin/v1/status"), &[], "").await,
        401,
        "no_session",
    );
}
