//! No secret reaches a log line or a response that should not carry it.
//!
//! This binary installs a process-wide subscriber at TRACE (every target,
//! `log` records included) writing into memory, drives every flow that
//! handles a credential — admin logins, minting, each way a token can be
//! presented, refusals, revocation, exports, status, metrics, reloads, the
//! access log — and then searches the captured log and every response body
//! for the secrets that passed through.

#[path = "../common/mod.rs"]
mod common;

mod flows;
mod ledger;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use common::*;
use flows::{admin_flows, proxy_flows, read_flows, reload_flows, World};
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
    let rest = format!(
        "{}{LOG}{}{REPOS}",
        admin_user(),
        upstream_route(&up, GITLAB)
    );
    let gate = gateway(&rest).await;
    let mut world = World {
        gate,
        up,
        journal: Journal::default(),
        secrets: Secrets::default(),
        session: String::new(),
        denied_id: String::new(),
    };
    let phc = admin_user();
    let phc = phc
        .split('"')
        .nth(3)
        .expect("the admin user block quotes its hash");
    world.secrets.add(phc, "the admin password hash", None);

    admin_flows(&mut world).await;
    proxy_flows(&mut world).await;
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
