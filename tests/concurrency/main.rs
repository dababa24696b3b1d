//! Minting, revoking and proxying at the same time, from many tasks.
//!
//! The contract under test (DESIGN.md §2, §3): a revoked token allows
//! nothing from the next request on, and a revoke invalidates the cache
//! before its call returns. So once `revoke` has returned, no request that
//! starts afterwards may be allowed; and a token nobody revoked is never
//! refused, however busy the cache is. Admin calls must also keep returning
//! when several run at once.
//!
//! Tests whose admin calls overlap run in a child process (`child.rs`): a
//! hung sled flush blocks threads that timeouts cannot reclaim and wedges
//! every store in the process, so a regression there must fail one test in
//! bounded time, not hang the binary.

#[path = "../common/mod.rs"]
mod common;

mod child;
mod world;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use child::{is_child, run_in_child};
use world::{check, join_all, Rng, World};

const TASKS: u64 = 16;
const OPS_PER_TASK: usize = 200;
/// How long a child test may run; each takes about 2 s when it passes.
const CHILD_LIMIT: Duration = Duration::from_secs(15);

/// 16 tasks × 200 random operations: 10% mint, 8% revoke, the rest proxy a
/// read with a random token (revoked ones included).
async fn mixed_operations() {
    let world = World::start().await;
    for _ in 0..TASKS {
        world.mint().await;
    }

    let tasks = (0..TASKS).map(|task| {
        let world = Arc::clone(&world);
        tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(task + 1));
            for _ in 0..OPS_PER_TASK {
                let pick = rng.below(world.token_count());
                match rng.below(100) {
                    0..10 => {
                        world.mint().await;
                    }
                    10..18 => world.revoke(pick).await,
                    _ => world.request(pick).await,
                }
            }
        })
    });
    let tasks = tasks.collect();
    let world = join_all(world, tasks).await;

    let tally = check(&world);
    let tokens = world.tokens.lock().unwrap();
    let revoked = tokens.iter().filter(|t| t.revoked.is_some()).count();
    let sent = world.sent.lock().unwrap().len();
    // Guards against a run that proves nothing.
    assert!(revoked >= 50, "only {revoked} tokens were revoked");
    assert!(
        tally.allowed >= 500,
        "only {} of {sent} requests were allowed",
        tally.allowed
    );
    assert!(
        tally.refused_after_revoke >= 50,
        "only {} refusals after a revoke",
        tally.refused_after_revoke
    );
}

/// Mint, revoke and proxy all at once, admin calls overlapping as they may
/// in production.
#[test]
fn mint_revoke_and_proxy_in_parallel_never_allow_a_revoked_token_or_refuse_a_valid_one() {
    run_in_child("child_mint_revoke_and_proxy_in_parallel", CHILD_LIMIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
#[ignore = "run in a child process by mint_revoke_and_proxy_in_parallel_never_allow_…"]
async fn child_mint_revoke_and_proxy_in_parallel() {
    if is_child() {
        mixed_operations().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn a_revoke_under_load_refuses_every_request_started_after_it_returns() {
    let world = World::start().await;
    let hot = world.mint().await;
    let spare = world.mint().await;
    let stop = Arc::new(AtomicBool::new(false));

    // Sixteen tasks hammer one cached token while it is revoked, and use a
    // second token that is never revoked.
    let tasks = (0..TASKS).map(|task| {
        let (world, stop) = (Arc::clone(&world), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let token = if (n + task) % 4 == 0 { spare } else { hot };
                world.request(token).await;
                n += 1;
            }
        })
    });
    let tasks: Vec<_> = tasks.collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    world.revoke(hot).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let world = join_all(world, tasks).await;

    let tally = check(&world);
    let revoke_started = world.tokens.lock().unwrap()[hot].revoke_started.unwrap();
    let sent = world.sent.lock().unwrap();
    // Requests that overlap the revoke call may go either way; those that
    // were over before it began must all have been allowed.
    let done_before: Vec<_> = sent
        .iter()
        .filter(|s| s.token == hot && s.finished < revoke_started)
        .collect();
    assert!(
        done_before.len() >= 50,
        "only {} uses before the revoke",
        done_before.len()
    );
    assert!(
        done_before.iter().all(|s| s.status == 200),
        "the token worked until its revoke began"
    );
    assert!(
        tally.refused_after_revoke >= 50,
        "only {} refusals after the revoke",
        tally.refused_after_revoke
    );
    let spare_refused = sent.iter().filter(|s| s.token == spare && s.status != 200);
    assert_eq!(spare_refused.count(), 0, "the spare token always worked");
}

/// Admin calls at once in each round of the reproduction, and its rounds.
const BURST: usize = 32;
const ROUNDS: usize = 6;

/// Guards `Store::flush` against sled 0.34's `Db::flush_async`, which it
/// used to await: that runs on sled's process-wide I/O pool, and with
/// several flushes at once every `sled-io-*` thread ended up waiting in
/// `make_stable_inner` for a write only a pool thread could do, so mint,
/// revoke, repository and settings calls never returned (sled issues #1241
/// and #1308). Against that code this failed 5 runs in 5, in about 5 s.
#[test]
fn concurrent_revokes_and_mints_each_return_promptly() {
    run_in_child("child_concurrent_revokes_and_mints", CHILD_LIMIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
#[ignore = "run in a child process by concurrent_revokes_and_mints_each_return_promptly"]
async fn child_concurrent_revokes_and_mints() {
    if !is_child() {
        return;
    }
    let mut world = World::start().await;
    for _ in 0..BURST {
        world.mint().await;
    }

    // Each round revokes the newest tokens and mints as many, all at once.
    for _ in 0..ROUNDS {
        let newest = world.token_count() - BURST;
        let tasks: Vec<_> = (newest..newest + BURST)
            .map(|i| {
                let world = Arc::clone(&world);
                tokio::spawn(async move {
                    world.revoke(i).await;
                    world.mint().await;
                })
            })
            .collect();
        world = join_all(world, tasks).await;
    }

    let tokens = world.tokens.lock().unwrap();
    assert_eq!(tokens.len(), BURST * (ROUNDS + 1));
    let (old, new) = tokens.split_at(BURST * ROUNDS);
    assert!(old.iter().all(|t| t.revoked.is_some()));
    assert!(new.iter().all(|t| t.revoke_started.is_none()));
}
