//! Prefixes, rule order, captures, queries and the forwarded path.

use http::Method;

use super::super::*;
use super::presets::outcome;
use super::{compile, found, route, rules, ANY_READ};

#[test]
fn longest_prefix_wins() {
    let (all, hooks) = (rules(ANY_READ), rules(ANY_READ));
    let mut hooks_route = route("/hooks/", &hooks);
    hooks_route.upstream = 1;
    let table = compile(&[route("/", &all), hooks_route]);

    assert_eq!(found(&table, Method::GET, "/hooks/x").route.upstream, 1);
    assert_eq!(found(&table, Method::GET, "/hooksx").route.upstream, 0);
    assert_eq!(found(&table, Method::GET, "/other").route.upstream, 0);
}

#[test]
fn an_encoded_prefix_cannot_dodge_its_route() {
    let (all, hooks) = (rules(ANY_READ), rules(ANY_READ));
    let mut hooks_route = route("/hooks/", &hooks);
    (hooks_route.upstream, hooks_route.strip_prefix) = (1, true);
    let table = compile(&[route("/", &all), hooks_route]);

    let m = found(&table, Method::GET, "/hook%73/x%2Fy");
    assert_eq!(m.route.upstream, 1);
    assert_eq!(m.forward_path, "/x%2Fy");
}

#[test]
fn prefix_covers_only_whole_segments() {
    let all = rules(ANY_READ);
    let table = compile(&[route("/api", &all)]);

    assert_eq!(found(&table, Method::GET, "/api").forward_path, "/api");
    assert_eq!(
        found(&table, Method::GET, "/api/v4").forward_path,
        "/api/v4"
    );
    assert!(matches!(
        table.find(&Method::GET, "/apix", None),
        Match::NoRoute
    ));
}

#[test]
fn strip_prefix_removes_the_prefix_before_matching_and_forwarding() {
    let specs = rules(
        r#"
        [[rules]]
        methods = ["POST"]
        path = "/{repo+}/events"
        action = "integrate"
        "#,
    );
    for prefix in ["/hooks/", "/hooks"] {
        let mut spec = route(prefix, &specs);
        spec.strip_prefix = true;
        let table = compile(&[spec]);

        let m = found(&table, Method::POST, "/hooks/acme/widgets/events");
        assert_eq!(m.forward_path, "/acme/widgets/events", "{prefix}");
        assert_eq!(m.repo.name(), Some("acme/widgets"));
        assert!(matches!(
            table.find(&Method::POST, "/hooks/", None),
            Match::NoRule { .. }
        ));
    }
}

#[test]
fn stripping_the_whole_path_forwards_the_root() {
    let all = rules(ANY_READ);
    let mut spec = route("/svc", &all);
    spec.strip_prefix = true;
    let table = compile(&[spec]);

    assert_eq!(found(&table, Method::GET, "/svc").forward_path, "/");
    assert_eq!(found(&table, Method::GET, "/svc/").forward_path, "/");
}

#[test]
fn explicit_rules_are_tried_before_preset_rules() {
    let specs = rules(
        r#"
        [[rules]]
        methods = ["GET"]
        path = "/api/v4/projects/{repo}/hooks"
        action = "read"
        "#,
    );
    let mut spec = route("/", &specs);
    spec.preset = Some(Preset::Gitlab);
    let table = compile(&[spec]);

    assert_eq!(
        outcome(&table, "GET", "/api/v4/projects/42/hooks"),
        "read 42"
    );
    assert_eq!(
        outcome(&table, "POST", "/api/v4/projects/42/hooks"),
        "integrate 42"
    );
}

#[test]
fn the_first_matching_rule_wins() {
    let specs = rules(
        r#"
        [[rules]]
        path = "/r/{repo}/admin/**"
        action = "maintain"
        [[rules]]
        path = "/r/{repo}/**"
        action = "read"
        "#,
    );
    let table = compile(&[route("/", &specs)]);

    assert_eq!(outcome(&table, "GET", "/r/x/admin/users"), "maintain x");
    assert_eq!(outcome(&table, "GET", "/r/x/users"), "read x");
}

#[test]
fn several_repo_captures_are_joined_with_a_slash() {
    let specs = rules(
        r#"
        [[rules]]
        path = "/projects/{repo}/repos/{repo}/**"
        action = "read"
        "#,
    );
    let table = compile(&[route("/", &specs)]);

    assert_eq!(
        outcome(&table, "GET", "/projects/KEY/repos/slug/browse"),
        "read KEY/slug"
    );
}

#[test]
fn double_star_matches_in_the_middle_of_a_template() {
    let specs = rules(
        r#"
        [[rules]]
        methods = ["post"]
        path = "/api/v4/projects/{repo}/**/notes"
        action = "comment"
        "#,
    );
    let table = compile(&[route("/", &specs)]);

    assert_eq!(
        outcome(&table, "POST", "/api/v4/projects/7/notes"),
        "comment 7"
    );
    assert_eq!(
        outcome(&table, "POST", "/api/v4/projects/7/issues/1/notes"),
        "comment 7"
    );
    assert_eq!(
        outcome(&table, "POST", "/api/v4/projects/7/issues/1"),
        "no rule"
    );
    assert_eq!(
        outcome(&table, "GET", "/api/v4/projects/7/notes"),
        "no rule"
    );
}

#[test]
fn a_suffix_capture_drops_the_suffix_from_the_name() {
    let specs = rules(
        r#"
        [[rules]]
        path = "/{repo+}.git/**"
        action = "clone"
        "#,
    );
    let table = compile(&[route("/", &specs)]);

    assert_eq!(
        outcome(&table, "GET", "/a/b/c.git/objects/info"),
        "clone a/b/c"
    );
    assert_eq!(outcome(&table, "GET", "/a/b/c/objects/info"), "no rule");
}

#[test]
fn query_constraints_need_one_exact_value() {
    let specs = rules(
        r#"
        [[rules]]
        path = "/x/{repo}"
        action = "write"
        query = { mode = "push" }
        "#,
    );
    let table = compile(&[route("/", &specs)]);

    assert_eq!(outcome(&table, "GET", "/x/r?mode=push"), "write r");
    assert_eq!(outcome(&table, "GET", "/x/r?a=1&mode=push"), "write r");
    assert_eq!(outcome(&table, "GET", "/x/r?mode=pull"), "no rule");
    assert_eq!(
        outcome(&table, "GET", "/x/r?mode=push&mode=pull"),
        "no rule"
    );
    assert_eq!(outcome(&table, "GET", "/x/r"), "no rule");
}

#[test]
fn a_missing_repo_query_parameter_falls_through_to_the_next_rule() {
    let specs = rules(
        r#"
        [[rules]]
        path = "/scan"
        action = "write"
        repo_from = { query = "repo" }
        [[rules]]
        path = "/scan"
        action = "scan"
        repo_from = "none"
        "#,
    );
    let table = compile(&[route("/", &specs)]);

    assert_eq!(
        outcome(&table, "POST", "/scan?repo=acme%2Fwidgets"),
        "write acme/widgets"
    );
    assert_eq!(outcome(&table, "POST", "/scan"), "scan -");
    assert_eq!(outcome(&table, "POST", "/scan?repo=a&repo=b"), "scan -");
    assert_eq!(outcome(&table, "POST", "/scan?repo="), "scan -");
}

#[test]
fn a_form_source_leaves_query_and_body_to_the_proxy_but_refuses_a_bad_query_value() {
    let specs = rules(
        r#"
        [[rules]]
        path = "/upload"
        action = "scan"
        repo_from = { form = "repositoryName" }
        "#,
    );
    let table = compile(&[route("/", &specs)]);

    // The proxy reads the query value together with the body, so the two
    // cannot disagree; the matcher only refuses a repeated or unsafe value.
    assert_eq!(
        outcome(&table, "POST", "/upload?repositoryName=acme"),
        "scan form:repositoryName"
    );
    assert_eq!(
        outcome(&table, "POST", "/upload"),
        "scan form:repositoryName"
    );
    assert_eq!(
        outcome(&table, "POST", "/upload?repositoryName=a&repositoryName=b"),
        "no rule"
    );
    assert_eq!(
        outcome(&table, "POST", "/upload?repositoryName=a/../b"),
        "no rule"
    );
}

#[test]
fn forward_path_is_the_raw_path_byte_for_byte() {
    let table = compile(&[RouteSpec {
        preset: Some(Preset::Gitlab),
        ..route("/", &[])
    }]);
    let path = "/api/v4/projects/group%2Fproject/repository/files/a%2Fb%20c.txt";

    let m = found(&table, Method::GET, path);
    assert_eq!(m.forward_path, path);
    assert!(std::ptr::eq(m.forward_path, path));
    assert_eq!(m.repo.name(), Some("group/project"));
}

#[test]
fn a_plain_capture_borrows_from_the_request() {
    let table = compile(&[RouteSpec {
        preset: Some(Preset::BitbucketCloud),
        ..route("/", &[])
    }]);
    let m = found(&table, Method::GET, "/2.0/repositories/acme/widgets/src");
    assert!(matches!(
        m.repo,
        RepoRef::Name(Cow::Borrowed("acme/widgets"))
    ));
}

#[test]
fn an_empty_method_list_matches_every_method() {
    let all = rules(ANY_READ);
    let table = compile(&[route("/", &all)]);
    for method in [Method::GET, Method::DELETE, Method::OPTIONS] {
        assert_eq!(found(&table, method, "/x").action, Action::Read);
    }
}

#[test]
fn a_path_no_prefix_covers_is_no_route() {
    let all = rules(ANY_READ);
    let table = compile(&[route("/api/", &all)]);
    assert!(matches!(
        table.find(&Method::GET, "/other", None),
        Match::NoRoute
    ));
    assert!(matches!(
        RouteTable::default().find(&Method::GET, "/", None),
        Match::NoRoute
    ));
}
