//! The access model: roles, actions, plans and the one decision function.
//!
//! This module sits between token resolution and forwarding in the request
//! flow. It is pure: the caller hands it the token's scope, the repository as
//! the registry knows it and the company default role, and it answers allow or
//! a denial that says why. Nothing here performs I/O, so every rule of
//! DESIGN.md §2 is tested cell by cell without a store.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A role a token holds on one repository. Roles are sets of actions, not a
/// ladder: a maintainer may not review, a reviewer may not maintain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Allows nothing.
    NoAccess,
    /// Read, comment and clone.
    Viewer,
    /// Viewer plus integrate and write.
    Developer,
    /// Developer plus review.
    Reviewer,
    /// Developer plus maintain (but not review).
    Maintainer,
    /// Every repository action.
    RepositoryAdmin,
    /// Every repository action.
    CompanyAdmin,
}

/// What a proxied request needs on its repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Read repository information, exports, API reads.
    Read,
    /// Add comments or notes.
    Comment,
    /// Fetch repository contents (git upload-pack).
    Clone,
    /// Set up integrations and webhooks.
    Integrate,
    /// Push, branches, pull and merge requests.
    Write,
    /// Approve, set review status, snooze.
    Review,
    /// Settings, automation rules, protected branches, delete.
    Maintain,
    /// Start scans; held by admin tokens only, whatever the role.
    Scan,
}

/// The account plan from `[account] plan`; it decides which tokens can be minted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// Admin and user tokens.
    Freemium,
    /// Admin and user tokens.
    Premium,
    /// Admin tokens and enterprise tokens with a role per repository.
    #[default]
    Enterprise,
}

/// The three kinds of token of the product page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Every action on every repository, present and future, and `scan`.
    Admin,
    /// Freemium and premium: reviewer on the repositories that existed at minting.
    User,
    /// Enterprise: a chosen role per repository, the default role for later ones.
    Enterprise,
}

/// The company default role: the role an enterprise token gets on a
/// repository created after it was minted. Never above `reviewer`, which the
/// constructor enforces so no other code has to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DefaultRole(Role);

/// The error of a name that is not a role, an action, or an allowed default role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not one of the seven role names.
    #[error("unknown role `{0}`; expected one of no_access, viewer, developer, reviewer, maintainer, repository_admin, company_admin")]
    UnknownRole(String),
    /// Not one of the eight action names.
    #[error("unknown action `{0}`; expected one of read, comment, clone, integrate, write, review, maintain, scan")]
    UnknownAction(String),
    /// A default role above reviewer.
    #[error(
        "default role `{0}` is above reviewer; expected no_access, viewer, developer or reviewer"
    )]
    DefaultTooHigh(Role),
}

// Each action is one bit; a role is the set of its actions' bits.
const READ: u8 = 1 << 0;
const COMMENT: u8 = 1 << 1;
const CLONE: u8 = 1 << 2;
const INTEGRATE: u8 = 1 << 3;
const WRITE: u8 = 1 << 4;
const REVIEW: u8 = 1 << 5;
const MAINTAIN: u8 = 1 << 6;
const SCAN: u8 = 1 << 7;

const VIEWER_SET: u8 = READ | COMMENT | CLONE;
const DEVELOPER_SET: u8 = VIEWER_SET | INTEGRATE | WRITE;
const EVERY_REPO_ACTION: u8 = DEVELOPER_SET | REVIEW | MAINTAIN;

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 7] = [
        Role::NoAccess,
        Role::Viewer,
        Role::Developer,
        Role::Reviewer,
        Role::Maintainer,
        Role::RepositoryAdmin,
        Role::CompanyAdmin,
    ];

    /// The role's name as written in config, JSON and CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::NoAccess => "no_access",
            Role::Viewer => "viewer",
            Role::Developer => "developer",
            Role::Reviewer => "reviewer",
            Role::Maintainer => "maintainer",
            Role::RepositoryAdmin => "repository_admin",
            Role::CompanyAdmin => "company_admin",
        }
    }

    /// Whether this role allows `action`. No role allows `scan`.
    pub fn allows(self, action: Action) -> bool {
        self.action_set() & action.bit() != 0
    }

    fn action_set(self) -> u8 {
        match self {
            Role::NoAccess => 0,
            Role::Viewer => VIEWER_SET,
            Role::Developer => DEVELOPER_SET,
            Role::Reviewer => DEVELOPER_SET | REVIEW,
            Role::Maintainer => DEVELOPER_SET | MAINTAIN,
            Role::RepositoryAdmin | Role::CompanyAdmin => EVERY_REPO_ACTION,
        }
    }
}

impl Action {
    /// Every action, in the order of the role table.
    pub const ALL: [Action; 8] = [
        Action::Read,
        Action::Comment,
        Action::Clone,
        Action::Integrate,
        Action::Write,
        Action::Review,
        Action::Maintain,
        Action::Scan,
    ];

    /// The action's name as written in config and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Comment => "comment",
            Action::Clone => "clone",
            Action::Integrate => "integrate",
            Action::Write => "write",
            Action::Review => "review",
            Action::Maintain => "maintain",
            Action::Scan => "scan",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Action::Read => READ,
            Action::Comment => COMMENT,
            Action::Clone => CLONE,
            Action::Integrate => INTEGRATE,
            Action::Write => WRITE,
            Action::Review => REVIEW,
            Action::Maintain => MAINTAIN,
            Action::Scan => SCAN,
        }
    }
}

impl Plan {
    /// The plan's name as written in config.
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Freemium => "freemium",
            Plan::Premium => "premium",
            Plan::Enterprise => "enterprise",
        }
    }

    /// The kind of a non-admin token minted on this plan.
    pub fn member_kind(self) -> TokenKind {
        match self {
            Plan::Freemium | Plan::Premium => TokenKind::User,
            Plan::Enterprise => TokenKind::Enterprise,
        }
    }
}

impl TokenKind {
    /// The kind's name as written in JSON, CSV and filters.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Admin => "admin",
            TokenKind::User => "user",
            TokenKind::Enterprise => "enterprise",
        }
    }
}

impl DefaultRole {
    /// The default when nothing is configured: new repositories are closed.
    pub const NO_ACCESS: DefaultRole = DefaultRole(Role::NoAccess);

    /// Accepts `no_access`, `viewer`, `developer` or `reviewer`.
    pub fn new(role: Role) -> Result<Self, ParseError> {
        match role {
            Role::NoAccess | Role::Viewer | Role::Developer | Role::Reviewer => {
                Ok(DefaultRole(role))
            }
            other => Err(ParseError::DefaultTooHigh(other)),
        }
    }

    /// The role itself.
    pub fn role(self) -> Role {
        self.0
    }
}

impl Default for DefaultRole {
    fn default() -> Self {
        DefaultRole::NO_ACCESS
    }
}

impl<'de> Deserialize<'de> for DefaultRole {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let role = Role::deserialize(d)?;
        DefaultRole::new(role).map_err(serde::de::Error::custom)
    }
}

macro_rules! name_impls {
    ($ty:ty, $err:ident) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = ParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| ParseError::$err(s.to_owned()))
            }
        }
    };
}

name_impls!(Role, UnknownRole);
name_impls!(Action, UnknownAction);

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role chosen for one repository when an enterprise token was minted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The chosen role.
    pub role: Role,
    /// The creation sequence of the repository the admin chose. A grant binds
    /// to that registration, not to the name: if the repository is removed
    /// and a new one registered under the same name, the new one is a later
    /// repository and gets the default role, not the old grant.
    pub repo_seq: u64,
}

/// What a token may reach, fixed when it is minted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// Admin, user or enterprise.
    pub kind: TokenKind,
    /// Enterprise only: the role chosen per repository (canonical name) at minting.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub grants: BTreeMap<String, Grant>,
    /// The store sequence number at minting. A repository whose own sequence
    /// number is lower existed when the token was minted; a higher one was
    /// created later. A counter, unlike a wall clock, cannot tie or go back.
    pub minted_seq: u64,
}

/// Whether the token may still be used at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// When the token was revoked, in Unix milliseconds.
    pub revoked_at: Option<u64>,
    /// When the token expires, in Unix milliseconds.
    pub expires_at: Option<u64>,
}

/// The repository a request is about, as the registry knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// A registered repository, with its canonical name and creation sequence.
    Registered {
        /// The canonical name (aliases are already resolved).
        name: &'a str,
        /// The store sequence number at the repository's registration.
        created_seq: u64,
    },
    /// A repository name the registry does not know.
    Unregistered(&'a str),
    /// A rule with no repository source: the action is needed on every repository.
    Every,
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// The token was revoked.
    #[error("token was revoked")]
    Revoked,
    /// The token expired.
    #[error("token has expired")]
    Expired,
    /// `scan` was asked for by a token that is not an admin token.
    #[error("only admin tokens may start scans")]
    ScanNeedsAdmin,
    /// The token's role on the repository does not include the action.
    #[error("role {role} on {repo} does not allow {action}")]
    RoleLacksAction {
        /// The role the token holds on the repository.
        role: Role,
        /// The action the request needs.
        action: Action,
        /// The repository's canonical name.
        repo: String,
    },
    /// Only admin tokens reach repositories that are not registered.
    #[error("repository {0} is not registered; only admin tokens reach it")]
    Unregistered(String),
    /// The request names no repository, so only a token with the action on
    /// every repository passes.
    #[error("{0} without a repository needs an admin token")]
    NeedsEveryRepository(Action),
}

impl Denial {
    /// True where the token itself is no longer usable (a 401, not a 403).
    pub fn is_invalid_token(&self) -> bool {
        matches!(self, Denial::Revoked | Denial::Expired)
    }
}

/// The role a scope holds on a registered repository.
///
/// A repository chosen at minting has its chosen role. One that existed at
/// minting and was not chosen is `no_access`: the default role never widens
/// it. One created after minting (including one re-created under a chosen
/// name) gets the company default role (enterprise) or nothing (user tokens
/// snapshot the repositories of their minting).
pub fn role_on(scope: &Scope, repo: &str, created_seq: u64, default: DefaultRole) -> Role {
    match scope.kind {
        TokenKind::Admin => Role::CompanyAdmin,
        TokenKind::User if created_seq < scope.minted_seq => Role::Reviewer,
        TokenKind::User => Role::NoAccess,
        TokenKind::Enterprise => match scope.grants.get(repo) {
            Some(grant) if grant.repo_seq == created_seq => grant.role,
            _ if created_seq < scope.minted_seq => Role::NoAccess,
            _ => default.role(),
        },
    }
}

/// Decides one request: may a token with `scope` and `validity` perform
/// `action` on `target` at `now_ms`?
pub fn decide(
    scope: &Scope,
    validity: Validity,
    target: Target<'_>,
    action: Action,
    default: DefaultRole,
    now_ms: u64,
) -> Result<(), Denial> {
    if validity.revoked_at.is_some() {
        return Err(Denial::Revoked);
    }
    if validity.expires_at.is_some_and(|at| at <= now_ms) {
        return Err(Denial::Expired);
    }

    // Admin tokens hold every action, scan included, on every repository.
    if scope.kind == TokenKind::Admin {
        return Ok(());
    }
    if action == Action::Scan {
        return Err(Denial::ScanNeedsAdmin);
    }

    let (name, created_seq) = match target {
        Target::Registered { name, created_seq } => (name, created_seq),
        Target::Unregistered(name) => return Err(Denial::Unregistered(name.to_owned())),
        Target::Every => return Err(Denial::NeedsEveryRepository(action)),
    };
    let role = role_on(scope, name, created_seq, default);
    if role.allows(action) {
        Ok(())
    } else {
        Err(Denial::RoleLacksAction {
            role,
            action,
            repo: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests;
