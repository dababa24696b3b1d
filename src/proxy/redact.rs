//! The one place request data is made safe to log: credential headers lose
//! their values and query strings are dropped (tokens travel in both).

use std::fmt;

use http::header::{HeaderMap, HeaderName};
use http::Uri;

/// Headers whose values may be a credential.
fn is_secret(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "authorization"
            | "proxy-authorization"
            | "private-token"
            | "x-gitlab-token"
            | "cookie"
            | "set-cookie"
    )
}

/// Headers for a log line, credential values replaced by `<redacted>`.
pub struct Headers<'a>(pub &'a HeaderMap);

impl fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in self.0 {
            if is_secret(name) || value.is_sensitive() {
                map.entry(&name.as_str(), &"<redacted>");
            } else {
                map.entry(&name.as_str(), &String::from_utf8_lossy(value.as_bytes()));
            }
        }
        map.finish()
    }
}

/// The path of a request, without its query string.
pub fn path(uri: &Uri) -> &str {
    uri.path()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn credential_headers_and_sensitive_values_are_redacted() {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_static("Bearer rgt_secret"),
        );
        h.insert("private-token", HeaderValue::from_static("rgt_secret2"));
        h.insert("cookie", HeaderValue::from_static("session=abc"));
        let mut injected = HeaderValue::from_static("glpat-real");
        injected.set_sensitive(true);
        h.insert("x-custom-credential", injected);
        h.insert("accept", HeaderValue::from_static("text/plain"));
        let shown = format!("{:?}", Headers(&h));
        for secret in ["rgt_secret", "rgt_secret2", "session=abc", "glpat-real"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(shown.contains("text/plain"));
    }

    #[test]
    fn the_query_string_is_dropped() {
        let uri: Uri = "/a/b?private_token=rgt_x&x=1".parse().unwrap();
        assert_eq!(path(&uri), "/a/b");
    }
}
