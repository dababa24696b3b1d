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

#[tokio::test]
async fn a_stripped_prefix_and_an_upstream_base_path_shape_the_forwarded_path() {
    let up = upstream().await;
    let config = format!(
        "[[upstreams]]\nname = \"up\"\nurl = \"http://{}/base\"\n\
         [[routes]]\nprefix = \"/pfx/\"\nupstream = \"up\"\nstrip_prefix = true\n\
         [[routes.rules]]\nmethods = [\"GET\"]\npath = \"/{{repo}}/x\"\naction = \"read\"\n",
        up.addr
    );
    let gate = gateway(&config).await;
    gate.add_repo("acme").await;
    let token = gate.mint(false, &[("acme", Role::Viewer)]).await;

    let reply = get(&gate.url("/pfx/acme/x?page=2"), &token).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(up.last().target, "/base/acme/x?page=2");
}
