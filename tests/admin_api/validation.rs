//! The 400 and 413 cases of the contract: each answers with the JSON error
//! body and changes nothing.

use http::Method;
use serde_json::json;

use crate::{assert_error, Admin, PREMIUM};

#[tokio::test]
async fn a_malformed_mint_request_is_400_and_mints_nothing() {
    let admin = Admin::start("").await;
    admin.add_repo("acme/widgets").await;
    let before = admin.token_count().await;
    let cases = [
        (
            "bad JSON",
            "{\"description\": \"ci\",".to_owned(),
            "bad_json",
        ),
        ("not an object", "[]".to_owned(), "bad_json"),
        (
            "unknown field",
            json!({"description": "ci", "secret": "x"}).to_string(),
            "bad_json",
        ),
        (
            "unknown role",
            json!({"description": "ci", "grants": {"acme/widgets": "wizard"}}).to_string(),
            "bad_json",
        ),
        (
            "unregistered repo",
            json!({"description": "ci", "grants": {"acme/nope": "viewer"}}).to_string(),
            "bad_request",
        ),
        (
            "expiry in the past",
            json!({"description": "ci", "expires_at": "2020-01-01T00:00:00Z"}).to_string(),
            "bad_request",
        ),
        (
            "expiry not a time",
            json!({"description": "ci", "expires_at": "tomorrow"}).to_string(),
            "bad_request",
        ),
        (
            "zero expires_in",
            json!({"description": "ci", "expires_in": "0s"}).to_string(),
            "bad_request",
        ),
        (
            "both expiries",
            json!({"description": "ci", "expires_at": "2999-01-01T00:00:00Z", "expires_in": "1d"})
                .to_string(),
            "bad_request",
        ),
        (
            "empty description",
            json!({"description": ""}).to_string(),
            "bad_request",
        ),
        (
            "blank description",
            json!({"description": "   "}).to_string(),
            "bad_request",
        ),
        (
            "long description",
            json!({"description": "x".repeat(257)}).to_string(),
            "bad_request",
        ),
        (
            "grants on an admin token",
            json!({"description": "ci", "admin": true, "grants": {"acme/widgets": "viewer"}})
                .to_string(),
            "bad_request",
        ),
    ];

    for (case, body, code) in cases {
        let reply = admin.call(Method::POST, "/admin/v1/tokens", &body).await;
        assert_eq!(reply.status, 400, "{case}: {:?}", reply.body);
        assert_error(&reply, 400, code);
        assert!(reply.json().get("token").is_none(), "{case}");
    }
    assert_eq!(admin.token_count().await, before);
}

#[tokio::test]
async fn grants_on_a_premium_plan_are_400_and_mint_nothing() {
    let admin = Admin::start(PREMIUM).await;
    admin.add_repo("acme/widgets").await;

    let reply = admin
        .post(
            "/admin/v1/tokens",
            &json!({"description": "ci", "grants": {"acme/widgets": "viewer"}}),
        )
        .await;
    let message = assert_error(&reply, 400, "bad_request");
    assert!(message.contains("premium"), "{message}");
    assert_eq!(admin.token_count().await, 0);
}

#[tokio::test]
async fn a_default_role_above_reviewer_is_400_and_changes_nothing() {
    let admin = Admin::start("").await;

    for role in ["maintainer", "repository_admin", "company_admin", "wizard"] {
        let reply = admin
            .put("/admin/v1/settings", &json!({ "default_role": role }))
            .await;
        assert_eq!(reply.status, 400, "{role}: {:?}", reply.body);
        assert_error(&reply, 400, "bad_json");
    }
    assert_error(
        &admin.call(Method::PUT, "/admin/v1/settings", "{").await,
        400,
        "bad_json",
    );
    assert_error(
        &admin
            .put(
                "/admin/v1/settings",
                &json!({"default_role": "viewer", "x": 1}),
            )
            .await,
        400,
        "bad_json",
    );
    assert_eq!(
        admin.get("/admin/v1/settings").await.json()["default_role"],
        "no_access"
    );
}

#[tokio::test]
async fn a_default_role_on_a_non_enterprise_plan_is_400_and_changes_nothing() {
    let admin = Admin::start(PREMIUM).await;
    let before = admin.get("/admin/v1/settings").await.json();

    let reply = admin
        .put("/admin/v1/settings", &json!({ "default_role": "viewer" }))
        .await;
    assert_error(&reply, 400, "bad_request");
    assert_eq!(admin.get("/admin/v1/settings").await.json(), before);
}

#[tokio::test]
async fn unknown_filters_columns_and_query_parameters_are_400() {
    let admin = Admin::start("").await;
    admin.mint(json!({"description": "ci"})).await;
    let paths = [
        "/admin/v1/tokens?kind=wizard",
        "/admin/v1/tokens?status=sleeping",
        "/admin/v1/tokens?colour=red",
        "/admin/v1/tokens?columns=id",
        "/admin/v1/tokens/export.csv?kind=wizard",
        "/admin/v1/tokens/export.csv?columns=id,digest",
        "/admin/v1/tokens/export.csv?column=id",
        "/admin/v1/audit?limit=ten",
        "/admin/v1/audit?after=3",
    ];

    for path in paths {
        let reply = admin.get(path).await;
        assert_eq!(reply.status, 400, "{path}: {:?}", reply.body);
        assert_error(&reply, 400, "bad_request");
    }
    assert_eq!(admin.token_count().await, 1);
}

#[tokio::test]
async fn a_repository_name_that_is_not_a_path_is_400_and_registers_nothing() {
    let admin = Admin::start("").await;

    for name in ["../x", "acme/../x", "/acme", "acme//x", "a%2Fb", ""] {
        let reply = admin
            .post("/admin/v1/repos", &json!({ "name": name }))
            .await;
        assert_eq!(reply.status, 400, "{name:?}: {:?}", reply.body);
        assert_error(&reply, 400, "bad_request");
    }
    let reply = admin
        .post(
            "/admin/v1/repos",
            &json!({ "name": "acme/x", "aliases": ["../y"] }),
        )
        .await;
    assert_error(&reply, 400, "bad_request");
    assert_eq!(admin.get("/admin/v1/repos").await.json()["count"], 0);
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_413_and_mints_nothing() {
    let admin = Admin::start("").await;
    let body = json!({ "description": "x".repeat(1024 * 1024) }).to_string();

    let reply = admin.call(Method::POST, "/admin/v1/tokens", &body).await;
    assert_error(&reply, 413, "too_large");
    assert_eq!(admin.token_count().await, 0);
}
