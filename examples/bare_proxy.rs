//! The floor for `benches/load.sh MODE=floor`: the least a hyper proxy can
//! do per request, to show how much of repogate's gap to nginx is hyper's
//! and how much is repogate's own work.
//!
//! It checks nothing: no route, no token, no header hygiene, no timeouts, no
//! metrics. Like repogate it runs one single-threaded runtime per worker
//! thread on an SO_REUSEPORT socket; unlike repogate, each client connection
//! gets its own upstream HTTP/1.1 connection, which needs no pool at all.
//!
//! cargo run --release --example bare_proxy -- LISTEN UPSTREAM [WORKERS]

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: bare_proxy LISTEN UPSTREAM [WORKERS]";
    let listen: SocketAddr = args.get(1).and_then(|a| a.parse().ok()).expect(usage);
    let upstream: SocketAddr = args.get(2).and_then(|a| a.parse().ok()).expect(usage);
    let workers: usize = args.get(3).map_or(2, |a| a.parse().expect(usage));

    let listeners = repogate::proxy::listener::bind(listen, workers).expect("bind");
    let threads: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(serve(listener, upstream));
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}

async fn serve(listener: std::net::TcpListener, upstream: SocketAddr) {
    let listener = TcpListener::from_std(listener).expect("tokio listener");
    while let Ok((client, _)) = listener.accept().await {
        tokio::spawn(async move {
            let _ = client.set_nodelay(true);
            let Ok(up) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = up.set_nodelay(true);
            let Ok((sender, connection)) =
                hyper::client::conn::http1::handshake(TokioIo::new(up)).await
            else {
                return;
            };
            tokio::spawn(connection);
            let sender = Arc::new(Mutex::new(sender));
            let service = service_fn(move |req: Request<Incoming>| {
                let sender = Arc::clone(&sender);
                async move {
                    let mut sender = sender.lock().await;
                    sender.ready().await?;
                    sender.send_request(req).await
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(client), service)
                .await;
        });
    }
    eprintln!("bare_proxy: accept failed; worker stopping");
}
