//! The repository registry: which repositories exist, since when, under which
//! names, and the company default role.
//!
//! The proxy asks it, once per request, which registered repository a name or
//! alias means; the answer comes from an immutable index swapped in whole
//! (arc-swap) after every change, so lookups take no lock. Changes go through
//! the store first and then rebuild the index.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::access::{DefaultRole, Role};
use crate::config;
use crate::store::{RepoOrigin, RepoRecord, Store, StoreError};

/// Longest repository name or alias accepted.
pub const MAX_NAME_LEN: usize = 255;

/// Checks a repository name or alias: non-empty, at most 255 bytes, no
/// leading, trailing or doubled `/`, no `.` or `..` segment, no control
/// characters, no `%` (names are compared decoded).
pub fn check_repo_name(name: &str) -> Result<(), String> {
    let fail = |why: &str| Err(format!("repository name `{}` {why}", name.escape_debug()));
    if name.is_empty() {
        return fail("is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return fail("is longer than 255 bytes");
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == '%' || c == '\\')
    {
        return fail("contains a control character, `%` or `\\`");
    }
    if name
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return fail("has an empty, `.` or `..` path segment");
    }
    Ok(())
}

/// What went wrong with a registry change.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The name or an alias is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The name is already registered.
    #[error("repository {0} is already registered")]
    Exists(String),
    /// An alias already names another repository.
    #[error("alias {alias} already names repository {owner}")]
    AliasTaken {
        /// The alias.
        alias: String,
        /// The repository it names.
        owner: String,
    },
    /// No such repository.
    #[error("repository {0} is not registered")]
    NotFound(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Names and aliases to records, rebuilt whole on every change. Keys are
/// lowercase: GitLab and Bitbucket resolve paths without regard to case, so
/// `ACME/Widgets` must mean the same repository here as upstream.
#[derive(Default)]
struct Index {
    by_name: HashMap<String, Arc<RepoRecord>>,
}

/// The index key of a name: lowercase, borrowed when already lowercase.
fn key(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) || !name.is_ascii() {
        Cow::Owned(name.to_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

impl Index {
    fn build(records: Vec<RepoRecord>) -> Index {
        let mut by_name = HashMap::new();
        for record in records.into_iter().map(Arc::new) {
            for alias in &record.aliases {
                by_name.insert(key(alias).into_owned(), Arc::clone(&record));
            }
            by_name.insert(key(&record.name).into_owned(), record);
        }
        Index { by_name }
    }

    fn get(&self, name: &str) -> Option<&Arc<RepoRecord>> {
        self.by_name.get(key(name).as_ref())
    }

    fn owner_of(&self, name: &str) -> Option<&str> {
        self.get(name).map(|r| r.name.as_str())
    }
}

/// The registry; share it in an `Arc`.
pub struct Registry {
    store: Store,
    index: ArcSwap<Index>,
    /// The company default role, as an index into `Role::ALL`, read lock-free
    /// by every enterprise decision.
    default_role: AtomicU8,
    /// Set once an admin chose the default role; from then on the config
    /// file's value no longer overrides it.
    admin_set_default: AtomicBool,
    /// Serialises changes so two admins cannot register clashing aliases.
    writer: Mutex<()>,
}

impl Registry {
    /// Loads the registry from the store; `config_default` applies until an
    /// admin sets a default role through the API.
    pub fn open(store: Store, config_default: DefaultRole) -> Result<Registry, StoreError> {
        let stored_default = store.default_role()?;
        let index = Index::build(store.repos()?);
        Ok(Registry {
            index: ArcSwap::from_pointee(index),
            default_role: AtomicU8::new(role_index(
                stored_default.unwrap_or(config_default).role(),
            )),
            admin_set_default: AtomicBool::new(stored_default.is_some()),
            writer: Mutex::new(()),
            store,
        })
    }

    /// The registered repository a request's name or alias means, compared
    /// without regard to case.
    pub fn lookup(&self, name: &str) -> Option<Arc<RepoRecord>> {
        self.index.load().get(name).cloned()
    }

    /// Every registered repository, by name.
    pub fn list(&self) -> Vec<RepoRecord> {
        let index = self.index.load();
        let mut repos: Vec<RepoRecord> = index
            .by_name
            .iter()
            .filter(|(k, record)| **k == key(&record.name))
            .map(|(_, record)| RepoRecord::clone(record))
            .collect();
        repos.sort_by(|a, b| a.name.cmp(&b.name));
        repos
    }

    /// Registers a repository now. Call `Store::flush` to make it durable.
    pub fn add(
        &self,
        name: &str,
        aliases: &[String],
        origin: RepoOrigin,
        now_ms: u64,
    ) -> Result<RepoRecord, RegistryError> {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        check_repo_name(name).map_err(RegistryError::Invalid)?;
        let index = self.index.load();
        if let Some(owner) = index.owner_of(name) {
            return Err(match key(owner) == key(name) {
                true => RegistryError::Exists(name.to_owned()),
                false => RegistryError::AliasTaken {
                    alias: name.to_owned(),
                    owner: owner.to_owned(),
                },
            });
        }
        self.check_aliases(&index, name, aliases)?;

        let record = RepoRecord {
            name: name.to_owned(),
            aliases: aliases.to_vec(),
            created_at: now_ms,
            created_seq: self.store.next_seq()?,
            origin,
        };
        self.store.put_repo(&record)?;
        self.rebuild()?;
        Ok(record)
    }

    fn check_aliases(
        &self,
        index: &Index,
        name: &str,
        aliases: &[String],
    ) -> Result<(), RegistryError> {
        for (i, alias) in aliases.iter().enumerate() {
            check_repo_name(alias).map_err(RegistryError::Invalid)?;
            let clash = index
                .owner_of(alias)
                .filter(|owner| key(owner) != key(name));
            let repeated =
                key(alias) == key(name) || aliases[..i].iter().any(|a| key(a) == key(alias));
            if let Some(owner) = clash.or(repeated.then_some(name)) {
                return Err(RegistryError::AliasTaken {
                    alias: alias.clone(),
                    owner: owner.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Removes a repository registration.
    pub fn remove(&self, name: &str) -> Result<RepoRecord, RegistryError> {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let record = self
            .index
            .load()
            .get(name)
            .filter(|r| key(&r.name) == key(name))
            .map(|r| RepoRecord::clone(r))
            .ok_or_else(|| RegistryError::NotFound(name.to_owned()))?;
        self.store.remove_repo(&record.name)?;
        self.rebuild()?;
        Ok(record)
    }

    /// Registers the config file's repositories that are not registered yet
    /// and updates the aliases of those the file already owns. Returns how
    /// many were added. Repositories dropped from the file stay registered.
    pub fn sync_config(
        &self,
        repos: &[config::Repository],
        now_ms: u64,
    ) -> Result<usize, RegistryError> {
        let mut added = 0;
        for repo in repos {
            match self.lookup(&repo.name) {
                None => {
                    self.add(&repo.name, &repo.aliases, RepoOrigin::Config, now_ms)?;
                    added += 1;
                }
                Some(existing)
                    if existing.name == repo.name && existing.aliases != repo.aliases =>
                {
                    self.set_aliases(&existing, &repo.aliases)?;
                }
                Some(_) => {}
            }
        }
        Ok(added)
    }

    fn set_aliases(&self, existing: &RepoRecord, aliases: &[String]) -> Result<(), RegistryError> {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.check_aliases(&self.index.load(), &existing.name, aliases)?;
        let record = RepoRecord {
            aliases: aliases.to_vec(),
            ..existing.clone()
        };
        self.store.put_repo(&record)?;
        self.rebuild()
    }

    fn rebuild(&self) -> Result<(), RegistryError> {
        self.index
            .store(Arc::new(Index::build(self.store.repos()?)));
        Ok(())
    }

    /// The company default role now.
    pub fn default_role(&self) -> DefaultRole {
        let role = Role::ALL[usize::from(self.default_role.load(Ordering::Relaxed))];
        DefaultRole::new(role).expect("only default roles are ever stored here")
    }

    /// Sets the default role from the admin API; it outlives config reloads.
    pub fn set_default_role(&self, role: DefaultRole) -> Result<(), StoreError> {
        self.store.set_default_role(role)?;
        self.admin_set_default.store(true, Ordering::Relaxed);
        self.default_role
            .store(role_index(role.role()), Ordering::Relaxed);
        Ok(())
    }

    /// Applies the config file's default role, unless an admin has set one.
    pub fn apply_config_default(&self, role: DefaultRole) {
        if !self.admin_set_default.load(Ordering::Relaxed) {
            self.default_role
                .store(role_index(role.role()), Ordering::Relaxed);
        }
    }
}

fn role_index(role: Role) -> u8 {
    Role::ALL
        .iter()
        .position(|r| *r == role)
        .expect("every role is in Role::ALL") as u8
}

#[cfg(test)]
mod tests;
