//! Reading a repository name from a form field, for rules with
//! `repo_from = { form = … }` (the SCA upload call).

use http::header;
use http::request::Parts;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Body, Incoming};

use super::error::ProxyError;
use super::RequestBody;

/// Largest url-encoded form body read to find a repository name.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Finds the repository named by form field `field`, in the query string and
/// in a url-encoded body (read whole, up to 64 KiB, then forwarded as read).
/// The two may not disagree, nor may the body name it twice. Any other
/// non-empty body (a multipart upload) is streamed untouched and the
/// repository is unknown: it might name another one, so only tokens holding
/// the action on every repository (admin tokens) pass.
pub(super) async fn repo_from_form(
    parts: &Parts,
    body: Incoming,
    field: &str,
) -> Result<(Option<String>, RequestBody), ProxyError> {
    let in_query = parts
        .uri
        .query()
        .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == field))
        .map(|(_, v)| v.into_owned());
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.get(..33))
        .is_some_and(|v| v.eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !is_form {
        let value = if body.is_end_stream() { in_query } else { None };
        return Ok((value, Either::Left(body)));
    }

    let bytes = Limited::new(body, MAX_FORM_BYTES)
        .collect()
        .await
        .map_err(|e| ProxyError::Body(e.to_string()))?
        .to_bytes();
    let in_body: Vec<_> = form_urlencoded::parse(&bytes)
        .filter(|(k, _)| k == field)
        .map(|(_, v)| v)
        .collect();
    let conflict = || {
        ProxyError::Body(format!(
            "form field {field} must name one repository, once, in the query or the body"
        ))
    };
    let name = match (in_query, in_body.as_slice()) {
        (query, []) => query,
        (None, [only]) => Some(only.to_string()),
        (Some(query), [only]) if query == *only => Some(query),
        _ => return Err(conflict()),
    };
    if name
        .as_deref()
        .is_some_and(|n| !crate::route::is_safe_repo_name(n))
    {
        return Err(conflict());
    }
    Ok((name, Either::Right(Full::new(bytes))))
}
