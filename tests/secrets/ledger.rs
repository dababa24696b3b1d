//! What passed through: every reply body, and the secrets with the one
//! reply each may appear in; plus the token arithmetic to forge near-misses.

use base64::Engine as _;
use bytes::Bytes;

use crate::common::Reply;

/// Every response body seen, labelled by the request that got it.
#[derive(Default)]
pub(crate) struct Journal {
    pub(crate) bodies: Vec<(String, Bytes)>,
}

impl Journal {
    pub(crate) fn keep(&mut self, what: impl Into<String>, reply: Reply) -> Reply {
        self.bodies.push((what.into(), reply.body.clone()));
        reply
    }

    pub(crate) fn keep_text(&mut self, what: &str, text: String) {
        self.bodies.push((what.into(), Bytes::from(text)));
    }
}

/// The secrets that passed through, and where each may legitimately appear.
#[derive(Default)]
pub(crate) struct Secrets {
    /// Value, what it is, and the one journal entry allowed to show it.
    pub(crate) items: Vec<(String, String, Option<String>)>,
}

impl Secrets {
    pub(crate) fn add(&mut self, value: &str, what: &str, shown_by: Option<&str>) {
        self.items.push((
            value.to_owned(),
            what.to_owned(),
            shown_by.map(str::to_owned),
        ));
    }

    /// A minted token: the whole string, its secret part, each way a client
    /// encodes it in Basic credentials, and the SHA-256 digest the store
    /// keeps of it in each form it could be printed.
    pub(crate) fn add_token(&mut self, token: &str, what: &str, shown_by: Option<&str>) {
        self.add(token, what, shown_by);
        self.add(&token[16..48], &format!("secret part of {what}"), shown_by);
        // How sled's trace lines print keys and values.
        let bytes: Vec<String> = token[16..48].bytes().map(|b| b.to_string()).collect();
        self.add(&bytes.join(", "), &format!("bytes of {what}"), None);
        for pair in [format!("git:{token}"), format!("{token}:")] {
            self.add(&b64(&pair), &format!("Basic credentials of {what}"), None);
        }
        for (form, how) in digest_forms(&digest(token)) {
            self.add(&form, &format!("stored digest of {what} ({how})"), None);
        }
    }
}

/// SHA-256 of the whole token (all 54 characters), as `src/token.rs` computes
/// what the store keeps; worked out here with `sha2` directly.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// Each way a log line or a body could print a digest.
pub(crate) fn digest_forms(digest: &[u8; 32]) -> Vec<(String, &'static str)> {
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let numbers: Vec<String> = digest.iter().map(u8::to_string).collect();
    vec![
        (hex.to_uppercase(), "upper-case hex"),
        (hex, "hex"),
        (
            base64::engine::general_purpose::STANDARD.encode(digest),
            "base64",
        ),
        (
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest),
            "base64url",
        ),
        // `{:?}` of the array, and the JSON the store writes.
        (numbers.join(", "), "Debug bytes"),
        (numbers.join(","), "JSON bytes"),
    ]
}

pub(crate) fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

pub(crate) const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The token's checksum: CRC32 of the first 48 chars in six base62 digits.
pub(crate) fn checksum(first_48: &str) -> String {
    let mut n = u64::from(crc32fast::hash(first_48.as_bytes()));
    let mut digits = [b'0'; 6];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(digits.to_vec()).unwrap()
}

/// The same id with every secret char changed and a valid checksum: it
/// passes the offline checks and fails only the digest comparison.
pub(crate) fn with_wrong_secret(token: &str) -> String {
    let shifted: String = token[16..48]
        .bytes()
        .map(|c| {
            let i = BASE62.iter().position(|b| *b == c).unwrap();
            BASE62[(i + 1) % 62] as char
        })
        .collect();
    let checked = format!("{}{shifted}", &token[..16]);
    format!("{checked}{}", checksum(&checked))
}

/// Whether `word` appears in `text` with no letter, digit or `_` on either side.
pub(crate) fn contains_word(text: &str, word: &str) -> bool {
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !is_word(before) && !is_word(after)
    })
}
