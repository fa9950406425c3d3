//! `spyglass ctl`: the client of the control socket ([`crate::control`]).
//! It connects, sends one command as a JSON array of words, prints the
//! answer (a table, or the JSON itself with `--json`) and exits with a
//! status a script can test. It never starts anything: when no server
//! runs, there is no socket, and it says so.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::cli::CtlArgs;

/// Exit status: the command failed (or a worker's reply did).
pub const EXIT_FAILED: i32 = 1;
/// Exit status: no server is running there (as LSB's `status`).
pub const EXIT_NOT_RUNNING: i32 = 3;
/// Exit status: the socket exists but this user may not use it.
pub const EXIT_DENIED: i32 = 4;

/// Where a site's control socket is: the runtime directory the units give
/// each service (`RuntimeDirectory=spyglass/%i`; `default` for the
/// single-site unit).
pub fn default_socket(site: Option<&str>) -> PathBuf {
    PathBuf::from("/run/spyglass")
        .join(site.unwrap_or("default"))
        .join("control.sock")
}

/// Run `spyglass ctl`; the process's exit status.
pub fn run(args: &CtlArgs) -> i32 {
    let path = args
        .socket
        .clone()
        .unwrap_or_else(|| default_socket(args.site.as_deref()));
    let answer = match ask(&path, &args.command) {
        Ok(a) => a,
        Err(e) => return report_unreachable(&path, &e),
    };
    let Ok(v) = serde_json::from_str::<Value>(&answer) else {
        eprintln!(
            "spyglass ctl: an answer that is not JSON: {}",
            answer.trim()
        );
        return EXIT_FAILED;
    };
    if args.json {
        println!("{v:#}");
    }
    if v["ok"] != Value::Bool(true) {
        let why = v["error"].as_str().unwrap_or("failed");
        eprintln!("spyglass ctl: {why}");
        return EXIT_FAILED;
    }
    let result = &v["result"];
    if args.json {
        return status_of(result);
    }
    match args.command.first().map(String::as_str) {
        Some("status") => print!("{}", status_table(result)),
        Some("app") => print!("{}", replies(result)),
        _ => match result {
            Value::String(s) => println!("{s}"),
            other => println!("{other}"),
        },
    }
    status_of(result)
}

fn ask(path: &std::path::Path, words: &[String]) -> io::Result<String> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut line = serde_json::to_string(words).map_err(io::Error::other)?;
    line.push('\n');
    // The server may answer before it reads (a refusal): read either way.
    let sent = s.write_all(line.as_bytes());
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    match sent {
        Err(e) if answer.is_empty() => Err(e),
        _ => Ok(answer),
    }
}

fn report_unreachable(path: &std::path::Path, e: &io::Error) -> i32 {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            eprintln!(
                "spyglass ctl: not running (no server answers at {})",
                path.display()
            );
            EXIT_NOT_RUNNING
        }
        io::ErrorKind::PermissionDenied => {
            eprintln!(
                "spyglass ctl: {}: permission denied (ask as root or as the server's user)",
                path.display()
            );
            EXIT_DENIED
        }
        _ => {
            eprintln!("spyglass ctl: {}: {e}", path.display());
            EXIT_FAILED
        }
    }
}

/// A failed reply from any worker fails the command.
fn status_of(result: &Value) -> i32 {
    let failed = result["replies"]
        .as_array()
        .is_some_and(|r| r.iter().any(|r| r["ok"] != Value::Bool(true)));
    if failed { EXIT_FAILED } else { 0 }
}

fn replies(result: &Value) -> String {
    let mut out = String::new();
    for r in result["replies"].as_array().into_iter().flatten() {
        let mark = if r["ok"] == Value::Bool(true) {
            ""
        } else {
            " (failed)"
        };
        out.push_str(&format!("worker {}{mark}:\n", r["pid"]));
        for line in r["reply"].as_str().unwrap_or("").lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

/// `ctl status` for a person.
fn status_table(s: &Value) -> String {
    let m = &s["master"];
    let mut out = String::new();
    let idle = match m["idle_exit_in_s"].as_u64() {
        Some(n) => format!(", idle exit in {n}s"),
        None if m["idle_timeout_s"].is_null() => ", no idle exit".into(),
        None => String::new(),
    };
    out.push_str(&format!(
        "master   pid {}, up {}, {}{idle}\n",
        m["pid"],
        span(m["uptime_s"].as_f64()),
        m["phase"].as_str().unwrap_or("?"),
    ));
    out.push_str(&format!(
        "image    {}\n",
        m["image"].as_str().unwrap_or("?")
    ));
    for l in s["listeners"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "listen   {} {}\n",
            l["name"].as_str().unwrap_or("?"),
            l["address"].as_str().unwrap_or("?")
        ));
    }
    out.push_str(&format!(
        "requests {} served, {} in flight; {} workers wanted\n",
        m["requests_served"], m["in_flight"], m["workers_wanted"]
    ));
    if let Some(r) = m["recycled"].as_object().filter(|r| !r.is_empty()) {
        let list: Vec<String> = r.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out.push_str(&format!("recycled {}\n", list.join(", ")));
    }
    if let Some(why) = m["refusing"].as_str() {
        out.push_str(&format!("refusing answering 503: {why}\n"));
    }
    if m["log_events_dropped"].as_u64().is_some_and(|n| n > 0) {
        out.push_str(&format!(
            "logging  {} events dropped (journald stalled)\n",
            m["log_events_dropped"]
        ));
    }
    out.push_str(&format!(
        "\n{:>8} {:>4}  {:<9} {:>8} {:>9} {:>9} {:>12} {:>8}\n",
        "PID", "SLOT", "STATE", "AGE", "REQUESTS", "IN FLIGHT", "LAST ACTIVE", "RSS"
    ));
    for w in s["workers"].as_array().into_iter().flatten() {
        let dash = |v: &Value| match v {
            Value::Null => "-".to_owned(),
            v => v.to_string(),
        };
        let state = match w["recycle_reason"].as_str() {
            Some(r) if w["state"] == "retiring" => format!("retiring ({r})"),
            _ => w["state"].as_str().unwrap_or("?").to_owned(),
        };
        out.push_str(&format!(
            "{:>8} {:>4}  {:<9} {:>8} {:>9} {:>9} {:>12} {:>8}\n",
            dash(&w["pid"]),
            dash(&w["slot"]),
            state,
            span(w["age_s"].as_f64()),
            dash(&w["requests"]),
            dash(&w["in_flight"]),
            w["last_active_s_ago"]
                .as_f64()
                .map_or("-".into(), |s| format!("{} ago", span(Some(s)))),
            w["rss_bytes"].as_u64().map_or("-".into(), size),
        ));
    }
    out
}

/// Seconds as a short span: `850ms`, `42s`, `3m20s`, `5h02m`.
pub(crate) fn span(secs: Option<f64>) -> String {
    let Some(s) = secs else { return "-".into() };
    if s < 1.0 {
        return format!("{}ms", (s * 1000.0) as u64);
    }
    let s = s as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Bytes as `980K`, `2.1M`.
fn size(b: u64) -> String {
    match b {
        0..1024 => format!("{b}B"),
        1024..1_048_576 => format!("{}K", b / 1024),
        _ => format!("{:.1}M", b as f64 / 1_048_576.0),
    }
}
