//! An open-loop load generator for `benches/load.sh`: requests are scheduled
//! at a fixed rate and each latency is measured from its scheduled send
//! time, so a stalled server cannot hide its tail by slowing the client down
//! (coordinated omission). One thread, one HTTP/1.1 connection per slot.
//!
//! cargo run --release --example fixed_rate -- --url URL --rate 10000 --duration 10s [--header 'K: V']

use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

#[derive(Parser)]
struct Args {
    /// Target URL (http only).
    #[arg(long)]
    url: http::Uri,
    /// Requests per second.
    #[arg(long)]
    rate: u64,
    /// How long to send, e.g. `10s`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    duration: Duration,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    conns: u64,
    /// Extra header `Name: value`, repeatable.
    #[arg(long)]
    header: Vec<String>,
    /// Request method.
    #[arg(long, default_value = "GET")]
    method: Method,
    /// Request body.
    #[arg(long, default_value = "")]
    body: String,
    /// Send a fresh, well-formed but unknown repogate token with each request.
    #[arg(long)]
    unknown_tokens: bool,
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    ok: u64,
    non2xx: u64,
    errors: u64,
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let tally = runtime.block_on(run(args));
    report(tally);
}

async fn run(args: Args) -> Tally {
    let total = args.rate * args.duration.as_secs().max(1);
    let interval = Duration::from_nanos(1_000_000_000 / args.rate.max(1));
    let start = Instant::now() + Duration::from_millis(100);
    let args = std::sync::Arc::new(args);

    let mut tasks = Vec::new();
    for slot in 0..args.conns {
        let args = std::sync::Arc::clone(&args);
        tasks.push(tokio::spawn(async move {
            connection(&args, slot, total, start, interval).await
        }));
    }
    let mut tally = Tally::default();
    for task in tasks {
        let part = task.await.expect("connection task");
        tally.latencies_us.extend(part.latencies_us);
        tally.ok += part.ok;
        tally.non2xx += part.non2xx;
        tally.errors += part.errors;
    }
    tally
}

async fn connection(
    args: &Args,
    slot: u64,
    total: u64,
    start: Instant,
    interval: Duration,
) -> Tally {
    let mut tally = Tally::default();
    let authority = args
        .url
        .authority()
        .expect("URL has a host")
        .as_str()
        .to_owned();
    let mut sender = None;
    let mut i = slot;
    while i < total {
        let scheduled = start + interval * i as u32;
        tokio::time::sleep_until(scheduled).await;
        if sender.is_none() {
            sender = connect(&authority).await;
        }
        let Some(s) = sender.as_mut() else {
            tally.errors += 1;
            i += args.conns;
            continue;
        };
        match send(s, args, &authority).await {
            Ok(status) if status.is_success() => tally.ok += 1,
            Ok(_) => tally.non2xx += 1,
            Err(()) => {
                tally.errors += 1;
                sender = None;
            }
        }
        tally
            .latencies_us
            .push(scheduled.elapsed().as_micros() as u64);
        i += args.conns;
    }
    tally
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(authority: &str) -> Option<Sender> {
    let stream = TcpStream::connect(authority).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(sender)
}

async fn send(sender: &mut Sender, args: &Args, authority: &str) -> Result<http::StatusCode, ()> {
    sender.ready().await.map_err(drop)?;
    let mut req = Request::builder()
        .method(args.method.clone())
        .uri(args.url.path_and_query().map_or("/", |p| p.as_str()))
        .header("host", authority);
    for h in &args.header {
        if let Some((k, v)) = h.split_once(':') {
            req = req.header(k.trim(), v.trim());
        }
    }
    if args.unknown_tokens {
        let token = repogate::token::generate().map_err(drop)?;
        req = req.header("private-token", token.secret.expose());
    }
    let req = req
        .body(Full::new(Bytes::from(args.body.clone())))
        .map_err(drop)?;
    let response = sender.send_request(req).await.map_err(drop)?;
    let status = response.status();
    response.into_body().collect().await.map_err(drop)?;
    Ok(status)
}

fn report(mut tally: Tally) {
    tally.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if tally.latencies_us.is_empty() {
            return 0.0;
        }
        let idx = ((tally.latencies_us.len() as f64 * p).ceil() as usize)
            .clamp(1, tally.latencies_us.len())
            - 1;
        tally.latencies_us[idx] as f64 / 1000.0
    };
    println!(
        "sent {} ok {} non2xx {} errors {} p50_ms {:.3} p90_ms {:.3} p99_ms {:.3} p99.9_ms {:.3} max_ms {:.3}",
        tally.latencies_us.len(),
        tally.ok,
        tally.non2xx,
        tally.errors,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        pct(1.0)
    );
}
