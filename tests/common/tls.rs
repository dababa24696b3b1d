//! A gateway that terminates TLS with a fresh self-signed certificate, and
//! HTTPS clients that trust exactly that certificate.

use std::sync::Arc;

use bytes::Bytes;
use http::Version;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;

use crate::common::Gate;

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
    let path = dir.path().join("repogate.toml");
    std::fs::write(&path, &text).unwrap();
    let config = repogate::config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
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
