//! Minting: the plan rules of the product page, applied before a token exists.

use std::collections::BTreeMap;

use crate::access::{Grant, Plan, Role, Scope, TokenKind};
use crate::registry::Registry;
use crate::store::{Store, StoreError, StoredToken, TokenRecord};
use crate::token::{self, Secret};

/// Longest description accepted, in characters.
pub const MAX_DESCRIPTION: usize = 256;

/// What an admin asks for.
#[derive(Clone, Debug, Default)]
pub struct MintRequest {
    /// Free text shown in lists and exports.
    pub description: String,
    /// The product page's "Admin" box.
    pub admin: bool,
    /// Enterprise only: a role per repository.
    pub grants: BTreeMap<String, Role>,
    /// Optional expiry, Unix milliseconds.
    pub expires_at: Option<u64>,
    /// The admin user minting it.
    pub created_by: String,
}

/// Why a token was not minted. Nothing is stored in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// Grants were given on a plan, or for a kind, that has none.
    #[error("grants are only for non-admin tokens on the enterprise plan (plan is {0})")]
    GrantsNotAllowed(&'static str),
    /// A grant names a repository that is not registered.
    #[error("repository {0} in grants is not registered")]
    UnknownRepository(String),
    /// Two grant keys (a name and an alias) name the same repository.
    #[error("grants name repository {0} twice (by name and alias)")]
    NamedTwice(String),
    /// The description is empty or too long.
    #[error("description must be 1 to {MAX_DESCRIPTION} characters")]
    Description,
    /// The expiry is not in the future.
    #[error("expires_at must be in the future")]
    ExpiryInPast,
    /// The OS random source failed.
    #[error("random source failed: {0}")]
    Random(getrandom::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Mints a token and makes it durable before returning its secret.
pub async fn mint(
    store: &Store,
    registry: &Registry,
    plan: Plan,
    req: MintRequest,
    now_ms: u64,
) -> Result<(Secret, TokenRecord), MintError> {
    let description = req.description.trim();
    if description.is_empty() || description.chars().count() > MAX_DESCRIPTION {
        return Err(MintError::Description);
    }
    if req.expires_at.is_some_and(|at| at <= now_ms) {
        return Err(MintError::ExpiryInPast);
    }
    let kind = if req.admin {
        TokenKind::Admin
    } else {
        plan.member_kind()
    };
    if !req.grants.is_empty() && kind != TokenKind::Enterprise {
        return Err(MintError::GrantsNotAllowed(plan.as_str()));
    }

    // Grants are stored under canonical names, so an alias grants the
    // repository, and bound to the registration the admin chose.
    let mut grants = BTreeMap::new();
    for (name, role) in req.grants {
        let record = registry
            .lookup(&name)
            .ok_or(MintError::UnknownRepository(name))?;
        let grant = Grant {
            role,
            repo_seq: record.created_seq,
        };
        if grants.insert(record.name.clone(), grant).is_some() {
            return Err(MintError::NamedTwice(record.name.clone()));
        }
    }

    let minted = loop {
        let candidate = token::generate().map_err(MintError::Random)?;
        if store.token(&candidate.id)?.is_none() {
            break candidate;
        }
    };
    let record = TokenRecord {
        id: minted.id,
        description: description.to_owned(),
        scope: Scope {
            kind,
            grants,
            minted_seq: store.next_seq()?,
        },
        created_at: now_ms,
        created_by: req.created_by,
        expires_at: req.expires_at,
        last_used_at: None,
        revoked_at: None,
    };
    store.insert_token(&StoredToken {
        digest: minted.digest,
        record: record.clone(),
    })?;
    store.flush().await?;
    Ok((minted.secret, record))
}
