//! What the `spyglass` command line says about itself: its manual pages
//! (`spyglass man [COMMAND]`, clap_mangen) and shell completions
//! (`spyglass completions SHELL`, clap_complete).
//!
//! Both come from the clap definitions that `--help` prints, so none of
//! them can describe a flag that does not exist or miss one that does. What
//! no generator can know (socket activation, idle exit, signals, exit
//! statuses, environment, files, examples) is written by hand in
//! `man/*.roff` next to this file and spliced into spyglass(1). Each visible
//! subcommand gets a generated page of its own, spyglass-COMMAND(1), as git's
//! do.
//!
//! The Debian package ships copies in `doc/`; `tests/it/docs.rs` fails when
//! they differ from this module's output (and rewrites them on request).
//! Knows clap and its generators; nothing about serving.

use std::io;

use clap::CommandFactory;
pub use clap_complete::Shell;
use clap_mangen::Man;

use super::Cli;

/// spyglass(1) before OPTIONS: more DESCRIPTION paragraphs.
const DESCRIPTION: &str = include_str!("man/description.roff");
/// spyglass(1) after COMMANDS: socket activation, idle exit, signals, exit
/// status, environment, files, examples.
const SECTIONS: &str = include_str!("man/sections.roff");
/// Pages outside spyglass's own that spyglass(1) refers to.
const SEE_ALSO: &[&str] = &[
    "systemctl(1)",
    "journalctl(1)",
    "systemd.socket(5)",
    "systemd.service(5)",
    "systemd.exec(5)",
    "sd_listen_fds(3)",
    "sd_notify(3)",
];

/// The roff string definition that every piece clap_mangen renders begins
/// with; spyglass(1) is rendered in pieces and keeps the first.
const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
/// `.TH`'s date argument: none, but present (an empty string would shift
/// the source and manual into its place). The pages follow the version,
/// which `.TH` shows next to it.
const NO_DATE: &str = "\"\"";

/// The command as documented: as `--help` shows it, less the build's git
/// revision (the pages change with releases, not with every commit).
fn command() -> clap::Command {
    let mut cmd = Cli::command()
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_help_heading("COMMANDS");
    // Gives subcommands their display names (spyglass-man) and usage lines.
    cmd.build();
    cmd
}

/// The subcommands that have a page of their own, spyglass-NAME(1).
pub fn subcommand_pages() -> Vec<String> {
    command()
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_owned())
        .collect()
}

/// A manual page in roff: spyglass(1) for `None`, spyglass-NAME(1) for a
/// subcommand's name; `None` if there is no such subcommand.
pub fn man_page(subcommand: Option<&str>) -> Option<Vec<u8>> {
    let cmd = command();
    let mut out = Vec::new();
    match subcommand {
        None => main_page(&cmd, &mut out),
        Some(name) => {
            let sub = cmd
                .get_subcommands()
                .find(|s| s.get_name() == name && !s.is_hide_set())?;
            let title = format!("SPYGLASS-{}", name.to_uppercase());
            page(sub, &title).render(&mut out).map(|()| {
                see_also(&mut out, &["spyglass(1)"]);
            })
        }
    }
    .ok()?;
    Some(out)
}

/// A page's generator, with the header and footer every page shares.
fn page(cmd: &clap::Command, title: &str) -> Man {
    Man::new(cmd.clone())
        .title(title)
        .date(NO_DATE)
        .source(concat!("spyglass ", env!("CARGO_PKG_VERSION")))
        .manual("spyglass manual")
}

/// spyglass(1): the generated title, synopsis, options and commands with
/// the hand-written sections between and after them.
fn main_page(cmd: &clap::Command, out: &mut Vec<u8>) -> io::Result<()> {
    let man = page(cmd, "SPYGLASS");
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    out.extend_from_slice(DESCRIPTION.as_bytes());
    man.render_options_section(out)?;
    man.render_subcommands_section(out)?;
    out.extend_from_slice(SECTIONS.as_bytes());
    let pages: Vec<String> = subcommand_pages()
        .iter()
        .map(|s| format!("spyglass-{s}(1)"))
        .collect();
    let mut refs: Vec<&str> = pages.iter().map(String::as_str).collect();
    refs.extend_from_slice(SEE_ALSO);
    see_also(out, &refs);
    man.render_version_section(out)?;
    let text = String::from_utf8_lossy(out).into_owned();
    if let Some(at) = text.find(PREAMBLE) {
        let (first, rest) = text.split_at(at + PREAMBLE.len());
        *out = [first, &rest.replace(PREAMBLE, "")].concat().into_bytes();
    }
    Ok(())
}

/// A SEE ALSO section: `name(section)` references, comma-separated.
fn see_also(out: &mut Vec<u8>, refs: &[&str]) {
    let list: Vec<String> = refs
        .iter()
        .map(|r| match r.split_once('(') {
            Some((name, rest)) => format!("\\fB{}\\fR({rest}", name.replace('-', "\\-")),
            None => (*r).to_owned(),
        })
        .collect();
    out.extend_from_slice(format!(".SH \"SEE ALSO\"\n{}\n", list.join(",\n")).as_bytes());
}

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "spyglass", &mut out);
    out
}

/// Write `bytes` to stdout and exit: 0, or 1 with a line on stderr if
/// stdout cannot take them (a closed pipe, as in `spyglass man | head`, is
/// not an error).
pub fn print_and_exit(bytes: &[u8]) -> ! {
    use std::io::Write;
    let mut stdout = io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            eprintln!("spyglass: writing to stdout: {e}");
            std::process::exit(1)
        }
        _ => std::process::exit(0),
    }
}
