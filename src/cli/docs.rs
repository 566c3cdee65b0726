//! `romkit completions SHELL` and `romkit man`: generated from the clap
//! definitions, so they never drift from the real command line.

use std::path::PathBuf;

use clap::CommandFactory;

use super::{Cli, Ctx, emit};
use crate::error::{Error, Result};

/// Arguments of `completions`.
#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell: bash, elvish, fish, powershell or zsh.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Arguments of `man`.
#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Write romkit.1 and one page per subcommand (romkit-build.1, …) into
    /// this folder instead of printing romkit.1.
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
}

/// Runs `completions`.
pub fn run_completions(_ctx: &Ctx, args: CompletionsArgs) -> Result<u8> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "romkit", &mut buf);
    emit(&String::from_utf8_lossy(&buf))?;
    Ok(0)
}

/// Runs `man`.
pub fn run_man(_ctx: &Ctx, args: ManArgs) -> Result<u8> {
    let cmd = Cli::command();
    let Some(dir) = args.output else {
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut buf)
            .map_err(|e| Error::io("<stdout>", e))?;
        emit(&String::from_utf8_lossy(&buf))?;
        return Ok(0);
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    // Pages appear under their final names only when complete.
    let tmp = tempfile::Builder::new()
        .prefix(".romkit-man-")
        .tempdir_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    clap_mangen::generate_to(cmd, tmp.path()).map_err(|e| Error::io(tmp.path(), e))?;
    let mut names: Vec<_> = std::fs::read_dir(tmp.path())
        .map_err(|e| Error::io(tmp.path(), e))?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    for n in &names {
        let dest = dir.join(n);
        std::fs::rename(tmp.path().join(n), &dest).map_err(|e| Error::io(&dest, e))?;
    }
    emit(&format!(
        "{}: {} manual pages\n",
        dir.display(),
        names.len()
    ))?;
    Ok(0)
}
