//! Directory listings (`--list-dirs`): an HTML page of what a client could
//! fetch from a directory that has no `index.html`.
//!
//! Only entries that would be served appear: regular files and
//! directories, by a UTF-8 name, hidden ones only with `show_hidden` (the
//! root's `.well-known` is not hidden), and
//! symlinks only when they resolve beneath the root (so a listing never
//! reveals the size or date of a file outside it). Names are HTML-escaped
//! for display and percent-encoded in links.

use std::fmt::Write as _;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::dir::{Dir, Type};
use nix::fcntl::AtFlags;
use nix::sys::stat::{FileStat, SFlag, fstatat};

use super::conditional::http_date;
use super::path::{self, push_encoded};
use super::root::Root;

/// At most this many entries are listed; the page says how many it left
/// out.
const MAX_ENTRIES: usize = 10_000;

struct Entry {
    name: String,
    dir: bool,
    size: u64,
    mtime: i64,
}

/// The listing of `dir`, which is `rel` (as `path::resolve` gives it)
/// beneath `root`.
pub fn render(dir: File, root: &Root, rel: &str, show_hidden: bool) -> io::Result<String> {
    let stat_fd = dir.try_clone()?;
    let mut handle = Dir::from_fd(OwnedFd::from(dir))?;
    let mut entries = Vec::new();
    let mut left_out = 0usize;
    for entry in handle.iter() {
        let entry = entry?;
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        let hidden = name.starts_with('.') && !(rel == "." && name == path::WELL_KNOWN);
        if name == "." || name == ".." || (hidden && !show_hidden) {
            continue;
        }
        if entries.len() == MAX_ENTRIES {
            left_out += 1;
            continue;
        }
        let st = match entry.file_type() {
            Some(Type::File | Type::Directory) => {
                fstatat(stat_fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW).ok()
            }
            Some(Type::Symlink) | None => {
                let path = if rel == "." {
                    name.to_owned()
                } else {
                    format!("{rel}/{name}")
                };
                root.stat(&path).ok()
            }
            Some(_) => None,
        };
        if let Some(e) = st.and_then(|st| entry_of(name, &st)) {
            entries.push(e);
        }
    }
    entries.sort_unstable_by(|a, b| b.dir.cmp(&a.dir).then_with(|| a.name.cmp(&b.name)));
    Ok(page(rel, &entries, left_out))
}

fn entry_of(name: &str, st: &FileStat) -> Option<Entry> {
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    let dir = match kind {
        SFlag::S_IFDIR => true,
        SFlag::S_IFREG => false,
        _ => return None,
    };
    Some(Entry {
        name: name.to_owned(),
        dir,
        size: st.st_size as u64,
        mtime: st.st_mtime,
    })
}

fn page(rel: &str, entries: &[Entry], left_out: usize) -> String {
    let shown = if rel == "." {
        "/".to_owned()
    } else {
        format!("/{rel}/")
    };
    let mut out = String::with_capacity(1024 + entries.len() * 160);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str("<title>Index of ");
    escape_into(&mut out, &shown);
    out.push_str(
        "</title>\n<style>body{font-family:system-ui,sans-serif;margin:2em}\
         table{border-collapse:collapse}th,td{padding:.15em 1.2em .15em 0;text-align:left}\
         td.size{text-align:right;font-variant-numeric:tabular-nums}</style>\n</head>\n<body>\n",
    );
    out.push_str("<h1>Index of ");
    escape_into(&mut out, &shown);
    out.push_str("</h1>\n<table>\n<thead><tr><th>Name</th><th>Size</th><th>Last modified</th></tr></thead>\n<tbody>\n");
    if rel != "." {
        out.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for e in entries {
        out.push_str("<tr><td><a href=\"");
        let mut href = String::with_capacity(e.name.len() + 1);
        push_encoded(&mut href, &e.name);
        if e.dir {
            href.push('/');
        }
        escape_into(&mut out, &href);
        out.push_str("\">");
        escape_into(&mut out, &e.name);
        if e.dir {
            out.push('/');
        }
        out.push_str("</a></td>");
        if e.dir {
            out.push_str("<td class=\"size\">-</td>");
        } else {
            let _ = write!(
                out,
                "<td class=\"size\" title=\"{} bytes\">{}</td>",
                e.size,
                human_size(e.size)
            );
        }
        out.push_str("<td>");
        if let Some(date) = http_date(e.mtime) {
            out.push_str(date.to_str().unwrap_or(""));
        }
        out.push_str("</td></tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    if left_out > 0 {
        let _ = writeln!(out, "<p>{left_out} more entries not shown.</p>");
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// `s` with `&<>"'` escaped, appended to `out`.
fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// 1023 B, 1.0 KiB, 12.5 MiB...
fn human_size(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_sizes() {
        let mut s = String::new();
        escape_into(&mut s, "<a href='x'>&\"</a>");
        assert_eq!(s, "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;");
        let cases = [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (5 << 20, "5.0 MiB"),
            (u64::MAX, "16.0 EiB"),
        ];
        for (n, want) in cases {
            assert_eq!(human_size(n), want, "{n}");
        }
    }

    #[test]
    fn page_shape() {
        let entries = [
            Entry {
                name: "d<x>".into(),
                dir: true,
                size: 0,
                mtime: 0,
            },
            Entry {
                name: "a b&c.txt".into(),
                dir: false,
                size: 2048,
                mtime: 0,
            },
        ];
        let html = page("sub", &entries, 3);
        assert!(html.contains("<title>Index of /sub/</title>"), "{html}");
        assert!(html.contains("<a href=\"../\">../</a>"), "{html}");
        assert!(
            html.contains("<a href=\"d%3Cx%3E/\">d&lt;x&gt;/</a>"),
            "{html}"
        );
        assert!(
            html.contains("<a href=\"a%20b%26c.txt\">a b&amp;c.txt</a>"),
            "{html}"
        );
        assert!(html.contains("title=\"2048 bytes\">2.0 KiB<"), "{html}");
        assert!(html.contains("Thu, 01 Jan 1970 00:00:00 GMT"), "{html}");
        assert!(html.contains("3 more entries not shown"), "{html}");
        assert!(!page(".", &[], 0).contains("../"));
    }
}
