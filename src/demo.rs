//! `repogate demo`: the gateway on its embedded demo config, a temporary
//! store, a built-in echo upstream, sample repositories and one token of each
//! useful kind, with ready-to-paste curl commands.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::access::Role;
use crate::admin::mint::{mint, MintRequest};
use crate::app;
use crate::config::{self, Config};

/// The demo config, shipped as `config/demo.toml`.
pub const DEMO_TOML: &str = include_str!("../config/demo.toml");
const ECHO_ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 8089);

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The embedded config did not load (a bug).
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A temporary folder could not be made.
    #[error("cannot create a temporary store folder: {0}")]
    TempDir(std::io::Error),
    /// The echo upstream's port is taken.
    #[error("cannot start the echo upstream on {addr}: {source}")]
    Echo {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The gateway did not start.
    #[error(transparent)]
    Start(#[from] app::StartError),
    /// A sample token could not be minted.
    #[error("minting the sample tokens: {0}")]
    Mint(#[from] crate::admin::mint::MintError),
}

/// Loads the demo config with its store in `dir`.
pub fn demo_config(dir: &Path) -> Result<Config, config::ConfigError> {
    let mut config = config::load_str(DEMO_TOML, &dir.join("demo.toml"))?;
    config.store.path = dir.join("store");
    Ok(config)
}

/// Runs the demo until Ctrl-C.
pub async fn run() -> Result<(), DemoError> {
    let dir = tempfile::tempdir().map_err(DemoError::TempDir)?;
    let config = demo_config(dir.path())?;
    let (proxy, admin_addr) = (config.server.listen, config.admin.listen);

    let echo_addr = SocketAddr::from(ECHO_ADDR);
    let echo = TcpListener::bind(echo_addr)
        .await
        .map_err(|source| DemoError::Echo {
            addr: echo_addr,
            source,
        })?;
    tokio::spawn(serve_echo(echo));

    let running = app::start(config, app::shutdown_signal()).await?;
    let tokens = mint_samples(&running).await?;
    println!("{}", instructions(proxy, admin_addr, &tokens));
    running.wait().await;
    Ok(())
}

struct Samples {
    admin: String,
    enterprise: String,
}

async fn mint_samples(running: &app::Running) -> Result<Samples, DemoError> {
    let gw = &running.gateway;
    let plan = gw.runtime.load().config.account.plan;
    let request = |description: &str, admin: bool, grants: &[(&str, Role)]| MintRequest {
        description: description.into(),
        admin,
        grants: grants.iter().map(|(r, g)| (r.to_string(), *g)).collect(),
        expires_at: None,
        created_by: "demo".into(),
    };
    let store = gw.tokens.store();
    let now = crate::now_ms();
    let admin = mint(
        store,
        &gw.registry,
        plan,
        request("demo admin token", true, &[]),
        now,
    )
    .await?;
    let grants = [
        ("acme/widgets", Role::Developer),
        ("acme/gadgets", Role::Viewer),
    ];
    let enterprise = mint(
        store,
        &gw.registry,
        plan,
        request("demo CI token", false, &grants),
        now,
    )
    .await?;
    Ok(Samples {
        admin: admin.0.expose().to_owned(),
        enterprise: enterprise.0.expose().to_owned(),
    })
}

fn instructions(proxy: SocketAddr, admin: SocketAddr, t: &Samples) -> String {
    format!(
        r#"
repogate demo is running: proxy http://{proxy}, admin http://{admin}, echo upstream http://127.0.0.1:8089
Repositories: acme/widgets (alias 42), acme/gadgets, acme/secret. Plan enterprise, default role viewer.

Tokens (shown once, as an admin would see them at creation):
  CI token, developer on acme/widgets, viewer on acme/gadgets, no access to acme/secret:
    export CI_TOKEN={ci}
  admin token, every repository and scans:
    export ADMIN_TOKEN={admin_token}

Allowed: read acme/widgets; the echo shows the upstream got its own credential, not yours:
  curl -s -H "PRIVATE-TOKEN: $CI_TOKEN" http://{proxy}/api/v4/projects/acme%2Fwidgets/issues
Allowed: the same repository by its numeric alias:
  curl -s -H "Authorization: Bearer $CI_TOKEN" http://{proxy}/api/v4/projects/42
Refused with 403: opening a merge request on acme/gadgets needs write, and viewer lacks it:
  curl -s -X POST -H "PRIVATE-TOKEN: $CI_TOKEN" http://{proxy}/api/v4/projects/acme%2Fgadgets/merge_requests
Refused with 403: only admin tokens start scans:
  curl -s -X POST -H "PRIVATE-TOKEN: $CI_TOKEN" "http://{proxy}/api/1.0/open/uploads/dependencies/files?repositoryName=acme/widgets"
Allowed: the admin token may:
  curl -s -X POST -H "PRIVATE-TOKEN: $ADMIN_TOKEN" "http://{proxy}/api/1.0/open/uploads/dependencies/files?repositoryName=acme/widgets"
Refused with 401: no token:
  curl -s -i http://{proxy}/api/v4/projects/acme%2Fwidgets/issues

Admin mode (user admin, password demo):
  SESSION=$(curl -s -X POST http://{admin}/admin/v1/login -d '{{"user":"admin","password":"demo"}}' | sed 's/.*"session":"\([^"]*\)".*/\1/')
  curl -s -H "Authorization: Bearer $SESSION" http://{admin}/admin/v1/tokens
  curl -s -H "Authorization: Bearer $SESSION" -X POST http://{admin}/admin/v1/tokens -d '{{"description":"bot","grants":{{"acme/widgets":"viewer"}}}}'
  curl -s -H "Authorization: Bearer $SESSION" "http://{admin}/admin/v1/tokens/export.csv?columns=id,description,kind,status,grants"
Or with the CLI:  REPOGATE_ADMIN_USER=admin REPOGATE_ADMIN_PASSWORD=demo cargo run --release -- token list

Ctrl-C stops the demo and deletes its temporary store.
"#,
        ci = t.enterprise,
        admin_token = t.admin,
    )
}

/// The built-in upstream: answers every request with what it received.
async fn serve_echo(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(echo);
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body_len = body
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .unwrap_or(0);
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("<binary>").into()))
        .collect();
    let reply = serde_json::json!({
        "upstream": "repogate demo echo",
        "method": parts.method.as_str(),
        "target": parts.uri.path_and_query().map(|p| p.as_str()),
        "headers": headers,
        "body_bytes": body_len,
    });
    let mut response = Response::new(Full::new(Bytes::from(format!("{reply:#}\n"))));
    response.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
