//! Config errors of the route table, each with where it sits in the config.
//!
//! `RouteTable::compile` runs whenever the config is loaded or reloaded, so
//! these errors reach a person: each names the route, the rule and the key.

use std::fmt;

use super::{PathError, TemplateError};

/// A route that does not compile, with where it is in the config.
///
/// Displays as `routes[2].rules[0].path: `{repo` is not closed`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct RouteError {
    /// Index of the route in `routes`.
    pub route: usize,
    /// Index of the rule in that route's `rules`, when a rule is at fault.
    pub rule: Option<usize>,
    /// What is wrong; `kind.field()` names the config key.
    pub kind: RouteErrorKind,
    /// `kind` as text, without the location, for callers that add their own.
    pub message: String,
}

impl RouteError {
    pub(super) fn new(route: usize, rule: Option<usize>, kind: RouteErrorKind) -> RouteError {
        let message = kind.to_string();
        RouteError {
            route,
            rule,
            kind,
            message,
        }
    }
}

/// What is wrong with a route or rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteErrorKind {
    /// The prefix is not a safe absolute path.
    #[error("`{prefix}` is not a usable prefix: {reason}")]
    BadPrefix {
        /// The prefix as written.
        prefix: String,
        /// Why it is refused.
        reason: PathError,
    },
    /// Two routes have the same prefix (`/x` and `/x/` count as the same).
    #[error("`{prefix}` covers the same paths as the prefix of routes[{first}]")]
    DuplicatePrefix {
        /// The prefix as written.
        prefix: String,
        /// Index of the route that has it first.
        first: usize,
    },
    /// A route with neither a preset nor rules.
    #[error("a route needs a `preset` or at least one rule")]
    NoRules,
    /// A method name that is not a standard HTTP method.
    #[error("`{0}` is not an HTTP method")]
    UnknownMethod(String),
    /// A template that does not parse.
    #[error(transparent)]
    Template(TemplateError),
    /// `repo_from = "path"` on a template without a capture.
    #[error("`path` needs a `{{repo}}` or `{{repo+}}` capture in the template")]
    PathWithoutCapture,
    /// A capture in the template while `repo_from` looks elsewhere.
    #[error("the template captures `{{repo}}` but repo_from takes the name from elsewhere; use `*` for a segment that is not the repository")]
    CaptureIgnored,
    /// An empty query or form field name.
    #[error("the query or form field name is empty")]
    EmptyRepoField,
}

impl RouteErrorKind {
    /// The config key the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            RouteErrorKind::BadPrefix { .. } | RouteErrorKind::DuplicatePrefix { .. } => "prefix",
            RouteErrorKind::NoRules => "rules",
            RouteErrorKind::UnknownMethod(_) => "methods",
            RouteErrorKind::Template(_) => "path",
            RouteErrorKind::PathWithoutCapture
            | RouteErrorKind::CaptureIgnored
            | RouteErrorKind::EmptyRepoField => "repo_from",
        }
    }
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "routes[{}]", self.route)?;
        if let Some(rule) = self.rule {
            write!(f, ".rules[{rule}]")?;
        }
        write!(f, ".{}: {}", self.kind.field(), self.message)
    }
}
