//! The `spyglass` binary: command line in, static files (and CGI scripts)
//! served, exit code out. Thin on purpose: the library does the work.

use spyglass::Server;
use spyglass::cgi::{Cgi, CgiOptions};
use spyglass::cli::{self, Cli, SiteArgs};
use spyglass::site::Site;
use spyglass::static_files::StaticFiles;

fn main() {
    let cli: Cli = cli::parse_or_exit();
    let config = match cli.server.config() {
        Ok(c) => c,
        Err(e) => cli::usage_error(&e),
    };
    if !cli.site.root.is_dir() {
        cli::usage_error(&format!(
            "ROOT '{}' is not a directory",
            cli.site.root.display()
        ));
    }
    let site = match site(&cli.site) {
        Ok(s) => s,
        Err(e) => cli::usage_error(&e),
    };
    if let Err(e) = Server::new(config).serve(site) {
        eprintln!("spyglass: {e}");
        std::process::exit(1);
    }
}

/// The handler the site flags describe.
fn site(args: &SiteArgs) -> Result<Site, String> {
    let statics = StaticFiles::new(&args.root)
        .map_err(|e| format!("ROOT '{}': {e}", args.root.display()))?
        .show_hidden(args.show_hidden)
        .list_dirs(args.list_dirs)
        .cache_control(args.cache_control.clone())
        .map_err(|e| format!("--cache-control: {e}"))?;
    let mut site = Site::new(statics);
    for (prefix, dir) in &args.cgi {
        let opts = CgiOptions {
            timeout: args.cgi_timeout.0,
            pass_authorization: args.cgi_pass_authorization,
            document_root: args.root.clone(),
        };
        let cgi = Cgi::new(prefix, dir, opts)
            .map_err(|e| format!("--cgi {prefix}={}: {e}", dir.display()))?;
        site = site.cgi(cgi);
    }
    Ok(site)
}
