//! Route matching: the first step after the listener.
//!
//! Before any token is resolved, [`RouteTable::find`] turns a request's
//! method, path and query into the route that serves it (and so the upstream),
//! the repository it touches and the [`Action`] it needs. Token resolution and
//! the access decision come after; forwarding uses [`Matched::forward_path`].
//!
//! Matching uses no regexes. The path is first checked for anything an
//! upstream could read differently than we do (see [`PathError`]), then split
//! into segments that are percent-decoded one by one, so `group%2Fproject` is
//! one segment whose value is `group/project`. The longest prefix picks the
//! route; within it, explicit rules are tried in order, then the preset's, and
//! the first match wins. The path sent upstream is the one received, byte for
//! byte.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

use crate::access::Action;

mod capture;
mod error;
mod path;
mod presets;
mod rule;
mod template;

#[cfg(test)]
mod tests;

pub use error::{RouteError, RouteErrorKind};
pub use path::{is_safe_repo_name, PathError, MAX_SEGMENTS};
pub use template::TemplateError;

use path::{Seg, Segments};
use rule::{Request, Rule};

/// A built-in rule set for a well-known upstream API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// GitLab REST API v4 under `/api/v4/projects/{repo}/…`, plus git over HTTP.
    Gitlab,
    /// Bitbucket Cloud API under `/2.0/repositories/{workspace}/{slug}/…`.
    BitbucketCloud,
    /// Bitbucket Server / Data Center under
    /// `/rest/api/1.0/projects/{key}/repos/{slug}/…` (and `/rest/api/latest/…`).
    BitbucketServer,
    /// Git smart HTTP: `info/refs`, `git-upload-pack`, `git-receive-pack`.
    GitHttp,
    /// The SCA service's dependency upload and finish calls.
    ScaScan,
}

impl Preset {
    /// The preset's name as written in config.
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Gitlab => "gitlab",
            Preset::BitbucketCloud => "bitbucket_cloud",
            Preset::BitbucketServer => "bitbucket_server",
            Preset::GitHttp => "git_http",
            Preset::ScaScan => "sca_scan",
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[routes.rules]]` entry as written in config.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// HTTP methods the rule applies to, any case (`"get"` is `GET`).
    /// Default: empty, which means every method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Path template, written decoded: literal segments, `{repo}` (one
    /// segment), `{repo+}` (one or more), `*` (one), `**` (zero or more); a
    /// capture or `*` may carry a literal suffix (`{repo+}.git`). Required.
    pub path: String,
    /// The action a matching request needs. Required.
    pub action: Action,
    /// Where the repository name comes from. Default: `path` when the
    /// template captures `{repo}` or `{repo+}`, else `none` (the rule then
    /// passes only tokens that hold the action on every repository).
    #[serde(default)]
    pub repo_from: Option<RepoFrom>,
    /// Query parameters that must be present once with exactly these values.
    /// Default: none.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
}

/// Where a rule takes the repository name from.
///
/// In TOML: `"path"`, `"none"`, `{ query = "repositoryName" }` or
/// `{ form = "repositoryName" }`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepoFrom {
    /// The template's captures, joined with `/`.
    Path,
    /// No repository: the request concerns none in particular.
    None,
    /// This query parameter; a request without it (or with it twice) does not
    /// match the rule.
    Query(String),
    /// This form field of a POST body, or the query parameter of that name
    /// when the query has it. The proxy reads the body field.
    Form(String),
}

/// One route as the config module hands it over for compilation.
#[derive(Clone, Copy, Debug)]
pub struct RouteSpec<'a> {
    /// Path prefix the route serves, starting with `/`. It is compared whole
    /// segment by decoded segment, so `/api` serves `/api/x` but not `/apix`.
    /// Required.
    pub prefix: &'a str,
    /// Remove the prefix before matching rules and before forwarding.
    /// Default (in config): false.
    pub strip_prefix: bool,
    /// Built-in rules tried after `rules`. Default: none.
    pub preset: Option<Preset>,
    /// Explicit rules, tried in order before the preset's. Default: none.
    pub rules: &'a [RuleSpec],
    /// Index of the upstream in the config's `upstreams` list.
    pub upstream: usize,
}

/// Every route of one config, compiled. Immutable; share it in an `Arc`.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// In config order, so indexes agree with error messages.
    routes: Vec<Route>,
    /// Indexes into `routes`, longest prefix first.
    by_length: Vec<usize>,
}

/// One compiled route.
pub struct Route {
    /// The path prefix this route serves; shared, so metrics and logs can
    /// label a request with it without copying.
    pub prefix: Arc<str>,
    /// Index of the upstream in the config's `upstreams` list.
    pub upstream: usize,
    /// Whether the prefix is removed before matching and forwarding.
    pub strip_prefix: bool,
    /// The built-in rule set, if any.
    pub preset: Option<Preset>,
    /// The prefix's decoded segments, which is what is compared.
    prefix_segments: Vec<String>,
    rules: Vec<Rule>,
    preset_rules: &'static [Rule],
}

/// The outcome of [`RouteTable::find`].
#[derive(Debug)]
pub enum Match<'t, 'r> {
    /// The path is unsafe to match or forward; answer 400.
    BadPath(PathError),
    /// No route's prefix covers the path; answer 404.
    NoRoute,
    /// A route covers the path but none of its rules matches; refuse.
    NoRule {
        /// The route whose prefix matched.
        route: &'t Route,
    },
    /// A rule matched.
    Found(Matched<'t, 'r>),
}

/// A request that a rule matched.
#[derive(Clone, Debug)]
pub struct Matched<'t, 'r> {
    /// The route that serves the request.
    pub route: &'t Route,
    /// The action the request needs.
    pub action: Action,
    /// The repository the request touches.
    pub repo: RepoRef<'t, 'r>,
    /// The path to send upstream, exactly as received (percent-encoding
    /// untouched), after `strip_prefix`.
    pub forward_path: &'r str,
    /// True for git smart-HTTP rules (info/refs, upload-pack, receive-pack):
    /// the proxy answers a missing token with `WWW-Authenticate: Basic` so git
    /// prompts.
    pub git: bool,
}

/// The repository a matched request touches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepoRef<'t, 'r> {
    /// A name taken from the path (decoded) or the query.
    Name(Cow<'r, str>),
    /// The name is in this form field of the request body; the proxy reads it.
    Form(&'t str),
    /// The rule has no repository source.
    None,
}

impl RepoRef<'_, '_> {
    /// The name, when it is already known.
    pub fn name(&self) -> Option<&str> {
        match self {
            RepoRef::Name(name) => Some(name),
            RepoRef::Form(_) | RepoRef::None => None,
        }
    }
}

impl RouteTable {
    /// Compiles the routes of one config, in config order.
    pub fn compile<'a>(
        specs: impl IntoIterator<Item = RouteSpec<'a>>,
    ) -> Result<RouteTable, RouteError> {
        let mut routes: Vec<Route> = Vec::new();
        for (index, spec) in specs.into_iter().enumerate() {
            let route = Route::compile(index, &spec)?;
            let same = |r: &Route| r.prefix_segments == route.prefix_segments;
            if let Some(first) = routes.iter().position(same) {
                let prefix = spec.prefix.to_owned();
                let kind = RouteErrorKind::DuplicatePrefix { prefix, first };
                return Err(RouteError::new(index, None, kind));
            }
            routes.push(route);
        }

        let mut by_length: Vec<usize> = (0..routes.len()).collect();
        by_length.sort_by_key(|&i| Reverse(routes[i].prefix_segments.len()));
        Ok(RouteTable { routes, by_length })
    }

    /// Finds the route, action and repository of a request.
    ///
    /// `path` is the raw request path and `query` the raw query string
    /// without `?`. Allocates only when a segment or query value needs
    /// percent-decoding or captures must be joined around a gap.
    pub fn find<'t, 'r>(
        &'t self,
        method: &http::Method,
        path: &'r str,
        query: Option<&'r str>,
    ) -> Match<'t, 'r> {
        // The whole path is checked, prefix included, before any comparison:
        // `/hooks/../admin` must not reach the `/hooks/` route at all.
        let segments = match Segments::parse(path) {
            Ok(segments) => segments,
            Err(err) => return Match::BadPath(err),
        };
        let Some(route) = self.route_for(segments.all()) else {
            return Match::NoRoute;
        };

        let (forward_path, segments) = route.strip(path, segments.all());
        let request = Request {
            method: rule::method_bit(method),
            path,
            segments,
            query,
        };
        let found = route
            .rules()
            .filter(|rule| rule.may_match(&request))
            .find_map(|rule| rule.apply(&request));
        found.map_or(Match::NoRule { route }, |d| {
            let (action, repo, git) = (d.action, d.repo, d.git);
            Match::Found(Matched {
                route,
                action,
                repo,
                forward_path,
                git,
            })
        })
    }

    /// Every route, in config order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    fn route_for(&self, segments: &[Seg<'_>]) -> Option<&Route> {
        self.by_length
            .iter()
            .map(|&i| &self.routes[i])
            .find(|route| route.covers(segments))
    }
}

impl Route {
    fn compile(index: usize, spec: &RouteSpec<'_>) -> Result<Route, RouteError> {
        let error = |rule, kind| RouteError::new(index, rule, kind);
        let prefix_segments = match Segments::parse(spec.prefix) {
            Ok(segments) => segments.all().iter().map(|s| s.value.to_string()).collect(),
            Err(reason) => {
                let prefix = spec.prefix.to_owned();
                return Err(error(None, RouteErrorKind::BadPrefix { prefix, reason }));
            }
        };
        if spec.rules.is_empty() && spec.preset.is_none() {
            return Err(error(None, RouteErrorKind::NoRules));
        }

        let rules = spec
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| Rule::compile(rule, false).map_err(|kind| error(Some(i), kind)));
        Ok(Route {
            prefix: Arc::from(spec.prefix),
            upstream: spec.upstream,
            strip_prefix: spec.strip_prefix,
            preset: spec.preset,
            prefix_segments,
            rules: rules.collect::<Result<_, _>>()?,
            preset_rules: spec.preset.map_or(&[], presets::rules),
        })
    }

    /// Whether the prefix covers the path, compared segment by decoded
    /// segment like the rules are, so `/hook%73/x` cannot slip past a
    /// `/hooks/` route to a laxer one. `/api` and `/api/` both cover `/api`
    /// and `/api/x`, never `/apix`.
    fn covers(&self, segments: &[Seg<'_>]) -> bool {
        segments.len() >= self.prefix_segments.len()
            && self
                .prefix_segments
                .iter()
                .zip(segments)
                .all(|(p, s)| *p == *s.value)
    }

    /// The path the upstream gets (raw, always starting with `/`) and the
    /// segments the rules see: without the prefix when stripping.
    fn strip<'s, 'r>(&self, path: &'r str, segments: &'s [Seg<'r>]) -> (&'r str, &'s [Seg<'r>]) {
        if !self.strip_prefix {
            return (path, segments);
        }
        let rest = &segments[self.prefix_segments.len()..];
        let forward = match rest.first() {
            // Every segment follows a `/`, so this keeps the leading slash.
            Some(first) => &path[first.start - 1..],
            None => "/",
        };
        (forward, rest)
    }

    fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().chain(self.preset_rules)
    }
}

// By hand so that logs and test failures show the route, not a preset's
// hundred compiled rules.
impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("prefix", &self.prefix)
            .field("upstream", &self.upstream)
            .field("strip_prefix", &self.strip_prefix)
            .field("preset", &self.preset)
            .field("rules", &self.rules.len())
            .finish()
    }
}
