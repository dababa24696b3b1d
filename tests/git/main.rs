//! git over HTTP through the gateway, end to end: the real `git` client, the
//! gateway with the `git_http` preset, and the real `git http-backend` behind it.
//!
//! Every test asserts on repository state (files in the working tree, the
//! bare repository's branch tips), not only on git's exit code.

#[path = "../common/mod.rs"]
mod common;

mod backend;
mod world;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::Method;
use repogate::access::Role;

use backend::Seen;
use common::{send, Reply};
use world::{World, README, SECRET, WIDGETS};

const INFO_REFS: &str = "/acme/widgets.git/info/refs?service=git-upload-pack";
const RECEIVE_PACK: &str = "/acme/widgets.git/git-receive-pack";
/// How git reports a 403 from the server.
const FORBIDDEN: &str = "The requested URL returned error: 403";

/// A Basic `Authorization` value, as git builds it from a URL's userinfo.
fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!("Basic {}", STANDARD.encode(pair))
}

/// `len` bytes that do not compress, so the pack is as large as the file.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 24) as u8
    };
    (0..len).map(|_| next()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_can_clone_with_the_token_as_basic_password() {
    let world = World::new().await;
    let token = world.gate.mint(false, &[(WIDGETS, Role::Viewer)]).await;

    world.clone_with(&token, WIDGETS, "clone").await.ok();

    let tree = world.dir("clone");
    let readme = std::fs::read_to_string(tree.join("README")).unwrap();
    assert_eq!(readme, README);
    let head = world.git(&tree, &["rev-parse", "HEAD"]).await.ok();
    assert_eq!(head, world.tip(WIDGETS).await);

    // The token stopped at the gateway; the backend saw no credential at all.
    let seen = world.backend.seen();
    let fetched = |s: &Seen| s.method == Method::POST && s.target.ends_with("upload-pack");
    assert!(seen.iter().any(fetched), "{seen:?}");
    let leaked = seen.iter().any(|s| !s.header("authorization").is_empty());
    assert!(!leaked, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_as_basic_username_with_empty_password_can_clone() {
    let world = World::new().await;
    let token = world.gate.mint(false, &[(WIDGETS, Role::Viewer)]).await;

    // No password in the URL: git sends `Basic base64("<token>:")` without prompting.
    world.clone(&world.url(&token, WIDGETS), "clone").await.ok();

    let readme = std::fs::read_to_string(world.dir("clone").join("README")).unwrap();
    assert_eq!(readme, README);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_push_is_refused() {
    let world = World::new().await;
    let token = world.gate.mint(false, &[(WIDGETS, Role::Viewer)]).await;
    world.clone_with(&token, WIDGETS, "clone").await.ok();
    let before = world.tip(WIDGETS).await;

    let tree = world.dir("clone");
    world.commit(&tree, "change.txt", "by a viewer\n").await;
    let stderr = world.git(&tree, &["push", "origin", "main"]).await.failed();

    assert!(stderr.contains(FORBIDDEN), "{stderr}");
    assert_eq!(world.tip(WIDGETS).await, before);
    let seen = world.backend.seen();
    let pushed = seen.iter().any(|s| s.target.contains("receive-pack"));
    assert!(!pushed, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_cannot_delete_a_branch_by_posting_straight_to_receive_pack() {
    let world = World::new().await;
    world.seed_push(&["main:feature"]).await;
    let feature = world.branch(WIDGETS, "feature").await.expect("seeded");
    let viewer = world.gate.mint(false, &[(WIDGETS, Role::Viewer)]).await;
    let developer = world.gate.mint(false, &[(WIDGETS, Role::Developer)]).await;
    let delete = delete_branch("feature", &feature);

    // A client may skip ref discovery, where git itself meets its 403.
    let refused = post_receive_pack(&world, &viewer, &delete).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["action"], "write");
    assert_eq!(world.branch(WIDGETS, "feature").await, Some(feature));
    assert!(world.backend.seen().is_empty());

    // The same bytes from a developer do delete it, so the refusal was the gateway's.
    let done = post_receive_pack(&world, &developer, &delete).await;
    assert_eq!(done.status, 200);
    assert_eq!(world.branch(WIDGETS, "feature").await, None);
}

/// A receive-pack request that deletes `branch` (now at `old`). A delete
/// needs no pack, so the whole body is a command pkt-line and a flush.
fn delete_branch(branch: &str, old: &str) -> String {
    let zero = "0".repeat(40);
    let line = format!("{old} {zero} refs/heads/{branch}\0report-status delete-refs\n");
    format!("{:04x}{line}0000", line.len() + 4)
}

async fn post_receive_pack(world: &World, token: &str, body: &str) -> Reply {
    let auth = basic("git", token);
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/x-git-receive-pack-request"),
    ];
    send(Method::POST, &world.gate.url(RECEIVE_PACK), &headers, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn developer_can_push() {
    let world = World::new().await;
    let token = world.gate.mint(false, &[(WIDGETS, Role::Developer)]).await;
    world.clone_with(&token, WIDGETS, "clone").await.ok();

    let tree = world.dir("clone");
    let pushed = world.commit(&tree, "change.txt", "by a developer\n").await;
    world.git(&tree, &["push", "origin", "main"]).await.ok();

    assert_eq!(world.tip(WIDGETS).await, pushed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn developer_can_push_a_pack_larger_than_the_post_buffer() {
    let world = World::new().await;
    let token = world.gate.mint(false, &[(WIDGETS, Role::Developer)]).await;
    world.clone_with(&token, WIDGETS, "clone").await.ok();

    // Past http.postBuffer (1 MiB) git streams the pack with chunked encoding.
    let tree = world.dir("clone");
    let pushed = world.commit(&tree, "blob.bin", noise(3 << 20)).await;
    world.git(&tree, &["push", "origin", "main"]).await.ok();

    assert_eq!(world.tip(WIDGETS).await, pushed);
    let seen = world.backend.seen();
    let posted = |s: &&Seen| s.method == Method::POST && s.target == RECEIVE_PACK;
    let pack = seen.iter().rfind(posted).expect("a receive-pack POST");
    assert_eq!(pack.header("transfer-encoding"), "chunked", "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_of_many_refs_survives_a_gzipped_request() {
    let world = World::new().await;
    let seed = world.dir("seed");
    for n in 0..60 {
        let tag = format!("release-with-a-rather-long-name-{n:03}");
        world.git(&seed, &["tag", &tag]).await.ok();
    }
    world.seed_push(&["--tags"]).await;
    let token = world.gate.mint(false, &[(WIDGETS, Role::Viewer)]).await;

    // Sixty `want` lines are past the size at which git gzips the request.
    world.clone_with(&token, WIDGETS, "clone").await.ok();

    let tags = world.git(&world.dir("clone"), &["tag"]).await.ok();
    assert_eq!(tags.lines().count(), 60, "{tags}");
    let seen = world.backend.seen();
    let gzipped = seen.iter().any(|s| s.header("content-encoding") == "gzip");
    assert!(gzipped, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_access_repository_cannot_be_cloned() {
    let world = World::new().await;
    let token = world.gate.mint(false, &[(WIDGETS, Role::Viewer)]).await;

    let stderr = world.clone_with(&token, SECRET, "secret").await.failed();

    assert!(stderr.contains(FORBIDDEN), "{stderr}");
    assert!(!world.dir("secret").exists());

    // The same repository clones with a grant, so the refusal was the gateway's.
    let holder = world.gate.mint(false, &[(SECRET, Role::Viewer)]).await;
    world.clone_with(&holder, SECRET, "secret").await.ok();
    assert!(world.dir("secret").join(".git").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_token_makes_git_ask_for_credentials() {
    let world = World::new().await;

    let anonymous = world.url("", WIDGETS);
    let stderr = world.clone(&anonymous, "anonymous").await.failed();

    let asked = ["terminal prompts disabled", "could not read Username"];
    assert!(asked.iter().any(|a| stderr.contains(a)), "{stderr}");
    assert!(!world.dir("anonymous").exists());

    let reply = send(Method::GET, &world.gate.url(INFO_REFS), &[], "").await;
    assert_eq!(reply.status, 401);
    let challenge = reply.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Basic"), "{challenge}");
    assert!(world.backend.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_cannot_fetch_on_next_request() {
    let world = World::new().await;
    let token = world.gate.mint(false, &[(WIDGETS, Role::Viewer)]).await;
    world.clone_with(&token, WIDGETS, "clone").await.ok();
    let cloned = world.tip(WIDGETS).await;

    // Something new to fetch, pushed straight into the bare repository.
    let newer = world.commit(&world.dir("seed"), "NEWS", "more\n").await;
    world.seed_push(&["main"]).await;

    let id = repogate::token::parse(&token).unwrap();
    let tokens = &world.gate.running.gateway.tokens;
    let revoked = tokens.revoke(&id, repogate::now_ms()).await.unwrap();
    assert!(revoked.is_some(), "the token exists");

    let tree = world.dir("clone");
    let stderr = world.git(&tree, &["fetch", "origin"]).await.failed();
    assert!(stderr.contains("Authentication failed"), "{stderr}");
    let fetched = world.git(&tree, &["rev-parse", "origin/main"]).await.ok();
    assert_eq!(fetched, cloned);
    assert_ne!(fetched, newer);

    // Authentication failed is git's wording for a 401 on a URL with credentials.
    let auth = basic("git", &token);
    let headers = [("authorization", auth.as_str())];
    let reply = send(Method::GET, &world.gate.url(INFO_REFS), &headers, "").await;
    assert_eq!(reply.status, 401);
}
