//! Built-in rule sets for the upstream APIs repogate knows.
//!
//! Presets are written as ordinary rules and compiled by the same code as
//! config rules, once per process. They are conservative: within a
//! repository, a GET or HEAD needs `read`, a mutation not recognised as a
//! comment, review or write needs `maintain`, and the areas that hold secrets
//! (webhooks, CI variables, deploy keys, access tokens) need `integrate` or
//! `maintain` even to read. Other methods (OPTIONS, TRACE) match nothing.
//! Requests outside a repository (`/api/v4/projects`, `/api/v4/user`) match no
//! preset rule and are refused.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::rule::Rule;
use super::{Preset, RepoFrom, RuleSpec};
use crate::access::Action;

const ANY: &[&str] = &[];
const GET: &[&str] = &["GET"];
const READS: &[&str] = &["GET", "HEAD"];
const POST: &[&str] = &["POST"];
const PUT: &[&str] = &["PUT"];
const POST_PUT: &[&str] = &["POST", "PUT"];
const POST_DELETE: &[&str] = &["POST", "DELETE"];
const POST_PUT_DELETE: &[&str] = &["POST", "PUT", "DELETE"];
const PUT_PATCH_DELETE: &[&str] = &["PUT", "PATCH", "DELETE"];
const MUTATIONS: &[&str] = &["POST", "PUT", "PATCH", "DELETE"];

/// The compiled rules of a preset, built on first use and shared by every
/// route and every config generation that uses it.
pub(super) fn rules(preset: Preset) -> &'static [Rule] {
    static CELLS: [OnceLock<Vec<Rule>>; 5] = [const { OnceLock::new() }; 5];
    let (cell, defs): (_, fn() -> Vec<Def>) = match preset {
        Preset::Gitlab => (&CELLS[0], gitlab),
        Preset::BitbucketCloud => (&CELLS[1], bitbucket_cloud),
        Preset::BitbucketServer => (&CELLS[2], bitbucket_server),
        Preset::GitHttp => (&CELLS[3], git_http),
        Preset::ScaScan => (&CELLS[4], sca_scan),
    };
    cell.get_or_init(|| defs().into_iter().map(Def::compile).collect())
}

/// One built-in rule before compilation.
struct Def {
    spec: RuleSpec,
    git: bool,
}

fn def(methods: &[&str], path: impl Into<String>, action: Action) -> Def {
    let spec = RuleSpec {
        methods: methods.iter().map(|m| (*m).to_owned()).collect(),
        path: path.into(),
        action,
        repo_from: None,
        query: BTreeMap::new(),
    };
    Def { spec, git: false }
}

impl Def {
    fn query(mut self, key: &str, value: &str) -> Def {
        self.spec.query.insert(key.to_owned(), value.to_owned());
        self
    }

    fn repo_from(mut self, source: RepoFrom) -> Def {
        self.spec.repo_from = Some(source);
        self
    }

    fn git(mut self) -> Def {
        self.git = true;
        self
    }

    fn compile(self) -> Rule {
        Rule::compile(&self.spec, self.git)
            .expect("built-in preset rules are valid; every_preset_compiles pins this")
    }
}

/// GitLab REST API v4. `{repo}` is the URL-encoded full path
/// (`group%2Fproject`) or the numeric project id.
fn gitlab() -> Vec<Def> {
    let p = |rest: &str| format!("/api/v4/projects/{{repo}}{rest}");

    // Grape serves `42.json` as project 42 and `hooks.json` as `hooks`, so the
    // format suffix must not move a request into a laxer rule.
    let mut defs = vec![
        def(READS, p(".json"), Action::Read),
        def(MUTATIONS, p(".json"), Action::Maintain),
    ];
    for (area, action) in GITLAB_GUARDED {
        defs.push(def(ANY, p(&format!("/{area}/**")), action));
        defs.push(def(ANY, p(&format!("/{area}.json")), action));
    }
    // CI variables hold secrets wherever they hang (project, pipeline, schedule).
    defs.push(def(ANY, p("/**/variables/**"), Action::Maintain));
    defs.push(def(ANY, p("/**/variables.json"), Action::Maintain));
    defs.push(def(PUT_PATCH_DELETE, p(""), Action::Maintain));

    for tail in ["approve", "unapprove", "approvals", "reviewers/**"] {
        defs.push(def(
            POST_PUT,
            p(&format!("/merge_requests/*/{tail}")),
            Action::Review,
        ));
    }
    defs.extend(gitlab_writes(p));
    defs.extend(gitlab_comments(p));
    defs.push(def(READS, p("/**"), Action::Read));
    defs.push(def(MUTATIONS, p("/**"), Action::Maintain));
    defs.extend(git_http());
    defs
}

/// GitLab project areas that need their action for every method, reads
/// included: they expose secrets or grant access.
const GITLAB_GUARDED: [(&str, Action); 12] = [
    ("hooks", Action::Integrate),
    ("integrations", Action::Integrate),
    ("services", Action::Integrate),
    ("protected_branches", Action::Maintain),
    ("protected_tags", Action::Maintain),
    ("members", Action::Maintain),
    ("invitations", Action::Maintain),
    ("share", Action::Maintain),
    ("push_rule", Action::Maintain),
    ("deploy_keys", Action::Maintain),
    ("deploy_tokens", Action::Maintain),
    ("access_tokens", Action::Maintain),
];

fn gitlab_writes(p: impl Fn(&str) -> String) -> Vec<Def> {
    vec![
        def(POST, p("/merge_requests"), Action::Write),
        def(PUT, p("/merge_requests/*"), Action::Write),
        def(PUT, p("/merge_requests/*/merge"), Action::Write),
        def(PUT, p("/merge_requests/*/rebase"), Action::Write),
        def(POST_DELETE, p("/repository/branches/**"), Action::Write),
        def(POST_PUT_DELETE, p("/repository/files/**"), Action::Write),
        def(POST, p("/repository/commits"), Action::Write),
        def(POST_DELETE, p("/repository/tags/**"), Action::Write),
        def(POST, p("/statuses/*"), Action::Write),
    ]
}

/// Notes and discussions on the things that carry them. Listed by type, not
/// as `**/notes`, because a user-named resource (a Terraform state called
/// `notes`) would otherwise need only `comment`.
fn gitlab_comments(p: impl Fn(&str) -> String) -> Vec<Def> {
    let threads = [
        ("issues", "notes"),
        ("merge_requests", "notes"),
        ("snippets", "notes"),
        ("repository/commits", "comments"),
    ];
    let mut defs = Vec::new();
    for (thing, notes) in threads {
        for tail in [notes, "discussions", "discussions/*/notes"] {
            defs.push(def(POST, p(&format!("/{thing}/*/{tail}")), Action::Comment));
        }
    }
    defs
}

/// Bitbucket Cloud API 2.0; the two captures are workspace and slug.
fn bitbucket_cloud() -> Vec<Def> {
    let b = |rest: &str| format!("/2.0/repositories/{{repo}}/{{repo}}{rest}");
    vec![
        def(ANY, b("/hooks/**"), Action::Integrate),
        def(ANY, b("/branch-restrictions/**"), Action::Maintain),
        def(ANY, b("/permissions-config/**"), Action::Maintain),
        def(ANY, b("/deploy-keys/**"), Action::Maintain),
        def(ANY, b("/pipelines_config/**"), Action::Maintain),
        def(ANY, b("/deployments_config/**"), Action::Maintain),
        def(PUT_PATCH_DELETE, b(""), Action::Maintain),
        def(POST_DELETE, b("/pullrequests/*/approve"), Action::Review),
        def(
            POST_DELETE,
            b("/pullrequests/*/request-changes"),
            Action::Review,
        ),
        def(POST_DELETE, b("/commit/*/approve"), Action::Review),
        def(POST, b("/pullrequests"), Action::Write),
        def(PUT, b("/pullrequests/*"), Action::Write),
        def(POST, b("/pullrequests/*/merge"), Action::Write),
        def(POST, b("/pullrequests/*/decline"), Action::Write),
        def(POST_DELETE, b("/refs/branches/**"), Action::Write),
        def(POST_DELETE, b("/refs/tags/**"), Action::Write),
        def(POST, b("/src"), Action::Write),
        def(POST, b("/commit/*/statuses/**"), Action::Write),
        def(POST, b("/pullrequests/*/comments"), Action::Comment),
        def(POST, b("/commit/*/comments"), Action::Comment),
        def(READS, b("/**"), Action::Read),
        def(MUTATIONS, b("/**"), Action::Maintain),
    ]
}

/// Bitbucket Server / Data Center REST API, under both `1.0` and its alias
/// `latest`; the two captures are project key and slug.
fn bitbucket_server() -> Vec<Def> {
    let mut defs = Vec::new();
    for version in ["1.0", "latest"] {
        let s = |rest: &str| format!("/rest/api/{version}/projects/{{repo}}/repos/{{repo}}{rest}");
        defs.extend([
            def(ANY, s("/webhooks/**"), Action::Integrate),
            def(ANY, s("/settings/**"), Action::Maintain),
            def(ANY, s("/permissions/**"), Action::Maintain),
            def(PUT_PATCH_DELETE, s(""), Action::Maintain),
            def(POST_DELETE, s("/pull-requests/*/approve"), Action::Review),
            def(PUT, s("/pull-requests/*/participants/**"), Action::Review),
            def(POST, s("/pull-requests"), Action::Write),
            def(PUT, s("/pull-requests/*"), Action::Write),
            def(POST, s("/pull-requests/*/merge"), Action::Write),
            def(POST, s("/pull-requests/*/decline"), Action::Write),
            def(POST, s("/pull-requests/*/reopen"), Action::Write),
            def(POST, s("/branches"), Action::Write),
            def(POST, s("/tags"), Action::Write),
            def(PUT, s("/browse/**"), Action::Write),
            def(POST, s("/pull-requests/*/comments"), Action::Comment),
            def(
                POST,
                s("/pull-requests/*/blocker-comments"),
                Action::Comment,
            ),
            def(POST, s("/commits/*/comments"), Action::Comment),
            def(READS, s("/**"), Action::Read),
            def(MUTATIONS, s("/**"), Action::Maintain),
        ]);
    }
    defs
}

/// Git smart HTTP, with or without the `.git` suffix (GitLab and
/// `git http-backend` serve both). Dumb HTTP (`info/refs` without
/// `service`) is not served.
fn git_http() -> Vec<Def> {
    let mut defs = Vec::new();
    for repo in ["/{repo+}.git", "/{repo+}"] {
        let refs = format!("{repo}/info/refs");
        defs.extend([
            def(GET, &refs, Action::Clone)
                .query("service", "git-upload-pack")
                .git(),
            def(GET, &refs, Action::Write)
                .query("service", "git-receive-pack")
                .git(),
            def(POST, format!("{repo}/git-upload-pack"), Action::Clone).git(),
            def(POST, format!("{repo}/git-receive-pack"), Action::Write).git(),
        ]);
    }
    defs
}

/// The SCA service's scan calls. The finish call carries only an upload id,
/// so it has no repository and passes only tokens that hold `scan`
/// everywhere: admin tokens.
fn sca_scan() -> Vec<Def> {
    let repository = RepoFrom::Form("repositoryName".to_owned());
    vec![
        def(
            POST,
            "/api/1.0/open/uploads/dependencies/files",
            Action::Scan,
        )
        .repo_from(repository),
        def(
            POST,
            "/api/1.0/open/finishes/dependencies/files/uploads",
            Action::Scan,
        ),
    ]
}
