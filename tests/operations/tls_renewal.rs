//! A renewed certificate reaches new TLS connections after a reload.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use repogate::access::Role;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use super::*;

/// The certificate of a PEM file, as DER.
fn cert_der(path: &std::path::Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).expect("a PEM certificate")
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Opens a TLS connection trusting `roots`; returns the certificate the
/// gateway presented and an HTTP/1.1 sender over the connection.
async fn tls_connect(
    addr: std::net::SocketAddr,
    roots: &[CertificateDer<'static>],
) -> (CertificateDer<'static>, Sender) {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));

    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let stream = connector.connect(name, tcp).await.expect("TLS handshake");
    let presented = stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("a peer certificate")[0]
        .clone()
        .into_owned();

    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    (presented, sender)
}

async fn read_over(sender: &mut Sender, token: &str) -> StatusCode {
    let req = Request::get(ISSUES)
        .header("host", "localhost")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(req).await.expect("a response");
    let status = response.status();
    let _ = response.into_body().collect().await;
    status
}

#[tokio::test]
async fn a_renewed_tls_certificate_is_served_to_new_connections_after_reload() {
    let up = upstream().await;
    let rest = format!("{}{REPOS}", upstream_route(&up, GITLAB));
    let (gate, https) = tls::tls_gateway(&rest).await;
    let token = gate.mint(false, &[("acme/widgets", Role::Viewer)]).await;
    let (cert_path, key_path) = (
        gate.dir.path().join("cert.pem"),
        gate.dir.path().join("key.pem"),
    );
    let cert_a = cert_der(&cert_path);

    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let renewed = rcgen::generate_simple_self_signed(names).unwrap();
    let cert_b = renewed.cert.der().clone();
    let both = [cert_a.clone(), cert_b.clone()];

    let (presented, mut old_connection) = tls_connect(gate.running.proxy_addr, &both).await;
    assert_eq!(presented, cert_a, "the gateway starts with certificate A");
    assert_eq!(read_over(&mut old_connection, &token).await, 200);

    // Renew as certbot does: new files in place, then a reload.
    for (path, pem) in [
        (&cert_path, renewed.cert.pem()),
        (&key_path, renewed.key_pair.serialize_pem()),
    ] {
        let temporary = path.with_extension("pem.new");
        std::fs::write(&temporary, pem).unwrap();
        std::fs::rename(&temporary, path).unwrap();
    }
    let reloaded = repogate::reload::reload(&gate.running.gateway, &config_path(&gate)).await;
    assert_eq!(reloaded.unwrap(), 2);

    let (presented, mut new_connection) = tls_connect(gate.running.proxy_addr, &both).await;
    assert_eq!(presented, cert_b, "a new connection gets certificate B");
    assert_eq!(read_over(&mut new_connection, &token).await, 200);
    assert_eq!(
        read_over(&mut old_connection, &token).await,
        200,
        "a connection opened before the renewal keeps working"
    );

    // A client that trusts only A no longer completes a handshake.
    let req = Request::get(gate.url(ISSUES))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let refused = https.client(Version::HTTP_11).request(req).await;
    assert!(
        refused.is_err(),
        "certificate A is still served: {refused:?}"
    );
}
