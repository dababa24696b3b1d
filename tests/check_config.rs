//! `repogate check-config` against real files: a summary and exit 0 for a good
//! file, and for each kind of bad file exit 1 with file, line, key and reason.

use std::path::PathBuf;
use std::process::Command;

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

fn check(text: &str) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gate.toml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_repogate"))
        .args(["check-config", "--config"])
        .arg(&file)
        .env_remove("REPOGATE_TEST_UNSET_VAR")
        .output()
        .unwrap();
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        file,
        _dir: dir,
    }
}

/// Asserts exit 1 and an error naming `file:line:`, the key and the reason.
fn assert_error(text: &str, line: usize, key: &str, reason: &str) {
    let out = check(text);
    assert_eq!(
        out.code, 1,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    let location = format!("{}:{line}:", out.file.display());
    assert!(
        out.stderr.contains(&location),
        "expected {location} in: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains(key),
        "expected key {key} in: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains(reason),
        "expected {reason:?} in: {}",
        out.stderr
    );
}

const UPSTREAM: &str = "[[upstreams]]\nname = \"gitlab\"\nurl = \"https://gitlab.example.com\"\n";

#[test]
fn a_good_file_prints_a_summary_and_exits_zero() {
    let text = format!("{UPSTREAM}[[routes]]\nprefix = \"/\"\nupstream = \"gitlab\"\npreset = \"gitlab\"\n[[repositories]]\nname = \"acme/widgets\"\naliases = [\"42\"]\n");
    let out = check(&text);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("OK"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("upstream gitlab -> https://gitlab.example.com"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("route    / -> gitlab"),
        "{}",
        out.stdout
    );
}

#[test]
fn the_shipped_example_files_are_valid() {
    let root = env!("CARGO_MANIFEST_DIR");
    let demo = Command::new(env!("CARGO_BIN_EXE_repogate"))
        .args([
            "check-config",
            "--config",
            &format!("{root}/config/demo.toml"),
        ])
        .output()
        .unwrap();
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let example = Command::new(env!("CARGO_BIN_EXE_repogate"))
        .args([
            "check-config",
            "--config",
            &format!("{root}/config/repogate.toml"),
        ])
        .env("GITLAB_TOKEN", "glpat-example")
        .env(
            "REPOGATE_ADMIN_HASH",
            repogate::password::hash("example").unwrap(),
        )
        .output()
        .unwrap();
    assert!(
        example.status.success(),
        "{}",
        String::from_utf8_lossy(&example.stderr)
    );
}

#[test]
fn an_unknown_key_is_named_with_its_line() {
    assert_error(
        "[server]\nlisten = \"127.0.0.1:8080\"\nlisen = \"x\"\n",
        3,
        "server",
        "unknown field `lisen`",
    );
}

#[test]
fn a_route_to_an_unknown_upstream_is_named_with_its_line() {
    let text = format!(
        "{UPSTREAM}\n[[routes]]\nprefix = \"/\"\nupstream = \"gitlub\"\npreset = \"gitlab\"\n"
    );
    assert_error(
        &text,
        7,
        "routes[0].upstream",
        "no upstream named `gitlub` (known: gitlab)",
    );
}

#[test]
fn a_bad_listen_address_is_named_with_its_line() {
    assert_error(
        "[admin]\nlisten = \"localhost\"\n",
        2,
        "admin.listen",
        "invalid socket address",
    );
}

#[test]
fn a_default_role_above_reviewer_is_refused() {
    assert_error(
        "[account]\nplan = \"enterprise\"\ndefault_role = \"maintainer\"\n",
        3,
        "account.default_role",
        "above reviewer",
    );
}

#[test]
fn an_unknown_plan_is_refused() {
    assert_error(
        "[account]\nplan = \"gold\"\n",
        2,
        "account.plan",
        "unknown variant `gold`",
    );
}

#[test]
fn an_unknown_role_name_is_refused() {
    assert_error(
        "[account]\ndefault_role = \"owner\"\n",
        2,
        "account.default_role",
        "unknown variant `owner`",
    );
}

#[test]
fn a_missing_secret_variable_is_named_without_leaking_anything() {
    let text = "[[upstreams]]\nname = \"gitlab\"\nurl = \"https://gitlab.example.com\"\nheaders = { \"PRIVATE-TOKEN\" = \"${env:REPOGATE_TEST_UNSET_VAR}\" }\n";
    assert_error(
        text,
        4,
        "upstreams[0].headers.PRIVATE-TOKEN",
        "REPOGATE_TEST_UNSET_VAR is not set",
    );
}

#[test]
fn a_bad_duration_is_refused() {
    assert_error(
        "[server]\nheader_read_timeout = \"ten seconds\"\n",
        2,
        "server.header_read_timeout",
        "",
    );
}

#[test]
fn a_bad_upstream_url_is_refused() {
    assert_error(
        "[[upstreams]]\nname = \"x\"\nurl = \"ftp://example.com\"\n",
        3,
        "upstreams[0].url",
        "http:// or https://",
    );
}

#[test]
fn a_bad_route_template_is_named() {
    let text = format!("{UPSTREAM}[[routes]]\nprefix = \"/x/\"\nupstream = \"gitlab\"\n[[routes.rules]]\npath = \"/x/{{repo\"\naction = \"read\"\n");
    assert_error(&text, 8, "routes[0].rules[0].path", "");
}

#[test]
fn a_toml_syntax_error_gives_its_line() {
    let out = check("[server]\nlisten = \"127.0.0.1:8080\n");
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(&format!("{}:2:", out.file.display())),
        "{}",
        out.stderr
    );
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_repogate"))
        .args(["check-config", "--config", "/nonexistent/repogate.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config"));
}

#[test]
fn a_bad_password_hash_is_refused_at_load() {
    let text = "[[admin.users]]\nname = \"admin\"\npassword_hash = \"plaintext\"\n";
    assert_error(text, 3, "admin.users[0].password_hash", "hash-password");
}

#[test]
fn an_upstream_url_with_credentials_is_refused_without_repeating_them() {
    let text =
        "[[upstreams]]\nname = \"x\"\nurl = \"https://bot:hunter2-secret@gitlab.example.com\"\n";
    assert_error(
        text,
        3,
        "upstreams[0].url",
        "put the upstream's credential in `headers`",
    );

    let out = check(text);
    assert!(!out.stderr.contains("hunter2-secret"), "{}", out.stderr);
    assert!(!out.stdout.contains("hunter2-secret"), "{}", out.stdout);
}

/// Runs `repogate hash-password` with `input` piped to its stdin.
fn hash_password(input: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;

    let mut child = Command::new(env!("CARGO_BIN_EXE_repogate"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn hash_password_prints_one_argon2id_hash_that_verifies_only_the_piped_password() {
    let out = hash_password("pw\n");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stdout: {stdout:?}");
    assert!(stdout.ends_with('\n'), "{stdout:?}");
    let phc = lines[0];
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    repogate::password::check_phc(phc).unwrap();
    assert!(
        repogate::password::verify(phc, "pw").unwrap(),
        "the piped password, without its newline, verifies"
    );
    assert!(!repogate::password::verify(phc, "px").unwrap());
    assert!(
        !repogate::password::verify(phc, "pw\n").unwrap(),
        "the newline is not part of the password"
    );
}

#[test]
fn hash_password_refuses_an_empty_password_with_a_clear_message() {
    for input in ["", "\n", "\r\n"] {
        let out = hash_password(input);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{input:?} was accepted: {stdout}");
        assert!(stdout.is_empty(), "{input:?}: no hash is printed: {stdout}");
        assert!(
            stderr.contains("empty password"),
            "{input:?}: stderr: {stderr}"
        );
    }
}
