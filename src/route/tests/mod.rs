//! Tests of route matching, split by concern. Helpers shared by the files
//! below live here: rules are written as TOML, as in a config file.

use http::Method;
use serde::Deserialize;

use super::*;

mod config;
mod matching;
mod presets;
mod safety;

/// Rules written as they appear in config, under `[[rules]]`.
pub(super) fn rules(toml_text: &str) -> Vec<RuleSpec> {
    #[derive(Deserialize)]
    struct File {
        rules: Vec<RuleSpec>,
    }
    toml::from_str::<File>(toml_text)
        .expect("valid rules")
        .rules
}

pub(super) fn route<'a>(prefix: &'a str, rules: &'a [RuleSpec]) -> RouteSpec<'a> {
    RouteSpec {
        prefix,
        strip_prefix: false,
        preset: None,
        rules,
        upstream: 0,
    }
}

pub(super) fn compile(specs: &[RouteSpec<'_>]) -> RouteTable {
    RouteTable::compile(specs.iter().copied()).expect("routes compile")
}

pub(super) fn compile_error(specs: &[RouteSpec<'_>]) -> String {
    RouteTable::compile(specs.iter().copied())
        .expect_err("routes must not compile")
        .to_string()
}

pub(super) fn found<'t, 'r>(
    table: &'t RouteTable,
    method: Method,
    path: &'r str,
) -> Matched<'t, 'r> {
    match table.find(&method, path, None) {
        Match::Found(m) => m,
        other => panic!("{method} {path}: expected a match, got {other:?}"),
    }
}

pub(super) const ANY_READ: &str = r#"
[[rules]]
path = "/**"
action = "read"
"#;

/// One rule with `path` and `action = "read"`, plus `extra` TOML lines.
pub(super) fn read_rule(path: &str, extra: &str) -> Vec<RuleSpec> {
    rules(&format!(
        "[[rules]]\npath = \"{path}\"\naction = \"read\"\n{extra}"
    ))
}
