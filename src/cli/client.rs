//! The admin API client behind `repogate token …` and `repogate repo …`.
//!
//! It logs in with `REPOGATE_ADMIN_USER` / `REPOGATE_ADMIN_PASSWORD` (or
//! prompts, without echo), runs one call, logs out, and prints a table for
//! people or the API's JSON with `--json`.

use std::io::IsTerminal;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Where and as whom to reach the admin API.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Base URL of the admin listener.
    #[arg(
        long,
        env = "REPOGATE_ADMIN_URL",
        default_value = "http://127.0.0.1:9090",
        global = true
    )]
    pub admin_url: String,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A failed CLI call, printed as `error: …`.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The admin API could not be reached.
    #[error("cannot reach the admin API at {url}: {}", causes(source))]
    Connect {
        /// The URL tried.
        url: String,
        /// What failed.
        source: hyper_util::client::legacy::Error,
    },
    /// The API answered with an error.
    #[error("{status}: {message}")]
    Api {
        /// HTTP status.
        status: StatusCode,
        /// The API's message.
        message: String,
    },
    /// Bad input on the command line or from the prompt.
    #[error("{0}")]
    Input(String),
}

/// An error and its causes, `: `-separated (hyper-util's own message is
/// only "client error (Connect)"; the cause says "connection refused").
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// A logged-in admin API session.
pub struct Session {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    session: String,
}

impl Session {
    /// Logs in with credentials from the environment or a prompt.
    pub async fn login(target: &Target) -> Result<Session, ClientError> {
        let user = match std::env::var("REPOGATE_ADMIN_USER") {
            Ok(u) if !u.is_empty() => u,
            _ => prompt("admin user: ", false)?,
        };
        let password = match std::env::var("REPOGATE_ADMIN_PASSWORD") {
            Ok(p) if !p.is_empty() => p,
            _ => prompt("password: ", true)?,
        };
        let mut session = Session {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: target.admin_url.trim_end_matches('/').to_owned(),
            session: String::new(),
        };
        let body = serde_json::json!({ "user": user, "password": password });
        let (_, reply) = session
            .call(Method::POST, "/admin/v1/login", Some(body))
            .await?;
        let reply: Value = parse(&reply)?;
        session.session = reply["session"].as_str().unwrap_or_default().to_owned();
        Ok(session)
    }

    /// Calls the API; returns the status and raw body, or the API's error.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = Request::builder().method(method).uri(&url);
        if !self.session.is_empty() {
            req = req.header(header::AUTHORIZATION, format!("Bearer {}", self.session));
        }
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        if !payload.is_empty() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| ClientError::Input(format!("bad admin URL {url}: {e}")))?;

        let response = self
            .client
            .request(req)
            .await
            .map_err(|source| ClientError::Connect {
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        if !status.is_success() {
            let message = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            return Err(ClientError::Api { status, message });
        }
        Ok((status, bytes))
    }

    /// Ends the session.
    pub async fn logout(self) {
        let _ = self.call(Method::POST, "/admin/v1/logout", None).await;
    }
}

/// Parses a JSON reply.
pub fn parse(bytes: &[u8]) -> Result<Value, ClientError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ClientError::Input(format!("admin API sent bad JSON: {e}")))
}

fn prompt(label: &str, secret: bool) -> Result<String, ClientError> {
    if !std::io::stdin().is_terminal() {
        let var = if secret {
            "REPOGATE_ADMIN_PASSWORD"
        } else {
            "REPOGATE_ADMIN_USER"
        };
        return Err(ClientError::Input(format!(
            "set {var} (no terminal to prompt on)"
        )));
    }
    let read = if secret {
        rpassword::prompt_password(label)
    } else {
        eprint!("{label}");
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map(|_| line.trim().to_owned())
    };
    read.map_err(|e| ClientError::Input(format!("cannot read from the terminal: {e}")))
}

/// Prints rows as an aligned table with a header.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// A JSON field as table text (`-` when absent).
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
