//! `repogate demo` as a newcomer meets it: run the binary, paste the commands
//! it prints into a shell, and get what each command's caption promises.
//!
//! The demo binds fixed ports (8080, 9090, 8089) and the commands need
//! `curl`; when a port is taken or curl is missing the test fails and says
//! which, rather than pass without showing anything (CI installs curl).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The ports the demo's embedded config binds.
const PORTS: [u16; 3] = [8080, 9090, 8089];
/// How long the demo may take to print its instructions.
const STARTUP: Duration = Duration::from_secs(15);
/// How long the demo may take to stop after Ctrl-C.
const SHUTDOWN: Duration = Duration::from_secs(10);

/// The running demo; killed if the test ends before it stopped by itself.
struct Demo {
    child: Child,
    stderr: tempfile::NamedTempFile,
}

impl Demo {
    fn log(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a command's caption promises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Promise {
    Allowed,
    Forbidden,
    Unauthenticated,
    Admin,
}

impl Promise {
    fn of_caption(caption: &str) -> Option<Promise> {
        match caption {
            c if c.starts_with("Allowed") => Some(Promise::Allowed),
            c if c.starts_with("Refused with 403") => Some(Promise::Forbidden),
            c if c.starts_with("Refused with 401") => Some(Promise::Unauthenticated),
            c if c.starts_with("Admin mode") => Some(Promise::Admin),
            _ => None,
        }
    }
}

/// One pasted command and what its caption promised.
struct Step {
    promise: Promise,
    command: String,
}

/// The first of the demo's ports something else holds, if any.
fn taken_port() -> Option<u16> {
    PORTS
        .into_iter()
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_err())
}

fn have_curl() -> bool {
    Command::new("which")
        .arg("curl")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn start_demo() -> Demo {
    let stderr = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_repogate"))
        .arg("demo")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr.reopen().unwrap())
        .spawn()
        .expect("the repogate binary runs");
    Demo { child, stderr }
}

/// The demo's stdout up to and including the line starting "Ctrl-C".
fn read_instructions(demo: &mut Demo) -> Vec<String> {
    let stdout = demo.child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });

    let deadline = Instant::now() + STARTUP;
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let last = line.starts_with("Ctrl-C");
                lines.push(line);
                if last {
                    return lines;
                }
            }
            Err(e) => panic!(
                "no Ctrl-C line from the demo ({e}); stdout:\n{}\nstderr:\n{}",
                lines.join("\n"),
                demo.log()
            ),
        }
    }
}

/// The `export` lines, and every command with the caption above it.
fn paste_buffer(lines: &[String]) -> (Vec<String>, Vec<Step>) {
    let (mut exports, mut steps) = (Vec::new(), Vec::new());
    let mut caption = "";
    for line in lines.iter().map(|l| l.trim()) {
        if line.starts_with("export ") {
            exports.push(line.to_owned());
        } else if line.starts_with("curl") || line.starts_with("SESSION=") {
            let promise = Promise::of_caption(caption)
                .unwrap_or_else(|| panic!("{line:?} is under an unknown caption {caption:?}"));
            steps.push(Step {
                promise,
                command: line.to_owned(),
            });
        } else if !line.is_empty() {
            caption = line;
        }
    }
    (exports, steps)
}

/// Runs the exports and then every command in one bash, as one paste would,
/// and returns each command's output. A fresh curl config caps each call's
/// time and ignores the user's `.curlrc`; proxies are bypassed.
fn run_pasted(exports: &[String], steps: &[Step], home: &Path) -> Vec<String> {
    std::fs::write(home.join(".curlrc"), "max-time = 20\n").unwrap();
    let mut script = exports.join("\n");
    for (i, step) in steps.iter().enumerate() {
        script.push_str(&format!("\necho; echo '@@step {i}'\n{}", step.command));
    }
    script.push_str("\necho; echo '@@end'\n");

    let output = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("CURL_HOME", home)
        .env("NO_PROXY", "*")
        .env("no_proxy", "*")
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();

    let mut outputs = Vec::new();
    for i in 0..steps.len() {
        let start = format!("@@step {i}\n");
        let after = stdout
            .split_once(&start)
            .unwrap_or_else(|| panic!("step {i} never ran:\n{stdout}"))
            .1;
        let end = after.find("\n@@").unwrap_or(after.len());
        outputs.push(after[..end].trim().to_owned());
    }
    outputs
}

fn json(output: &str, command: &str) -> Value {
    serde_json::from_str(output)
        .unwrap_or_else(|e| panic!("{command}\nprinted no JSON ({e}):\n{output}"))
}

/// The path and query a command's URL asks for, as the upstream should see them.
fn target_of(command: &str) -> &str {
    let url = command
        .split_whitespace()
        .map(|word| word.trim_matches('"'))
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {command}"));
    let after_scheme = &url["http://".len()..];
    &after_scheme[after_scheme.find('/').unwrap_or(after_scheme.len())..]
}

/// Checks one command's output against its caption's promise; returns a
/// short name of what it showed, for the count of kinds below.
fn check(step: &Step, output: &str, tokens: &[&str]) -> &'static str {
    let command = &step.command;
    for token in tokens {
        assert!(
            !output.contains(token),
            "{command}\nechoed a repogate token:\n{output}"
        );
    }
    match step.promise {
        Promise::Allowed => {
            let echo = json(output, command);
            assert_eq!(
                echo["upstream"], "repogate demo echo",
                "{command}\n{output}"
            );
            let headers = &echo["headers"];
            assert_eq!(
                headers["private-token"], "demo-upstream-credential",
                "{command}"
            );
            assert!(
                headers.get("authorization").is_none(),
                "{command}\n{output}"
            );
            assert_eq!(echo["target"], target_of(command), "{command}\n{output}");
            "allowed"
        }
        Promise::Forbidden => {
            assert_eq!(
                json(output, command)["error"],
                "forbidden",
                "{command}\n{output}"
            );
            "forbidden"
        }
        Promise::Unauthenticated => {
            assert!(output.starts_with("HTTP/1.1 401"), "{command}\n{output}");
            "unauthenticated"
        }
        Promise::Admin if command.starts_with("SESSION=") => {
            assert!(output.is_empty(), "{command}\n{output}");
            "login"
        }
        Promise::Admin if command.contains("export.csv") => {
            let header = output.lines().next().unwrap_or("");
            assert_eq!(
                header, "id,description,kind,status,grants",
                "{command}\n{output}"
            );
            assert!(output.lines().count() >= 3, "{command}\n{output}");
            "export"
        }
        Promise::Admin if command.contains("-X POST") => {
            let created = json(output, command);
            assert!(created["token"]
                .as_str()
                .is_some_and(|t| t.starts_with("rgt_")));
            "create"
        }
        Promise::Admin => {
            let listed = json(output, command);
            let tokens = listed["tokens"].as_array().expect("a tokens array");
            assert!(tokens.len() >= 2, "{command}\n{output}");
            "list"
        }
    }
}

/// Sends Ctrl-C and waits for the demo to stop by itself.
fn interrupt(demo: &mut Demo) -> std::process::ExitStatus {
    let pid = demo.child.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(sent.success(), "kill -INT {pid} failed");

    let deadline = Instant::now() + SHUTDOWN;
    loop {
        if let Some(status) = demo.child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not stop within {SHUTDOWN:?} of Ctrl-C; stderr:\n{}",
            demo.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_demo_prints_commands_that_work_when_pasted() {
    // A skipped test would pass without showing anything: refuse instead.
    if let Some(port) = taken_port() {
        panic!("port {port} is taken (a demo still running?); the demo binds fixed ports");
    }
    assert!(
        have_curl(),
        "the demo's commands need curl; install it (.ci/run does)"
    );

    let mut demo = start_demo();
    let lines = read_instructions(&mut demo);
    let (exports, steps) = paste_buffer(&lines);
    let tokens: Vec<&str> = exports
        .iter()
        .filter_map(|e| e.split_once('=').map(|(_, t)| t))
        .collect();
    assert_eq!(tokens.len(), 2, "two exported tokens: {exports:?}");

    let home = tempfile::tempdir().unwrap();
    let outputs = run_pasted(&exports, &steps, home.path());
    let mut shown: Vec<&str> = steps
        .iter()
        .zip(&outputs)
        .map(|(step, output)| check(step, output, &tokens))
        .collect();
    shown.sort();
    let count = |kind: &str| shown.iter().filter(|k| **k == kind).count();
    assert!(count("allowed") >= 3, "{shown:?}");
    assert!(count("forbidden") >= 2, "{shown:?}");
    for kind in ["unauthenticated", "login", "list", "create", "export"] {
        assert_eq!(count(kind), 1, "{kind}: {shown:?}");
    }

    let status = interrupt(&mut demo);
    assert!(status.success(), "{status}; stderr:\n{}", demo.log());
}
