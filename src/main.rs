//! The `musicfs` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    musicfs::cli::main()
}
