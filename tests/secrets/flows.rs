//! The flows that handle a credential, each recording its replies and the
//! secrets it saw.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::Method;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use crate::common::*;
use crate::ledger::{b64, digest, with_wrong_secret, Journal, Secrets};
use crate::{GADGET_ISSUES, ISSUES, UPSTREAM_SECRET};

/// The credential repogate injects towards the upstream that is down.
pub(crate) const DOWN_SECRET: &str = "down-upstream-credential-502";
/// The credential repogate injects towards the upstream that never answers.
pub(crate) const SILENT_SECRET: &str = "silent-upstream-credential-504";

/// A gateway with the admin user, a journal of replies and the secrets seen.
pub(crate) struct World {
    pub(crate) gate: Gate,
    pub(crate) up: TestUpstream,
    pub(crate) journal: Journal,
    pub(crate) secrets: Secrets,
    pub(crate) session: String,
    /// The id of the token the 403s were sent with.
    pub(crate) denied_id: String,
    pub(crate) faulty: Faulty,
}

/// Two upstreams that fail, each with a credential header of its own: `down`
/// on a port nothing listens on (502) and `silent`, which accepts and reads
/// but never answers (504 after its 300 ms `timeout`).
pub(crate) struct Faulty {
    closed_port: u16,
    silent: SocketAddr,
    /// Every byte the silent upstream read.
    silent_read: Arc<Mutex<Vec<u8>>>,
}

impl Faulty {
    pub(crate) async fn start() -> Faulty {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = listener.local_addr().unwrap();
        let silent_read = Arc::new(Mutex::new(Vec::new()));
        let read = Arc::clone(&silent_read);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let read = Arc::clone(&read);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    // Reads until the gateway gives up and closes; never writes.
                    while let Ok(n @ 1..) = stream.read(&mut buf).await {
                        read.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                });
            }
        });
        Faulty {
            closed_port: free_port(),
            silent,
            silent_read,
        }
    }

    /// Their `[[upstreams]]` and a gitlab route under `/down/` and `/silent/`.
    pub(crate) fn config(&self) -> String {
        let route = |name: &str| {
            format!(
                "[[routes]]\nprefix = \"/{name}/\"\nupstream = \"{name}\"\npreset = \"gitlab\"\nstrip_prefix = true\n"
            )
        };
        format!(
            "[[upstreams]]\nname = \"down\"\nurl = \"http://127.0.0.1:{}\"\n\
             headers = {{ \"PRIVATE-TOKEN\" = \"{DOWN_SECRET}\" }}\nconnect_timeout = \"1s\"\n\
             [[upstreams]]\nname = \"silent\"\nurl = \"http://{}\"\n\
             headers = {{ \"Authorization\" = \"Bearer {SILENT_SECRET}\" }}\ntimeout = \"300ms\"\n{}{}",
            self.closed_port,
            self.silent,
            route("down"),
            route("silent"),
        )
    }
}

impl World {
    pub(crate) async fn admin(&mut self, method: Method, path: &str, body: &str) -> Reply {
        let auth = format!("Bearer {}", self.session);
        let url = self.gate.admin_url(path);
        let reply = send(method.clone(), &url, &[("authorization", &auth)], body).await;
        self.journal.keep(format!("{method} {path}"), reply)
    }

    pub(crate) async fn login(&mut self, password: &str) -> Reply {
        let body = json!({ "user": "admin", "password": password }).to_string();
        let url = self.gate.admin_url("/admin/v1/login");
        let reply = send(Method::POST, &url, &[], &body).await;
        let what = format!("login {}", self.journal.bodies.len());
        self.journal.keep(what, reply)
    }

    /// Mints through the admin API; returns the token and its id.
    pub(crate) async fn mint(&mut self, what: &str, body: Value) -> (String, String) {
        let reply = self
            .admin(Method::POST, "/admin/v1/tokens", &body.to_string())
            .await;
        assert_eq!(reply.status, 201, "mint {what}: {:?}", reply.body);
        let label = format!("mint {what}");
        self.journal.bodies.last_mut().unwrap().0 = label.clone();
        let view = reply.json();
        let token = view["token"].as_str().unwrap().to_owned();
        let id = view["id"].as_str().unwrap().to_owned();
        // The ledger's digest is the one the store holds.
        let parsed = repogate::token::TokenId::parse(&id).unwrap();
        let store = self.gate.running.gateway.tokens.store();
        let stored = store
            .token(&parsed)
            .unwrap()
            .expect("a minted token is stored");
        assert_eq!(
            stored.digest.as_bytes(),
            &digest(&token),
            "{what}: not SHA-256 of the whole token"
        );
        self.secrets.add_token(&token, what, Some(&label));
        (token, id)
    }

    pub(crate) async fn proxy(
        &mut self,
        what: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        let reply = send(Method::GET, &self.gate.url(path), headers, "").await;
        self.journal.keep(format!("proxy {what}"), reply)
    }
}

/// The token in every place a client may put it.
fn presentations(token: &str) -> Vec<(&'static str, (&'static str, String))> {
    vec![
        ("Bearer", ("authorization", format!("Bearer {token}"))),
        (
            "Basic password",
            (
                "authorization",
                format!("Basic {}", b64(&format!("git:{token}"))),
            ),
        ),
        (
            "Basic user name",
            (
                "authorization",
                format!("Basic {}", b64(&format!("{token}:"))),
            ),
        ),
        ("PRIVATE-TOKEN", ("private-token", token.to_owned())),
        ("X-Gitlab-Token", ("x-gitlab-token", token.to_owned())),
    ]
}

pub(crate) async fn admin_flows(world: &mut World) {
    let opened = world.login("pw").await;
    assert_eq!(opened.status, 200, "{:?}", opened.body);
    let session = opened.json()["session"].as_str().unwrap().to_owned();
    let label = world.journal.bodies.last().unwrap().0.clone();
    world.secrets.add(&session, "admin session", Some(&label));
    world.secrets.add(
        &session[session.len() - 32..],
        "session secret",
        Some(&label),
    );
    world.session = session;

    let bad = world
        .admin(
            Method::POST,
            "/admin/v1/tokens",
            r#"{"grants":{"acme/widgets":"owner"}}"#,
        )
        .await;
    assert_eq!(bad.status, 400);
}

pub(crate) async fn proxy_flows(world: &mut World) {
    let grants = json!({ "description": "ci", "grants": { "acme/widgets": "developer" } });
    let (ci, ci_id) = world.mint("ci token", grants).await;
    world.denied_id = ci_id.clone();
    let admin = json!({ "description": "ops", "admin": true });
    let (admin_token, _) = world.mint("admin token", admin).await;
    let doomed = json!({ "description": "doomed", "grants": { "acme/widgets": "viewer" } });
    let (doomed, doomed_id) = world.mint("doomed token", doomed).await;

    // Allowed, 403 and the refused query string, with every presentation.
    for (how, (name, value)) in presentations(&ci) {
        let allowed = world.proxy(how, ISSUES, &[(name, &value)]).await;
        assert_eq!(allowed.status, 200, "{how}: {:?}", allowed.body);
        let forwarded = world.up.last().headers;
        assert_eq!(forwarded["private-token"], UPSTREAM_SECRET);
        let upstream_saw = format!("{forwarded:?}");
        assert!(
            !upstream_saw.contains(&ci[16..48]),
            "{how} forwarded: {upstream_saw}"
        );

        let denied = world.proxy(how, GADGET_ISSUES, &[(name, &value)]).await;
        assert_eq!(denied.status, 403, "{how}: {:?}", denied.body);
    }
    let in_query = format!("{ISSUES}?private_token={ci}");
    let refused = world.proxy("query string", &in_query, &[]).await;
    assert_eq!(refused.status, 401, "{:?}", refused.body);
    assert_eq!(refused.json()["error"], "foreign_credential");

    let bearer = |t: &str| format!("Bearer {t}");
    let maintain = world
        .proxy(
            "admin token",
            "/api/v4/projects/acme%2Fgadgets/protected_branches",
            &[("authorization", &bearer(&admin_token))],
        )
        .await;
    assert_eq!(maintain.status, 200, "{:?}", maintain.body);

    // Wrong secret behind a valid checksum, and a mistyped checksum.
    let wrong = with_wrong_secret(&ci);
    world
        .secrets
        .add_token(&wrong, "a wrong-secret token", None);
    let reply = world
        .proxy(
            "wrong secret",
            ISSUES,
            &[("authorization", &bearer(&wrong))],
        )
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["error"], "invalid_token", "{:?}", reply.body);
    let typo = format!("{}{}", &ci[..53], if ci.ends_with('0') { '1' } else { '0' });
    world.secrets.add(&typo, "a mistyped token", None);
    let reply = world
        .proxy("typo", ISSUES, &[("private-token", &typo)])
        .await;
    assert_eq!(reply.status, 401);

    // Revoked: works once, then 401 from the next request on.
    let auth = bearer(&doomed);
    assert_eq!(
        world
            .proxy("doomed", ISSUES, &[("authorization", &auth)])
            .await
            .status,
        200
    );
    let revoked = world
        .admin(Method::DELETE, &format!("/admin/v1/tokens/{doomed_id}"), "")
        .await;
    assert_eq!(revoked.status, 204);
    let reply = world
        .proxy("revoked", ISSUES, &[("authorization", &auth)])
        .await;
    assert_eq!(reply.status, 401, "{:?}", reply.body);

    let one = world
        .admin(Method::GET, &format!("/admin/v1/tokens/{ci_id}"), "")
        .await;
    assert_eq!(one.status, 200);
}

/// A 502 and a 504, each from an upstream whose own credential went with
/// the request: neither that credential nor the token may show in the
/// replies or in the warnings and access lines they cause.
pub(crate) async fn upstream_fault_flows(world: &mut World) {
    world
        .secrets
        .add(DOWN_SECRET, "the down upstream's credential", None);
    world
        .secrets
        .add(SILENT_SECRET, "the silent upstream's credential", None);
    let grants = json!({ "description": "faults", "grants": { "acme/widgets": "developer" } });
    let (token, _) = world.mint("fault token", grants).await;

    let auth = format!("Bearer {token}");
    let down = format!("/down{ISSUES}");
    let reply = world
        .proxy("to a closed port", &down, &[("authorization", &auth)])
        .await;
    assert_eq!(reply.status, 502, "{:?}", reply.body);
    assert_eq!(reply.json()["error"], "upstream_unavailable");

    let silent = format!("/silent{ISSUES}");
    let reply = world
        .proxy(
            "to a silent upstream",
            &silent,
            &[("private-token", &token)],
        )
        .await;
    assert_eq!(reply.status, 504, "{:?}", reply.body);
    assert_eq!(reply.json()["error"], "upstream_timeout");

    // The silent upstream was sent its own credential, and not the token.
    let read = world.faulty.silent_read.lock().unwrap().clone();
    let read = String::from_utf8_lossy(&read);
    assert!(read.contains(&format!("Bearer {SILENT_SECRET}")), "{read}");
    assert!(!read.contains(&token[16..48]), "{read}");
}

/// A failed reload whose broken line holds the upstream credential, then a good one.
pub(crate) async fn reload_flows(world: &mut World) {
    let path = world.gate.dir.path().join("repogate.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    let secret_line = format!("headers = {{ \"PRIVATE-TOKEN\" = \"{UPSTREAM_SECRET}\" }}");
    assert!(good.contains(&secret_line), "{good}");
    let broken_line = format!("headers = {{ \"PRIVATE-TOKEN\" = \"{UPSTREAM_SECRET}\", }}");
    std::fs::write(&path, good.replace(&secret_line, &broken_line)).unwrap();

    let gateway = &world.gate.running.gateway;
    let failed = repogate::reload::reload(gateway, &path).await;
    let err = failed.expect_err("a trailing comma in an inline table is invalid");
    world
        .journal
        .keep_text("reload error", format!("{err} / {err:?}"));
    let status = world.admin(Method::GET, "/admin/v1/status", "").await;
    assert_eq!(
        status.json()["last_reload"]["ok"],
        false,
        "{:?}",
        status.body
    );

    std::fs::write(&path, good).unwrap();
    let reloaded = repogate::reload::reload(&world.gate.running.gateway, &path).await;
    assert!(reloaded.is_ok(), "{reloaded:?}");
    let config = format!("{:?}", world.gate.running.gateway.runtime.load().config);
    world
        .journal
        .keep_text("the running config's Debug", config);
}

pub(crate) async fn read_flows(world: &mut World) {
    for path in [
        "/admin/v1/tokens",
        "/admin/v1/tokens?status=revoked",
        "/admin/v1/tokens/export.csv",
        "/admin/v1/tokens/export.csv?columns=id,description,kind,status,grants",
        "/admin/v1/audit",
        "/admin/v1/status",
        "/admin/v1/repos",
        "/admin/v1/settings",
    ] {
        let reply = world.admin(Method::GET, path, "").await;
        assert_eq!(reply.status, 200, "{path}: {:?}", reply.body);
    }
    let metrics = send(Method::GET, &world.gate.admin_url("/metrics"), &[], "").await;
    assert_eq!(metrics.status, 200);
    world.journal.keep("GET /metrics", metrics);
}
