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
    let site = StaticFiles::new(cli.site.root.clone());
    if let Err(e) = Server::new(config).serve(move |req: Request| site.serve(&req)) {
        eprintln!("spyglass: {e}");
        std::process::exit(1);
    }
}
