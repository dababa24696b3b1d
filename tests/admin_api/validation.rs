//! The 400 and 413 cases of the contract: each answers with the JSON error
//! body and changes nothing.

use http::Method;
use serde_json::{json, Value};

use crate::common::send;
use crate::{assert_error, login, Admin, PREMIUM};

/// The account table of a freemium plan.
const FREEMIUM: &str = "[account]\nplan = \"freemium\"\n";

/// The audit trail's entries, newest first.
async fn audit(admin: &Admin) -> Vec<Value> {
    let reply = admin.get("/admin/v1/audit").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.json()["entries"]
        .as_array()
        .expect("an entries array")
        .clone()
}

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

/// Asks a gateway on `plan` (its config text, named `name`) to mint a token
/// with grants: 400 naming the plan, nothing minted; then the same request
/// without grants mints a user token.
async fn grants_are_refused_on(plan: &str, name: &str) {
    let admin = Admin::start(plan).await;
    admin.add_repo("acme/widgets").await;

    let reply = admin
        .post(
            "/admin/v1/tokens",
            &json!({"description": "ci", "grants": {"acme/widgets": "viewer"}}),
        )
        .await;
    let message = assert_error(&reply, 400, "bad_request");
    assert!(message.contains(name), "{message}");
    assert!(reply.json().get("token").is_none());
    assert_eq!(admin.token_count().await, 0);

    let minted = admin.mint(json!({"description": "ci"})).await;
    assert_eq!(minted.view["kind"], "user");
    assert_eq!(admin.token_count().await, 1);
}

#[tokio::test]
async fn grants_on_a_premium_plan_are_400_and_mint_nothing() {
    grants_are_refused_on(PREMIUM, "premium").await;
}

#[tokio::test]
async fn grants_on_a_freemium_plan_are_400_and_mint_nothing() {
    grants_are_refused_on(FREEMIUM, "freemium").await;
}

#[tokio::test]
async fn a_malformed_repository_registration_is_400_and_registers_nothing() {
    let admin = Admin::start("").await;
    let audit_before = audit(&admin).await;
    let cases = [
        ("truncated", "{\"name\": \"acme/widgets\","),
        ("empty body", ""),
        ("not an object", "\"acme/widgets\""),
        ("no name", "{\"aliases\": [\"42\"]}"),
        ("name not a string", "{\"name\": 42}"),
        (
            "aliases not a list",
            "{\"name\": \"acme/widgets\", \"aliases\": \"42\"}",
        ),
        (
            "unknown field",
            "{\"name\": \"acme/widgets\", \"alias\": \"42\"}",
        ),
    ];

    for (case, body) in cases {
        let reply = admin.call(Method::POST, "/admin/v1/repos", body).await;
        assert_eq!(reply.status, 400, "{case}: {:?}", reply.body);
        assert_error(&reply, 400, "bad_json");
    }
    let listed = admin.get("/admin/v1/repos").await.json();
    assert_eq!(listed["count"], 0, "{listed}");
    assert_eq!(
        audit(&admin).await,
        audit_before,
        "no admin action recorded"
    );

    // Nothing was half-registered: the well-formed request still registers it.
    admin.register_widgets().await;
}

#[tokio::test]
async fn a_malformed_login_is_400_opens_no_session_and_counts_no_failure() {
    let admin = Admin::start("").await;
    let audit_before = audit(&admin).await;
    let url = admin.gate.admin_url("/admin/v1/login");
    let cases = [
        ("truncated", "{\"user\": \"admin\","),
        ("empty body", ""),
        ("not an object", "\"admin:pw\""),
        ("no password", "{\"user\": \"admin\"}"),
        ("no user", "{\"password\": \"pw\"}"),
        (
            "password not a string",
            "{\"user\": \"admin\", \"password\": 1234}",
        ),
        (
            "unknown field beside the right password",
            "{\"user\": \"admin\", \"password\": \"pw\", \"otp\": \"123456\"}",
        ),
    ];

    for (case, body) in cases {
        let reply = send(
            Method::POST,
            &url,
            &[("content-type", "application/json")],
            body,
        )
        .await;
        assert_eq!(reply.status, 400, "{case}: {:?}", reply.body);
        assert_error(&reply, 400, "bad_json");
        assert!(reply.json().get("session").is_none(), "{case}");
        assert!(
            reply.headers.get("retry-after").is_none(),
            "{case}: a malformed body is not a failed login"
        );
    }
    let failures = admin.gate.running.gateway.metrics.login_failures.get();
    assert_eq!(failures, 0, "no failed login counted");
    assert_eq!(audit(&admin).await, audit_before, "no login recorded");

    // No back-off was started: the right password gets in at once.
    let reply = login(&admin.gate, "admin", "pw").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
}

#[tokio::test]
async fn a_json_array_in_place_of_an_object_body_is_400_and_changes_nothing() {
    let admin = Admin::start("").await;
    let cases = [
        ("/admin/v1/repos", Method::POST, "[\"acme/widgets\"]"),
        ("/admin/v1/tokens", Method::POST, "[\"ci\"]"),
        ("/admin/v1/settings", Method::PUT, "[\"viewer\"]"),
    ];
    for (path, method, body) in cases {
        let reply = admin.call(method, path, body).await;
        assert_eq!(reply.status, 400, "{path} {body}: {:?}", reply.body);
        assert_error(&reply, 400, "bad_json");
    }
    let url = admin.gate.admin_url("/admin/v1/login");
    let headers = [("content-type", "application/json")];
    let reply = send(Method::POST, &url, &headers, "[\"admin\", \"pw\"]").await;
    assert_eq!(reply.status, 400, "login: {:?}", reply.body);
    assert_error(&reply, 400, "bad_json");

    assert_eq!(admin.get("/admin/v1/repos").await.json()["count"], 0);
    assert_eq!(admin.token_count().await, 0);
    assert_eq!(
        admin.get("/admin/v1/settings").await.json()["default_role"],
        "no_access"
    );
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
