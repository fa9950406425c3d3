//! The `spyglass` binary: command line in, static files (and CGI scripts)
//! served, exit code out. Thin on purpose: the library does the work.
//!
//! Exit statuses: 0 after a clean stop (idle exit included), 1 when the
//! server failed at run time, 2 for a bad flag or variable, 78 for a
//! configuration that cannot be served (a missing or unreadable ROOT or
//! CGI directory, a `--site` or `--proxy-protocol` that names no socket, a
//! socket that nothing serves).

use std::path::{Path, PathBuf};

use spyglass::Server;
use spyglass::cgi::{Cgi, CgiOptions};
use spyglass::cli::{self, Cli, Command, SiteArgs, docs};
use spyglass::config::Config;
use spyglass::listeners::{Roles, check_roles};
use spyglass::lookout;
use spyglass::server::{Misconfigured, exit_misconfigured, print_config};
use spyglass::site::{Site, Sites};
use spyglass::static_files::StaticFiles;

fn main() {
    let cli: Cli = cli::parse_cli().unwrap_or_else(|e| usage_error(&e));
    match cli.command {
        Some(Command::Check(c)) => check(&c.site, c.server.config()),
        Some(Command::Ctl(c)) => std::process::exit(spyglass::ctl::run(&c)),
        Some(Command::Sites(s)) => std::process::exit(spyglass::host::run(&s)),
        Some(Command::Completions { shell }) => docs::print_and_exit(&docs::completions(shell)),
        Some(Command::Man { command }) => match docs::man_page(command.as_deref()) {
            Some(page) => docs::print_and_exit(&page),
            None => usage_error(&format!(
                "no manual page for '{}' (pages: {})",
                command.unwrap_or_default(),
                docs::subcommand_pages().join(", ")
            )),
        },
        Some(Command::Lookout(l)) => {
            let config = l.server.config().unwrap_or_else(|e| usage_error(&e));
            lookout::run_and_exit(&config, l.lookout.config(std::env::args_os()))
        }
        None => serve(&cli.site, cli.server.config()),
    }
}

fn usage_error(line: &str) -> ! {
    exit_misconfigured(Misconfigured::Usage, line, None)
}

/// Build the sites as serving would, or end the process saying why.
fn load(args: &SiteArgs, config: Result<Config, String>) -> (Config, Built) {
    let config = config.unwrap_or_else(|e| usage_error(&e));
    match sites(args) {
        Ok(built) => (config, built),
        Err((Misconfigured::Usage, e)) => usage_error(&e),
        Err((why, e)) => exit_misconfigured(why, &e, Some(config)),
    }
}

fn serve(args: &SiteArgs, config: Result<Config, String>) {
    let (config, built) = load(args, config);
    let server = Server::new(config)
        .check_before_reload(true)
        .listener_roles(built.roles);
    if let Err(e) = server.serve(built.sites) {
        eprintln!("spyglass: {e}");
        std::process::exit(e.exit_status());
    }
}

/// `spyglass check`: as `nginx -t`, load everything serving would load,
/// print the effective configuration, exit 0 (or 2 or 78 with the reason).
///
/// It has no sockets, so it checks socket names against the ones it can
/// know: `LISTEN_FDNAMES` when set (a reload's check inherits the running
/// server's; an operator can set it), else the names `--listen NAME=ADDR`
/// gives. Knowing neither, it says the names were not checked.
fn check(args: &SiteArgs, config: Result<Config, String>) {
    let config = config.unwrap_or_else(|e| {
        eprintln!("spyglass: {e}");
        std::process::exit(spyglass::server::EXIT_USAGE)
    });
    let fail = |why: Misconfigured, e: &str| -> ! {
        eprintln!("spyglass: {e}");
        std::process::exit(match why {
            Misconfigured::Usage => spyglass::server::EXIT_USAGE,
            Misconfigured::Config => spyglass::server::EXIT_CONFIG,
        })
    };
    let built = sites(args).unwrap_or_else(|(why, e)| fail(why, &e));
    let sockets = known_sockets(&config);
    if let Some((names, _)) = &sockets {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        if let Err(e) = check_roles(&names, &built.roles, &config.proxy_protocol) {
            fail(Misconfigured::Config, &e);
        }
    }
    let mut pairs = Vec::new();
    if let Some(root) = others_root(args) {
        pairs.push(("root", root.display().to_string()));
    }
    for (name, root) in &args.site {
        pairs.push(("site", format!("{name}={}", root.display())));
    }
    for mount in &args.cgi {
        pairs.push(("cgi", mount.to_string()));
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
    pairs.push((
        "sockets",
        match &sockets {
            Some((names, from)) => format!("{} (from {from}; names checked)", names.join(", ")),
            None => "not known here: systemd passes them at startup, which checks the names \
                     (set LISTEN_FDNAMES=a:b to check them now)"
                .into(),
        },
    ));
    print_config(&pairs);
    eprintln!("spyglass: configuration OK");
}

/// The socket names `check` can know, and where from.
fn known_sockets(config: &Config) -> Option<(Vec<String>, &'static str)> {
    if let Some(names) = spyglass::listeners::passed_names() {
        return Some((names, "LISTEN_FDNAMES"));
    }
    config.listen.iter().any(|l| l.name.is_some()).then(|| {
        let names = config.listen.iter().map(|l| l.listener_name()).collect();
        (names, "--listen")
    })
}

fn on_off(b: bool) -> String {
    if b { "on" } else { "off" }.into()
}

/// The handler and what it asks of the listeners.
struct Built {
    sites: Sites,
    roles: Roles,
}

/// ROOT, for the sockets no `--site` names: as given, or `.` when there
/// is no `--site` at all.
fn others_root(args: &SiteArgs) -> Option<PathBuf> {
    match &args.root {
        Some(root) => Some(root.clone()),
        None if args.site.is_empty() => Some(PathBuf::from(".")),
        None => None,
    }
}

/// The sites the flags describe. Opens every root and CGI directory (as
/// the service's user): an error there, or a `--cgi NAME:` or `--site`
/// name that does not fit, is a configuration error; a malformed flag
/// value is a usage error.
fn sites(args: &SiteArgs) -> Result<Built, (Misconfigured, String)> {
    let config = |e: String| (Misconfigured::Config, e);
    for (i, (name, _)) in args.site.iter().enumerate() {
        if args.site[..i].iter().any(|(n, _)| n == name) {
            return Err(config(format!("--site {name}: given twice")));
        }
    }
    for mount in &args.cgi {
        if let Some(name) = &mount.site {
            if !args.site.iter().any(|(n, _)| n == name) {
                return Err(config(format!(
                    "--cgi {mount}: no --site is named '{name}'"
                )));
            }
        }
    }
    let root = others_root(args);
    let others = match &root {
        Some(root) => Some(site(args, root, "ROOT", None)?),
        None => {
            if let Some(mount) = args.cgi.iter().find(|m| m.site.is_none()) {
                return Err(config(format!(
                    "--cgi {mount}: names no site, and there is no ROOT (write --cgi NAME:{mount})"
                )));
            }
            None
        }
    };
    let mut sites = Sites::new(others);
    let mut roles = Roles {
        served: Vec::new(),
        others: root.is_some(),
    };
    for (name, root) in &args.site {
        let flag = format!("--site {name}={}", root.display());
        sites = sites.add(name, site(args, root, &flag, Some(name))?);
        roles.served.push((name.clone(), flag));
    }
    Ok(Built { sites, roles })
}

/// One site: static files from `root` and the CGI mounts of `name` (ROOT's
/// when `None`). `what` names it in errors.
fn site(
    args: &SiteArgs,
    root: &Path,
    what: &str,
    name: Option<&str>,
) -> Result<Site, (Misconfigured, String)> {
    let config = |e: String| (Misconfigured::Config, e);
    if !root.is_dir() {
        return Err(config(format!(
            "{what} '{}' is not a directory",
            root.display()
        )));
    }
    let statics = StaticFiles::new(root)
        .map_err(|e| config(format!("{what} '{}': {e}", root.display())))?
        .show_hidden(args.show_hidden)
        .list_dirs(args.list_dirs)
        .cache_control(args.cache_control.clone())
        .map_err(|e| (Misconfigured::Usage, format!("--cache-control: {e}")))?;
    let mut site = Site::new(statics);
    for mount in args.cgi.iter().filter(|m| m.site.as_deref() == name) {
        let opts = CgiOptions {
            timeout: args.cgi_timeout.0,
            pass_authorization: args.cgi_pass_authorization,
            document_root: root.to_path_buf(),
        };
        let cgi = Cgi::new(&mount.prefix, &mount.dir, opts)
            .map_err(|e| config(format!("--cgi {mount}: {e}")))?;
        site = site.cgi(cgi);
    }
    Ok(site)
}
