//! The `spyglass` binary: command line in, static files (and CGI scripts)
//! served, exit code out. Thin on purpose: the library does the work.
//!
//! Exit statuses: 0 after a clean stop (idle exit included), 1 when the
//! server failed at run time, 2 for a bad flag or variable, 78 for a
//! configuration that cannot be served (a missing or unreadable ROOT or
//! CGI directory).

use spyglass::Server;
use spyglass::cgi::{Cgi, CgiOptions};
use spyglass::cli::{self, Cli, Command, SiteArgs, docs};
use spyglass::config::Config;
use spyglass::server::{Misconfigured, exit_misconfigured, print_config};
use spyglass::site::Site;
use spyglass::static_files::StaticFiles;

fn main() {
    let cli: Cli = cli::parse().unwrap_or_else(|e| usage_error(&e));
    match cli.command {
        Some(Command::Check(c)) => check(&c.site, c.server.config()),
        Some(Command::Ctl(c)) => std::process::exit(spyglass::ctl::run(&c)),
        Some(Command::Completions { shell }) => docs::print_and_exit(&docs::completions(shell)),
        Some(Command::Man { command }) => match docs::man_page(command.as_deref()) {
            Some(page) => docs::print_and_exit(&page),
            None => usage_error(&format!(
                "no manual page for '{}' (pages: {})",
                command.unwrap_or_default(),
                docs::subcommand_pages().join(", ")
            )),
        },
        None => serve(&cli.site, cli.server.config()),
    }
}

fn usage_error(line: &str) -> ! {
    exit_misconfigured(Misconfigured::Usage, line, None)
}

/// Build the site as serving would, or end the process saying why.
fn load(args: &SiteArgs, config: Result<Config, String>) -> (Config, Site) {
    let config = config.unwrap_or_else(|e| usage_error(&e));
    match site(args) {
        Ok(site) => (config, site),
        Err((Misconfigured::Usage, e)) => usage_error(&e),
        Err((why, e)) => exit_misconfigured(why, &e, Some(config)),
    }
}

fn serve(args: &SiteArgs, config: Result<Config, String>) {
    let (config, site) = load(args, config);
    if let Err(e) = Server::new(config).check_before_reload(true).serve(site) {
        eprintln!("spyglass: {e}");
        std::process::exit(e.exit_status());
    }
}

/// `spyglass check`: as `nginx -t`, load everything serving would load,
/// print the effective configuration, exit 0 (or 2 or 78 with the reason).
fn check(args: &SiteArgs, config: Result<Config, String>) {
    let config = config.unwrap_or_else(|e| {
        eprintln!("spyglass: {e}");
        std::process::exit(spyglass::server::EXIT_USAGE)
    });
    if let Err((why, e)) = site(args) {
        eprintln!("spyglass: {e}");
        std::process::exit(match why {
            Misconfigured::Usage => spyglass::server::EXIT_USAGE,
            Misconfigured::Config => spyglass::server::EXIT_CONFIG,
        });
    }
    let mut pairs = vec![("root", args.root.display().to_string())];
    for (prefix, dir) in &args.cgi {
        pairs.push(("cgi", format!("{prefix}={}", dir.display())));
    }
    if !args.cgi.is_empty() {
        pairs.push((
            "cgi-timeout",
            humantime::format_duration(args.cgi_timeout.0).to_string(),
        ));
        pairs.push((
            "cgi-pass-authorization",
            on_off(args.cgi_pass_authorization),
        ));
    }
    pairs.push(("show-hidden", on_off(args.show_hidden)));
    pairs.push(("list-dirs", on_off(args.list_dirs)));
    if let Some(cc) = &args.cache_control {
        pairs.push(("cache-control", cc.clone()));
    }
    pairs.extend(config.describe());
    print_config(&pairs);
    eprintln!("spyglass: configuration OK");
}

fn on_off(b: bool) -> String {
    if b { "on" } else { "off" }.into()
}

/// The handler the site flags describe. Opens ROOT and every CGI directory
/// (as the service's user): an error there is a configuration error; a
/// malformed flag value is a usage error.
fn site(args: &SiteArgs) -> Result<Site, (Misconfigured, String)> {
    let config = |e: String| (Misconfigured::Config, e);
    if !args.root.is_dir() {
        return Err(config(format!(
            "ROOT '{}' is not a directory",
            args.root.display()
        )));
    }
    let statics = StaticFiles::new(&args.root)
        .map_err(|e| config(format!("ROOT '{}': {e}", args.root.display())))?
        .show_hidden(args.show_hidden)
        .list_dirs(args.list_dirs)
        .cache_control(args.cache_control.clone())
        .map_err(|e| (Misconfigured::Usage, format!("--cache-control: {e}")))?;
    let mut site = Site::new(statics);
    for (prefix, dir) in &args.cgi {
        let opts = CgiOptions {
            timeout: args.cgi_timeout.0,
            pass_authorization: args.cgi_pass_authorization,
            document_root: args.root.clone(),
        };
        let cgi = Cgi::new(prefix, dir, opts)
            .map_err(|e| config(format!("--cgi {prefix}={}: {e}", dir.display())))?;
        site = site.cgi(cgi);
    }
    Ok(site)
}
