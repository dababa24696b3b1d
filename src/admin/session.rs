//! Admin sessions and the failed-login limiter.
//!
//! A session is `rgs_` + 16 id chars + 32 secret chars, random from the OS.
//! Only its id and a SHA-256 digest of the whole string are kept, in memory:
//! a restart logs every admin out. Lookup goes by id, then a constant-time
//! digest compare, as for tokens.

use std::net::IpAddr;
use std::time::Duration;

use dashmap::DashMap;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

const PREFIX: &str = "rgs_";
const ID_LEN: usize = 16;
const SECRET_LEN: usize = 32;

/// A logged-in admin.
#[derive(Clone, Debug)]
pub struct Session {
    /// The admin user's name.
    pub user: String,
    /// When the session stops working.
    pub expires: Instant,
    /// The same, as Unix milliseconds, for responses.
    pub expires_at_ms: u64,
    digest: [u8; 32],
}

/// Open sessions by id.
#[derive(Default)]
pub struct Sessions {
    open: DashMap<String, Session>,
}

impl Sessions {
    /// Opens a session for `user` lasting `ttl`; returns the session string
    /// (shown once) and the session.
    pub fn open(&self, user: &str, ttl: Duration) -> Result<(String, Session), getrandom::Error> {
        self.prune();
        let text = format!(
            "{PREFIX}{}",
            crate::token::random_base62(ID_LEN + SECRET_LEN)?
        );
        let session = Session {
            user: user.to_owned(),
            expires: Instant::now() + ttl,
            expires_at_ms: crate::now_ms() + ttl.as_millis() as u64,
            digest: Sha256::digest(text.as_bytes()).into(),
        };
        self.open
            .insert(text[..PREFIX.len() + ID_LEN].to_owned(), session.clone());
        Ok((text, session))
    }

    /// The live session a presented string belongs to, if any.
    pub fn check(&self, presented: &str) -> Option<Session> {
        let id = presented.get(..PREFIX.len() + ID_LEN)?;
        if !presented.starts_with(PREFIX) || presented.len() != PREFIX.len() + ID_LEN + SECRET_LEN {
            return None;
        }
        let session = self.open.get(id)?.clone();
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        if !bool::from(digest.ct_eq(&session.digest)) {
            return None;
        }
        if Instant::now() >= session.expires {
            self.open.remove(id);
            return None;
        }
        Some(session)
    }

    /// Ends a session; returns whether it was open.
    pub fn close(&self, presented: &str) -> bool {
        match (
            self.check(presented),
            presented.get(..PREFIX.len() + ID_LEN),
        ) {
            (Some(_), Some(id)) => self.open.remove(id).is_some(),
            _ => false,
        }
    }

    fn prune(&self) {
        let now = Instant::now();
        self.open.retain(|_, s| s.expires > now);
    }
}

/// How long a client address is remembered after its last failure.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// First delay after a failure; it doubles with each further failure.
const FIRST_DELAY: Duration = Duration::from_millis(250);
/// Longest delay between attempts.
const MAX_DELAY: Duration = Duration::from_secs(60);

/// How long a client is told to wait while its previous attempt is being checked.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
    next_allowed: Instant,
    /// An attempt from this address is being checked now. One at a time per
    /// address, or a burst of parallel guesses would all be checked before
    /// the first failure could slow the next.
    in_flight: bool,
}

/// Failed logins per client address, with a delay that doubles per failure.
/// A client inside its delay, or with an attempt still being checked, is
/// refused before any argon2 work is done.
#[derive(Default)]
pub struct LoginLimiter {
    failures: DashMap<IpAddr, Failures>,
}

/// One login attempt under way; report how it went, or drop it to abandon it.
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    ip: IpAddr,
    reported: bool,
}

impl LoginLimiter {
    /// Starts an attempt from `ip`, or says how long to wait first.
    pub fn begin(&self, ip: IpAddr) -> Result<Attempt<'_>, Duration> {
        let now = Instant::now();
        if self.failures.len() > 10_000 {
            self.failures
                .retain(|_, f| f.in_flight || now.duration_since(f.last) < FORGET_AFTER);
        }
        let mut entry = self.failures.entry(ip).or_insert(Failures {
            count: 0,
            last: now,
            next_allowed: now,
            in_flight: false,
        });
        if entry.in_flight {
            return Err(IN_FLIGHT_WAIT);
        }
        if entry.next_allowed > now {
            return Err(entry.next_allowed - now);
        }
        entry.in_flight = true;
        Ok(Attempt {
            limiter: self,
            ip,
            reported: false,
        })
    }
}

impl Attempt<'_> {
    /// The password was wrong: the address waits twice as long as last time.
    pub fn failed(mut self) {
        self.reported = true;
        let now = Instant::now();
        let Some(mut entry) = self.limiter.failures.get_mut(&self.ip) else {
            return;
        };
        if now.duration_since(entry.last) >= FORGET_AFTER {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        let delay = FIRST_DELAY
            .saturating_mul(1 << (entry.count - 1).min(16))
            .min(MAX_DELAY);
        entry.next_allowed = now + delay;
        entry.in_flight = false;
    }

    /// The login worked: the address's failures are forgotten.
    pub fn succeeded(mut self) {
        self.reported = true;
        self.limiter.failures.remove(&self.ip);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.reported {
            if let Some(mut entry) = self.limiter.failures.get_mut(&self.ip) {
                entry.in_flight = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_session_works_until_its_ttl_and_not_after() {
        let sessions = Sessions::default();
        let (text, _) = sessions.open("admin", Duration::from_secs(900)).unwrap();
        assert_eq!(sessions.check(&text).unwrap().user, "admin");
        tokio::time::advance(Duration::from_secs(899)).await;
        assert!(sessions.check(&text).is_some());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(sessions.check(&text).is_none());
    }

    #[test]
    fn a_forged_session_with_a_real_id_is_refused() {
        let sessions = Sessions::default();
        let (text, _) = sessions.open("admin", Duration::from_secs(60)).unwrap();
        let forged = format!(
            "{}{}",
            &text[..PREFIX.len() + ID_LEN],
            "x".repeat(SECRET_LEN)
        );
        assert!(sessions.check(&forged).is_none());
        assert!(sessions.check("rgs_short").is_none());
        assert!(sessions.check("").is_none());
    }

    #[test]
    fn a_closed_session_stops_working() {
        let sessions = Sessions::default();
        let (text, _) = sessions.open("admin", Duration::from_secs(60)).unwrap();
        assert!(sessions.close(&text));
        assert!(sessions.check(&text).is_none());
        assert!(!sessions.close(&text));
    }

    #[tokio::test(start_paused = true)]
    async fn failed_logins_wait_longer_each_time_and_success_resets() {
        let limiter = LoginLimiter::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        limiter.begin(ip).unwrap().failed();
        assert_eq!(limiter.begin(ip).err(), Some(Duration::from_millis(250)));
        tokio::time::advance(Duration::from_millis(250)).await;
        limiter.begin(ip).unwrap().failed();
        assert_eq!(limiter.begin(ip).err(), Some(Duration::from_millis(500)));
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limiter.begin(other).is_ok(), "limits are per address");
        tokio::time::advance(Duration::from_millis(500)).await;
        limiter.begin(ip).unwrap().succeeded();
        assert!(limiter.begin(ip).is_ok());
    }

    #[test]
    fn only_one_attempt_per_address_is_checked_at_a_time() {
        let limiter = LoginLimiter::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let first = limiter.begin(ip).unwrap();
        assert_eq!(limiter.begin(ip).err(), Some(IN_FLIGHT_WAIT));
        drop(first);
        assert!(
            limiter.begin(ip).is_ok(),
            "an abandoned attempt frees the address"
        );
    }
}
