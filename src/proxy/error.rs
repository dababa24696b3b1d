//! Every way a proxied request can fail, and the one place each becomes a
//! status code and a JSON body.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{Either, Full};
use serde::Serialize;

use crate::access::{Action, Denial};
use crate::cache::ResolveError;
use crate::metrics::Decision;
use crate::route::PathError;
use crate::token::TokenId;

use super::ProxyBody;

/// A refused or failed proxied request.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The path is unsafe to route (dot segments, double encoding, NUL...).
    #[error("request path refused: {0}")]
    BadPath(#[from] PathError),
    /// The request asks to be treated as another method; rules match the
    /// real method, so such a request could be classified wrongly.
    #[error("method override headers are not accepted")]
    MethodOverride,
    /// No route prefix matches.
    #[error("no route for this path")]
    NoRoute,
    /// A route matched but none of its rules allow this method and path.
    #[error("no rule of route {prefix} covers this method and path")]
    NoRule {
        /// The matched route's prefix.
        prefix: std::sync::Arc<str>,
    },
    /// No credential was sent.
    #[error("a repogate token is required")]
    MissingToken,
    /// A credential other than a repogate token was sent.
    #[error("only repogate tokens are accepted")]
    ForeignCredential,
    /// The token did not resolve.
    #[error(transparent)]
    Token(#[from] ResolveError),
    /// The decision refused the request.
    #[error("token {token} refused: {denial}")]
    Denied {
        /// The token's public id.
        token: TokenId,
        /// Why.
        denial: Denial,
        /// The repository, where the request named one.
        repo: Option<String>,
        /// The action the request needed.
        action: Action,
    },
    /// The request body could not be read while looking for the repository.
    #[error("request body could not be read: {0}")]
    Body(String),
    /// The request's path and query cannot be put on an upstream URI.
    #[error("request target cannot be forwarded: {0}")]
    Unforwardable(#[from] http::Error),
    /// The client stopped sending its request body mid-way.
    #[error("request body stalled; the client sent nothing for too long")]
    ClientStalled,
    /// The upstream could not be reached or failed before answering.
    #[error("upstream {upstream} failed: {source}")]
    Upstream {
        /// The upstream's name.
        upstream: String,
        /// What went wrong.
        source: super::forward::UpstreamFailure,
    },
    /// The upstream took longer than its `timeout` to answer.
    #[error("upstream {upstream} did not answer within {seconds}s")]
    UpstreamTimeout {
        /// The upstream's name.
        upstream: String,
        /// The configured timeout.
        seconds: u64,
    },
}

/// Whether a failed request came from git, which changes how it is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GitClient {
    /// Not a git route.
    No,
    /// A git route, from a client that does not say it is git.
    GitRoute,
    /// A git route, from git itself (`User-Agent: git/…`).
    Git,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    repo: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<Action>,
}

impl ProxyError {
    /// The status code and machine-readable code. One arm per error, no
    /// catch-all, so a new error forces a decision here.
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self {
            ProxyError::BadPath(_) => (StatusCode::BAD_REQUEST, "bad_path"),
            ProxyError::MethodOverride => (StatusCode::BAD_REQUEST, "method_override"),
            ProxyError::NoRoute => (StatusCode::NOT_FOUND, "no_route"),
            ProxyError::NoRule { .. } => (StatusCode::FORBIDDEN, "no_rule"),
            ProxyError::MissingToken => (StatusCode::UNAUTHORIZED, "missing_token"),
            ProxyError::ForeignCredential => (StatusCode::UNAUTHORIZED, "foreign_credential"),
            ProxyError::Token(ResolveError::Format(_)) => {
                (StatusCode::UNAUTHORIZED, "malformed_token")
            }
            ProxyError::Token(ResolveError::Unknown(_) | ResolveError::WrongSecret(_)) => {
                (StatusCode::UNAUTHORIZED, "invalid_token")
            }
            ProxyError::Token(ResolveError::Store(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
            }
            ProxyError::Denied { denial, .. } if denial.is_invalid_token() => {
                (StatusCode::UNAUTHORIZED, "invalid_token")
            }
            ProxyError::Denied { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            ProxyError::Body(_) => (StatusCode::BAD_REQUEST, "bad_body"),
            ProxyError::Unforwardable(_) => (StatusCode::BAD_REQUEST, "bad_path"),
            ProxyError::ClientStalled => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
            ProxyError::Upstream { .. } => (StatusCode::BAD_GATEWAY, "upstream_unavailable"),
            ProxyError::UpstreamTimeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
        }
    }

    /// How the request ended, for metrics; one arm per error.
    pub fn decision(&self) -> Decision {
        match self {
            ProxyError::MissingToken
            | ProxyError::ForeignCredential
            | ProxyError::Token(
                ResolveError::Format(_) | ResolveError::Unknown(_) | ResolveError::WrongSecret(_),
            )
            | ProxyError::Denied { .. } => Decision::Denied,
            ProxyError::BadPath(_)
            | ProxyError::MethodOverride
            | ProxyError::NoRoute
            | ProxyError::NoRule { .. }
            | ProxyError::Body(_)
            | ProxyError::ClientStalled
            | ProxyError::Unforwardable(_) => Decision::Refused,
            ProxyError::Token(ResolveError::Store(_))
            | ProxyError::Upstream { .. }
            | ProxyError::UpstreamTimeout { .. } => Decision::Failed,
        }
    }

    /// The text a client sees. It names token ids, never secrets; an unknown
    /// id and a wrong secret read the same so a caller cannot probe ids.
    fn client_message(&self) -> String {
        match self {
            ProxyError::Token(ResolveError::Unknown(_) | ResolveError::WrongSecret(_)) => {
                "token is not valid".to_owned()
            }
            ProxyError::Token(ResolveError::Store(_)) => "token store is unavailable".to_owned(),
            ProxyError::Upstream { upstream, .. } => format!("upstream {upstream} is unavailable"),
            other => other.to_string(),
        }
    }

    /// Builds the response: a JSON body, plus `WWW-Authenticate` on 401.
    /// For a git client on a git route the challenge is `Basic` (so git asks
    /// for credentials) and the body is plain text, which git shows to its
    /// user as `remote: …` where it would hide JSON.
    pub fn into_response(self, git: GitClient) -> Response<ProxyBody> {
        let (status, code) = self.status();
        let (repo, action) = match &self {
            ProxyError::Denied { repo, action, .. } => (repo.as_deref(), Some(*action)),
            _ => (None, None),
        };
        let body = ErrorBody {
            error: code,
            message: self.client_message(),
            repo,
            action,
        };
        let (bytes, content_type) = match git {
            GitClient::Git => (
                format!("repogate: {}\n", body.message).into_bytes(),
                "text/plain; charset=utf-8",
            ),
            GitClient::GitRoute | GitClient::No => (
                serde_json::to_vec(&body).expect("error bodies serialize"),
                "application/json",
            ),
        };

        let mut response = Response::new(Either::Right(Full::new(Bytes::from(bytes))));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if status == StatusCode::UNAUTHORIZED {
            let challenge = match git {
                GitClient::Git | GitClient::GitRoute => "Basic realm=\"repogate\"",
                GitClient::No => "Bearer realm=\"repogate\"",
            };
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}
