//! Admin API failures and the one place they become status codes.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

use super::mint::MintError;
use crate::registry::RegistryError;
use crate::store::StoreError;

/// A failed admin request.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The body is not the JSON this route takes.
    #[error("bad JSON body: {0}")]
    BadJson(#[from] serde_json::Error),
    /// A parameter is not acceptable.
    #[error("{0}")]
    BadRequest(String),
    /// The body is larger than `[admin] max_body_bytes`.
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    /// The body could not be read.
    #[error("request body could not be read: {0}")]
    Body(String),
    /// No session, or an expired or ended one.
    #[error("an admin session is required; log in at POST /admin/v1/login")]
    NoSession,
    /// Wrong user or password.
    #[error("wrong user or password")]
    WrongPassword,
    /// Too many failed logins from this address.
    #[error("too many failed logins; retry in {} ms", .0.as_millis())]
    TooManyAttempts(Duration),
    /// No such route, token or repository.
    #[error("{0} not found")]
    NotFound(String),
    /// The route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Minting refused.
    #[error(transparent)]
    Mint(#[from] MintError),
    /// A registry change refused.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Password checking failed internally.
    #[error(transparent)]
    Password(#[from] crate::password::PasswordError),
    /// The OS random source failed.
    #[error("random source failed: {0}")]
    Random(#[from] getrandom::Error),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
}

impl AdminError {
    /// Status and machine-readable code; one arm per error.
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self {
            AdminError::BadJson(_) => (StatusCode::BAD_REQUEST, "bad_json"),
            AdminError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            AdminError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            AdminError::Body(_) => (StatusCode::BAD_REQUEST, "bad_body"),
            AdminError::NoSession => (StatusCode::UNAUTHORIZED, "no_session"),
            AdminError::WrongPassword => (StatusCode::UNAUTHORIZED, "wrong_password"),
            AdminError::TooManyAttempts(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            AdminError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AdminError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            AdminError::Mint(MintError::Store(_) | MintError::Random(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
            AdminError::Mint(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            AdminError::Registry(RegistryError::NotFound(_)) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            AdminError::Registry(RegistryError::Exists(_) | RegistryError::AliasTaken { .. }) => {
                (StatusCode::CONFLICT, "conflict")
            }
            AdminError::Registry(RegistryError::Invalid(_)) => {
                (StatusCode::BAD_REQUEST, "bad_request")
            }
            AdminError::Registry(RegistryError::Store(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
            AdminError::Store(_) | AdminError::Password(_) | AdminError::Random(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }

    /// The JSON error response.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let (status, code) = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "admin request failed");
        }
        let message = match status.is_server_error() {
            true => "internal error; see the gateway log".to_owned(),
            false => self.to_string(),
        };
        let mut response = json_response(
            status,
            &ErrorBody {
                error: code,
                message,
            },
        );
        match self {
            AdminError::TooManyAttempts(wait) => {
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            AdminError::NoSession | AdminError::WrongPassword => {
                let challenge = HeaderValue::from_static("Bearer realm=\"repogate-admin\"");
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, challenge);
            }
            _ => {}
        }
        response
    }
}

/// A JSON response with `status`.
pub fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value).expect("admin responses serialize");
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
