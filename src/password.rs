//! Admin passwords: argon2id hashing and verification.
//!
//! Argon2 is deliberately slow (tens of milliseconds and ~19 MiB per hash),
//! so verification runs on tokio's blocking pool behind a semaphore: a flood
//! of logins queues there instead of stalling the workers that proxy traffic.

use std::sync::Arc;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use tokio::sync::Semaphore;

/// Why a password could not be hashed or a stored hash could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The configured string is not an argon2 PHC string.
    #[error("password hash is not a valid PHC string: {0}")]
    BadHash(argon2::password_hash::Error),
    /// Hashing itself failed.
    #[error("could not hash password: {0}")]
    Hash(argon2::password_hash::Error),
    /// The blocking task was cancelled (the runtime is shutting down).
    #[error("password check was cancelled")]
    Cancelled,
}

/// Hashes a password with argon2id and a random salt into a PHC string.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(PasswordError::Hash)
}

/// Checks that `phc` is a complete argon2id PHC string with a salt, a hash
/// and usable parameters (used by config validation, so a typo in a hash is
/// caught at load time rather than at the first login).
pub fn check_phc(phc: &str) -> Result<(), PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(PasswordError::BadHash)?;
    if parsed.algorithm != argon2::ARGON2ID_IDENT {
        return Err(PasswordError::BadHash(
            argon2::password_hash::Error::Algorithm,
        ));
    }
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(PasswordError::BadHash(
            argon2::password_hash::Error::PhcStringTrailingData,
        ));
    }
    argon2::Params::try_from(&parsed)
        .map(drop)
        .map_err(PasswordError::BadHash)
}

/// Verifies `password` against a PHC string, synchronously.
pub fn verify(phc: &str, password: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(PasswordError::BadHash)?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

/// Runs argon2 verifications off the async workers, at most `limit` at once.
#[derive(Clone)]
pub struct Verifier {
    /// Bounds CPU and memory spent on logins: each check takes ~19 MiB.
    permits: Arc<Semaphore>,
}

impl Verifier {
    /// A verifier running at most `limit` checks at once.
    pub fn new(limit: usize) -> Self {
        Verifier {
            permits: Arc::new(Semaphore::new(limit.max(1))),
        }
    }

    /// Verifies on the blocking pool, waiting for a permit first.
    pub async fn verify(&self, phc: String, password: String) -> Result<bool, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Cancelled)?;
        tokio::task::spawn_blocking(move || verify(&phc, &password))
            .await
            .map_err(|_| PasswordError::Cancelled)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_own_password_only() {
        let phc = hash("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify(&phc, "correct horse").unwrap());
        assert!(!verify(&phc, "battery staple").unwrap());
    }

    #[test]
    fn a_malformed_hash_is_an_error_not_a_mismatch() {
        assert!(matches!(
            verify("not-a-hash", "x"),
            Err(PasswordError::BadHash(_))
        ));
        assert!(check_phc("$argon2id$v=19$bogus").is_err());
        assert!(
            check_phc("$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA").is_err()
        );
        assert!(check_phc(&hash("pw").unwrap()).is_ok());
    }

    #[tokio::test]
    async fn verification_runs_on_the_blocking_pool() {
        let phc = hash("pw").unwrap();
        let v = Verifier::new(2);
        assert!(v.verify(phc.clone(), "pw".into()).await.unwrap());
        assert!(!v.verify(phc, "nope".into()).await.unwrap());
    }
}
