//! The `romkit` binary: parse arguments, run, map errors to exit codes.

use std::process::ExitCode;

fn main() -> ExitCode {
    romkit::util::pages::limit_arenas();
    romkit::cli::main()
}
