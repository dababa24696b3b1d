//! A gateway plus the record of what many tasks did to it: tokens minted
//! and revoked (with the instants the calls began and returned) and every
//! proxied request (with the instant it started and its outcome).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use repogate::access::Role;
use repogate::admin::mint::{mint, MintRequest};
use repogate::token::TokenId;

use crate::common::*;

const GITLAB: &str = "[[routes]]\nprefix = \"/\"\nupstream = \"up\"\npreset = \"gitlab\"\n";
pub const ISSUES: &str = "/api/v4/projects/acme%2Fwidgets/issues";

/// Longest a mint or revoke may take before the test calls it hung; each
/// normally takes a few milliseconds.
const ADMIN_CALL_LIMIT: Duration = Duration::from_secs(5);
/// Longest a proxied request may take; normally about a millisecond.
const REQUEST_LIMIT: Duration = Duration::from_secs(5);

/// A small deterministic generator (xorshift64), one per task.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x % n as u64) as usize
    }
}

/// A token minted during the test and what happened to it.
pub struct Issued {
    pub secret: String,
    pub id: TokenId,
    /// When a revoke call for it began.
    pub revoke_started: Option<Instant>,
    /// When that call returned.
    pub revoked: Option<Instant>,
}

/// One proxied request: which token, when it started and ended, its outcome.
pub struct Sent {
    pub token: usize,
    pub started: Instant,
    pub finished: Instant,
    pub status: u16,
    pub body: Bytes,
}

/// The gateway, its upstream, and everything the tasks record.
pub struct World {
    pub up: TestUpstream,
    pub gate: Gate,
    http: TestClient,
    pub tokens: Mutex<Vec<Issued>>,
    pub sent: Mutex<Vec<Sent>>,
}

impl World {
    pub async fn start() -> Arc<World> {
        let up = upstream().await;
        let gate = gateway(&upstream_route(&up, GITLAB)).await;
        gate.add_repo("acme/widgets").await;
        Arc::new(World {
            up,
            gate,
            http: client(),
            tokens: Mutex::default(),
            sent: Mutex::default(),
        })
    }

    /// Mints a developer token on `acme/widgets` through the minting rules
    /// and the gateway's own store and registry; returns its index.
    pub async fn mint(&self) -> usize {
        let gw = &self.gate.running.gateway;
        let plan = gw.runtime.load().config.account.plan;
        let req = MintRequest {
            description: "concurrency".into(),
            admin: false,
            grants: [("acme/widgets".to_owned(), Role::Developer)].into(),
            expires_at: None,
            created_by: "test".into(),
        };
        let now = repogate::now_ms();
        let minted = mint(gw.tokens.store(), &gw.registry, plan, req, now);
        let (secret, record) = within(ADMIN_CALL_LIMIT, "mint", minted)
            .await
            .expect("minting works");
        let mut tokens = self.tokens.lock().unwrap();
        tokens.push(Issued {
            secret: secret.expose().to_owned(),
            id: record.id,
            revoke_started: None,
            revoked: None,
        });
        tokens.len() - 1
    }

    /// Revokes token `index` unless a revoke of it already began.
    pub async fn revoke(&self, index: usize) {
        let id = {
            let mut tokens = self.tokens.lock().unwrap();
            let token = &mut tokens[index];
            if token.revoke_started.is_some() {
                return;
            }
            token.revoke_started = Some(Instant::now());
            token.id
        };
        let gw = &self.gate.running.gateway;
        let revoke = gw.tokens.revoke(&id, repogate::now_ms());
        let revoked = within(ADMIN_CALL_LIMIT, "revoke", revoke).await;
        let returned = Instant::now();
        assert!(
            revoked.expect("revoking works").is_some(),
            "the token exists"
        );
        self.tokens.lock().unwrap()[index].revoked = Some(returned);
    }

    /// Reads the issues of `acme/widgets` with token `index`, recording the
    /// instant the request started and its outcome.
    pub async fn request(&self, index: usize) {
        let secret = self.tokens.lock().unwrap()[index].secret.clone();
        let req = Request::get(self.gate.url(ISSUES))
            .header("authorization", format!("Bearer {secret}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let started = Instant::now();
        let exchange = async {
            let response = self.http.request(req).await.expect("the gateway answers");
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, body)
        };
        let (status, body) = within(REQUEST_LIMIT, "a proxied request", exchange).await;
        self.sent.lock().unwrap().push(Sent {
            token: index,
            started,
            finished: Instant::now(),
            status,
            body,
        });
    }

    pub fn token_count(&self) -> usize {
        self.tokens.lock().unwrap().len()
    }
}

/// Awaits `call`, panicking if it takes longer than `limit`.
async fn within<T>(limit: Duration, what: &str, call: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, call).await {
        Ok(done) => done,
        Err(_) => panic!("{what} did not return within {limit:?}"),
    }
}

/// Waits for every task; on a failure, leaks the world before failing so
/// that dropping a store whose flush hung cannot hang the test as well.
pub async fn join_all(world: Arc<World>, tasks: Vec<tokio::task::JoinHandle<()>>) -> Arc<World> {
    let mut failed = None;
    for task in tasks {
        if let Err(e) = task.await {
            failed.get_or_insert(e);
        }
    }
    if let Some(e) = failed {
        std::mem::forget(world);
        panic!("a task failed: {e}");
    }
    world
}

/// What [`check`] counted.
pub struct Tally {
    /// Requests allowed (200).
    pub allowed: usize,
    /// Requests refused that started after their token's revoke returned.
    pub refused_after_revoke: usize,
}

/// Checks every recorded request against the revocation instants: nothing
/// started after a revoke returned was allowed, nothing with a token whose
/// revoke never began was refused, and the upstream saw exactly the allowed.
pub fn check(world: &World) -> Tally {
    let tokens = world.tokens.lock().unwrap();
    let sent = world.sent.lock().unwrap();
    let mut tally = Tally {
        allowed: 0,
        refused_after_revoke: 0,
    };
    for s in sent.iter() {
        let token = &tokens[s.token];
        let after_revoke = token.revoked.is_some_and(|at| s.started > at);
        match s.status {
            200 => {
                tally.allowed += 1;
                assert!(
                    !after_revoke,
                    "token {:?} allowed a request that started {:?} after its revoke returned",
                    token.id,
                    s.started - token.revoked.unwrap()
                );
            }
            401 => {
                assert!(
                    token.revoke_started.is_some(),
                    "token {:?} was never revoked but refused: {:?}",
                    token.id,
                    s.body
                );
                tally.refused_after_revoke += usize::from(after_revoke);
            }
            other => panic!("unexpected {other} for token {:?}: {:?}", token.id, s.body),
        }
    }
    assert_eq!(
        world.up.count(),
        tally.allowed,
        "the upstream saw exactly the allowed requests"
    );
    tally
}
