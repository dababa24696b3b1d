//! Every way a proxied request can fail, and the one place each becomes a
//! status code and a JSON body.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{Either, Full};
use serde::Serialize;

use crate::access::{Action, Denial};
use crate::cache::ResolveError;
use crate::route::PathError;
use crate::token::TokenId;

use super::ProxyBody;

/// A refused or failed proxied request.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The path is unsafe to route (dot segments, double encoding, NUL...).
    #[error("request path refused: {0}")]
    BadPath(#[from] PathError),
    /// No route prefix matches.
    #[error("no route for this path")]
    NoRoute,
    /// A route matched but none of its rules allow this method and path.
    #[error("no rule of route {prefix} covers this method and path")]
    NoRule {
        /// The matched route's prefix.
        prefix: String,
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
    /// The upstream could not be reached or failed before answering.
    #[error("upstream {upstream} failed: {source}")]
    Upstream {
        /// The upstream's name.
        upstream: String,
        /// What went wrong.
        source: hyper_util::client::legacy::Error,
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
            ProxyError::Upstream { .. } => (StatusCode::BAD_GATEWAY, "upstream_unavailable"),
            ProxyError::UpstreamTimeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
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

    /// Builds the response: JSON body, plus `WWW-Authenticate` on 401
    /// (`Basic` on git routes, so a git client asks for credentials).
    pub fn into_response(self, basic_challenge: bool) -> Response<ProxyBody> {
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
        let json = serde_json::to_vec(&body).expect("error bodies serialize");

        let mut response = Response::new(Either::Right(Full::new(Bytes::from(json))));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            let challenge = match basic_challenge {
                true => "Basic realm=\"repogate\"",
                false => "Bearer realm=\"repogate\"",
            };
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}
