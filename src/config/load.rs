//! Loading and validating the config file, with errors that point at the line.
//!
//! One function serves start-up, `check-config` and every reload, so the three
//! can never disagree about what a valid file is. Deserialization errors come
//! with toml's own position; later checks (cross references, secrets, route
//! templates) name a key path, which is located in the text afterwards.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use http::{HeaderName, HeaderValue, Uri};

use super::Config;
use crate::registry::check_repo_name;
use crate::route::{RouteSpec, RouteTable};

/// Why a config file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read config: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid; the position and key say where.
    #[error("{}:{line}:{column}: {}{message}", file.display(), key_prefix(key))]
    Invalid {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Dotted key path such as `routes[1].upstream`; empty for syntax errors.
        key: String,
        /// What is wrong.
        message: String,
    },
}

fn key_prefix(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    }
}

/// A step of a key path.
#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    Index(usize),
}

/// A validation failure before it is located in the text.
struct Problem {
    key: Vec<Seg>,
    message: String,
}

fn problem(key: &[Seg], message: impl Into<String>) -> Problem {
    Problem {
        key: key.to_vec(),
        message: message.into(),
    }
}

fn k(name: &str) -> Seg {
    Seg::Key(name.to_owned())
}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    load_str(&text, path)
}

/// Validates config text as if it had been read from `origin` (relative paths
/// and `${file:…}` references resolve next to `origin`).
pub fn load_str(text: &str, origin: &Path) -> Result<Config, ConfigError> {
    let mut config: Config = serde_path_to_error::deserialize(toml::Deserializer::new(text))
        .map_err(|e| {
            let key = e.path().iter().filter_map(path_seg).collect::<Vec<_>>();
            let offset = e
                .inner()
                .span()
                .map(|s| s.start)
                .or_else(|| locate(text, &key));
            invalid(text, origin, &key, offset, e.inner().message().to_owned())
        })?;

    config.source = origin.to_owned();
    let dir = origin
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    validate(&mut config, dir)
        .map_err(|p| invalid(text, origin, &p.key, locate(text, &p.key), p.message))?;
    Ok(config)
}

fn path_seg(seg: &serde_path_to_error::Segment) -> Option<Seg> {
    use serde_path_to_error::Segment;
    match seg {
        Segment::Seq { index } => Some(Seg::Index(*index)),
        Segment::Map { key } => Some(Seg::Key(key.clone())),
        Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
        Segment::Unknown => None,
    }
}

fn invalid(
    text: &str,
    file: &Path,
    key: &[Seg],
    offset: Option<usize>,
    message: String,
) -> ConfigError {
    let (line, column) = line_col(text, offset.unwrap_or(0));
    ConfigError::Invalid {
        file: file.to_owned(),
        line,
        column,
        key: key_string(key),
        message,
    }
}

fn key_string(key: &[Seg]) -> String {
    let mut out = String::new();
    for seg in key {
        match seg {
            Seg::Key(name) if out.is_empty() => out.push_str(name),
            Seg::Key(name) => write!(out, ".{name}").expect("writing to a String"),
            Seg::Index(i) => write!(out, "[{i}]").expect("writing to a String"),
        }
    }
    out
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Finds where a key path is written, as precisely as the document allows.
fn locate(text: &str, key: &[Seg]) -> Option<usize> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut item = doc.as_item();
    let mut best = None;
    for seg in key {
        let next = match seg {
            Seg::Key(name) => {
                let (key, value) = item.as_table_like()?.get_key_value(name)?;
                best = key
                    .span()
                    .or_else(|| value.span())
                    .map(|s| s.start)
                    .or(best);
                value
            }
            Seg::Index(i) => {
                let value = item.get(*i)?;
                best = value.span().map(|s| s.start).or(best);
                value
            }
        };
        item = next;
    }
    best
}

fn validate(config: &mut Config, dir: &Path) -> Result<(), Problem> {
    if config.server.listen == config.admin.listen && config.server.listen.port() != 0 {
        return Err(problem(
            &[k("admin"), k("listen")],
            "admin.listen is the same address as server.listen",
        ));
    }
    if let Some(tls) = &mut config.server.tls {
        tls.cert = existing_file(dir, &tls.cert, &[k("server"), k("tls"), k("cert")])?;
        tls.key = existing_file(dir, &tls.key, &[k("server"), k("tls"), k("key")])?;
    }
    positive(
        config.server.max_connections,
        &[k("server"), k("max_connections")],
    )?;
    positive(config.server.max_headers, &[k("server"), k("max_headers")])?;
    positive(
        config.admin.login_concurrency,
        &[k("admin"), k("login_concurrency")],
    )?;
    positive(config.cache.max_entries, &[k("cache"), k("max_entries")])?;
    validate_admin_users(config, dir)?;

    config.store.path = dir.join(&config.store.path);
    tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .map_err(|e| problem(&[k("log"), k("level")], format!("not a log filter: {e}")))?;

    validate_upstreams(config, dir)?;
    validate_routes(config)?;
    validate_repositories(config)
}

fn positive(n: usize, key: &[Seg]) -> Result<(), Problem> {
    if n == 0 {
        return Err(problem(key, "must be at least 1"));
    }
    Ok(())
}

fn existing_file(dir: &Path, path: &Path, key: &[Seg]) -> Result<PathBuf, Problem> {
    let full = dir.join(path);
    if !full.is_file() {
        return Err(problem(
            key,
            format!("{} is not a readable file", full.display()),
        ));
    }
    Ok(full)
}

fn validate_admin_users(config: &mut Config, dir: &Path) -> Result<(), Problem> {
    let mut seen = HashSet::new();
    for (i, user) in config.admin.users.iter_mut().enumerate() {
        let at = [k("admin"), k("users"), Seg::Index(i)];
        if user.name.trim().is_empty() {
            return Err(problem(
                &[&at[..], &[k("name")]].concat(),
                "admin user name is empty",
            ));
        }
        if !seen.insert(user.name.clone()) {
            let msg = format!("admin user {} is listed twice", user.name);
            return Err(problem(&[&at[..], &[k("name")]].concat(), msg));
        }
        let key = [&at[..], &[k("password_hash")]].concat();
        user.password_hash
            .resolve(dir)
            .map_err(|m| problem(&key, m))?;
        crate::password::check_phc(user.password_hash.expose())
            .map_err(|e| problem(&key, format!("{e}; make one with `repogate hash-password`")))?;
    }
    Ok(())
}

fn validate_upstreams(config: &mut Config, dir: &Path) -> Result<(), Problem> {
    let mut seen = HashSet::new();
    for (i, up) in config.upstreams.iter_mut().enumerate() {
        let at = |field: &str| vec![k("upstreams"), Seg::Index(i), k(field)];
        if up.name.is_empty() || !seen.insert(up.name.clone()) {
            return Err(problem(
                &at("name"),
                format!("upstream name `{}` is empty or used twice", up.name),
            ));
        }
        parse_base_url(&up.url).map_err(|m| problem(&at("url"), m))?;
        for (name, value) in up.headers.iter_mut() {
            let key = [at("headers"), vec![k(name)]].concat();
            check_header(name, value, dir).map_err(|m| problem(&key, m))?;
        }
        if up.connect_timeout.is_zero() || up.timeout.is_zero() {
            return Err(problem(&at("timeout"), "timeouts must be longer than zero"));
        }
        if let Some(ca) = &up.ca_file {
            up.ca_file = Some(existing_file(dir, ca, &at("ca_file"))?);
        }
    }
    Ok(())
}

fn check_header(name: &str, value: &mut super::SecretString, dir: &Path) -> Result<(), String> {
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a header name"))?;
    if crate::proxy::headers::is_hop_by_hop(&parsed) {
        return Err(format!(
            "`{name}` is a hop-by-hop header and cannot be injected"
        ));
    }
    value.resolve(dir)?;
    HeaderValue::from_str(value.expose())
        .map_err(|_| format!("value of header `{name}` has characters a header cannot carry"))?;
    Ok(())
}

/// Parses an upstream base URL: `http` or `https`, with a host, without
/// credentials, query or fragment. Shared with the forwarder so both agree.
/// The messages never repeat the URL: a rejected one may hold a secret.
pub fn parse_base_url(url: &str) -> Result<Uri, String> {
    // Checked before parsing, so not even a malformed URL's credentials are
    // echoed; they would go upstream in `Host` and show in `check-config`.
    if url.contains('@') {
        return Err(
            "credentials (`user:password@`) are not allowed in a URL; put the upstream's credential in `headers`".to_owned(),
        );
    }
    let uri: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err("must start with http:// or https://".to_owned()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("has no host".to_owned());
    }
    if uri.query().is_some() || url.contains('#') {
        return Err("must not have a query or fragment".to_owned());
    }
    Ok(uri)
}

fn validate_routes(config: &Config) -> Result<(), Problem> {
    let mut specs = Vec::with_capacity(config.routes.len());
    for (i, route) in config.routes.iter().enumerate() {
        let upstream = config
            .upstreams
            .iter()
            .position(|u| u.name == route.upstream)
            .ok_or_else(|| {
                let known: Vec<_> = config.upstreams.iter().map(|u| u.name.as_str()).collect();
                let msg = format!(
                    "no upstream named `{}` (known: {})",
                    route.upstream,
                    known.join(", ")
                );
                problem(&[k("routes"), Seg::Index(i), k("upstream")], msg)
            })?;
        specs.push(route_spec(route, upstream));
    }
    RouteTable::compile(specs).map(drop).map_err(|e| {
        let mut key = vec![k("routes"), Seg::Index(e.route)];
        if let Some(rule) = e.rule {
            key.extend([k("rules"), Seg::Index(rule)]);
        }
        key.push(k(e.kind.field()));
        problem(&key, e.kind.to_string())
    })
}

/// The route table's view of one `[[routes]]` entry.
pub(crate) fn route_spec(route: &super::Route, upstream: usize) -> RouteSpec<'_> {
    RouteSpec {
        prefix: &route.prefix,
        strip_prefix: route.strip_prefix,
        preset: route.preset,
        rules: &route.rules,
        upstream,
    }
}

fn validate_repositories(config: &Config) -> Result<(), Problem> {
    let mut names = HashSet::new();
    for (i, repo) in config.repositories.iter().enumerate() {
        let at = |field: &str| vec![k("repositories"), Seg::Index(i), k(field)];
        check_repo_name(&repo.name).map_err(|m| problem(&at("name"), m))?;
        if !names.insert(repo.name.as_str()) {
            return Err(problem(
                &at("name"),
                format!("repository `{}` is listed twice", repo.name),
            ));
        }
        for alias in &repo.aliases {
            check_repo_name(alias).map_err(|m| problem(&at("aliases"), m))?;
            if !names.insert(alias.as_str()) {
                return Err(problem(
                    &at("aliases"),
                    format!("alias `{alias}` is already a repository name or alias"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Fragments that make random text look enough like a config file to get
    /// past the TOML parser and into validation.
    fn fragments() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "[server]\n",
            "[admin]\n",
            "[account]\n",
            "[[upstreams]]\n",
            "[[routes]]\n",
            "[[routes.rules]]\n",
            "[[repositories]]\n",
            "[[admin.users]]\n",
            "listen = \"127.0.0.1:1\"\n",
            "name = \"up\"\n",
            "url = \"http://x\"\n",
            "prefix = \"/\"\n",
            "upstream = \"up\"\n",
            "preset = \"gitlab\"\n",
            "path = \"/{repo}/**\"\n",
            "action = \"read\"\n",
            "plan = \"premium\"\n",
            "default_role = \"viewer\"\n",
            "headers = { \"A\" = \"${env:X}\" }\n",
            "timeout = \"1s\"\n",
            "methods = [\"GET\"]\n",
            "aliases = [\"1\"]\n",
            "password_hash = \"x\"\n",
            "= \"\n",
            "[\n",
            "\"\n",
            "{repo+}",
            "%00",
        ]);
        prop::collection::vec(pieces, 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn loading_arbitrary_text_never_panics(text in ".{0,400}") {
            let _ = load_str(&text, Path::new("/nonexistent/fuzz.toml"));
        }

        #[test]
        fn loading_config_shaped_text_never_panics(text in fragments()) {
            let _ = load_str(&text, Path::new("/nonexistent/fuzz.toml"));
        }
    }
}
