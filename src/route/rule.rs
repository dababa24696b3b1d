//! One compiled rule: methods, template, query constraints, where the
//! repository name comes from, and the action the request needs.

use std::borrow::Cow;

use http::Method;

use super::capture::join_captures;
use super::path::{is_safe_repo_name, Seg};
use super::template::Template;
use super::{RepoFrom, RepoRef, RouteErrorKind, RuleSpec};
use crate::access::Action;

/// The methods a rule may name; anything else in config is a typo.
const KNOWN_METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
    Method::TRACE,
    Method::CONNECT,
];

/// Where a compiled rule reads the repository name.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Source {
    Path,
    None,
    Query(String),
    Form(String),
}

/// A rule ready to match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Rule {
    /// One bit per method the rule takes ([`method_bit`]); every bit set
    /// when the rule names none.
    methods: u16,
    template: Template,
    query: Vec<(String, String)>,
    source: Source,
    action: Action,
    git: bool,
}

/// The parts of a request a rule looks at.
pub(super) struct Request<'a, 'r> {
    /// The request method's [`method_bit`].
    pub method: u16,
    /// The raw request path; captures borrow from it.
    pub path: &'r str,
    /// The decoded segments the rules see (after `strip_prefix`).
    pub segments: &'a [Seg<'r>],
    pub query: Option<&'r str>,
}

/// What a matching rule decides.
pub(super) struct Decision<'t, 'r> {
    pub action: Action,
    pub repo: RepoRef<'t, 'r>,
    pub git: bool,
}

/// A query parameter looked up by name.
enum Lookup<'r> {
    Missing,
    One(Cow<'r, str>),
    /// Present more than once: servers disagree on which value wins, so a
    /// rule never relies on such a parameter.
    Many,
}

impl Rule {
    /// Compiles one rule; `git` marks git smart-HTTP rules.
    pub fn compile(spec: &RuleSpec, git: bool) -> Result<Rule, RouteErrorKind> {
        let mut methods = if spec.methods.is_empty() { u16::MAX } else { 0 };
        for name in &spec.methods {
            methods |= method_bit(&parse_method(name)?);
        }
        let template = Template::parse(&spec.path).map_err(RouteErrorKind::Template)?;
        let source = source(spec.repo_from.as_ref(), template.has_capture())?;
        let query = spec
            .query
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Rule {
            methods,
            template,
            query,
            source,
            action: spec.action,
            git,
        })
    }

    /// Whether the rule might match: a quick test on the method, the segment
    /// count and one literal, which [`Rule::apply`] repeats.
    #[inline]
    pub fn may_match(&self, req: &Request<'_, '_>) -> bool {
        self.methods & req.method != 0 && self.template.may_match(req.segments)
    }

    /// The decision if this rule matches the request.
    pub fn apply<'t, 'r>(&'t self, req: &Request<'_, 'r>) -> Option<Decision<'t, 'r>> {
        if self.methods & req.method == 0 {
            return None;
        }
        let captures = self.template.matches(req.segments)?;
        let query_ok = self.query.iter().all(|(key, want)| {
            matches!(lookup(req.query, key), Lookup::One(value) if value == want.as_str())
        });
        if !query_ok {
            return None;
        }

        let repo = match &self.source {
            Source::Path => RepoRef::Name(join_captures(captures.spans(), req.segments, req.path)),
            Source::None => RepoRef::None,
            Source::Query(key) => RepoRef::Name(safe_value(req.query, key)?),
            // The proxy reads the query value together with the body, so the
            // two cannot name different repositories.
            Source::Form(key) => match lookup(req.query, key) {
                Lookup::Missing => RepoRef::Form(key),
                Lookup::One(name) if is_safe_repo_name(&name) => RepoRef::Form(key),
                Lookup::One(_) | Lookup::Many => return None,
            },
        };
        Some(Decision {
            action: self.action,
            repo,
            git: self.git,
        })
    }
}

/// A repository name from the query. A missing, repeated or unsafe value
/// fails the rule, so the next rule is tried; it never turns into
/// `RepoRef::None`, whose meaning ("needs the action on every repository")
/// the rule's author did not ask for.
fn safe_value<'r>(query: Option<&'r str>, key: &str) -> Option<Cow<'r, str>> {
    match lookup(query, key) {
        Lookup::One(name) if is_safe_repo_name(&name) => Some(name),
        _ => None,
    }
}

fn lookup<'r>(query: Option<&'r str>, key: &str) -> Lookup<'r> {
    let mut found = Lookup::Missing;
    let pairs = form_urlencoded::parse(query.unwrap_or("").as_bytes());
    for (_, value) in pairs.filter(|(name, _)| name == key) {
        found = match found {
            Lookup::Missing => Lookup::One(value),
            Lookup::One(_) | Lookup::Many => return Lookup::Many,
        };
    }
    found
}

/// A bit standing for `method` in a rule's method set: one per method a
/// rule may name, and one shared by all others, which only rules that name
/// no method take.
pub(super) fn method_bit(method: &Method) -> u16 {
    match KNOWN_METHODS.iter().position(|known| known == method) {
        Some(i) => 1 << i,
        None => 1 << 15,
    }
}

fn parse_method(name: &str) -> Result<Method, RouteErrorKind> {
    let upper = name.to_ascii_uppercase();
    KNOWN_METHODS
        .into_iter()
        .find(|m| m.as_str() == upper)
        .ok_or_else(|| RouteErrorKind::UnknownMethod(name.to_owned()))
}

/// Resolves `repo_from` against the template: the default follows the
/// template, and a capture the rule would ignore (or a `path` source with no
/// capture) is a config mistake.
fn source(repo_from: Option<&RepoFrom>, has_capture: bool) -> Result<Source, RouteErrorKind> {
    let source = match repo_from {
        None if has_capture => Source::Path,
        None => Source::None,
        Some(RepoFrom::Path) => Source::Path,
        Some(RepoFrom::None) => Source::None,
        Some(RepoFrom::Query(key)) => Source::Query(key.clone()),
        Some(RepoFrom::Form(key)) => Source::Form(key.clone()),
    };
    match &source {
        Source::Path if !has_capture => Err(RouteErrorKind::PathWithoutCapture),
        Source::None | Source::Query(_) | Source::Form(_) if has_capture => {
            Err(RouteErrorKind::CaptureIgnored)
        }
        Source::Query(key) | Source::Form(key) if key.is_empty() => {
            Err(RouteErrorKind::EmptyRepoField)
        }
        _ => Ok(source),
    }
}
