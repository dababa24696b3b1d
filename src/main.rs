//! The `repogate` binary; everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    repogate::cli::run()
}
