//! Minting, use through the proxy, revoking, secret hygiene and list filters.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;
use crate::{assert_error, issues, sorted, Admin, GITLAB, PREMIUM};

#[tokio::test]
async fn a_revoked_token_is_refused_on_the_very_next_proxy_request() {
    let up = upstream().await;
    let admin = Admin::start(&upstream_route(&up, GITLAB)).await;
    admin.add_repo("acme/widgets").await;
    let minted = admin
        .mint(json!({"description": "ci", "grants": {"acme/widgets": "viewer"}}))
        .await;
    assert_eq!(minted.view["status"], "active");
    assert_eq!(minted.view["kind"], "enterprise");

    let url = admin.gate.url(&issues("acme/widgets"));
    assert_eq!(get(&url, &minted.token).await.status, 200);
    assert_eq!(up.count(), 1);
    let used = admin
        .get(&format!("/admin/v1/tokens/{}", minted.id))
        .await
        .json();
    assert!(
        used["last_used_at"].is_string(),
        "a use shows in the record: {used}"
    );

    let reply = admin
        .delete(&format!("/admin/v1/tokens/{}", minted.id))
        .await;
    assert_eq!(reply.status, 204, "{:?}", reply.body);
    let refused = get(&url, &minted.token).await;
    assert_eq!(refused.status, 401, "{:?}", refused.body);
    assert_eq!(up.count(), 1, "nothing more reached the upstream");

    let view = admin
        .get(&format!("/admin/v1/tokens/{}", minted.id))
        .await
        .json();
    assert_eq!(view["status"], "revoked");
    let revoked_at = view["revoked_at"]
        .as_str()
        .expect("a revoke time")
        .to_owned();

    // A second revoke keeps the first revoke time.
    assert_eq!(
        admin
            .delete(&format!("/admin/v1/tokens/{}", minted.id))
            .await
            .status,
        204
    );
    let again = admin
        .get(&format!("/admin/v1/tokens/{}", minted.id))
        .await
        .json();
    assert_eq!(again["revoked_at"], revoked_at.as_str());
}

#[tokio::test]
async fn a_request_refused_as_revoked_does_not_count_as_a_use() {
    let up = upstream().await;
    let admin = Admin::start(&upstream_route(&up, GITLAB)).await;
    admin.add_repo("acme/widgets").await;
    let minted = admin
        .mint(json!({"description": "ci", "admin": true}))
        .await;
    let url = admin.gate.url(&issues("acme/widgets"));
    let record = format!("/admin/v1/tokens/{}", minted.id);
    assert_eq!(get(&url, &minted.token).await.status, 200);
    let used = admin.get(&record).await.json()["last_used_at"].clone();
    assert!(used.is_string(), "the allowed request is a use");

    assert_eq!(admin.delete(&record).await.status, 204);
    assert_eq!(get(&url, &minted.token).await.status, 401);
    let view = admin.get(&record).await.json();
    assert_eq!(
        view["last_used_at"], used,
        "the refused request moved last_used_at: {view}"
    );
}

#[tokio::test]
async fn an_unknown_or_malformed_token_id_is_404() {
    let admin = Admin::start("").await;

    for path in [
        "/admin/v1/tokens/rgt_000000000000",
        "/admin/v1/tokens/nonsense",
    ] {
        assert_error(&admin.get(path).await, 404, "not_found");
        assert_error(&admin.delete(path).await, 404, "not_found");
    }
}

#[tokio::test]
async fn a_grant_by_alias_is_stored_under_the_repository_name() {
    let admin = Admin::start("").await;
    admin.register_widgets().await;

    let minted = admin
        .mint(json!({"description": "ci", "grants": {"42": "developer"}}))
        .await;
    assert_eq!(minted.view["grants"], json!({"acme/widgets": "developer"}));
}

#[tokio::test]
async fn the_full_token_appears_only_in_the_create_response() {
    let up = upstream().await;
    let admin = Admin::start(&upstream_route(&up, GITLAB)).await;
    admin.add_repo("acme/widgets").await;
    let reply = admin
        .post(
            "/admin/v1/tokens",
            &json!({"description": "ci", "admin": true}),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    assert_eq!(reply.headers["cache-control"], "no-store");
    let token = reply.json()["token"].as_str().unwrap().to_owned();
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 54);
    assert_eq!(&token[..16], id);
    let secret = &token[16..48];

    // Use it, so anything that records use has had its chance to leak it.
    assert_eq!(
        get(&admin.gate.url(&issues("acme/widgets")), &token)
            .await
            .status,
        200
    );
    let paths = [
        "/admin/v1/tokens".to_owned(),
        format!("/admin/v1/tokens/{id}"),
        "/admin/v1/tokens/export.csv".to_owned(),
        "/admin/v1/audit".to_owned(),
        "/admin/v1/status".to_owned(),
    ];
    for path in &paths {
        let reply = admin.get(path).await;
        assert_eq!(reply.status, 200, "{path}");
        let text = String::from_utf8_lossy(&reply.body);
        assert!(!text.contains(&token), "{path} shows the token: {text}");
        assert!(!text.contains(secret), "{path} shows the secret: {text}");
        // The row is there, named by its public id only.
        assert!(
            path.ends_with("status") || text.contains(&id),
            "{path} lacks the id: {text}"
        );
    }
}

#[tokio::test]
async fn user_tokens_reach_only_repositories_registered_before_them() {
    let up = upstream().await;
    let admin = Admin::start(&format!("{}{PREMIUM}", upstream_route(&up, GITLAB))).await;
    admin.add_repo("acme/widgets").await;
    let minted = admin.mint(json!({"description": "bot"})).await;
    assert_eq!(minted.view["kind"], "user");
    admin.add_repo("acme/later").await;

    let before = get(&admin.gate.url(&issues("acme/widgets")), &minted.token).await;
    assert_eq!(before.status, 200, "{:?}", before.body);
    let after = get(&admin.gate.url(&issues("acme/later")), &minted.token).await;
    assert_eq!(after.status, 403, "{:?}", after.body);
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn list_filters_select_by_text_kind_status_and_repository() {
    let admin = Admin::start("").await;
    admin.add_repo("acme/widgets").await;
    admin.add_repo("acme/gadgets").await;
    let short = json!({
        "description": "short-lived",
        "expires_in": "1s",
        "grants": {"acme/gadgets": "viewer"},
    });
    let short = admin.mint(short).await;
    let expires = Instant::now() + Duration::from_millis(1100);
    let deploy = admin
        .mint(json!({"description": "CI Deploy Widgets", "grants": {"acme/widgets": "developer"}}))
        .await;
    let nightly = json!({
        "description": "ci nightly deploy",
        "grants": {"acme/gadgets": "viewer", "acme/widgets": "no_access"},
    });
    let nightly = admin.mint(nightly).await;
    let scanner = admin
        .mint(json!({"description": "Scanner", "admin": true}))
        .await;
    let gone = admin.mint(json!({"description": "to revoke"})).await;
    assert_eq!(
        admin
            .delete(&format!("/admin/v1/tokens/{}", gone.id))
            .await
            .status,
        204
    );
    admin.add_repo("acme/later").await;
    let [short, deploy, nightly, scanner, gone] =
        [short.id, deploy.id, nightly.id, scanner.id, gone.id];

    let all = admin.get("/admin/v1/tokens").await.json();
    let created: Vec<&str> = all["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["created_at"].as_str().unwrap())
        .collect();
    assert!(
        created.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {created:?}"
    );
    assert_eq!(
        sorted(&admin.ids("").await),
        sorted(&[&short, &deploy, &nightly, &scanner, &gone])
    );
    assert_eq!(
        sorted(&admin.ids("q=DePlOy").await),
        sorted(&[&deploy, &nightly])
    );
    assert_eq!(admin.ids("q=nightly").await, [nightly.as_str()]);
    assert_eq!(
        admin.ids("q=").await.len(),
        5,
        "an empty filter is no filter"
    );
    assert_eq!(admin.ids("kind=admin").await, [scanner.as_str()]);
    assert_eq!(
        sorted(&admin.ids("kind=enterprise").await),
        sorted(&[&short, &deploy, &nightly, &gone])
    );
    assert!(admin.ids("kind=user").await.is_empty());
    assert_eq!(admin.ids("status=revoked").await, [gone.as_str()]);

    // Reach: a grant other than no_access, or admin; a repository registered
    // before the token and not granted is no_access.
    assert_eq!(
        sorted(&admin.ids("repo=acme/widgets").await),
        sorted(&[&deploy, &scanner])
    );
    assert_eq!(
        sorted(&admin.ids("repo=acme%2Fgadgets").await),
        sorted(&[&short, &nightly, &scanner])
    );
    assert_eq!(
        admin.ids("repo=acme/unregistered").await,
        [scanner.as_str()]
    );
    assert_eq!(
        admin.ids("repo=acme/later").await,
        [scanner.as_str()],
        "default role is no_access"
    );
    let reply = admin
        .put("/admin/v1/settings", &json!({"default_role": "viewer"}))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        admin.ids("repo=acme/later").await.len(),
        5,
        "every token reaches a later repository now"
    );

    tokio::time::sleep(expires.saturating_duration_since(Instant::now())).await;
    assert_eq!(admin.ids("status=expired").await, [short.as_str()]);
    assert_eq!(
        sorted(&admin.ids("status=active").await),
        sorted(&[&deploy, &nightly, &scanner])
    );
    let combined = admin
        .ids("status=active&repo=acme/gadgets&kind=enterprise&q=CI")
        .await;
    assert_eq!(combined, [nightly.as_str()]);
}
