mod common;

use common::*;
use repogate::access::Role;

#[tokio::test]
async fn an_allowed_read_reaches_the_upstream_with_its_credential_swapped() {
    let up = upstream().await;
    let gate = gateway(&upstream_route(
        &up,
        "[[routes]]\nprefix = \"/\"\nupstream = \"up\"\npreset = \"gitlab\"\n",
    ))
    .await;
    gate.add_repo("acme/widgets").await;
    let token = gate.mint(false, &[("acme/widgets", Role::Viewer)]).await;

    let reply = get(&gate.url("/api/v4/projects/acme%2Fwidgets/issues"), &token).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let seen = up.last();
    assert_eq!(seen.target, "/api/v4/projects/acme%2Fwidgets/issues");
    assert_eq!(seen.headers["private-token"], "real-upstream-secret");
    assert!(seen.headers.get("authorization").is_none());

    let denied = send(
        http::Method::PUT,
        &gate.url("/api/v4/projects/acme%2Fwidgets"),
        &[("private-token", &token)],
        "",
    )
    .await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.json()["error"], "forbidden");
    assert_eq!(up.count(), 1);
}
