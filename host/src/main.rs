//! The `payrules` command: see [`cli`] for its commands.

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
