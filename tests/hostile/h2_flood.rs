//! HTTP/2 floods written as raw frames (RFC 9113 §4.1): rapid reset
//! (CVE-2023-44487) and a CONTINUATION flood (CVE-2024-27316 and kin).
//! The gateway must send GOAWAY or close the connection, keep serving
//! HTTP/1.1 clients during and after, and keep its memory in check.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::{rss, Hostile, ISSUES};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
/// RST_STREAM error code CANCEL.
const CANCEL: u32 = 0x8;

/// The most RSS may grow during a flood, in MiB.
const MAX_GROWTH_MIB: u64 = 50;
const MIB: u64 = 1024 * 1024;

/// One frame: 24-bit length, type, flags, 31-bit stream id, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("a small payload");
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK string literal, not Huffman-coded, shorter than 127 bytes.
fn hpack_string(out: &mut Vec<u8>, text: &str) {
    let len = u8::try_from(text.len()).ok().filter(|l| *l < 127);
    out.push(len.expect("strings stay under 127 bytes"));
    out.extend_from_slice(text.as_bytes());
}

/// An HPACK "literal without indexing" field with a new name (RFC 7541 §6.2.2).
fn hpack_literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0x00);
    hpack_string(out, name);
    hpack_string(out, value);
}

/// The header block of `GET path` with the token: `:method GET` and
/// `:scheme http` from the static table, `:path` and `:authority` as literals
/// with indexed names. Nothing enters the dynamic table, so it can be reused.
fn request_block(path: &str, token: &str) -> Vec<u8> {
    let mut out = vec![0x82, 0x86, 0x04];
    hpack_string(&mut out, path);
    out.push(0x01);
    hpack_string(&mut out, "gate");
    hpack_literal(&mut out, "authorization", &format!("Bearer {token}"));
    out
}

/// What the reader saw of the gateway's side of the connection.
#[derive(Default)]
struct Seen {
    goaway: AtomicBool,
    closed: AtomicBool,
}

/// Opens an HTTP/2 connection with prior knowledge and exchanges SETTINGS.
async fn handshake(h: &Hostile) -> (OwnedReadHalf, OwnedWriteHalf) {
    let mut stream = TcpStream::connect(h.addr()).await.unwrap();
    stream.write_all(PREFACE).await.unwrap();
    stream.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
    loop {
        let (kind, flags, _) = read_frame(&mut stream).await.expect("server SETTINGS");
        if kind == SETTINGS && flags & ACK == 0 {
            break;
        }
    }
    stream
        .write_all(&frame(SETTINGS, ACK, 0, &[]))
        .await
        .unwrap();
    stream.into_split()
}

/// Reads one frame: its type, flags and payload; `None` on close or error.
async fn read_frame(r: &mut (impl AsyncReadExt + Unpin)) -> Option<(u8, u8, Vec<u8>)> {
    let mut head = [0u8; 9];
    r.read_exact(&mut head).await.ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await.ok()?;
    Some((head[3], head[4], payload))
}

/// Reads frames until the gateway closes, noting GOAWAY and the close.
fn watch(mut reader: OwnedReadHalf) -> (Arc<Seen>, JoinHandle<()>) {
    let seen = Arc::new(Seen::default());
    let task = tokio::spawn({
        let seen = Arc::clone(&seen);
        async move {
            while let Some((kind, _, _)) = read_frame(&mut reader).await {
                if kind == GOAWAY {
                    seen.goaway.store(true, Ordering::SeqCst);
                }
            }
            seen.closed.store(true, Ordering::SeqCst);
        }
    });
    (seen, task)
}

/// Normal HTTP/1.1 requests every 100 ms until stopped; returns how many
/// were served and the slowest answer.
fn normal_traffic(h: &Arc<Hostile>, stop: Arc<AtomicBool>) -> JoinHandle<(usize, Duration)> {
    let h = Arc::clone(h);
    tokio::spawn(async move {
        let (mut served, mut slowest) = (0, Duration::ZERO);
        while !stop.load(Ordering::SeqCst) {
            let asked = Instant::now();
            h.normal_client_is_served().await;
            slowest = slowest.max(asked.elapsed());
            served += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (served, slowest)
    })
}

/// Samples RSS every 20 ms into `peak` until stopped.
fn sample_rss(peak: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::SeqCst) {
            peak.fetch_max(rss(), Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

/// How long each test keeps flooding, one connection after another.
const ATTACK: Duration = Duration::from_millis(1500);

/// Runs `flood` on fresh HTTP/2 connections, one after another for
/// [`ATTACK`], with normal traffic and RSS sampling around them. Each
/// connection must be cut (GOAWAY or close); normal clients must be served
/// throughout; memory must stay within bound.
async fn survive<F, Fut>(what: &str, flood: F)
where
    F: Fn(OwnedWriteHalf, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    // RSS is the whole process's: no other test may run meanwhile.
    let h = Arc::new(Hostile::start_alone().await);
    h.normal_client_is_served().await;
    let before = rss();
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(before));
    let sampler = sample_rss(Arc::clone(&peak), Arc::clone(&stop));
    let traffic = normal_traffic(&h, Arc::clone(&stop));

    let started = Instant::now();
    let mut rounds = 0;
    while started.elapsed() < ATTACK {
        let (reader, writer) = handshake(&h).await;
        let (seen, reading) = watch(reader);
        // A gateway that stops reading without closing would block the writes.
        let _ = tokio::time::timeout(Duration::from_secs(10), flood(writer, h.token.clone())).await;
        let cut = tokio::time::timeout(Duration::from_secs(5), async {
            while !seen.goaway.load(Ordering::SeqCst) && !seen.closed.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        reading.abort();
        assert!(
            cut.is_ok(),
            "{what}: connection {rounds} got neither GOAWAY nor a close within 5 s"
        );
        rounds += 1;
    }

    stop.store(true, Ordering::SeqCst);
    let (served, slowest) = traffic.await.unwrap();
    sampler.await.unwrap();
    assert!(
        served >= 5,
        "{what}: {served} normal requests in {:?}",
        started.elapsed()
    );
    assert!(
        slowest < Duration::from_secs(1),
        "{what}: slowest normal answer {slowest:?}"
    );
    let grown = peak.load(Ordering::Relaxed).saturating_sub(before) / MIB;
    assert!(
        grown < MAX_GROWTH_MIB,
        "{what}: RSS grew by {grown} MiB over {rounds} connections"
    );
    h.normal_client_is_served().await;
    let others = h.seen_targets().into_iter().filter(|t| t != ISSUES).count();
    assert_eq!(others, 0, "{what}: only issue reads reach the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http2_rapid_reset_flood_is_cut_off_and_the_gateway_keeps_serving() {
    survive(
        "rapid reset",
        |mut writer: OwnedWriteHalf, token: String| async move {
            let block = request_block(ISSUES, &token);
            // 10,000 streams, each opened and cancelled at once, 100 per write.
            for batch in 0..100u32 {
                let mut bytes = Vec::new();
                for i in 0..100u32 {
                    let stream = 1 + 2 * (batch * 100 + i);
                    bytes.extend(frame(HEADERS, END_HEADERS | END_STREAM, stream, &block));
                    bytes.extend(frame(RST_STREAM, 0, stream, &CANCEL.to_be_bytes()));
                }
                if writer.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http2_continuation_flood_is_cut_off_and_memory_stays_flat() {
    survive(
        "CONTINUATION flood",
        |mut writer: OwnedWriteHalf, token: String| async move {
            // A header block that never ends: HEADERS without END_HEADERS, then
            // CONTINUATION frames of about 16 KiB each, up to 64 MiB.
            let block = request_block(ISSUES, &token);
            if writer
                .write_all(&frame(HEADERS, END_STREAM, 1, &block))
                .await
                .is_err()
            {
                return;
            }
            let mut chunk = Vec::new();
            while chunk.len() < 16_000 {
                hpack_literal(&mut chunk, "x-flood", &"a".repeat(100));
            }
            let continuation = frame(CONTINUATION, 0, 1, &chunk);
            for _ in 0..4096 {
                if writer.write_all(&continuation).await.is_err() {
                    return;
                }
            }
        },
    )
    .await;
}
