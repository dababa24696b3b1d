//! The repository registry and the company default role.

use std::time::Duration;

use repogate::app::StartError;
use repogate::store::StoreError;
use serde_json::json;

use crate::common::*;
use crate::{assert_error, issues, login, Admin, GITLAB};

#[tokio::test]
async fn repositories_are_added_listed_and_removed() {
    let admin = Admin::start("").await;

    let created = admin.register_widgets().await;
    assert_eq!(created["name"], "acme/widgets");
    assert_eq!(created["aliases"], json!(["42"]));
    admin.add_repo("acme/gadgets").await;

    let list = admin.get("/admin/v1/repos").await.json();
    assert_eq!(list["count"], 2);
    let names: Vec<&str> = list["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme/gadgets", "acme/widgets"]);
    for repo in list["repositories"].as_array().unwrap() {
        let at = repo["created_at"].as_str().expect("a creation time");
        assert!(humantime::parse_rfc3339(at).is_ok(), "{at}");
    }

    let reply = admin.delete("/admin/v1/repos/acme%2Fwidgets").await;
    assert_eq!(reply.status, 204, "{:?}", reply.body);
    let list = admin.get("/admin/v1/repos").await.json();
    assert_eq!(list["count"], 1);
    assert_eq!(list["repositories"][0]["name"], "acme/gadgets");
    assert_error(
        &admin.delete("/admin/v1/repos/acme%2Fwidgets").await,
        404,
        "not_found",
    );
    assert_error(
        &admin.delete("/admin/v1/repos/nope").await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn a_repository_name_or_alias_already_taken_is_409() {
    let admin = Admin::start("").await;
    admin.register_widgets().await;

    let clashes = [
        json!({"name": "acme/widgets"}),
        json!({"name": "acme/gadgets", "aliases": ["42"]}),
        json!({"name": "42"}),
        json!({"name": "acme/gadgets", "aliases": ["acme/widgets"]}),
        json!({"name": "acme/gadgets", "aliases": ["7", "7"]}),
    ];
    for body in clashes {
        let reply = admin.post("/admin/v1/repos", &body).await;
        assert_eq!(reply.status, 409, "{body}: {:?}", reply.body);
        assert_error(&reply, 409, "conflict");
    }
    assert_eq!(admin.get("/admin/v1/repos").await.json()["count"], 1);
}

#[tokio::test]
async fn the_default_role_reaches_repositories_registered_after_an_enterprise_token() {
    let up = upstream().await;
    let admin = Admin::start(&upstream_route(&up, GITLAB)).await;
    let settings = admin.get("/admin/v1/settings").await.json();
    assert_eq!(
        settings,
        json!({"plan": "enterprise", "default_role": "no_access"})
    );
    admin.add_repo("acme/before").await;
    let minted = admin.mint(json!({"description": "ci"})).await;
    admin.add_repo("acme/later").await;

    let later = admin.gate.url(&issues("acme/later"));
    assert_eq!(get(&later, &minted.token).await.status, 403);

    let reply = admin
        .put("/admin/v1/settings", &json!({"default_role": "viewer"}))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.json(),
        json!({"plan": "enterprise", "default_role": "viewer"})
    );
    assert_eq!(
        admin.get("/admin/v1/settings").await.json()["default_role"],
        "viewer"
    );

    let reply = get(&later, &minted.token).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    // The default role never widens a repository that existed at minting.
    let before = get(&admin.gate.url(&issues("acme/before")), &minted.token).await;
    assert_eq!(before.status, 403, "{:?}", before.body);
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn revocations_repositories_and_the_default_role_survive_a_restart() {
    let up = upstream().await;
    let admin = Admin::start(&upstream_route(&up, GITLAB)).await;
    admin.add_repo("acme/widgets").await;
    let kept = admin
        .mint(json!({"description": "kept", "grants": {"acme/widgets": "viewer"}}))
        .await;
    let revoked = admin
        .mint(json!({"description": "revoked", "grants": {"acme/widgets": "viewer"}}))
        .await;
    assert_eq!(
        admin
            .delete(&format!("/admin/v1/tokens/{}", revoked.id))
            .await
            .status,
        204
    );
    assert_eq!(
        admin
            .put("/admin/v1/settings", &json!({"default_role": "developer"}))
            .await
            .status,
        200
    );

    let Admin { gate, .. } = admin;
    let Gate { dir, running, .. } = gate;
    running.shutdown().await;
    let running = restart(&dir.path().join("repogate.toml")).await;
    let base = format!("http://{}", running.proxy_addr);
    let gate = Gate { dir, running, base };

    let url = gate.url(&issues("acme/widgets"));
    assert_eq!(get(&url, &kept.token).await.status, 200);
    assert_eq!(get(&url, &revoked.token).await.status, 401);
    let session = login(&gate, "admin", "pw").await.json()["session"]
        .as_str()
        .unwrap()
        .to_owned();
    let settings = get(&gate.admin_url("/admin/v1/settings"), &session)
        .await
        .json();
    assert_eq!(settings["default_role"], "developer");
    let repos = get(&gate.admin_url("/admin/v1/repos"), &session)
        .await
        .json();
    assert_eq!(repos["count"], 1);
}

/// Starts a gateway again on a stopped one's config and store. An admin
/// connection the client is still closing may hold the store for a moment.
async fn restart(config: &std::path::Path) -> repogate::app::Running {
    for _ in 0..40 {
        let loaded = repogate::config::load(config).unwrap();
        match repogate::app::start(loaded, std::future::pending()).await {
            Ok(running) => return running,
            Err(StartError::Store(StoreError::Locked(_))) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("restart failed: {e}"),
        }
    }
    panic!("the store stayed locked for 2 s after shutdown");
}
