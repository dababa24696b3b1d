//! Token endpoints: mint, list with filters, get, revoke; and the JSON view
//! of a record, which never holds a secret or digest.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::error::AdminError;
use super::mint::MintRequest;
use crate::access::{role_on, DefaultRole, Role, TokenKind};
use crate::registry::Registry;
use crate::store::TokenRecord;

/// The body of `POST /admin/v1/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// Free text.
    pub description: String,
    /// The Admin box.
    #[serde(default)]
    pub admin: bool,
    /// Enterprise: role per repository.
    #[serde(default)]
    pub grants: BTreeMap<String, Role>,
    /// RFC 3339 expiry time.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Expiry as a duration from now, e.g. "30d"; an alternative to `expires_at`.
    #[serde(default)]
    pub expires_in: Option<String>,
}

impl CreateBody {
    /// Turns the body into a mint request, parsing the expiry.
    pub fn into_request(self, created_by: &str, now_ms: u64) -> Result<MintRequest, AdminError> {
        let expires_at = match (self.expires_at, self.expires_in) {
            (Some(_), Some(_)) => {
                return Err(AdminError::BadRequest(
                    "give expires_at or expires_in, not both".into(),
                ))
            }
            (Some(at), None) => Some(parse_time(&at)?),
            (None, Some(within)) => {
                let d = humantime::parse_duration(&within)
                    .map_err(|e| AdminError::BadRequest(format!("expires_in `{within}`: {e}")))?;
                Some(now_ms.saturating_add(d.as_millis() as u64))
            }
            (None, None) => None,
        };
        Ok(MintRequest {
            description: self.description,
            admin: self.admin,
            grants: self.grants,
            expires_at,
            created_by: created_by.to_owned(),
        })
    }
}

/// Parses an RFC 3339 time into Unix milliseconds.
pub fn parse_time(text: &str) -> Result<u64, AdminError> {
    let t = humantime::parse_rfc3339_weak(text)
        .map_err(|e| AdminError::BadRequest(format!("`{text}` is not an RFC 3339 time: {e}")))?;
    Ok(t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64))
}

/// Unix milliseconds as RFC 3339 UTC, e.g. `2026-12-03T18:28:48.123Z`.
pub fn iso(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// A token's state now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Usable.
    Active,
    /// Revoked by an admin.
    Revoked,
    /// Past its expiry.
    Expired,
}

impl Status {
    /// The state of `record` at `now_ms`.
    pub fn of(record: &TokenRecord, now_ms: u64) -> Status {
        if record.revoked_at.is_some() {
            Status::Revoked
        } else if record.expires_at.is_some_and(|at| at <= now_ms) {
            Status::Expired
        } else {
            Status::Active
        }
    }

    /// The name used in filters and CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Revoked => "revoked",
            Status::Expired => "expired",
        }
    }
}

/// A token as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct TokenView {
    /// Public id.
    pub id: String,
    /// Free text.
    pub description: String,
    /// admin, user or enterprise.
    pub kind: TokenKind,
    /// The Admin box.
    pub admin: bool,
    /// Enterprise grants by repository.
    pub grants: BTreeMap<String, Role>,
    /// active, revoked or expired.
    pub status: Status,
    /// RFC 3339.
    pub created_at: String,
    /// The admin who minted it.
    pub created_by: String,
    /// RFC 3339.
    pub expires_at: Option<String>,
    /// RFC 3339; may lag actual use by the batching interval.
    pub last_used_at: Option<String>,
    /// RFC 3339.
    pub revoked_at: Option<String>,
}

impl TokenView {
    /// The view of `record`; `last_used` overrides the stored use time when newer.
    pub fn new(record: &TokenRecord, last_used: Option<u64>, now_ms: u64) -> TokenView {
        TokenView {
            id: record.id.to_string(),
            description: record.description.clone(),
            kind: record.scope.kind,
            admin: record.scope.kind == TokenKind::Admin,
            grants: record
                .scope
                .grants
                .iter()
                .map(|(repo, g)| (repo.clone(), g.role))
                .collect(),
            status: Status::of(record, now_ms),
            created_at: iso(record.created_at),
            created_by: record.created_by.clone(),
            expires_at: record.expires_at.map(iso),
            last_used_at: record.last_used_at.max(last_used).map(iso),
            revoked_at: record.revoked_at.map(iso),
        }
    }
}

/// The filters of the list and export endpoints.
#[derive(Debug, Default)]
pub struct Filter {
    /// Case-insensitive text in the description or id.
    pub q: Option<String>,
    /// Only this kind.
    pub kind: Option<TokenKind>,
    /// Only this status.
    pub status: Option<Status>,
    /// Only tokens that reach this repository with some role.
    pub repo: Option<String>,
}

impl Filter {
    /// Reads `q`, `kind`, `status` and `repo` from a query string; `extra`
    /// names further parameters the caller reads itself. Unknown parameters
    /// are refused so a typo does not silently widen an export.
    pub fn parse(
        query: Option<&str>,
        extra: &[&str],
    ) -> Result<(Filter, BTreeMap<String, String>), AdminError> {
        let mut filter = Filter::default();
        let mut rest = BTreeMap::new();
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let bad = |what: &str| AdminError::BadRequest(format!("{what} `{value}` is not known"));
            match key.as_ref() {
                "q" => filter.q = Some(value.to_lowercase()).filter(|v| !v.is_empty()),
                "kind" if value.is_empty() => {}
                "kind" => filter.kind = Some(serde_plain(&value).ok_or_else(|| bad("kind"))?),
                "status" if value.is_empty() => {}
                "status" => filter.status = Some(serde_plain(&value).ok_or_else(|| bad("status"))?),
                "repo" => filter.repo = Some(value.into_owned()).filter(|v| !v.is_empty()),
                other if extra.contains(&other) => {
                    rest.insert(other.to_owned(), value.into_owned());
                }
                other => {
                    return Err(AdminError::BadRequest(format!(
                        "unknown query parameter `{other}`"
                    )))
                }
            }
        }
        Ok((filter, rest))
    }

    /// Whether `record` passes every filter.
    pub fn matches(
        &self,
        record: &TokenRecord,
        registry: &Registry,
        default: DefaultRole,
        now_ms: u64,
    ) -> bool {
        if let Some(q) = &self.q {
            let hit = record.description.to_lowercase().contains(q)
                || record.id.as_str().to_lowercase().contains(q);
            if !hit {
                return false;
            }
        }
        if self.kind.is_some_and(|k| k != record.scope.kind) {
            return false;
        }
        if self.status.is_some_and(|s| s != Status::of(record, now_ms)) {
            return false;
        }
        match &self.repo {
            None => true,
            Some(name) => match registry.lookup(name) {
                Some(repo) => {
                    role_on(&record.scope, &repo.name, repo.created_seq, default) != Role::NoAccess
                }
                None => record.scope.kind == TokenKind::Admin,
            },
        }
    }
}

/// Parses a snake_case enum name through serde.
fn serde_plain<T: for<'de> Deserialize<'de>>(value: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(value.to_owned())).ok()
}
