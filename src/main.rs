//! The `repogate` binary; everything lives in the library's `cli` module.

/// mimalloc instead of the system allocator: a proxied request allocates and
/// frees dozens of small buffers, and glibc's malloc was a tenth of the proxy
/// workers' user time under load (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    repogate::cli::run()
}
