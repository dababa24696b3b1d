//! One test's world: bare repositories served by `git http-backend`, a
//! gateway in front of them, and a real git client with an empty home.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::backend::{self, GitServer};
use crate::common::{gateway, Gate};

/// The repository every test clones; it starts with one seed commit.
pub const WIDGETS: &str = "acme/widgets";
/// A registered, empty repository.
pub const SECRET: &str = "acme/secret";
/// The seed commit's only file.
pub const README: &str = "hello from the seed commit\n";

/// The client's whole configuration: an identity and a fixed branch name.
const GITCONFIG: &str = "[user]\n\tname = Test Bot\n\temail = bot@example.com\n\
                         [init]\n\tdefaultBranch = main\n";

/// The gateway in front of the backend, with the `git_http` preset on `/`.
const GATEWAY: &str = "[account]\nplan = \"enterprise\"\ndefault_role = \"no_access\"\n\
                       [[upstreams]]\nname = \"git\"\nurl = \"http://BACKEND\"\n\
                       [[routes]]\nprefix = \"/\"\nupstream = \"git\"\npreset = \"git_http\"\n";

pub struct World {
    pub gate: Gate,
    pub backend: GitServer,
    /// The client's HOME and the parent of every working tree.
    scratch: TempDir,
    _repos: TempDir,
}

/// The result of one git command.
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with git's stderr unless the command succeeded; returns stdout, trimmed.
    #[track_caller]
    pub fn ok(self) -> String {
        assert!(self.success, "git failed:\n{}", self.stderr);
        self.stdout.trim().to_owned()
    }

    /// Panics unless the command failed; returns its stderr.
    #[track_caller]
    pub fn failed(self) -> String {
        assert!(!self.success, "git should have failed:\n{}", self.stderr);
        self.stderr
    }
}

impl World {
    /// Builds both bare repositories, seeds `acme/widgets` and starts the gateway.
    pub async fn new() -> World {
        let repos = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        std::fs::write(scratch.path().join(".gitconfig"), GITCONFIG).unwrap();
        let backend = backend::start(repos.path()).await;
        let gate = gateway(&GATEWAY.replace("BACKEND", &backend.addr.to_string())).await;
        let world = World {
            gate,
            backend,
            scratch,
            _repos: repos,
        };

        // Registered before any token is minted, so grants can name them.
        for name in [WIDGETS, SECRET] {
            let bare = format!("{name}.git");
            let root = &world.backend.root;
            world.git(root, &["init", "-q", "--bare", &bare]).await.ok();
            world.gate.add_repo(name).await;
        }
        let scratch = world.scratch.path();
        world.git(scratch, &["init", "-q", "seed"]).await.ok();
        world.commit(&world.dir("seed"), "README", README).await;
        world.seed_push(&["main"]).await;
        world
    }

    /// The gateway URL of `repo`, with `userinfo` (`user:password`) unless empty.
    pub fn url(&self, userinfo: &str, repo: &str) -> String {
        let addr = self.gate.running.proxy_addr;
        match userinfo {
            "" => format!("http://{addr}/{repo}.git"),
            _ => format!("http://{userinfo}@{addr}/{repo}.git"),
        }
    }

    /// A working-tree path in the scratch folder.
    pub fn dir(&self, name: &str) -> PathBuf {
        self.scratch.path().join(name)
    }

    /// The bare repository behind the backend.
    pub fn bare(&self, repo: &str) -> PathBuf {
        self.backend.root.join(format!("{repo}.git"))
    }

    /// Runs git in `dir` with a clean environment: no system config, no prompts.
    pub async fn git(&self, dir: &Path, args: &[&str]) -> Run {
        let mut command = Command::new("git");
        command
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.scratch.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0");

        // Off the async workers: the gateway and the backend run on them.
        let out = tokio::task::spawn_blocking(move || command.output());
        let out = out.await.unwrap().expect("git runs");
        Run {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Clones `url` into the scratch folder as `name`.
    pub async fn clone(&self, url: &str, name: &str) -> Run {
        self.git(self.scratch.path(), &["clone", url, name]).await
    }

    /// Clones `repo` through the gateway with `token` as the Basic password.
    pub async fn clone_with(&self, token: &str, repo: &str, name: &str) -> Run {
        let url = self.url(&format!("git:{token}"), repo);
        self.clone(&url, name).await
    }

    /// Writes `file` in `dir`, commits it and returns the new commit id.
    pub async fn commit(&self, dir: &Path, file: &str, contents: impl AsRef<[u8]>) -> String {
        std::fs::write(dir.join(file), contents).unwrap();
        self.git(dir, &["add", file]).await.ok();
        let message = format!("write {file}");
        self.git(dir, &["commit", "-q", "-m", &message]).await.ok();
        self.git(dir, &["rev-parse", "HEAD"]).await.ok()
    }

    /// Pushes from the seed working tree straight into the bare
    /// `acme/widgets` by its local path, around the gateway.
    pub async fn seed_push(&self, refspecs: &[&str]) {
        let bare = self.bare(WIDGETS);
        let mut args = vec!["push", "-q", bare.to_str().unwrap()];
        args.extend(refspecs);
        self.git(&self.dir("seed"), &args).await.ok();
    }

    /// The commit `main` points at in the bare repository itself.
    pub async fn tip(&self, repo: &str) -> String {
        self.branch(repo, "main").await.expect("main exists")
    }

    /// The commit `branch` points at in the bare repository, if it exists.
    pub async fn branch(&self, repo: &str, branch: &str) -> Option<String> {
        let refname = format!("refs/heads/{branch}");
        let args = ["--git-dir=.", "rev-parse", "-q", "--verify", &refname];
        let run = self.git(&self.bare(repo), &args).await;
        run.success.then(|| run.stdout.trim().to_owned())
    }
}
