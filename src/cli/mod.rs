//! The command line: `serve`, `demo`, `check-config`, `hash-password`, and the
//! admin API client commands. `main.rs` only calls [`run`].

use std::future::Future;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config};

mod client;
mod commands;

use client::Target;
use commands::{RepoCommand, TokenCommand};

/// repogate: an authorization gateway in front of repository APIs.
#[derive(Debug, Parser)]
#[command(name = "repogate", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway from a config file until SIGTERM or Ctrl-C.
    Serve {
        /// The TOML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the gateway on its embedded demo config with an echo upstream,
    /// sample repositories and tokens, and print commands to try.
    Demo,
    /// Check a config file: exit 0 with a summary, or 1 with the error.
    CheckConfig {
        /// The TOML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Read a password from standard input and print its argon2id PHC string.
    HashPassword,
    /// Copy the store (tokens, repositories, settings, audit) to one file;
    /// the gateway must be stopped.
    Backup {
        /// The TOML config file (for the store path).
        #[arg(long, short)]
        config: PathBuf,
        /// The backup file to write.
        #[arg(long)]
        to: PathBuf,
    },
    /// Load a backup into an empty store; the gateway must be stopped.
    Restore {
        /// The TOML config file (for the store path).
        #[arg(long, short)]
        config: PathBuf,
        /// The backup file to read.
        #[arg(long)]
        from: PathBuf,
    },
    /// Mint, list, revoke or export tokens through the admin API.
    Token {
        /// The admin API and output format.
        #[command(flatten)]
        target: Target,
        /// What to do.
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Register, list or remove repositories through the admin API.
    Repo {
        /// The admin API and output format.
        #[command(flatten)]
        target: Target,
        /// What to do.
        #[command(subcommand)]
        command: RepoCommand,
    },
}

/// Parses the command line and runs the command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve(&config),
        Command::Demo => demo(),
        Command::CheckConfig { config } => check_config(&config),
        Command::HashPassword => hash_password(),
        Command::Backup { config, to } => store_copy(
            &config,
            |store| crate::backup::backup(store, &to),
            "backed up",
        ),
        Command::Restore { config, from } => store_copy(
            &config,
            |store| crate::backup::restore(store, &from),
            "restored",
        ),
        Command::Token { target, command } => client_call(commands::token(&target, command)),
        Command::Repo { target, command } => client_call(commands::repo(&target, command)),
    }
}

fn client_call(call: impl Future<Output = Result<(), client::ClientError>>) -> ExitCode {
    block_on(async { report(call.await) })
}

/// Runs `work` to completion on a single-threaded runtime: the admin API,
/// reloads and CLI calls need no more; proxy workers bring their own.
fn block_on(work: impl Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(work),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Exit 0, or print the error and exit 1.
fn report<E: std::fmt::Display>(result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(path: &Path) -> ExitCode {
    let config = match config::load(path) {
        Ok(c) => c,
        Err(e) => return report(Err(e)),
    };
    crate::logging::init(&config.log);
    block_on(async {
        match crate::app::start(config, crate::app::shutdown_signal()).await {
            Ok(running) => {
                running.wait().await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %e, "repogate could not start");
                report(Err(e))
            }
        }
    })
}

fn demo() -> ExitCode {
    let config = match crate::demo::demo_config(Path::new(".")) {
        Ok(c) => c,
        Err(e) => return report(Err(format!("the embedded demo config is invalid: {e}"))),
    };
    crate::logging::init(&config.log);
    block_on(async { report(crate::demo::run().await) })
}

fn store_copy(
    config: &Path,
    run: impl FnOnce(&Path) -> Result<usize, crate::backup::BackupError>,
    done: &str,
) -> ExitCode {
    let config = match config::load(config) {
        Ok(c) => c,
        Err(e) => return report(Err(e)),
    };
    report(run(&config.store.path).map(|records| {
        println!(
            "{done} {records} records of {}",
            config.store.path.display()
        );
    }))
}

fn check_config(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(config) => {
            print!("{}", summary(&config));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A one-screen description of a valid config.
pub fn summary(config: &Config) -> String {
    let mut out = format!("{}: OK\n", config.source.display());
    let tls = if config.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    out += &format!("  proxy    {tls}://{}\n", config.server.listen);
    out += &format!(
        "  admin    http://{} ({} user(s))\n",
        config.admin.listen,
        config.admin.users.len()
    );
    out += &format!("  store    {}\n", config.store.path.display());
    out += &format!(
        "  account  plan {}, default role {}\n",
        config.account.plan.as_str(),
        config.account.default_role.role()
    );
    for up in &config.upstreams {
        out += &format!(
            "  upstream {} -> {} ({} injected header(s))\n",
            up.name,
            up.url,
            up.headers.len()
        );
    }
    for route in &config.routes {
        let preset = route
            .preset
            .map(|p| format!(" preset {p}"))
            .unwrap_or_default();
        out += &format!(
            "  route    {} -> {}{} ({} rule(s))\n",
            route.prefix,
            route.upstream,
            preset,
            route.rules.len()
        );
    }
    out += &format!("  repositories {}\n", config.repositories.len());
    out
}

fn hash_password() -> ExitCode {
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("password: ").map_err(|e| e.to_string())
    } else {
        read_line_from_stdin()
    };
    let password = match password {
        Ok(p) if !p.is_empty() => p,
        Ok(_) => {
            eprintln!("error: empty password");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: cannot read password: {e}");
            return ExitCode::FAILURE;
        }
    };
    match crate::password::hash(&password) {
        Ok(phc) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{phc}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read_line_from_stdin() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
