//! No secret reaches a log line or a response that should not carry it.
//!
//! This binary installs a process-wide subscriber at TRACE (every target,
//! `log` records included) writing into memory, drives every flow that
//! handles a credential — admin logins, minting, each way a token can be
//! presented, refusals, upstream failures (502, 504), revocation, exports,
//! status, metrics, reloads, the access log — and then searches the captured
//! log and every response body for the secrets that passed through, the
//! stored digests of the tokens among them. A second test checks the
//! `Debug` of every type that holds a secret, which is what a panic prints.

#[path = "../common/mod.rs"]
mod common;

mod flows;
mod ledger;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use common::*;
use flows::{
    admin_flows, proxy_flows, read_flows, reload_flows, upstream_fault_flows, Faulty, World,
};
use http::Method;
use ledger::{contains_word, Journal, Secrets};
use tracing_subscriber::fmt::MakeWriter;

const GITLAB: &str = "[[routes]]\nprefix = \"/\"\nupstream = \"up\"\npreset = \"gitlab\"\n";
const REPOS: &str =
    "[[repositories]]\nname = \"acme/widgets\"\n[[repositories]]\nname = \"acme/gadgets\"\n";
const LOG: &str = "[log]\nlevel = \"trace\"\naccess_log = true\n";
const ISSUES: &str = "/api/v4/projects/acme%2Fwidgets/issues";
const GADGET_ISSUES: &str = "/api/v4/projects/acme%2Fgadgets/issues";
const UPSTREAM_SECRET: &str = "real-upstream-secret";
const WRONG_PASSWORD: &str = "not-the-admin-password-4711";

/// Log output kept in memory, shared by every writer the subscriber makes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Installs the capturing subscriber, once for the whole binary.
fn captured_log() -> &'static Captured {
    static LOG: OnceLock<Captured> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Captured::default();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .json()
            .with_writer(log.clone())
            .init();
        log
    })
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log_or_a_response_that_should_not_show_it() {
    let log = captured_log();
    let up = upstream().await;
    let faulty = Faulty::start().await;
    let rest = format!(
        "{}{LOG}{}{REPOS}{}",
        admin_user(),
        upstream_route(&up, GITLAB),
        faulty.config(),
    );
    let gate = gateway(&rest).await;
    let mut world = World {
        gate,
        up,
        journal: Journal::default(),
        secrets: Secrets::default(),
        session: String::new(),
        denied_id: String::new(),
        faulty,
    };
    let phc = admin_user();
    let phc = phc
        .split('"')
        .nth(3)
        .expect("the admin user block quotes its hash");
    world.secrets.add(phc, "the admin password hash", None);

    admin_flows(&mut world).await;
    proxy_flows(&mut world).await;
    upstream_fault_flows(&mut world).await;
    reload_flows(&mut world).await;
    read_flows(&mut world).await;

    // Last, as it opens the failed-login back-off for this address.
    let refused = world.login(WRONG_PASSWORD).await;
    assert_eq!(refused.status, 401, "{:?}", refused.body);
    let logout = world.admin(Method::POST, "/admin/v1/logout", "").await;
    assert_eq!(logout.status, 204);

    assert_nothing_leaked(&world, &log.text());
}

fn assert_nothing_leaked(world: &World, log: &str) {
    assert!(!log.is_empty(), "nothing was logged");
    // Each flow logged something, at the levels it should: the search below means something.
    for message in [
        "\"request received\"",
        "\"access\"",
        "\"request denied\"",
        "\"request refused\"",
        "\"token minted\"",
        "\"token revoked\"",
        "\"admin logged in\"",
        "\"admin login failed\"",
        "\"config reload failed; the running config stays\"",
        "\"config reloaded\"",
    ] {
        assert!(log.contains(message), "no {message} event was logged");
    }
    for status in ["\"status\":502", "\"status\":504"] {
        assert!(
            log.lines()
                .any(|l| l.contains("\"upstream failed\"") && l.contains(status)),
            "no upstream failure warning with {status}"
        );
    }
    let ci_id = &world.denied_id;
    assert!(
        log.lines()
            .any(|l| l.contains("request denied") && l.contains(ci_id.as_str())),
        "no denial names the token id {ci_id}"
    );

    let mut leaks = Vec::new();
    let mut everything = world.secrets.items.clone();
    everything.push((
        UPSTREAM_SECRET.into(),
        "the upstream credential".into(),
        None,
    ));
    everything.push((WRONG_PASSWORD.into(), "a wrong admin password".into(), None));
    for (value, what, shown_by) in &everything {
        if log.contains(value.as_str()) {
            leaks.push(format!("{what} in the log"));
        }
        for (label, body) in &world.journal.bodies {
            let body = String::from_utf8_lossy(body);
            if body.contains(value.as_str()) && shown_by.as_deref() != Some(label) {
                leaks.push(format!("{what} in the reply to {label}"));
            }
        }
    }
    if contains_word(log, "pw") {
        leaks.push("the admin password in the log".into());
    }
    for (label, body) in &world.journal.bodies {
        if contains_word(&String::from_utf8_lossy(body), "pw") {
            leaks.push(format!("the admin password in the reply to {label}"));
        }
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
}

/// Asserts that neither `{:?}` nor `{:#?}` of `value` (what a panic message,
/// an `expect` or a stray debug log would print) contains any of `secrets`,
/// and that it does show `visible`, so the check saw a real rendering.
fn assert_debug_hides(what: &str, value: &impl std::fmt::Debug, secrets: &[&str], visible: &str) {
    for shown in [format!("{value:?}"), format!("{value:#?}")] {
        for secret in secrets {
            assert!(
                !shown.contains(secret),
                "the Debug of {what} shows {secret:?}: {shown}"
            );
        }
        assert!(shown.contains(visible), "the Debug of {what}: {shown}");
    }
}

/// The whole token and its 32 secret characters.
fn token_secrets(token: &str) -> [&str; 2] {
    [token, &token[16..48]]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_output_of_every_type_holding_a_secret_never_shows_the_secret() {
    let up = upstream().await;
    let gate = gateway(&format!(
        "{}{}{REPOS}",
        admin_user(),
        upstream_route(&up, GITLAB)
    ))
    .await;
    let gw = &gate.running.gateway;

    // src/token.rs: a generated token and its secret.
    let minted = repogate::token::generate().unwrap();
    let token = minted.secret.expose().to_owned();
    let id = minted.id.to_string();
    assert_debug_hides(
        "token::Secret",
        &minted.secret,
        &token_secrets(&token),
        "Secret",
    );
    assert_debug_hides("token::Minted", &minted, &token_secrets(&token), &id);

    // src/admin/mint.rs: the mint result, as `unwrap_err` on it would print it.
    let plan = gw.runtime.load().config.account.plan;
    let request = repogate::admin::mint::MintRequest {
        description: "debug".into(),
        grants: [("acme/widgets".to_owned(), repogate::access::Role::Developer)].into(),
        created_by: "admin".into(),
        ..Default::default()
    };
    let result = repogate::admin::mint::mint(
        gw.tokens.store(),
        &gw.registry,
        plan,
        request,
        repogate::now_ms(),
    )
    .await;
    let (secret, record) = result.as_ref().expect("minting works");
    let token = secret.expose().to_owned();
    let id = record.id.to_string();
    assert_debug_hides("the mint result", &result, &token_secrets(&token), &id);

    // What the store and the cache hold for it: not even the digest shows.
    let forms = ledger::digest_forms(&ledger::digest(&token));
    let mut hidden: Vec<&str> = forms.iter().map(|(form, _)| form.as_str()).collect();
    hidden.extend(token_secrets(&token));
    let stored = gw.tokens.store().token(&record.id).unwrap().unwrap();
    assert_debug_hides("the stored token", &stored, &hidden, &id);
    let cached = gw
        .tokens
        .resolve(&token)
        .expect("the minted token resolves");
    assert_debug_hides("the cached token", &cached, &hidden, &id);

    // src/admin/session.rs: an admin session.
    let sessions = repogate::admin::session::Sessions::default();
    let (text, session) = sessions
        .open("admin", std::time::Duration::from_secs(60))
        .unwrap();
    let session_secrets = [text.as_str(), &text[text.len() - 32..]];
    assert_debug_hides(
        "admin::session::Session",
        &session,
        &session_secrets,
        "admin",
    );

    // src/config/secret.rs, alone and inside the loaded config (upstream
    // headers and admin password hashes).
    let value = repogate::config::SecretString::new(UPSTREAM_SECRET);
    assert_debug_hides(
        "config::SecretString",
        &value,
        &[UPSTREAM_SECRET],
        "redacted",
    );
    let user = admin_user();
    let hash = user.split('"').nth(3).unwrap();
    let config = &gw.runtime.load().config;
    let addr = up.addr.to_string();
    assert_debug_hides("the loaded config", config, &[UPSTREAM_SECRET, hash], &addr);
}

/// A presented token, as the proxy holds it before checking it.
#[test]
fn debug_output_of_a_presented_credential_never_shows_the_token() {
    let minted = repogate::token::generate().unwrap();
    let token = minted.secret.expose();
    let mut headers = http::HeaderMap::new();
    headers.insert("private-token", token.parse().unwrap());
    let credential = repogate::proxy::credential::extract(&headers);
    assert!(matches!(
        credential,
        repogate::proxy::credential::Credential::Token(_)
    ));
    assert_debug_hides(
        "a presented credential",
        &credential,
        &token_secrets(token),
        "Token",
    );
}
