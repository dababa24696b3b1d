//! Paths an upstream could read differently are refused, and no input panics.

use http::Method;
use proptest::prelude::*;

use super::super::*;
use super::{compile, route, rules, ANY_READ};

#[test]
fn unsafe_paths_are_refused_before_any_route_is_chosen() {
    let all = rules(ANY_READ);
    let table = compile(&[route("/", &all)]);
    let paths = [
        "/a/../b",
        "/a/./b",
        "/a/%2e%2e/b",
        "/a/%2E%2e/b",
        "/a/%00",
        "/a/\0",
        "/a/%252e%252e/b",
        "/a/%zz",
        "/a\\b",
        "/a//b",
        "relative",
        "/hooks/..;/admin",
    ];
    for path in paths {
        assert!(
            matches!(table.find(&Method::GET, path, None), Match::BadPath(_)),
            "{path:?}"
        );
    }
}

#[test]
fn an_encoded_slash_cannot_smuggle_a_dot_segment_into_the_repo_name() {
    // A decoding upstream would read `a/../b/issues`, i.e. project `b`; we
    // must not answer with repository `a/../b` or `a`, only refuse.
    let table = compile(&[RouteSpec {
        preset: Some(Preset::Gitlab),
        ..route("/", &[])
    }]);
    for path in [
        "/api/v4/projects/a%2F..%2Fb/issues",
        "/api/v4/projects/a%2F.%2Fb/issues",
    ] {
        let outcome = table.find(&Method::GET, path, None);
        assert!(
            matches!(outcome, Match::BadPath(PathError::DotSegment)),
            "{path}"
        );
    }
}

proptest! {
    #[test]
    fn find_never_panics(post in any::<bool>(), path in ".*", query in proptest::option::of(".*")) {
        let all = rules(ANY_READ);
        let specs = [
            route("/", &all),
            RouteSpec { preset: Some(Preset::Gitlab), ..route("/api/", &[]) },
            RouteSpec { preset: Some(Preset::GitHttp), strip_prefix: true, ..route("/git", &[]) },
            RouteSpec { preset: Some(Preset::ScaScan), ..route("/api/1.0/", &[]) },
        ];
        let table = compile(&specs);
        let method = if post { Method::POST } else { Method::GET };

        if let Match::Found(m) = table.find(&method, &path, query.as_deref()) {
            prop_assert!(path.ends_with(m.forward_path));
            prop_assert!(m.forward_path.starts_with('/'));
        }
    }

    #[test]
    fn find_never_panics_on_path_like_input(
        post in any::<bool>(),
        path in "(/([a-z.%2eEfF0]{0,4}|\\{|\\*|\\.git)){0,12}/?",
        query in proptest::option::of("[a-z=&%2]{0,20}"),
    ) {
        let gitlab = RouteSpec { preset: Some(Preset::Gitlab), ..route("/", &[]) };
        let server = RouteSpec {
            preset: Some(Preset::BitbucketServer),
            strip_prefix: true,
            ..route("/bb", &[])
        };
        let table = compile(&[gitlab, server]);
        let method = if post { Method::POST } else { Method::GET };
        let _ = table.find(&method, &path, query.as_deref());
    }
}
