//! The `spyglass` binary: command line in, static files (and CGI scripts)
//! served, exit code out. Thin on purpose: the library does the work.

use spyglass::cli::{self, Cli};
use spyglass::static_files::StaticFiles;
use spyglass::{Request, Server};

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
    let site = match StaticFiles::new(&cli.site.root) {
        Ok(s) => s
            .show_hidden(cli.site.show_hidden)
            .list_dirs(cli.site.list_dirs),
        Err(e) => cli::usage_error(&format!("ROOT '{}': {e}", cli.site.root.display())),
    };
    let site = match site.cache_control(cli.site.cache_control.clone()) {
        Ok(s) => s,
        Err(e) => cli::usage_error(&format!("--cache-control: {e}")),
    };
    if let Err(e) = Server::new(config).serve(move |req: Request| site.serve(&req)) {
        eprintln!("spyglass: {e}");
        std::process::exit(1);
    }
}
