//! Running one test of this binary in a child process, for tests that can
//! wedge the process: a hung sled flush blocks sled's process-wide I/O pool,
//! and every later flush in the process (other tests' included) with it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set in the child's environment; the inner tests do nothing without it.
pub const CHILD: &str = "REPOGATE_TEST_CHILD";

/// Whether this process is a child started by [`run_in_child`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Runs the ignored test `name` of this binary in a child process and fails
/// if it fails or is still running after `limit` (then it is killed).
pub fn run_in_child(name: &str, limit: Duration) {
    let out = tempfile::tempfile().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out.try_clone().unwrap())
        .spawn()
        .expect("the test binary runs");

    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };

    // The first lines say what hung; the rest repeat it from other tasks.
    let output: String = read_all(out)
        .lines()
        .take(30)
        .collect::<Vec<_>>()
        .join("\n");
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!("{name} failed ({s}):\n{output}"),
        None => panic!("{name} was still running after {limit:?} and was killed:\n{output}"),
    }
}

fn read_all(mut file: std::fs::File) -> String {
    use std::io::{Read, Seek};
    let mut text = String::new();
    file.seek(std::io::SeekFrom::Start(0)).unwrap();
    file.read_to_string(&mut text).unwrap();
    text
}
