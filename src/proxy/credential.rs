//! Finding the repogate token in a request.
//!
//! Sources, first found wins: `Authorization: Bearer`, `Authorization: Basic`
//! (the password; or the user name when the password is empty, as some git
//! clients send a token), `PRIVATE-TOKEN`, `X-Gitlab-Token`. Anything else in
//! those places is a foreign credential: refused, never forwarded.

use base64::Engine as _;
use http::header::{HeaderMap, AUTHORIZATION};

/// What the request carried. Its `Debug` never shows the token.
#[derive(PartialEq, Eq)]
pub enum Credential {
    /// No credential at all.
    Missing,
    /// Something that claims to be a repogate token (checked later).
    Token(String),
    /// A credential that is not a repogate token, e.g. a GitLab PAT.
    Foreign,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::Missing => "Missing",
            Credential::Token(_) => "Token(<redacted>)",
            Credential::Foreign => "Foreign",
        })
    }
}

/// Extracts the credential from request headers.
pub fn extract(headers: &HeaderMap) -> Credential {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let Ok(value) = value.to_str() else {
            return Credential::Foreign;
        };
        return from_authorization(value);
    }
    for name in ["private-token", "x-gitlab-token"] {
        if let Some(value) = headers.get(name) {
            return match value.to_str() {
                Ok(v) => classify(v.trim().to_owned()),
                Err(_) => Credential::Foreign,
            };
        }
    }
    Credential::Missing
}

/// Query parameters GitLab reads credentials from (and prefers over the
/// header repogate injects). A request carrying one is refused.
const QUERY_CREDENTIALS: [&str; 3] = ["private_token", "access_token", "job_token"];

/// Whether the query string carries a credential of its own.
pub fn query_has_credential(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        form_urlencoded::parse(q.as_bytes())
            .any(|(k, _)| QUERY_CREDENTIALS.iter().any(|c| k.eq_ignore_ascii_case(c)))
    })
}

fn from_authorization(value: &str) -> Credential {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("bearer") {
        return classify(rest.trim().to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        return from_basic(rest.trim());
    }
    Credential::Foreign
}

fn from_basic(encoded: &str) -> Credential {
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
        return Credential::Foreign;
    };
    let Ok(text) = String::from_utf8(decoded) else {
        return Credential::Foreign;
    };
    let (user, password) = text.split_once(':').unwrap_or((&text, ""));
    let token = if password.is_empty() { user } else { password };
    classify(token.to_owned())
}

fn classify(token: String) -> Credential {
    if token.is_empty() {
        Credential::Missing
    } else if token.starts_with(crate::token::PREFIX) {
        Credential::Token(token)
    } else {
        Credential::Foreign
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    fn basic(user: &str, pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    }

    #[test]
    fn each_source_yields_the_token() {
        let t = Credential::Token("rgt_abc".into());
        assert_eq!(extract(&with("authorization", "Bearer rgt_abc")), t);
        assert_eq!(extract(&with("authorization", "bearer  rgt_abc ")), t);
        assert_eq!(extract(&with("authorization", &basic("git", "rgt_abc"))), t);
        assert_eq!(extract(&with("authorization", &basic("rgt_abc", ""))), t);
        assert_eq!(extract(&with("private-token", "rgt_abc")), t);
        assert_eq!(extract(&with("x-gitlab-token", "rgt_abc")), t);
    }

    #[test]
    fn authorization_wins_over_the_gitlab_headers() {
        let mut h = with("authorization", "Bearer rgt_first");
        h.insert("private-token", HeaderValue::from_static("rgt_second"));
        assert_eq!(extract(&h), Credential::Token("rgt_first".into()));
    }

    #[test]
    fn foreign_credentials_are_recognised_as_such() {
        assert_eq!(
            extract(&with("authorization", "Bearer glpat-123")),
            Credential::Foreign
        );
        assert_eq!(
            extract(&with("authorization", "token rgt_abc")),
            Credential::Foreign
        );
        assert_eq!(
            extract(&with("authorization", "Basic !!!")),
            Credential::Foreign
        );
        assert_eq!(
            extract(&with("private-token", "glpat-123")),
            Credential::Foreign
        );
        assert_eq!(
            extract(&with("authorization", &basic("me", "hunter2"))),
            Credential::Foreign
        );
    }

    #[test]
    fn credentials_in_the_query_string_are_recognised() {
        assert!(query_has_credential(Some("private_token=glpat-1")));
        assert!(query_has_credential(Some("a=1&ACCESS_TOKEN=x")));
        assert!(query_has_credential(Some("job_token=x")));
        assert!(!query_has_credential(Some("service=git-upload-pack")));
        assert!(!query_has_credential(None));
    }

    #[test]
    fn nothing_or_empty_is_missing() {
        assert_eq!(extract(&HeaderMap::new()), Credential::Missing);
        assert_eq!(
            extract(&with("authorization", "Bearer ")),
            Credential::Missing
        );
        assert_eq!(
            extract(&with("authorization", &basic("", ""))),
            Credential::Missing
        );
    }
}
