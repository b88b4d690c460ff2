//! `certroll completions SHELL` and `certroll man`: shell completions (clap_complete) and
//! the man page (clap_mangen), generated from the binary's own clap definitions at run
//! time. Generating them from the installed binary, rather than at build time, means a
//! `cargo install` gives everything (no files to find in a build directory), and what
//! they describe is always the binary the user runs.

use std::io::Write;

use clap::{Command, ValueEnum};
use clap_complete::Shell;

/// The shells `certroll completions` writes for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

impl CompletionShell {
    fn shell(self) -> Shell {
        match self {
            CompletionShell::Bash => Shell::Bash,
            CompletionShell::Zsh => Shell::Zsh,
            CompletionShell::Fish => Shell::Fish,
            CompletionShell::Elvish => Shell::Elvish,
            CompletionShell::Powershell => Shell::PowerShell,
        }
    }
}

/// Writes the completion script of `shell` for `cmd` to `out`.
pub fn completions(cmd: &mut Command, shell: CompletionShell, out: &mut dyn Write) {
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell.shell(), cmd, name, out);
}

/// Writes the man page `certroll(1)` (roff) of `cmd` to `out`.
pub fn man(cmd: Command, out: &mut dyn Write) -> std::io::Result<()> {
    clap_mangen::Man::new(cmd).render(out)
}

/// Writes `certroll.1` and one page per subcommand (`certroll-verify.1`,
/// `certroll-ca-extend.1`, ...) into `dir`, which must exist.
pub fn man_pages(cmd: Command, dir: &std::path::Path) -> std::io::Result<()> {
    clap_mangen::generate_to(cmd, dir)
}
