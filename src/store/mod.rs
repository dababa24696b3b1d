//! The embedded store: sled trees for tokens, repositories, settings and audit.
//!
//! Everything an admin creates lives here; the proxy reads it through the hot
//! cache and the in-memory repository registry, never per request. Mutations
//! that hand out or take away access (mint, revoke) are flushed to disk before
//! the admin call returns, so a crash cannot resurrect a revoked token or lose
//! one whose secret was shown. Values are JSON, behind a format version kept in
//! the `meta` tree so a newer store is refused with a clear message.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::access::{DefaultRole, Scope};
use crate::token::{Digest, TokenId};

/// The format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_KEY: &[u8] = b"format";
const DEFAULT_ROLE_KEY: &[u8] = b"default_role";

/// One stored record as a backup carries it: tree name, key, value.
pub type RawRecord = (String, Vec<u8>, Vec<u8>);

/// A token as the admin API sees it: everything but the secret and its digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public id, `rgt_` + 12 chars.
    pub id: TokenId,
    /// Free text from the admin who minted it.
    pub description: String,
    /// Kind, grants and minting sequence.
    #[serde(flatten)]
    pub scope: Scope,
    /// Minting time, Unix milliseconds.
    pub created_at: u64,
    /// The admin user who minted it.
    pub created_by: String,
    /// Expiry, Unix milliseconds.
    pub expires_at: Option<u64>,
    /// Last time it authorized a request, Unix milliseconds; written in batches.
    pub last_used_at: Option<u64>,
    /// Revocation time, Unix milliseconds.
    pub revoked_at: Option<u64>,
}

/// A token record with the digest that proves possession of the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredToken {
    /// SHA-256 of the whole token.
    pub digest: Digest,
    /// The rest of the record.
    pub record: TokenRecord,
}

/// Where a repository registration came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepoOrigin {
    /// Listed in the config file.
    Config,
    /// Registered through the admin API.
    Admin,
}

/// A registered repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoRecord {
    /// Canonical name, e.g. `acme/widgets`.
    pub name: String,
    /// Other names requests may use, e.g. GitLab's numeric project id.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Registration time, Unix milliseconds.
    pub created_at: u64,
    /// Store sequence at registration; compared with a token's `minted_seq`.
    pub created_seq: u64,
    /// Config file or admin API.
    pub origin: RepoOrigin,
}

/// One admin action, as the audit log keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When, Unix milliseconds.
    pub at: u64,
    /// Admin user name (or the name tried, for a failed login).
    pub actor: String,
    /// Client address.
    pub client: String,
    /// What was done, e.g. `token.mint`.
    pub action: String,
    /// What it was done to: a token id, a repository name, a setting.
    pub target: String,
    /// `ok` or a short failure reason.
    pub outcome: String,
}

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds sled's file lock.
    #[error("store at {} is in use by another process (is another repogate running on it?)", .0.display())]
    Locked(PathBuf),
    /// sled could not open the folder.
    #[error("cannot open store at {}: {source}", path.display())]
    Open {
        /// The store folder.
        path: PathBuf,
        /// What sled said.
        source: sled::Error,
    },
    /// Written by a newer repogate.
    #[error("store at {} has format {found}; this repogate reads format {FORMAT_VERSION}, so upgrade it", path.display())]
    NewerFormat {
        /// The store folder.
        path: PathBuf,
        /// The format found.
        found: u32,
    },
    /// Not a repogate store, or damaged beyond what sled recovers.
    #[error("store at {} is damaged or not a repogate store: {reason}", path.display())]
    Broken {
        /// The store folder.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A read or write failed.
    #[error("store I/O failed: {0}")]
    Io(#[from] sled::Error),
    /// The runtime shut down while a flush was waiting for the disk.
    #[error("store flush was cancelled by shutdown")]
    FlushCancelled,
    /// A stored value does not decode.
    #[error("stored {what} does not decode: {source}")]
    Corrupt {
        /// Which kind of value.
        what: &'static str,
        /// The decoding error.
        source: serde_json::Error,
    },
}

/// Handle to the open store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    tokens: sled::Tree,
    repos: sled::Tree,
    settings: sled::Tree,
    audit: sled::Tree,
}

impl Store {
    /// Opens (or creates) the store folder at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = open_db(path)?;
        let tree = |name: &str| db.open_tree(name).map_err(StoreError::Io);
        let store = Store {
            tokens: tree("tokens")?,
            repos: tree("repos")?,
            settings: tree("settings")?,
            audit: tree("audit")?,
            db: db.clone(),
        };
        store.check_format(path)?;
        Ok(store)
    }

    fn check_format(&self, path: &Path) -> Result<(), StoreError> {
        let meta = self.db.open_tree("meta")?;
        match meta.get(FORMAT_KEY)? {
            None => {
                meta.insert(FORMAT_KEY, &FORMAT_VERSION.to_be_bytes())?;
                self.db.flush()?;
                Ok(())
            }
            Some(v) => {
                let bytes: [u8; 4] = v.as_ref().try_into().map_err(|_| StoreError::Broken {
                    path: path.to_owned(),
                    reason: format!("format marker has {} bytes, expected 4", v.len()),
                })?;
                match u32::from_be_bytes(bytes) {
                    FORMAT_VERSION => Ok(()),
                    found => Err(StoreError::NewerFormat {
                        path: path.to_owned(),
                        found,
                    }),
                }
            }
        }
    }

    /// A number greater than every one handed out before, across restarts.
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    /// Waits until every write so far is on disk. Runs sled's blocking
    /// `flush` on the blocking pool: sled 0.34's `flush_async` can leave
    /// concurrent callers waiting forever (sled issue #1308, fixed only after
    /// 0.34), which `tests/concurrency` reproduced as revokes that never
    /// returned.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let db = self.db.clone();
        match tokio::task::spawn_blocking(move || db.flush()).await {
            Ok(flushed) => flushed.map(drop).map_err(StoreError::Io),
            Err(_) => Err(StoreError::FlushCancelled),
        }
    }

    /// Adds a new token. Call [`Store::flush`] before showing its secret.
    pub fn insert_token(&self, token: &StoredToken) -> Result<(), StoreError> {
        self.tokens
            .insert(token.record.id.as_bytes(), encode(token))?;
        Ok(())
    }

    /// Looks a token up by id.
    pub fn token(&self, id: &TokenId) -> Result<Option<StoredToken>, StoreError> {
        self.tokens
            .get(id.as_bytes())?
            .map(|v| decode(&v, "token"))
            .transpose()
    }

    /// Applies `change` to a token's record atomically and returns the result,
    /// or `None` if there is no such token. `change` may run more than once
    /// under contention, so it must only depend on its argument.
    pub fn update_token(
        &self,
        id: &TokenId,
        mut change: impl FnMut(&mut TokenRecord),
    ) -> Result<Option<TokenRecord>, StoreError> {
        let mut failure = None;
        let updated = self.tokens.update_and_fetch(id.as_bytes(), |old| {
            let mut token: StoredToken = match decode(old?, "token") {
                Ok(t) => t,
                Err(e) => {
                    failure = Some(e);
                    return old.map(<[u8]>::to_vec);
                }
            };
            change(&mut token.record);
            Some(encode(&token))
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        updated
            .map(|v| decode::<StoredToken>(&v, "token").map(|t| t.record))
            .transpose()
    }

    /// Every token record, in id order.
    pub fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.tokens
            .iter()
            .values()
            .map(|v| decode::<StoredToken>(&v?, "token").map(|t| t.record))
            .collect()
    }

    /// Every record of every tree, as (tree, key, value), for backups.
    pub fn records(&self) -> Result<Vec<RawRecord>, StoreError> {
        let mut out = Vec::new();
        for (name, tree) in self.named_trees()? {
            for kv in tree.iter() {
                let (k, v) = kv?;
                out.push((name.to_owned(), k.to_vec(), v.to_vec()));
            }
        }
        Ok(out)
    }

    /// Whether any token, repository, setting or audit entry is stored.
    pub fn holds_data(&self) -> Result<bool, StoreError> {
        Ok(self
            .named_trees()?
            .iter()
            .any(|(name, tree)| *name != "meta" && !tree.is_empty()))
    }

    /// Writes records from a backup and flushes; refuses unknown trees.
    pub fn load_records(&self, records: &[RawRecord]) -> Result<(), StoreError> {
        let trees = self.named_trees()?;
        for (name, key, value) in records {
            let tree = trees
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t)
                .ok_or_else(|| StoreError::Broken {
                    path: std::path::PathBuf::from("<backup>"),
                    reason: format!("unknown tree {name}"),
                })?;
            tree.insert(key.as_slice(), value.as_slice())?;
        }
        self.db.flush()?;
        Ok(())
    }

    fn named_trees(&self) -> Result<[(&'static str, sled::Tree); 5], StoreError> {
        Ok([
            ("meta", self.db.open_tree("meta")?),
            ("tokens", self.tokens.clone()),
            ("repos", self.repos.clone()),
            ("settings", self.settings.clone()),
            ("audit", self.audit.clone()),
        ])
    }

    /// How many tokens are stored.
    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    /// Adds or replaces a repository registration.
    pub fn put_repo(&self, repo: &RepoRecord) -> Result<(), StoreError> {
        self.repos.insert(repo.name.as_bytes(), encode(repo))?;
        Ok(())
    }

    /// Removes a repository; returns whether it existed.
    pub fn remove_repo(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.repos.remove(name.as_bytes())?.is_some())
    }

    /// Every registered repository, by name.
    pub fn repos(&self) -> Result<Vec<RepoRecord>, StoreError> {
        self.repos
            .iter()
            .values()
            .map(|v| decode(&v?, "repository"))
            .collect()
    }

    /// The company default role as last set by an admin, if ever.
    pub fn default_role(&self) -> Result<Option<DefaultRole>, StoreError> {
        self.settings
            .get(DEFAULT_ROLE_KEY)?
            .map(|v| decode(&v, "default role"))
            .transpose()
    }

    /// Records the company default role.
    pub fn set_default_role(&self, role: DefaultRole) -> Result<(), StoreError> {
        self.settings.insert(DEFAULT_ROLE_KEY, encode(&role))?;
        Ok(())
    }

    /// Appends an audit entry under a fresh sequence number.
    pub fn append_audit(&self, entry: &AuditEntry) -> Result<u64, StoreError> {
        let seq = self.next_seq()?;
        self.audit.insert(seq.to_be_bytes(), encode(entry))?;
        Ok(seq)
    }

    /// Up to `limit` audit entries older than `before` (a sequence number),
    /// newest first.
    pub fn audit(
        &self,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Vec<(u64, AuditEntry)>, StoreError> {
        let end = before.unwrap_or(u64::MAX).to_be_bytes();
        self.audit
            .range(..end)
            .rev()
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                let seq = u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8]));
                Ok((seq, decode(&v, "audit entry")?))
            })
            .collect()
    }
}

fn open_db(path: &Path) -> Result<sled::Db, StoreError> {
    // sled 0.34 can panic on some damaged files; a damaged store must be an
    // error the operator can read, not a crash.
    let opened = std::panic::catch_unwind(|| sled::Config::new().path(path).open());
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) if e.to_string().contains("could not acquire lock") => {
            Err(StoreError::Locked(path.to_owned()))
        }
        Ok(Err(source @ (sled::Error::Corruption { .. } | sled::Error::Unsupported(_)))) => {
            Err(StoreError::Broken {
                path: path.to_owned(),
                reason: source.to_string(),
            })
        }
        Ok(Err(source)) => Err(StoreError::Open {
            path: path.to_owned(),
            source,
        }),
        Err(_) => Err(StoreError::Broken {
            path: path.to_owned(),
            reason: "sled failed while reading its files".into(),
        }),
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("store records contain only JSON-safe types")
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { what, source })
}

#[cfg(test)]
mod tests;
