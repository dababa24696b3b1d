//! `repogate token …` and `repogate repo …`: one admin API call each.

use std::path::PathBuf;

use clap::Subcommand;
use http::Method;
use serde_json::{json, Map, Value};

use super::client::{parse, print_table, text, ClientError, Session, Target};

/// Path-segment escaping that leaves RFC 3986's unreserved characters (`_` in token ids) alone.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `repogate token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a token; its secret is printed once.
    Create {
        /// What the token is for.
        #[arg(long, short)]
        description: String,
        /// An admin token: every repository, and scans.
        #[arg(long)]
        admin: bool,
        /// Enterprise: `REPO=ROLE`, repeatable.
        #[arg(long = "grant", value_name = "REPO=ROLE")]
        grants: Vec<String>,
        /// Expiry as a duration from now, e.g. `30d`.
        #[arg(long, conflicts_with = "expires_at")]
        expires_in: Option<String>,
        /// Expiry as an RFC 3339 time.
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List tokens (never their secrets).
    List(Filters),
    /// Revoke a token by id; refused from the next request on.
    Revoke {
        /// The token's id (`rgt_` + 12 chars).
        id: String,
    },
    /// Export the filtered tokens as CSV.
    Export {
        #[command(flatten)]
        /// Which tokens.
        filters: Filters,
        /// Comma-separated columns (default: all).
        #[arg(long)]
        columns: Option<String>,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

/// The list and export filters.
#[derive(Debug, clap::Args)]
pub struct Filters {
    /// Text in the description or id.
    #[arg(long)]
    pub q: Option<String>,
    /// admin, user or enterprise.
    #[arg(long)]
    pub kind: Option<String>,
    /// active, revoked or expired.
    #[arg(long)]
    pub status: Option<String>,
    /// Tokens that reach this repository.
    #[arg(long)]
    pub repo: Option<String>,
}

impl Filters {
    fn query(&self, extra: &[(&str, &Option<String>)]) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        let named = [
            ("q", &self.q),
            ("kind", &self.kind),
            ("status", &self.status),
            ("repo", &self.repo),
        ];
        for (key, value) in named.iter().chain(extra) {
            if let Some(v) = value {
                q.append_pair(key, v);
            }
        }
        let q = q.finish();
        if q.is_empty() {
            q
        } else {
            format!("?{q}")
        }
    }
}

/// `repogate repo …`
#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Register a repository.
    Add {
        /// Canonical name, e.g. `acme/widgets`.
        name: String,
        /// Another name requests may use (repeatable), e.g. a numeric id.
        #[arg(long = "alias")]
        aliases: Vec<String>,
    },
    /// List registered repositories.
    List,
    /// Remove a repository registration.
    Remove {
        /// Canonical name.
        name: String,
    },
}

/// Runs a token command.
pub async fn token(target: &Target, command: TokenCommand) -> Result<(), ClientError> {
    let session = Session::login(target).await?;
    let result = run_token(&session, target, command).await;
    session.logout().await;
    result
}

async fn run_token(
    session: &Session,
    target: &Target,
    command: TokenCommand,
) -> Result<(), ClientError> {
    match command {
        TokenCommand::Create {
            description,
            admin,
            grants,
            expires_in,
            expires_at,
        } => {
            let mut body = json!({ "description": description, "admin": admin, "grants": parse_grants(&grants)? });
            if let Some(d) = expires_in {
                body["expires_in"] = json!(d);
            }
            if let Some(t) = expires_at {
                body["expires_at"] = json!(t);
            }
            let (_, reply) = session
                .call(Method::POST, "/admin/v1/tokens", Some(body))
                .await?;
            let reply = parse(&reply)?;
            if target.json {
                println!("{reply}");
            } else {
                println!(
                    "token {} ({}) created; copy it now, it is not shown again:",
                    text(&reply["id"]),
                    text(&reply["kind"])
                );
                println!("{}", text(&reply["token"]));
            }
        }
        TokenCommand::List(filters) => {
            let (_, reply) = session
                .call(
                    Method::GET,
                    &format!("/admin/v1/tokens{}", filters.query(&[])),
                    None,
                )
                .await?;
            let reply = parse(&reply)?;
            if target.json {
                println!("{reply}");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = reply["tokens"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|t| {
                    [
                        "id",
                        "kind",
                        "status",
                        "description",
                        "created_at",
                        "last_used_at",
                    ]
                    .iter()
                    .map(|k| text(&t[*k]))
                    .collect()
                })
                .collect();
            print_table(
                &[
                    "ID",
                    "KIND",
                    "STATUS",
                    "DESCRIPTION",
                    "CREATED",
                    "LAST USED",
                ],
                &rows,
            );
        }
        TokenCommand::Revoke { id } => {
            let path = format!(
                "/admin/v1/tokens/{}",
                percent_encoding::utf8_percent_encode(&id, SEGMENT)
            );
            session.call(Method::DELETE, &path, None).await?;
            if target.json {
                println!("{}", json!({ "revoked": id }));
            } else {
                println!("token {id} revoked");
            }
        }
        TokenCommand::Export {
            filters,
            columns,
            output,
        } => {
            let path = format!(
                "/admin/v1/tokens/export.csv{}",
                filters.query(&[("columns", &columns)])
            );
            let (_, csv) = session.call(Method::GET, &path, None).await?;
            match output {
                Some(file) => std::fs::write(&file, &csv).map_err(|e| {
                    ClientError::Input(format!("cannot write {}: {e}", file.display()))
                })?,
                None => print!("{}", String::from_utf8_lossy(&csv)),
            }
        }
    }
    Ok(())
}

fn parse_grants(grants: &[String]) -> Result<Value, ClientError> {
    let mut map = Map::new();
    for grant in grants {
        let (repo, role) = grant
            .rsplit_once('=')
            .ok_or_else(|| ClientError::Input(format!("--grant `{grant}` is not REPO=ROLE")))?;
        map.insert(repo.to_owned(), json!(role));
    }
    Ok(Value::Object(map))
}

/// Runs a repository command.
pub async fn repo(target: &Target, command: RepoCommand) -> Result<(), ClientError> {
    let session = Session::login(target).await?;
    let result = run_repo(&session, target, command).await;
    session.logout().await;
    result
}

async fn run_repo(
    session: &Session,
    target: &Target,
    command: RepoCommand,
) -> Result<(), ClientError> {
    match command {
        RepoCommand::Add { name, aliases } => {
            let (_, reply) = session
                .call(
                    Method::POST,
                    "/admin/v1/repos",
                    Some(json!({ "name": name, "aliases": aliases })),
                )
                .await?;
            if target.json {
                println!("{}", parse(&reply)?);
            } else {
                println!("repository {name} registered");
            }
        }
        RepoCommand::List => {
            let (_, reply) = session.call(Method::GET, "/admin/v1/repos", None).await?;
            let reply = parse(&reply)?;
            if target.json {
                println!("{reply}");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = reply["repositories"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|r| {
                    let aliases = r["aliases"]
                        .as_array()
                        .map(|a| a.iter().map(text).collect::<Vec<_>>().join(","));
                    vec![
                        text(&r["name"]),
                        aliases.filter(|a| !a.is_empty()).unwrap_or("-".into()),
                        text(&r["created_at"]),
                        text(&r["origin"]),
                    ]
                })
                .collect();
            print_table(&["NAME", "ALIASES", "CREATED", "ORIGIN"], &rows);
        }
        RepoCommand::Remove { name } => {
            let path = format!(
                "/admin/v1/repos/{}",
                percent_encoding::utf8_percent_encode(&name, SEGMENT)
            );
            session.call(Method::DELETE, &path, None).await?;
            if target.json {
                println!("{}", json!({ "removed": name }));
            } else {
                println!("repository {name} removed");
            }
        }
    }
    Ok(())
}
