//! `repogate token …` and `repogate repo …` (src/cli/): the real binary, run
//! against a gateway started in this process in front of a real upstream,
//! typed the way the README's "Admin API and CLI" section shows, with the
//! admin user and password in `REPOGATE_ADMIN_USER` / `REPOGATE_ADMIN_PASSWORD`.

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use common::*;
use serde_json::Value;

/// The gitlab preset on the test upstream.
const GITLAB: &str = "[[routes]]\nprefix = \"/\"\nupstream = \"up\"\npreset = \"gitlab\"\n";

/// The first line `token create` prints before the token itself.
const CREATED: &str = "created; copy it now, it is not shown again:";

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts exit 0 with nothing on stderr; returns stdout.
    fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "{self:#?}");
        assert_eq!(self.stderr, "", "{self:#?}");
        &self.stdout
    }

    /// Asserts exit 0 and one JSON document on stdout.
    fn json(&self) -> Value {
        let out = self.ok();
        serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
    }

    /// Asserts exit 1 with nothing on stdout and one `error: …` line on
    /// stderr; returns that line.
    fn failed(&self) -> &str {
        assert_eq!(self.code, Some(1), "{self:#?}");
        assert_eq!(self.stdout, "", "{self:#?}");
        let line = self.stderr.strip_suffix('\n').unwrap_or(&self.stderr);
        assert!(
            line.starts_with("error: ") && !line.contains('\n'),
            "one error line: {self:#?}"
        );
        line
    }
}

/// Runs `repogate ARGS` with only the `REPOGATE_*` variables in `env` set and
/// no terminal on stdin, on the blocking pool so the in-process gateway keeps
/// serving meanwhile.
async fn repogate(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_repogate"));
    command
        .args(args)
        .env_remove("REPOGATE_ADMIN_URL")
        .env_remove("REPOGATE_ADMIN_USER")
        .env_remove("REPOGATE_ADMIN_PASSWORD")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the CLI task finishes")
        .expect("the repogate binary runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// A gateway with the `admin` user (password `pw`) in front of a real upstream.
struct World {
    up: TestUpstream,
    gate: Gate,
}

impl World {
    async fn start() -> World {
        let up = upstream().await;
        let gate = gateway(&format!("{}{}", admin_user(), upstream_route(&up, GITLAB))).await;
        World { up, gate }
    }

    /// A gateway with `acme/widgets` (alias `42`) registered through the CLI.
    async fn with_widgets() -> World {
        let world = World::start().await;
        world
            .repogate(&["repo", "add", "acme/widgets", "--alias", "42"])
            .await
            .ok();
        world
    }

    /// `http://ADMIN_ADDR`, as `--admin-url` takes it.
    fn admin_url(&self) -> String {
        format!("http://{}", self.gate.running.admin_addr)
    }

    /// `repogate ARGS --admin-url http://ADMIN_ADDR` as `admin` with `password`.
    async fn repogate_as(&self, password: &str, args: &[&str]) -> Run {
        let url = self.admin_url();
        let mut args = args.to_vec();
        args.extend(["--admin-url", &url]);
        let env = [
            ("REPOGATE_ADMIN_USER", "admin"),
            ("REPOGATE_ADMIN_PASSWORD", password),
        ];
        repogate(&args, &env).await
    }

    /// `repogate ARGS --admin-url http://ADMIN_ADDR` as `admin` / `pw`.
    async fn repogate(&self, args: &[&str]) -> Run {
        self.repogate_as("pw", args).await
    }

    /// The status of a GitLab issues read of `repo` through the proxy with `token`.
    async fn read_issues(&self, repo: &str, token: &str) -> u16 {
        let path = format!("/api/v4/projects/{}/issues", repo.replace('/', "%2F"));
        get(&self.gate.url(&path), token).await.status.as_u16()
    }

    /// How many tokens the store holds.
    fn stored_tokens(&self) -> usize {
        self.gate.running.gateway.tokens.store().token_count()
    }

    /// Revokes `id` in the gateway directly, for tests about other commands.
    async fn revoke_directly(&self, id: &str) {
        let id = repogate::token::TokenId::parse(id).expect("a token id");
        let revoked = self
            .gate
            .running
            .gateway
            .tokens
            .revoke(&id, repogate::now_ms())
            .await
            .expect("the store revokes");
        assert!(revoked.is_some(), "{id} was there to revoke");
    }

    /// `repogate token create …` with the README's arguments; asserts the
    /// two-line answer and returns the id and the token.
    async fn create(&self, description: &str, grants: &[&str]) -> (String, String) {
        let mut args = vec!["token", "create", "-d", description];
        for grant in grants {
            args.extend(["--grant", grant]);
        }
        args.extend(["--expires-in", "90d"]);
        let run = self.repogate(&args).await;
        let lines: Vec<&str> = run.ok().lines().collect();
        assert_eq!(lines.len(), 2, "{run:#?}");
        let id = lines[0]
            .strip_prefix("token ")
            .and_then(|rest| rest.strip_suffix(&format!(" (enterprise) {CREATED}")))
            .unwrap_or_else(|| panic!("`token ID (enterprise) {CREATED}`: {:?}", lines[0]));
        let token = lines[1];
        assert_token_belongs_to(token, id);
        (id.to_owned(), token.to_owned())
    }
}

/// `token` is a full token string (`rgt_` + 12 + 32 + 6 chars) whose public id is `id`.
fn assert_token_belongs_to(token: &str, id: &str) {
    assert!(
        id.len() == 16 && id.starts_with("rgt_"),
        "an id is rgt_ and 12 chars: {id:?}"
    );
    assert_eq!(token.len(), 54, "{token:?}");
    assert!(token.starts_with(id), "{token:?} belongs to {id}");
    assert!(token.bytes().skip(4).all(|b| b.is_ascii_alphanumeric()));
}

/// The secret part of a token: what must never be shown again.
fn secret_of(token: &str) -> &str {
    &token[16..48]
}

/// The rows of a table printed for people: the header's column starts, then
/// each row's cells cut at those columns.
fn table(out: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = out.lines();
    let header = lines.next().expect("a header line");
    let mut starts = vec![0];
    let bytes = header.as_bytes();
    for i in 1..bytes.len() {
        // A column starts after two spaces (one space is inside "LAST USED").
        if bytes[i] != b' ' && i >= 2 && bytes[i - 1] == b' ' && bytes[i - 2] == b' ' {
            starts.push(i);
        }
    }
    let cut = |line: &str| -> Vec<String> {
        starts
            .iter()
            .enumerate()
            .map(|(n, &from)| {
                let to = starts.get(n + 1).copied().unwrap_or(usize::MAX);
                let end = to.min(line.len());
                line.get(from.min(end)..end)
                    .unwrap_or_else(|| panic!("{line:?} is not aligned with {header:?}"))
                    .trim()
                    .to_owned()
            })
            .collect()
    };
    (cut(header), lines.map(cut).collect())
}

/// An RFC 3339 time string as a `SystemTime`.
fn time(value: &Value) -> SystemTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("a time string: {value}"));
    humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"))
}

#[tokio::test]
async fn repositories_added_on_the_command_line_are_listed_and_removed() {
    let world = World::start().await;

    let run = world
        .repogate(&["repo", "add", "acme/widgets", "--alias", "42"])
        .await;
    assert_eq!(run.ok(), "repository acme/widgets registered\n");

    let listed = world.repogate(&["repo", "list", "--json"]).await.json();
    assert_eq!(listed["count"], 1, "{listed}");
    let repo = &listed["repositories"][0];
    assert_eq!(repo["name"], "acme/widgets", "{listed}");
    assert_eq!(repo["aliases"], serde_json::json!(["42"]), "{listed}");
    assert_eq!(repo["origin"], "admin", "{listed}");
    let created = time(&repo["created_at"]);
    let age = SystemTime::now()
        .duration_since(created)
        .unwrap_or_default();
    assert!(age < Duration::from_secs(60), "{listed}");

    // The table for people carries the same record.
    let (header, rows) = table(world.repogate(&["repo", "list"]).await.ok());
    assert_eq!(header, ["NAME", "ALIASES", "CREATED", "ORIGIN"]);
    assert_eq!(
        rows,
        [[
            "acme/widgets",
            "42",
            repo["created_at"].as_str().unwrap(),
            "admin"
        ]]
    );

    // The alias really reaches the repository through the proxy.
    let admin_token = world.gate.mint(true, &[]).await;
    assert_eq!(world.read_issues("42", &admin_token).await, 200);
    assert_eq!(world.up.last().target, "/api/v4/projects/42/issues");

    let run = world.repogate(&["repo", "remove", "acme/widgets"]).await;
    assert_eq!(run.ok(), "repository acme/widgets removed\n");
    let listed = world.repogate(&["repo", "list", "--json"]).await.json();
    assert_eq!(listed["count"], 0, "{listed}");
    assert_eq!(listed["repositories"], serde_json::json!([]), "{listed}");

    let again = world.repogate(&["repo", "remove", "acme/widgets"]).await;
    let message = again.failed();
    assert!(
        message.contains("404") && message.contains("acme/widgets"),
        "{message}"
    );
}

#[tokio::test]
async fn the_admin_url_may_come_from_the_environment_instead_of_the_flag() {
    let world = World::start().await;
    let url = world.admin_url();
    let env = [
        ("REPOGATE_ADMIN_URL", url.as_str()),
        ("REPOGATE_ADMIN_USER", "admin"),
        ("REPOGATE_ADMIN_PASSWORD", "pw"),
    ];

    let run = repogate(&["repo", "add", "acme/widgets", "--alias", "42"], &env).await;
    assert_eq!(run.ok(), "repository acme/widgets registered\n");
    let listed = repogate(&["repo", "list", "--json"], &env).await.json();
    assert_eq!(listed["repositories"][0]["name"], "acme/widgets");
    assert_eq!(world.gate.running.gateway.registry.list().len(), 1);
}

#[tokio::test]
async fn a_token_created_on_the_command_line_works_through_the_proxy() {
    let world = World::with_widgets().await;
    world.repogate(&["repo", "add", "acme/gadgets"]).await.ok();

    let (_, token) = world
        .create("CI for widgets", &["acme/widgets=developer"])
        .await;
    assert_eq!(world.stored_tokens(), 1);

    // Developer on acme/widgets (by name and by alias); nothing on the
    // repository that existed at minting but was not granted.
    assert_eq!(world.read_issues("acme/widgets", &token).await, 200);
    assert_eq!(world.read_issues("42", &token).await, 200);
    assert_eq!(world.up.count(), 2);
    assert_eq!(world.read_issues("acme/gadgets", &token).await, 403);
    assert_eq!(
        world.up.count(),
        2,
        "the refused request stayed at the gateway"
    );
}

#[tokio::test]
async fn a_token_revoked_on_the_command_line_is_refused_from_the_next_proxy_request_on() {
    let world = World::start().await;
    world.repogate(&["repo", "add", "acme/widgets"]).await.ok();
    let (id, token) = world
        .create("CI for widgets", &["acme/widgets=developer"])
        .await;
    assert_eq!(world.read_issues("acme/widgets", &token).await, 200);
    assert_eq!(world.up.count(), 1);

    let run = world.repogate(&["token", "revoke", &id]).await;
    assert_eq!(run.ok(), format!("token {id} revoked\n"));

    // Refused on the very next request, and nothing more reaches the upstream.
    let url = world.gate.url("/api/v4/projects/acme%2Fwidgets/issues");
    let refused = get(&url, &token).await;
    assert_eq!(refused.status, 401, "{:?}", refused.body);
    assert_eq!(refused.json()["error"], "invalid_token");
    assert_eq!(world.up.count(), 1);

    let listed = world
        .repogate(&["token", "list", "--status", "revoked", "--json"])
        .await
        .json();
    assert_eq!(listed["count"], 1, "{listed}");
    assert_eq!(listed["tokens"][0]["id"], id.as_str());
    time(&listed["tokens"][0]["revoked_at"]);
    let active = world
        .repogate(&["token", "list", "--status", "active", "--json"])
        .await
        .json();
    assert_eq!(active["count"], 0, "{active}");

    // An id that is not there is an error that names it, not a silent success.
    let unknown = world
        .repogate(&["token", "revoke", "rgt_000000000000"])
        .await;
    assert_eq!(
        unknown.failed(),
        "error: 404 Not Found: token rgt_000000000000 not found"
    );
}

#[tokio::test]
async fn a_full_token_given_to_token_revoke_is_not_echoed_back() {
    let world = World::start().await;
    let (_, token) = world.create("pasted by mistake", &[]).await;

    let run = world.repogate(&["token", "revoke", &token]).await;
    assert!(
        !run.stdout.contains(secret_of(&token)) && !run.stderr.contains(secret_of(&token)),
        "the secret is shown again: {run:#?}"
    );
}

#[tokio::test]
async fn token_create_with_json_prints_the_record_and_the_token_once() {
    let world = World::with_widgets().await;

    let before = SystemTime::now();
    let created = world
        .repogate(&[
            "token",
            "create",
            "-d",
            "CI for widgets",
            "--grant",
            "acme/widgets=developer",
            "--expires-in",
            "90d",
            "--json",
        ])
        .await
        .json();
    let after = SystemTime::now();

    let id = created["id"].as_str().expect("an id");
    let token = created["token"].as_str().expect("the token");
    assert_token_belongs_to(token, id);
    assert_eq!(created["description"], "CI for widgets");
    assert_eq!(created["kind"], "enterprise");
    assert_eq!(created["admin"], false);
    assert_eq!(
        created["grants"],
        serde_json::json!({"acme/widgets": "developer"})
    );
    assert_eq!(created["status"], "active");
    assert_eq!(created["created_by"], "admin");
    let ninety_days = Duration::from_secs(90 * 24 * 3600);
    let expires = time(&created["expires_at"]);
    // The API keeps milliseconds, so allow for the truncation.
    assert!(
        expires + Duration::from_millis(1) >= before + ninety_days
            && expires <= after + ninety_days,
        "{created}"
    );

    assert_eq!(world.read_issues("acme/widgets", token).await, 200);

    // The record is there for later lookups, the token is not.
    let listed = world.repogate(&["token", "list", "--json"]).await;
    assert!(!listed.stdout.contains(secret_of(token)), "{listed:#?}");
    let listed = listed.json();
    assert_eq!(listed["tokens"][0]["id"], id);
    assert!(listed["tokens"][0].get("token").is_none(), "{listed}");
}

#[tokio::test]
async fn token_list_shows_a_table_for_people_and_json_and_never_a_secret() {
    let world = World::with_widgets().await;
    let (ci, ci_token) = world
        .create("CI for widgets", &["acme/widgets=developer"])
        .await;
    let (old, old_token) = world.create("old bot", &[]).await;
    world.revoke_directly(&old).await;
    assert_eq!(world.read_issues("acme/widgets", &ci_token).await, 200);

    let run = world
        .repogate(&["token", "list", "--status", "active"])
        .await;
    for token in [&ci_token, &old_token] {
        assert!(!run.stdout.contains(secret_of(token)), "{run:#?}");
    }
    let (header, rows) = table(run.ok());
    assert_eq!(
        header,
        [
            "ID",
            "KIND",
            "STATUS",
            "DESCRIPTION",
            "CREATED",
            "LAST USED"
        ]
    );
    assert_eq!(rows.len(), 1, "only the active token: {}", run.stdout);
    let row = &rows[0];
    assert_eq!(
        row[..4],
        [ci.as_str(), "enterprise", "active", "CI for widgets"]
    );
    time(&Value::from(row[4].as_str()));
    time(&Value::from(row[5].as_str()));

    let run = world.repogate(&["token", "list", "--json"]).await;
    for token in [&ci_token, &old_token] {
        assert!(!run.stdout.contains(secret_of(token)), "{run:#?}");
    }
    let listed = run.json();
    assert_eq!(listed["count"], 2, "{listed}");
    let tokens = listed["tokens"].as_array().unwrap();
    let find = |id: &str| {
        tokens
            .iter()
            .find(|t| t["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {listed}"))
    };
    assert_eq!(find(&ci)["status"], "active");
    assert_eq!(find(&ci)["description"], "CI for widgets");
    assert_eq!(
        find(&ci)["grants"],
        serde_json::json!({"acme/widgets": "developer"})
    );
    assert_eq!(find(&ci)["last_used_at"].as_str(), Some(row[5].as_str()));
    assert_eq!(find(&old)["status"], "revoked");
    assert!(find(&old)["last_used_at"].is_null());
    for t in tokens {
        assert!(t.get("token").is_none(), "{t}");
    }
}

#[tokio::test]
async fn token_export_writes_the_chosen_columns_of_the_filtered_tokens_to_a_file() {
    let world = World::with_widgets().await;
    world.repogate(&["repo", "add", "acme/gadgets"]).await.ok();
    let (ci, ci_token) = world
        .create("CI for widgets", &["acme/widgets=developer"])
        .await;
    let (old, old_token) = world
        .create("=old, \"bot\"", &["acme/widgets=viewer"])
        .await;
    world.revoke_directly(&old).await;
    let (_, other_token) = world
        .create("gadgets only", &["acme/gadgets=reviewer"])
        .await;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.csv");
    let run = world
        .repogate(&[
            "token",
            "export",
            "--repo",
            "acme/widgets",
            "--columns",
            "id,description,status",
            "-o",
            file.to_str().unwrap(),
        ])
        .await;
    assert_eq!(run.ok(), "", "the CSV goes to the file only");

    let text = std::fs::read_to_string(&file).expect("the export file was written");
    for token in [&ci_token, &old_token, &other_token] {
        assert!(!text.contains(secret_of(token)), "{text}");
    }
    let mut rows = read_csv(&file);
    assert_eq!(rows.remove(0), ["id", "description", "status"]);
    rows.sort();
    let mut expected = vec![
        vec![ci, "CI for widgets".to_owned(), "active".to_owned()],
        // A spreadsheet formula is neutralised, and CSV quoting survives.
        vec![old, "'=old, \"bot\"".to_owned(), "revoked".to_owned()],
    ];
    expected.sort();
    assert_eq!(rows, expected, "{text}");
}

/// Every record of a CSV file, the header included.
fn read_csv(file: &Path) -> Vec<Vec<String>> {
    csv_records(&std::fs::read(file).expect("the export file opens"))
}

#[tokio::test]
async fn a_wrong_password_exits_non_zero_with_a_clear_message_and_changes_nothing() {
    let world = World::start().await;
    world.gate.add_repo("acme/widgets").await;

    let run = world
        .repogate_as(
            "not-the-password",
            &[
                "token",
                "create",
                "-d",
                "CI for widgets",
                "--grant",
                "acme/widgets=developer",
            ],
        )
        .await;
    let message = run.failed();
    assert_eq!(message, "error: 401 Unauthorized: wrong user or password");
    assert!(!run.stderr.contains("not-the-password"), "{run:#?}");
    assert_eq!(world.stored_tokens(), 0);
}

#[tokio::test]
async fn a_bad_grant_exits_non_zero_and_mints_nothing() {
    let world = World::start().await;
    world.gate.add_repo("acme/widgets").await;

    let cases = [
        ("acme/widgets", "--grant `acme/widgets` is not REPO=ROLE"),
        ("acme/widgets=wizard", "400 Bad Request: bad JSON body"),
        ("acme/nope=viewer", "repository acme/nope"),
    ];
    for (grant, expected) in cases {
        let run = world
            .repogate(&["token", "create", "-d", "ci", "--grant", grant])
            .await;
        let message = run.failed();
        assert!(message.contains(expected), "{grant}: {message}");
    }
    assert_eq!(world.stored_tokens(), 0);
}

#[tokio::test]
async fn an_unreachable_admin_api_exits_non_zero_naming_the_url() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let env = [
        ("REPOGATE_ADMIN_USER", "admin"),
        ("REPOGATE_ADMIN_PASSWORD", "pw"),
    ];

    let run = repogate(&["repo", "list", "--admin-url", &url], &env).await;
    let message = run.failed();
    let expected = format!("error: cannot reach the admin API at {url}/admin/v1/login: ");
    assert!(message.starts_with(&expected), "{message}");
    assert!(
        message.contains("Connection refused"),
        "the cause: {message}"
    );
}

#[tokio::test]
async fn without_credentials_or_a_terminal_the_cli_names_the_variable_to_set() {
    let url = format!("http://127.0.0.1:{}", free_port());

    let run = repogate(&["token", "list", "--admin-url", &url], &[]).await;
    assert_eq!(
        run.failed(),
        "error: set REPOGATE_ADMIN_USER (no terminal to prompt on)"
    );

    let run = repogate(
        &["token", "list", "--admin-url", &url],
        &[("REPOGATE_ADMIN_USER", "admin")],
    )
    .await;
    assert_eq!(
        run.failed(),
        "error: set REPOGATE_ADMIN_PASSWORD (no terminal to prompt on)"
    );
}
