//! A gateway that terminates TLS with a fresh self-signed certificate, and
//! HTTPS clients that trust exactly that certificate; an HTTPS upstream.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::Arc;

use bytes::Bytes;
use http::Version;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;

use crate::common::Gate;

/// An HTTPS upstream on loopback with a fresh self-signed certificate for
/// `127.0.0.1`; it answers `secure` and records each request's `Host` and
/// `PRIVATE-TOKEN` headers.
pub struct HttpsUpstream {
    pub addr: std::net::SocketAddr,
    /// The certificate, as a PEM file a config's `ca_file` can name.
    pub ca_file: std::path::PathBuf,
    pub seen: Arc<std::sync::Mutex<Vec<(String, String)>>>,
    _dir: tempfile::TempDir,
}

pub async fn https_upstream() -> HttpsUpstream {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("up.pem"), dir.path().join("up.key"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let acceptor =
        tokio_rustls::TlsAcceptor::from(repogate::tls::server_config(&cert, &key).unwrap());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, record) = (acceptor.clone(), Arc::clone(&record));
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let text = |name: &str| {
                            let value = req.headers().get(name);
                            value
                                .map(|v| v.to_str().unwrap().to_owned())
                                .unwrap_or_default()
                        };
                        record
                            .lock()
                            .unwrap()
                            .push((text("host"), text("private-token")));
                        let body = Full::new(Bytes::from_static(b"secure"));
                        async move { Ok::<_, std::convert::Infallible>(http::Response::new(body)) }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    HttpsUpstream {
        addr,
        ca_file: cert,
        seen,
        _dir: dir,
    }
}

/// Makes HTTPS clients that trust the test certificate and nothing else.
pub struct Https {
    roots: RootCertStore,
}

/// Starts a gateway from `rest` (upstreams and routes) with `[server] tls`
/// set to a certificate for `localhost` and `127.0.0.1`; its `url` is
/// `https://127.0.0.1:PORT…`. The harness's `gateway` writes its own
/// `[server]` table, so the config is built here.
pub async fn tls_gateway(rest: &str) -> (Gate, Https) {
    let dir = tempfile::tempdir().unwrap();
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).expect("rcgen makes a certificate");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();

    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntls = {{ cert = \"{}\", key = \"{}\" }}\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\n{rest}",
        cert.display(),
        key.display(),
        dir.path().join("db").display()
    );
    let config = crate::common::load_config(&dir, &text);
    let running = repogate::app::start(config, std::future::pending())
        .await
        .unwrap();

    let base = format!("https://127.0.0.1:{}", running.proxy_addr.port());
    let mut roots = RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    (Gate { dir, running, base }, Https { roots })
}

impl Https {
    /// An HTTPS client that offers only `version` by ALPN.
    pub fn client(&self, version: Version) -> Client<HttpsConnector<HttpConnector>, Full<Bytes>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only();
        let connector = match version {
            Version::HTTP_2 => builder.enable_http2().build(),
            _ => builder.enable_http1().build(),
        };
        Client::builder(TokioExecutor::new()).build(connector)
    }
}
