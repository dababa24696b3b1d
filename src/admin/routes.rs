//! The admin routes of DESIGN.md §6 and their inner handlers.

use std::net::SocketAddr;
use std::sync::OnceLock;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Body;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{json_response, AdminError};
use super::tokens::{iso, CreateBody, Filter, TokenView};
use super::{export, mint, read_body, Admin, Caller};
use crate::access::{DefaultRole, Plan};
use crate::store::RepoRecord;
use crate::token::TokenId;

type Reply = Result<Response<Full<Bytes>>, AdminError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    user: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RepoBody {
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    default_role: DefaultRole,
}

#[derive(Serialize)]
struct RepoView {
    name: String,
    aliases: Vec<String>,
    created_at: String,
    origin: crate::store::RepoOrigin,
}

impl From<RepoRecord> for RepoView {
    fn from(r: RepoRecord) -> Self {
        RepoView {
            created_at: iso(r.created_at),
            name: r.name,
            aliases: r.aliases,
            origin: r.origin,
        }
    }
}

fn no_content() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// A token id from a path segment, percent-decoded like a repository name.
/// A malformed one is not repeated back: it may be a whole token pasted by
/// mistake.
fn token_id(segment: &str) -> Result<TokenId, AdminError> {
    let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
    TokenId::parse(&decoded).ok_or_else(|| AdminError::NotFound("token (malformed id)".into()))
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, AdminError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)?;
    if !value.is_object() {
        return Err(AdminError::BadJson(
            <serde_json::Error as serde::de::Error>::custom("the body must be a JSON object"),
        ));
    }
    Ok(serde_json::from_value(value)?)
}

/// A verifiable hash of nothing in particular, checked when the user name is
/// unknown so that answer takes as long as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| crate::password::hash("repogate-decoy").expect("hashing a constant works"))
}

/// At most 64 characters of `text`, control characters escaped, for logs and
/// audit entries of values a client chose.
fn printable(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(64)
        .flat_map(char::escape_default)
        .collect();
    if text.chars().count() > 64 {
        out.push('…');
    }
    out
}

impl Admin {
    pub(super) async fn route<B>(&self, req: Request<B>, peer: SocketAddr) -> Reply
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = req.uri().path().to_owned();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let method = req.method().clone();
        match (&method, segments.as_slice()) {
            (&Method::GET, ["healthz"]) => {
                return Ok(json_response(StatusCode::OK, &json!({"status": "ok"})))
            }
            (&Method::GET, ["readyz"]) => return Ok(self.ready()),
            (&Method::GET, ["metrics"]) => return Ok(self.metrics()),
            (&Method::POST, ["admin", "v1", "login"]) => return self.login(req, peer).await,
            (_, ["admin", "v1", ..]) => {}
            _ => return Err(AdminError::NotFound(format!("route {path}"))),
        }

        let session = self.session(&req)?;
        let caller = Caller {
            user: session.user,
            client: peer,
        };
        let query = req.uri().query().map(str::to_owned);
        let query = query.as_deref();
        match (method, &segments[2..]) {
            (Method::POST, ["logout"]) => self.logout(&req, &caller),
            (Method::POST, ["tokens"]) => self.create_token(req, &caller).await,
            (Method::GET, ["tokens"]) => self.list_tokens(query),
            (Method::GET, ["tokens", "export.csv"]) => self.export_tokens(query, &caller),
            (Method::GET, ["tokens", id]) => self.get_token(id),
            (Method::DELETE, ["tokens", id]) => self.revoke_token(id, &caller).await,
            (Method::GET, ["repos"]) => Ok(self.list_repos()),
            (Method::POST, ["repos"]) => self.add_repo(req, &caller).await,
            (Method::DELETE, ["repos", name]) => self.remove_repo(name, &caller).await,
            (Method::GET, ["settings"]) => Ok(self.settings()),
            (Method::PUT, ["settings"]) => self.put_settings(req, &caller).await,
            (Method::GET, ["audit"]) => self.list_audit(query),
            (Method::GET, ["status"]) => Ok(self.status()),
            (_, ["logout" | "tokens" | "repos" | "settings" | "audit" | "status"])
            | (_, ["tokens" | "repos", _]) => Err(AdminError::MethodNotAllowed),
            _ => Err(AdminError::NotFound(format!("route {path}"))),
        }
    }

    async fn login<B>(&self, req: Request<B>, peer: SocketAddr) -> Reply
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // Refuse inside the back-off window before doing any argon2 work.
        let attempt = self
            .limiter
            .begin(peer.ip())
            .map_err(AdminError::TooManyAttempts)?;
        let runtime = self.gateway.runtime.load_full();
        let body = read_body(req.into_body(), runtime.config.admin.max_body_bytes).await?;
        let login: LoginBody = parse_json(&body)?;

        let user = runtime
            .config
            .admin
            .users
            .iter()
            .find(|u| u.name == login.user);
        let phc = user
            .map_or(decoy_hash(), |u| u.password_hash.expose())
            .to_owned();
        let verified = self.verifier.verify(phc, login.password).await? && user.is_some();
        if !verified {
            attempt.failed();
            self.gateway.metrics.login_failures.inc();
            // The name is whatever the client sent: bound it and keep it on one line.
            let tried = printable(&login.user);
            self.audit(&tried, peer, "login", "", "wrong password");
            tracing::info!(user = %tried, client.ip = %peer.ip(), "admin login failed");
            return Err(AdminError::WrongPassword);
        }

        attempt.succeeded();
        let (text, session) = self
            .sessions
            .open(&login.user, runtime.config.admin.session_ttl)?;
        self.audit(&login.user, peer, "login", "", "ok");
        tracing::info!(user = %login.user, client.ip = %peer.ip(), "admin logged in");
        let body = json!({ "session": text, "expires_at": iso(session.expires_at_ms) });
        Ok(json_response(StatusCode::OK, &body))
    }

    fn logout<B>(&self, req: &Request<B>, caller: &Caller) -> Reply {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' ').map(|(_, s)| s.trim()))
            .unwrap_or("");
        self.sessions.close(presented);
        self.audit(&caller.user, caller.client, "logout", "", "ok");
        Ok(no_content())
    }

    async fn create_token<B>(&self, req: Request<B>, caller: &Caller) -> Reply
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let runtime = self.gateway.runtime.load_full();
        let body = read_body(req.into_body(), runtime.config.admin.max_body_bytes).await?;
        let now = crate::now_ms();
        let request = parse_json::<CreateBody>(&body)?.into_request(&caller.user, now)?;
        let plan = runtime.config.account.plan;
        let minted = mint::mint(
            self.gateway.tokens.store(),
            &self.gateway.registry,
            plan,
            request,
            now,
        )
        .await;
        let (secret, record) = match minted {
            Ok(pair) => pair,
            Err(e) => {
                self.audit(
                    &caller.user,
                    caller.client,
                    "token.mint",
                    "",
                    &e.to_string(),
                );
                return Err(e.into());
            }
        };

        self.audit(
            &caller.user,
            caller.client,
            "token.mint",
            record.id.as_str(),
            "ok",
        );
        tracing::info!(token.id = %record.id, kind = %record.scope.kind, by = %caller.user, "token minted");
        let mut body =
            serde_json::to_value(TokenView::new(&record, None, now)).expect("views serialize");
        body["token"] = json!(secret.expose());
        let mut response = json_response(StatusCode::CREATED, &body);
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(response)
    }

    /// The filtered rows, newest first.
    fn filtered(&self, filter: &Filter) -> Result<Vec<TokenView>, AdminError> {
        let now = crate::now_ms();
        let default = self.gateway.registry.default_role();
        let mut records = self.gateway.tokens.store().tokens()?;
        records.retain(|r| filter.matches(r, &self.gateway.registry, default, now));
        records.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(records
            .iter()
            .map(|r| TokenView::new(r, self.gateway.tokens.last_used(&r.id), now))
            .collect())
    }

    fn list_tokens(&self, query: Option<&str>) -> Reply {
        let (filter, _) = Filter::parse(query, &[])?;
        let rows = self.filtered(&filter)?;
        Ok(json_response(
            StatusCode::OK,
            &json!({ "count": rows.len(), "tokens": rows }),
        ))
    }

    fn export_tokens(&self, query: Option<&str>, caller: &Caller) -> Reply {
        let (filter, extra) = Filter::parse(query, &["columns"])?;
        let columns = export::parse_columns(extra.get("columns").map(String::as_str))?;
        let rows = self.filtered(&filter)?;
        let csv = export::render(&rows, &columns);
        self.audit(
            &caller.user,
            caller.client,
            "token.export",
            query.unwrap_or(""),
            &format!("{} rows", rows.len()),
        );

        let date = iso(crate::now_ms());
        let disposition = format!(
            "attachment; filename=\"repogate-tokens-{}.csv\"",
            &date[..10]
        );
        let mut response = Response::new(Full::new(Bytes::from(csv)));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&disposition).expect("the file name is ASCII"),
        );
        Ok(response)
    }

    fn get_token(&self, id: &str) -> Reply {
        let id = token_id(id)?;
        let stored = self
            .gateway
            .tokens
            .store()
            .token(&id)?
            .ok_or_else(|| AdminError::NotFound(format!("token {id}")))?;
        let view = TokenView::new(
            &stored.record,
            self.gateway.tokens.last_used(&id),
            crate::now_ms(),
        );
        Ok(json_response(StatusCode::OK, &view))
    }

    async fn revoke_token(&self, id: &str, caller: &Caller) -> Reply {
        let id = token_id(id)?;
        let revoked = self.gateway.tokens.revoke(&id, crate::now_ms()).await?;
        if revoked.is_none() {
            return Err(AdminError::NotFound(format!("token {id}")));
        }
        self.audit(
            &caller.user,
            caller.client,
            "token.revoke",
            id.as_str(),
            "ok",
        );
        tracing::info!(token.id = %id, by = %caller.user, "token revoked");
        Ok(no_content())
    }

    fn list_repos(&self) -> Response<Full<Bytes>> {
        let repos: Vec<RepoView> = self
            .gateway
            .registry
            .list()
            .into_iter()
            .map(RepoView::from)
            .collect();
        json_response(
            StatusCode::OK,
            &json!({ "count": repos.len(), "repositories": repos }),
        )
    }

    async fn add_repo<B>(&self, req: Request<B>, caller: &Caller) -> Reply
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let limit = self.gateway.runtime.load().config.admin.max_body_bytes;
        let body: RepoBody = parse_json(&read_body(req.into_body(), limit).await?)?;
        let origin = crate::store::RepoOrigin::Admin;
        let record =
            self.gateway
                .registry
                .add(&body.name, &body.aliases, origin, crate::now_ms())?;
        self.gateway.tokens.store().flush().await?;
        self.audit(&caller.user, caller.client, "repo.add", &record.name, "ok");
        Ok(json_response(StatusCode::CREATED, &RepoView::from(record)))
    }

    async fn remove_repo(&self, encoded: &str, caller: &Caller) -> Reply {
        let name = percent_encoding::percent_decode_str(encoded).decode_utf8_lossy();
        let record = self.gateway.registry.remove(&name)?;
        self.gateway.tokens.store().flush().await?;
        self.audit(
            &caller.user,
            caller.client,
            "repo.remove",
            &record.name,
            "ok",
        );
        Ok(no_content())
    }

    fn settings(&self) -> Response<Full<Bytes>> {
        let plan = self.gateway.runtime.load().config.account.plan;
        let default = self.gateway.registry.default_role().role();
        json_response(
            StatusCode::OK,
            &json!({ "plan": plan, "default_role": default }),
        )
    }

    async fn put_settings<B>(&self, req: Request<B>, caller: &Caller) -> Reply
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let runtime = self.gateway.runtime.load_full();
        let body: SettingsBody =
            parse_json(&read_body(req.into_body(), runtime.config.admin.max_body_bytes).await?)?;
        if runtime.config.account.plan != Plan::Enterprise {
            return Err(AdminError::BadRequest(
                "the default role applies to the enterprise plan only".into(),
            ));
        }
        self.gateway.registry.set_default_role(body.default_role)?;
        self.gateway.tokens.store().flush().await?;
        let role = body.default_role.role();
        self.audit(
            &caller.user,
            caller.client,
            "settings.default_role",
            role.as_str(),
            "ok",
        );
        Ok(self.settings())
    }

    fn list_audit(&self, query: Option<&str>) -> Reply {
        let mut limit = 100usize;
        let mut before = None;
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let number = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| AdminError::BadRequest(format!("{key} must be a number")))
            };
            match key.as_ref() {
                "limit" => limit = number(&value)?.clamp(1, 1000) as usize,
                "before" => before = Some(number(&value)?),
                other => {
                    return Err(AdminError::BadRequest(format!(
                        "unknown query parameter `{other}`"
                    )))
                }
            }
        }
        let entries = self.gateway.tokens.store().audit(limit, before)?;
        let next = entries
            .last()
            .map(|(seq, _)| *seq)
            .filter(|_| entries.len() == limit);
        let entries: Vec<_> = entries
            .into_iter()
            .map(|(seq, e)| {
                json!({ "seq": seq, "at": iso(e.at), "actor": e.actor, "client": e.client,
                        "action": e.action, "target": e.target, "outcome": e.outcome })
            })
            .collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({ "entries": entries, "next_before": next }),
        ))
    }

    fn status(&self) -> Response<Full<Bytes>> {
        let runtime = self.gateway.runtime.load_full();
        let cache = self.gateway.tokens.stats();
        let body = json!({
            "version": env!("CARGO_PKG_VERSION"),
            "generation": runtime.generation,
            "config": runtime.config.source.display().to_string(),
            "plan": runtime.config.account.plan,
            "default_role": self.gateway.registry.default_role().role(),
            "tokens": self.gateway.tokens.store().token_count(),
            "repositories": self.gateway.registry.list().len(),
            "cache": { "entries": self.gateway.tokens.len(), "hits": cache.hits, "misses": cache.misses },
            "last_reload": self.gateway.reloads.last(),
        });
        json_response(StatusCode::OK, &body)
    }

    fn metrics(&self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(self.gateway.metrics.render())));
        let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }

    fn ready(&self) -> Response<Full<Bytes>> {
        let generation = self.gateway.runtime.load().generation;
        json_response(
            StatusCode::OK,
            &json!({ "status": "ready", "generation": generation }),
        )
    }
}
