//! Config-facing behaviour: compile errors and how rules deserialise.

use serde::Deserialize;

use super::super::*;
use super::{compile_error, read_rule, route, rules, ANY_READ};

#[test]
fn compile_errors_name_the_route_rule_and_key() {
    let ok = rules(ANY_READ);
    let mut unclosed = read_rule("/x", "");
    unclosed.extend(read_rule("/{repo", ""));
    let method = read_rule("/x", "methods = [\"FETCH\"]");
    let no_capture = read_rule("/x", "repo_from = \"path\"");
    let ignored = read_rule("/{repo}", "repo_from = \"none\"");

    let error = |specs: &[RouteSpec<'_>]| compile_error(specs);
    assert_eq!(
        error(&[route("/", &ok), route("/a", &unclosed)]),
        "routes[1].rules[1].path: `{repo` is not closed"
    );
    assert_eq!(
        error(&[route("/", &method)]),
        "routes[0].rules[0].methods: `FETCH` is not an HTTP method"
    );
    assert_eq!(
        error(&[route("/x/", &ok), route("/x/", &ok)]),
        "routes[1].prefix: `/x/` covers the same paths as the prefix of routes[0]"
    );
    assert_eq!(
        error(&[route("/", &[])]),
        "routes[0].rules: a route needs a `preset` or at least one rule"
    );
    assert_eq!(
        error(&[route("hooks/", &ok)]),
        "routes[0].prefix: `hooks/` is not a usable prefix: the path does not start with `/`"
    );
    assert_eq!(
        error(&[route("/", &no_capture)]),
        "routes[0].rules[0].repo_from: `path` needs a `{repo}` or `{repo+}` capture in the template"
    );
    assert_eq!(
        error(&[route("/x", &ok), route("/x/", &ok)]),
        "routes[1].prefix: `/x/` covers the same paths as the prefix of routes[0]"
    );
    assert!(error(&[route("/", &ignored)]).starts_with("routes[0].rules[0].repo_from: "));
}

#[test]
fn compile_errors_carry_a_typed_kind_and_the_bare_message() {
    let method = read_rule("/x", "methods = [\"get\", \"Fetch\"]");
    let err = RouteTable::compile([route("/", &method)]).expect_err("unknown method");

    assert_eq!((err.route, err.rule), (0, Some(0)));
    assert_eq!(err.kind, RouteErrorKind::UnknownMethod("Fetch".to_owned()));
    assert_eq!(err.kind.field(), "methods");
    assert_eq!(err.message, "`Fetch` is not an HTTP method");
}

#[test]
fn rule_specs_read_every_repo_from_form_and_refuse_unknown_keys() {
    let specs = rules(
        r#"
        [[rules]]
        path = "/a"
        action = "read"
        repo_from = "none"
        [[rules]]
        path = "/b"
        action = "scan"
        repo_from = { query = "repositoryName" }
        [[rules]]
        path = "/c"
        action = "scan"
        repo_from = { form = "repositoryName" }
        "#,
    );
    let sources: Vec<_> = specs.iter().map(|s| s.repo_from.clone()).collect();
    let name = "repositoryName".to_owned();
    let want = [
        Some(RepoFrom::None),
        Some(RepoFrom::Query(name.clone())),
        Some(RepoFrom::Form(name)),
    ];
    assert_eq!(sources, want);

    let typo = "[[rules]]\npath = \"/a\"\naction = \"read\"\nmethod = [\"GET\"]";
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)] // Only deserialised, to see the error.
    struct File {
        rules: Vec<RuleSpec>,
    }
    assert!(toml::from_str::<File>(typo).is_err());
}

#[test]
fn a_route_table_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<RouteTable>();
}
