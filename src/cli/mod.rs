//! The command line: argument structs, dispatch and output rendering.
//!
//! stdout carries the result (a table, or one JSON document with `--json`);
//! logs, warnings and progress go to stderr.

mod apps;
mod build;
mod debloat;
mod diff;
mod docs;
mod fastboot;
mod fixture;
mod inspect;
mod ls;
mod pack;
mod progress;
mod sparse;
mod unpack;
mod verify;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::{Error, Result};

/// Read, verify, unpack and rebuild Android firmware packages.
#[derive(Parser, Debug)]
#[command(name = "romkit", version, about, long_about = None)]
pub struct Cli {
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Only errors on stderr; no progress bars.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More log output on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Worker threads (default: all cores).
    #[arg(short = 'j', long, global = true, value_name = "N")]
    pub jobs: Option<usize>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show what a package is: kind, version, device, partitions, operations.
    Inspect(inspect::Args),
    /// Check every hash and signature a package carries, without writing images.
    Verify(verify::Args),
    /// Extract partition images in parallel, checking every hash.
    Unpack(unpack::Args),
    /// Build an EROFS image from an extracted tree and its sidecars.
    Pack(pack::Args),
    /// List files inside a partition of a package or a filesystem image.
    Ls(ls::LsArgs),
    /// Print a file from inside a partition of a package or a filesystem image.
    Cat(ls::CatArgs),
    /// Generate a synthetic HyperOS-like package (deterministic).
    Fixture(fixture::Args),
    /// The system apps of a package, an image or a folder: partition, path,
    /// package, versions, privileged, size, sha256, signer.
    Apps(apps::Args),
    /// The main job: official package → verified, debloated, rebuilt,
    /// packaged and re-verified output, with a manifest beside it.
    Build(build::Args),
    /// Validate a debloat profile, or print one fully resolved.
    #[command(subcommand)]
    Profile(debloat::ProfileCmd),
    /// The plan a profile makes for a package: what each rule matches, what
    /// is removed, what is refused and why, space freed per partition.
    Debloat(debloat::Args),
    /// Write any package as a fastboot package: images, a rebuilt sparse
    /// super (optionally split) and install scripts.
    Fastboot(fastboot::Args),
    /// Convert a raw image to an Android sparse image (optionally split).
    Sparse(sparse::SparseArgs),
    /// Convert an Android sparse image, or all its split parts, to a raw image.
    Unsparse(sparse::UnsparseArgs),
    /// Compare two manifests or packages: apps, versions, signers,
    /// partitions, files, props. Exit 1 when they differ.
    Diff(diff::Args),
    /// Print a shell completion script (bash, elvish, fish, powershell, zsh).
    Completions(docs::CompletionsArgs),
    /// Print the manual page (roff), or write one per subcommand with -o.
    Man(docs::ManArgs),
}

/// Global settings passed to every command.
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    /// JSON output.
    pub json: bool,
    /// Quiet.
    pub quiet: bool,
    /// Worker count.
    pub jobs: usize,
    /// Whether to draw progress bars.
    pub progress: bool,
}

/// Parses the command line, runs it and returns the exit code.
pub fn main() -> ExitCode {
    // Before any thread starts: signals remove temporary files, then exit.
    crate::output::install_signal_cleanup();
    let cli = Cli::parse();
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROMKIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal())
        .without_time()
        .with_target(false)
        .try_init();
    let jobs = cli
        .jobs
        .filter(|&j| j > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let ctx = Ctx {
        json: cli.json,
        quiet: cli.quiet,
        jobs,
        progress: !cli.quiet && std::io::stderr().is_terminal(),
    };
    let result = match cli.command {
        Command::Inspect(a) => inspect::run(&ctx, a),
        Command::Verify(a) => verify::run(&ctx, a),
        Command::Unpack(a) => unpack::run(&ctx, a),
        Command::Pack(a) => pack::run(&ctx, a),
        Command::Ls(a) => ls::run_ls(&ctx, a),
        Command::Cat(a) => ls::run_cat(&ctx, a),
        Command::Fixture(a) => fixture::run(&ctx, a),
        Command::Apps(a) => apps::run(&ctx, a),
        Command::Build(a) => build::run(&ctx, a),
        Command::Profile(c) => debloat::run_profile(&ctx, c),
        Command::Debloat(a) => debloat::run(&ctx, a),
        Command::Fastboot(a) => fastboot::run(&ctx, a),
        Command::Sparse(a) => sparse::run_sparse(&ctx, a),
        Command::Unsparse(a) => sparse::run_unsparse(&ctx, a),
        Command::Diff(a) => diff::run(&ctx, a),
        Command::Completions(a) => docs::run_completions(&ctx, a),
        Command::Man(a) => docs::run_man(&ctx, a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "romkit: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Writes `text` to stdout; a closed pipe is not an error worth reporting.
pub(crate) fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::io("<stdout>", e)),
    }
}

/// Writes a JSON document to stdout.
pub(crate) fn emit_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value)
        .map_err(|e| Error::io("<stdout>", std::io::Error::other(e)))?;
    s.push('\n');
    emit(&s)
}

pub(crate) use crate::util::size::human_size;
