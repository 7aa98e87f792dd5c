//! `deltasync completions SHELL` and `deltasync man`: shell completions and man pages
//! generated from the clap definitions, so that they always say what `--help` says.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes the completion script for `shell` to standard output.
pub fn completions(mut cmd: clap::Command, shell: clap_complete::Shell) -> Result<()> {
    let name = cmd.get_name().to_owned();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    out.flush().context("writing the completions")?;
    Ok(())
}

/// Writes the man page `deltasync(1)` to standard output, or, with `dir`, one page per
/// command into it (`deltasync.1`, `deltasync-sync.1`, …).
pub fn man(cmd: clap::Command, dir: Option<&Path>) -> Result<()> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("writing the man pages into {}", dir.display()))?;
            println!("Wrote the man pages into {}.", dir.display());
        }
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .context("writing the man page")?;
            out.flush().context("writing the man page")?;
        }
    }
    Ok(())
}
