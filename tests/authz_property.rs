//! Authorization is never bypassed: random plans (freemium, premium and
//! enterprise), grants, default roles, repositories (existing at minting,
//! created later, unregistered) and requests go through a real gateway, and
//! every answer is compared with an independent model of DESIGN.md §2
//! written out here over the role table in `tests/common`.

mod common;

use common::*;
use http::Method;
use proptest::prelude::*;
use repogate::access::{Action, DefaultRole, Plan, Role};

const EARLY: [&str; 4] = ["acme/r0", "acme/r1", "acme/r2", "acme/r3"];
const LATER: [&str; 2] = ["acme/r4", "acme/r5"];
const GHOST: &str = "ghost/none";
/// Random scenarios per plan, each of 3 tokens plus an admin token and 30 requests.
const CASES_PER_PLAN: u32 = 16;

#[derive(Clone, Debug)]
struct Scenario {
    plan: Plan,
    /// The company default role, set on every plan: only enterprise tokens
    /// may take it up.
    default: Role,
    /// Per non-admin token: a role or nothing for each early repository
    /// (enterprise only; the other plans mint without grants).
    grants: Vec<[Option<Role>; 4]>,
    /// (token index; the last one is the admin token, repository index into
    /// EARLY ++ LATER ++ [GHOST], action index).
    requests: Vec<(usize, usize, usize)>,
}

fn role() -> impl Strategy<Value = Role> {
    prop::sample::select(Role::ALL.to_vec())
}

fn scenario(plan: Plan) -> impl Strategy<Value = Scenario> {
    let default = prop::sample::select(vec![
        Role::NoAccess,
        Role::Viewer,
        Role::Developer,
        Role::Reviewer,
    ]);
    let grants = prop::collection::vec(prop::array::uniform4(prop::option::of(role())), 3);
    let requests = prop::collection::vec((0usize..4, 0usize..7, 0usize..8), 30);
    (Just(plan), default, grants, requests).prop_map(|(plan, default, grants, requests)| Scenario {
        plan,
        default,
        grants,
        requests,
    })
}

/// The model's answer: may this token do this action on this repository?
fn expected(s: &Scenario, token: usize, repo: usize, action: Action) -> bool {
    if token == s.grants.len() {
        return true; // admin token: everything, scan included, registered or not
    }
    if action == Action::Scan || repo == EARLY.len() + LATER.len() {
        return false; // scan is admin-only; unregistered repositories too
    }
    let existed = repo < EARLY.len();
    let role = match (s.plan, existed) {
        // User tokens: reviewer on what existed at minting, nothing later,
        // whatever the default role says.
        (Plan::Freemium | Plan::Premium, true) => Role::Reviewer,
        (Plan::Freemium | Plan::Premium, false) => Role::NoAccess,
        (Plan::Enterprise, true) => s.grants[token][repo].unwrap_or(Role::NoAccess),
        (Plan::Enterprise, false) => s.default,
    };
    table_allows(role, action)
}

/// A request that needs `action` on `repo` under the gitlab and sca_scan presets.
fn request_for(action: Action, repo: &str) -> (Method, String) {
    let enc = repo.replace('/', "%2F");
    let api = format!("/api/v4/projects/{enc}");
    match action {
        Action::Read => (Method::GET, format!("{api}/issues")),
        Action::Comment => (Method::POST, format!("{api}/issues/1/notes")),
        Action::Clone => (
            Method::GET,
            format!("/{repo}.git/info/refs?service=git-upload-pack"),
        ),
        Action::Integrate => (Method::POST, format!("{api}/hooks")),
        Action::Write => (Method::POST, format!("{api}/merge_requests")),
        Action::Review => (Method::POST, format!("{api}/merge_requests/1/approve")),
        Action::Maintain => (Method::PUT, api),
        Action::Scan => (
            Method::POST,
            format!("/api/1.0/open/uploads/dependencies/files?repositoryName={repo}"),
        ),
    }
}

async fn run(s: Scenario) -> Result<(), TestCaseError> {
    let up = upstream().await;
    let routes = "[[routes]]\nprefix = \"/\"\nupstream = \"up\"\npreset = \"gitlab\"\n\
                  [[routes]]\nprefix = \"/api/1.0/open/\"\nupstream = \"up\"\npreset = \"sca_scan\"\n";
    let plan = match s.plan {
        Plan::Freemium => "freemium",
        Plan::Premium => "premium",
        Plan::Enterprise => "enterprise",
    };
    let gate = gateway(&format!(
        "[account]\nplan = \"{plan}\"\n{}",
        upstream_route(&up, routes)
    ))
    .await;
    for repo in EARLY {
        gate.add_repo(repo).await;
    }

    let mut tokens = Vec::new();
    for grants in &s.grants {
        let chosen: Vec<(&str, Role)> = match s.plan {
            Plan::Enterprise => EARLY
                .iter()
                .zip(grants)
                .filter_map(|(r, g)| g.map(|g| (*r, g)))
                .collect(),
            Plan::Freemium | Plan::Premium => Vec::new(),
        };
        tokens.push(gate.mint(false, &chosen).await);
    }
    tokens.push(gate.mint(true, &[]).await);
    for repo in LATER {
        gate.add_repo(repo).await;
    }
    // Set on every plan (a default role set through the admin API outlives
    // a switch of plan): user tokens must not take it up.
    let default = DefaultRole::new(s.default).unwrap();
    gate.running
        .gateway
        .registry
        .set_default_role(default)
        .unwrap();

    let repos: Vec<&str> = EARLY
        .iter()
        .chain(&LATER)
        .chain([&GHOST])
        .copied()
        .collect();
    for &(token, repo, action) in &s.requests {
        let action = Action::ALL[action];
        let (method, path) = request_for(action, repos[repo]);
        let before = up.count();
        let auth = format!("Bearer {}", tokens[token]);
        let reply = send(method, &gate.url(&path), &[("authorization", &auth)], "").await;
        let allowed = expected(&s, token, repo, action);
        let what = format!(
            "{:?} plan, token {token} {action} on {}: {}",
            s.plan, repos[repo], reply.status
        );
        prop_assert_eq!(reply.status.is_success(), allowed, "{}", what);
        prop_assert_eq!(up.count() - before, usize::from(allowed), "{}", what);
        if !allowed {
            prop_assert_eq!(reply.status, 403, "{}", what);
        }
    }
    gate.running.shutdown().await;
    Ok(())
}

#[test]
fn the_proxy_decides_random_requests_exactly_as_the_role_table_says() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Every plan gets its own cases, so none is left out by chance.
    for plan in [Plan::Freemium, Plan::Premium, Plan::Enterprise] {
        let config = ProptestConfig::with_cases(CASES_PER_PLAN);
        let mut runner = proptest::test_runner::TestRunner::new(config);
        runner
            .run(&scenario(plan), |s| runtime.block_on(run(s)))
            .unwrap_or_else(|e| panic!("{plan:?} plan: {e}"));
    }
}
