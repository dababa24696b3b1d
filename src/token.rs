//! Token format: generation, offline validation, digests and verification.
//!
//! A token is `rgt_` + 12 id chars + 32 secret chars + 6 checksum chars, in
//! base62 (`0-9A-Za-z`). The first 16 chars are the public id, safe to log and
//! list. The checksum is CRC32 (IEEE) of the first 48 chars, so a malformed or
//! mistyped token is refused here, before anything touches the store. The
//! store keeps only a SHA-256 digest of the whole token.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// The literal every repogate token starts with.
pub const PREFIX: &str = "rgt_";
/// Length of the public id: the prefix plus 12 id chars.
pub const ID_LEN: usize = PREFIX.len() + 12;
/// Length of a whole token.
pub const TOKEN_LEN: usize = ID_LEN + 32 + 6;
const CHECKED_LEN: usize = TOKEN_LEN - 6;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The SHA-256 digest of a whole token, the only form in which it is stored.
/// Stored as its 32 bytes; its `Debug` shows none of them, so no panic or
/// log of a record can reveal it.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Digest(<redacted>)")
    }
}

/// Why a presented credential is not a well-formed token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// It does not start with `rgt_`: some other kind of credential.
    #[error("credential is not a repogate token (no rgt_ prefix)")]
    NotRepogate,
    /// Wrong length.
    #[error("token has {0} characters, expected {TOKEN_LEN}")]
    Length(usize),
    /// A character outside base62.
    #[error("token contains a character outside 0-9A-Za-z")]
    Alphabet,
    /// The checksum does not match: a typo or a truncated copy.
    #[error("token checksum does not match")]
    Checksum,
}

/// A token's public id (`rgt_` + 12 chars). Safe to show, list and log.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId([u8; ID_LEN]);

impl TokenId {
    /// Parses an id as given in an admin URL or a CLI argument.
    pub fn parse(s: &str) -> Option<TokenId> {
        let bytes = s.as_bytes();
        let well_formed = bytes.len() == ID_LEN
            && s.starts_with(PREFIX)
            && bytes[PREFIX.len()..].iter().all(u8::is_ascii_alphanumeric);
        well_formed.then(|| TokenId(bytes.try_into().expect("length checked above")))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ids are built from ASCII only")
    }

    /// The id as bytes, for store keys.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenId({})", self.as_str())
    }
}

impl Serialize for TokenId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TokenId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TokenId::parse(&s).ok_or_else(|| serde::de::Error::custom("malformed token id"))
    }
}

/// A whole token, freshly minted. Its `Debug` never prints the secret, so a
/// stray `{:?}` cannot leak it.
pub struct Secret(String);

impl Secret {
    /// The full token text, for the one response that shows it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A freshly generated token: the text to show once, its id and its digest.
#[derive(Debug)]
pub struct Minted {
    /// The whole token; shown once, then dropped.
    pub secret: Secret,
    /// The public id.
    pub id: TokenId,
    /// What the store keeps.
    pub digest: Digest,
}

/// Generates a token from the operating system's random source.
pub fn generate() -> Result<Minted, getrandom::Error> {
    let mut text = String::with_capacity(TOKEN_LEN);
    text.push_str(PREFIX);
    push_random_base62(&mut text, CHECKED_LEN - PREFIX.len())?;
    push_checksum(&mut text);

    let id = TokenId(
        text.as_bytes()[..ID_LEN]
            .try_into()
            .expect("token is ID_LEN long at least"),
    );
    let digest = digest(&text);
    Ok(Minted {
        secret: Secret(text),
        id,
        digest,
    })
}

/// Checks a presented credential's form and checksum and returns its id.
/// Pure: a malformed token is refused without touching the store.
pub fn parse(token: &str) -> Result<TokenId, FormatError> {
    if !token.starts_with(PREFIX) {
        return Err(FormatError::NotRepogate);
    }
    let bytes = token.as_bytes();
    if bytes.len() != TOKEN_LEN {
        return Err(FormatError::Length(bytes.len()));
    }
    if !bytes[PREFIX.len()..].iter().all(u8::is_ascii_alphanumeric) {
        return Err(FormatError::Alphabet);
    }
    if checksum(&bytes[..CHECKED_LEN]) != bytes[CHECKED_LEN..] {
        return Err(FormatError::Checksum);
    }
    Ok(TokenId(
        bytes[..ID_LEN].try_into().expect("length checked above"),
    ))
}

/// SHA-256 of the whole token text.
pub fn digest(token: &str) -> Digest {
    Digest(Sha256::digest(token.as_bytes()).into())
}

/// Compares a presented token against a stored digest in constant time.
pub fn verify(stored: &Digest, presented: &str) -> bool {
    digest(presented).0.ct_eq(&stored.0).into()
}

/// `n` uniformly random base62 chars from the OS random source (also used
/// for admin session strings).
pub fn random_base62(n: usize) -> Result<String, getrandom::Error> {
    let mut out = String::with_capacity(n);
    push_random_base62(&mut out, n)?;
    Ok(out)
}

/// Appends `n` uniformly random base62 chars. Bytes of 248 and above are
/// skipped so `byte % 62` has no bias (248 = 4 × 62).
fn push_random_base62(out: &mut String, n: usize) -> Result<(), getrandom::Error> {
    let mut buf = [0u8; 64];
    let mut left = n;
    while left > 0 {
        getrandom::fill(&mut buf)?;
        for &b in buf.iter().filter(|&&b| b < 248).take(left) {
            out.push(ALPHABET[usize::from(b % 62)] as char);
            left -= 1;
        }
    }
    Ok(())
}

fn push_checksum(out: &mut String) {
    let sum = checksum(out.as_bytes());
    out.extend(sum.iter().map(|&b| b as char));
}

/// CRC32 of `data` as 6 base62 digits, most significant first.
fn checksum(data: &[u8]) -> [u8; 6] {
    let mut n = u64::from(crc32fast::hash(data));
    let mut digits = [b'0'; 6];
    for d in digits.iter_mut().rev() {
        *d = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_tokens_parse_to_their_own_id() {
        for _ in 0..100 {
            let m = generate().unwrap();
            assert_eq!(m.secret.expose().len(), TOKEN_LEN);
            assert_eq!(parse(m.secret.expose()), Ok(m.id));
            assert!(verify(&m.digest, m.secret.expose()));
        }
    }

    #[test]
    fn checksum_is_crc32_in_six_base62_digits() {
        // CRC32("123456789") is the IEEE check value 0xCBF43926, which is
        // "3jZRME" in six base62 digits (worked out independently in Python).
        assert_eq!(&checksum(b"123456789"), b"3jZRME");
        assert_eq!(&checksum(b""), b"000000");
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let m = generate().unwrap();
        let shown = format!("{m:?}");
        assert!(!shown.contains(m.secret.expose()));
        assert!(shown.contains(m.id.as_str()));
    }

    #[test]
    fn other_credentials_and_malformed_tokens_are_named_precisely() {
        let good = generate().unwrap().secret.expose().to_owned();
        assert_eq!(parse("glpat-abcdef"), Err(FormatError::NotRepogate));
        assert_eq!(parse(&good[..50]), Err(FormatError::Length(50)));
        let bad_char = format!("{}-{}", &good[..20], &good[21..]);
        assert_eq!(parse(&bad_char), Err(FormatError::Alphabet));
    }

    #[test]
    fn a_wrong_secret_with_a_valid_checksum_fails_verification() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert!(!verify(&a.digest, b.secret.expose()));
    }

    #[test]
    fn token_ids_parse_only_when_well_formed() {
        let m = generate().unwrap();
        assert_eq!(TokenId::parse(m.id.as_str()), Some(m.id));
        assert_eq!(TokenId::parse("rgt_short"), None);
        assert_eq!(TokenId::parse("abc_0123456789AB"), None);
        assert_eq!(TokenId::parse("rgt_01234567890/"), None);
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(s in ".{0,80}") {
            let _ = parse(&s);
            let _ = TokenId::parse(&s);
        }

        #[test]
        fn parsing_arbitrary_token_shaped_text_never_panics(s in "rgt_[0-9A-Za-z]{0,60}") {
            let _ = parse(&s);
        }

        #[test]
        fn any_one_character_change_is_rejected(pos in 0usize..TOKEN_LEN, ch in any::<char>()) {
            let m = generate().unwrap();
            let good = m.secret.expose();
            let original = good.as_bytes()[pos] as char;
            prop_assume!(ch != original);
            let mut changed: String = good.chars().take(pos).collect();
            changed.push(ch);
            changed.extend(good.chars().skip(pos + 1));
            prop_assert!(parse(&changed).is_err(), "accepted {changed:?}");
        }
    }
}
