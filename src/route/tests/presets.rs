//! Which real endpoint needs which action under each preset.
//!
//! Each row reads `METHOD /path?query -> outcome`, where the outcome is
//! `<action> <repo>`, with `form:<field>` for a body field and `-` for no
//! repository, or `no rule` for a request the preset must refuse.

use http::Method;

use super::super::*;

fn table(preset: Preset) -> RouteTable {
    let spec = RouteSpec {
        prefix: "/",
        strip_prefix: false,
        preset: Some(preset),
        rules: &[],
        upstream: 0,
    };
    RouteTable::compile([spec]).expect("a preset-only route compiles")
}

/// The outcome of one request, in the row format of this file.
pub(super) fn outcome(table: &RouteTable, method: &str, target: &str) -> String {
    let method = Method::from_bytes(method.as_bytes()).expect("valid method");
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    match table.find(&method, path, query) {
        Match::Found(m) => {
            let repo = match &m.repo {
                RepoRef::Name(name) => name.to_string(),
                RepoRef::Form(field) => format!("form:{field}"),
                RepoRef::None => "-".to_owned(),
            };
            format!("{} {repo}", m.action)
        }
        Match::NoRule { .. } => "no rule".to_owned(),
        Match::NoRoute => "no route".to_owned(),
        Match::BadPath(err) => format!("bad path: {err}"),
    }
}

fn check(preset: Preset, rows: &[&str]) {
    let table = table(preset);
    for row in rows {
        let (request, want) = row.split_once(" -> ").expect("row has ` -> `");
        let (method, target) = request.split_once(' ').expect("row has a method");
        assert_eq!(outcome(&table, method, target), want, "{preset} {row}");
    }
}

#[test]
fn every_preset_compiles() {
    let all = [
        Preset::Gitlab,
        Preset::BitbucketCloud,
        Preset::BitbucketServer,
        Preset::GitHttp,
        Preset::ScaScan,
    ];
    for preset in all {
        assert!(!presets::rules(preset).is_empty(), "{preset}");
    }
}

#[test]
fn gitlab_endpoints_need_these_actions() {
    check(
        Preset::Gitlab,
        &[
            "GET /api/v4/projects/group%2Fproject -> read group/project",
            "HEAD /api/v4/projects/group%2Fproject/repository/tree -> read group/project",
            "GET /api/v4/projects/42/issues -> read 42",
            "GET /api/v4/projects/42.json -> read 42",
            "GET /api/v4/projects/a%2Fb/repository/files/src%2Fmain.rs/raw -> read a/b",
            "POST /api/v4/projects/group%2Fproject/merge_requests/1/approve -> review group/project",
            "POST /api/v4/projects/42/merge_requests/1/unapprove -> review 42",
            "POST /api/v4/projects/42/merge_requests/1/approvals -> review 42",
            "GET /api/v4/projects/42/merge_requests/1/approvals -> read 42",
            "POST /api/v4/projects/42/issues/7/notes -> comment 42",
            "POST /api/v4/projects/42/merge_requests/3/notes -> comment 42",
            "POST /api/v4/projects/42/merge_requests/3/discussions -> comment 42",
            "POST /api/v4/projects/42/merge_requests/3/discussions/ab12/notes -> comment 42",
            "POST /api/v4/projects/42/repository/commits/abc123/comments -> comment 42",
            "POST /api/v4/projects/42/snippets/5/notes -> comment 42",
            "POST /api/v4/projects/42/merge_requests -> write 42",
            "PUT /api/v4/projects/42/merge_requests/3 -> write 42",
            "PUT /api/v4/projects/42/merge_requests/3/merge -> write 42",
            "POST /api/v4/projects/42/repository/branches -> write 42",
            "DELETE /api/v4/projects/42/repository/branches/feature%2Fx -> write 42",
            "POST /api/v4/projects/42/repository/files/notes -> write 42",
            "PUT /api/v4/projects/42/repository/files/src%2Flib.rs -> write 42",
            "POST /api/v4/projects/42/repository/commits -> write 42",
            "POST /api/v4/projects/42/repository/tags -> write 42",
            "GET /api/v4/projects/42/hooks -> integrate 42",
            "GET /api/v4/projects/42/hooks.json -> integrate 42",
            "POST /api/v4/projects/42/hooks/9/test/push_events -> integrate 42",
            "PUT /api/v4/projects/42/integrations/slack -> integrate 42",
            "PUT /api/v4/projects/42 -> maintain 42",
            "DELETE /api/v4/projects/group%2Fproject -> maintain group/project",
            "DELETE /api/v4/projects/42.json -> maintain 42",
            "POST /api/v4/projects/42/protected_branches -> maintain 42",
            "GET /api/v4/projects/42/variables -> maintain 42",
            "GET /api/v4/projects/42/variables/SECRET -> maintain 42",
            "GET /api/v4/projects/42/pipelines/7/variables -> maintain 42",
            "GET /api/v4/projects/42/access_tokens -> maintain 42",
            "PUT /api/v4/projects/42/push_rule -> maintain 42",
            "POST /api/v4/projects/42/members -> maintain 42",
            "POST /api/v4/projects/42/share -> maintain 42",
            "POST /api/v4/projects/42/terraform/state/notes -> maintain 42",
            "POST /api/v4/projects/42/issues -> maintain 42",
            "PATCH /api/v4/projects/42/anything/new -> maintain 42",
            "GET /acme/widgets.git/info/refs?service=git-upload-pack -> clone acme/widgets",
            "POST /acme/widgets.git/git-receive-pack -> write acme/widgets",
        ],
    );
}

#[test]
fn gitlab_refuses_requests_outside_a_project() {
    check(
        Preset::Gitlab,
        &[
            "GET /api/v4/projects -> no rule",
            "GET /api/v4/user -> no rule",
            "GET /api/v4/projects/ -> no rule",
            "OPTIONS /api/v4/projects/42 -> no rule",
            "GET /group/project/-/raw/main/README.md -> no rule",
        ],
    );
}

#[test]
fn bitbucket_cloud_endpoints_need_these_actions() {
    check(
        Preset::BitbucketCloud,
        &[
            "GET /2.0/repositories/acme/widgets -> read acme/widgets",
            "GET /2.0/repositories/acme/widgets/pullrequests/1/diff -> read acme/widgets",
            "POST /2.0/repositories/acme/widgets/pullrequests/1/comments -> comment acme/widgets",
            "POST /2.0/repositories/acme/widgets/commit/abc/comments -> comment acme/widgets",
            "POST /2.0/repositories/acme/widgets/pullrequests/1/approve -> review acme/widgets",
            "DELETE /2.0/repositories/acme/widgets/pullrequests/1/approve -> review acme/widgets",
            "POST /2.0/repositories/acme/widgets/pullrequests/1/request-changes -> review acme/widgets",
            "POST /2.0/repositories/acme/widgets/pullrequests -> write acme/widgets",
            "PUT /2.0/repositories/acme/widgets/pullrequests/1 -> write acme/widgets",
            "POST /2.0/repositories/acme/widgets/pullrequests/1/merge -> write acme/widgets",
            "POST /2.0/repositories/acme/widgets/refs/branches -> write acme/widgets",
            "DELETE /2.0/repositories/acme/widgets/refs/tags/v1 -> write acme/widgets",
            "POST /2.0/repositories/acme/widgets/src -> write acme/widgets",
            "GET /2.0/repositories/acme/widgets/hooks -> integrate acme/widgets",
            "POST /2.0/repositories/acme/widgets/hooks -> integrate acme/widgets",
            "POST /2.0/repositories/acme/widgets/branch-restrictions -> maintain acme/widgets",
            "PUT /2.0/repositories/acme/widgets/permissions-config/users/x -> maintain acme/widgets",
            "DELETE /2.0/repositories/acme/widgets -> maintain acme/widgets",
            "POST /2.0/repositories/acme/widgets/issues -> maintain acme/widgets",
            "GET /2.0/repositories/acme -> no rule",
            "GET /2.0/user -> no rule",
        ],
    );
}

#[test]
fn bitbucket_server_endpoints_need_these_actions() {
    let rows = [
        "GET {base} -> read KEY/slug",
        "GET {base}/pull-requests/3/diff -> read KEY/slug",
        "POST {base}/pull-requests/3/comments -> comment KEY/slug",
        "POST {base}/pull-requests/3/approve -> review KEY/slug",
        "DELETE {base}/pull-requests/3/approve -> review KEY/slug",
        "PUT {base}/pull-requests/3/participants/alice -> review KEY/slug",
        "POST {base}/pull-requests -> write KEY/slug",
        "PUT {base}/pull-requests/3 -> write KEY/slug",
        "POST {base}/pull-requests/3/merge -> write KEY/slug",
        "POST {base}/webhooks -> integrate KEY/slug",
        "GET {base}/webhooks/1 -> integrate KEY/slug",
        "GET {base}/settings/pull-requests -> maintain KEY/slug",
        "PUT {base}/permissions/users -> maintain KEY/slug",
        "DELETE {base} -> maintain KEY/slug",
        "POST {base}/pull-requests/3/tasks -> maintain KEY/slug",
    ];
    // `latest` is Bitbucket Server's alias for the current API version.
    for version in ["1.0", "latest"] {
        let base = format!("/rest/api/{version}/projects/KEY/repos/slug");
        let rows: Vec<String> = rows.iter().map(|r| r.replace("{base}", &base)).collect();
        let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
        check(Preset::BitbucketServer, &rows);
    }
    check(
        Preset::BitbucketServer,
        &[
            "GET /rest/api/1.0/projects/%7Ealice/repos/dots -> read ~alice/dots",
            "GET /rest/api/1.0/projects/KEY -> no rule",
            "GET /rest/api/2.0/projects/KEY/repos/slug -> no rule",
        ],
    );
}

#[test]
fn git_http_endpoints_need_clone_or_write() {
    check(
        Preset::GitHttp,
        &[
            "GET /acme/widgets.git/info/refs?service=git-upload-pack -> clone acme/widgets",
            "GET /acme/widgets.git/info/refs?service=git-receive-pack -> write acme/widgets",
            "POST /acme/widgets.git/git-upload-pack -> clone acme/widgets",
            "POST /acme/widgets.git/git-receive-pack -> write acme/widgets",
            "POST /group/sub/project.git/git-upload-pack -> clone group/sub/project",
            "GET /acme/widgets.git/info/refs -> no rule",
            "GET /acme/widgets.git/info/refs?service=git-archive -> no rule",
            "GET /acme/widgets.git/HEAD -> no rule",
            "GET /acme/widgets/info/refs?service=git-upload-pack -> clone acme/widgets",
            "GET /acme/widgets/info/refs?service=git-receive-pack -> write acme/widgets",
            "POST /acme/widgets/git-upload-pack -> clone acme/widgets",
            "POST /group/sub/project/git-receive-pack -> write group/sub/project",
            "GET /acme/widgets/info/refs -> no rule",
            // Without the suffix rule this would not match; as a name, `.git` is
            // an unregistered repository that only admin tokens reach.
            "GET /.git/info/refs?service=git-upload-pack -> clone .git",
            "GET /acme/widgets.git/git-upload-pack -> no rule",
            "POST /acme/widgets.git/info/lfs/objects/batch -> no rule",
        ],
    );
}

#[test]
fn git_http_refuses_an_ambiguous_service() {
    let target = "/a/b.git/info/refs?service=git-upload-pack&service=git-receive-pack";
    assert_eq!(outcome(&table(Preset::GitHttp), "GET", target), "no rule");
}

#[test]
fn git_http_rules_ask_git_to_prompt() {
    let git = table(Preset::GitHttp);
    let path = "/acme/widgets.git/git-upload-pack";
    let Match::Found(m) = git.find(&Method::POST, path, None) else {
        panic!("matches")
    };
    assert!(m.git);

    let gitlab = table(Preset::Gitlab);
    let Match::Found(m) = gitlab.find(&Method::GET, "/api/v4/projects/42", None) else {
        panic!("matches")
    };
    assert!(!m.git);
}

#[test]
fn sca_scan_calls_need_scan() {
    check(
        Preset::ScaScan,
        &[
            "POST /api/1.0/open/uploads/dependencies/files -> scan form:repositoryName",
            "POST /api/1.0/open/uploads/dependencies/files?repositoryName=acme%2Fwidgets -> scan form:repositoryName",
            "POST /api/1.0/open/uploads/dependencies/files?repositoryName=a/../b -> no rule",
            "POST /api/1.0/open/finishes/dependencies/files/uploads -> scan -",
            "GET /api/1.0/open/uploads/dependencies/files -> no rule",
            "POST /api/1.0/open/uploads/dependencies -> no rule",
        ],
    );
}
