//! `spyglass sites`: the host view. Every site that systemd knows as an
//! instance of the template units (`spyglass@NAME.socket`,
//! `spyglass@NAME.service`): whether its socket listens, whether the site
//! is awake, when it last woke, and how many times it woke.
//!
//! Everything comes from systemd, nothing from a file of our own:
//! `systemctl list-units --all` finds the instances systemd has loaded
//! (enabled, running, failed or just stopped), `systemctl show` reads
//! their state, in the output that `show` documents for programs. D-Bus
//! would give the same properties, for a crate and its dependencies in
//! the binary; systemctl is wherever systemd is, and speaks the same bus.
//!
//! systemd keeps no count of activations: `NRestarts` counts only the
//! restarts that `Restart=` made, and a socket's `NAccepted` and
//! `NConnections` count connections, and only with `Accept=yes`. So a wake
//! is counted from the journal: one "Started" message (MESSAGE_ID
//! 39f53479d3a045ac8e11786248231fbf, which systemd logs when a start job
//! succeeds) from PID 1 for the site's service, since this boot. Restarts
//! are starts too; a journal that was rotated away counts fewer; a user
//! who may not read the system journal sees no count at all.
//!
//! Knows systemctl, journalctl and the template's unit names; nothing of
//! serving.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::cli::SitesArgs;

/// The template's name, before the instance.
const PREFIX: &str = "spyglass@";
/// systemd's "unit started" message (SD_MESSAGE_UNIT_STARTED).
const STARTED: &str = "39f53479d3a045ac8e11786248231fbf";
/// The properties read of every socket and service.
const PROPERTIES: &str = "Id,LoadState,ActiveState,SubState,Result,UnitFileState,Listen,\
MainPID,ExecMainStartTimestamp,InactiveEnterTimestamp,NRestarts,MemoryCurrent,StatusText";
/// What the template's `User=spyglass-%i` lets a site's name be.
const NAME_MAX: usize = 22;

/// Exit status: systemd could not be asked.
pub const EXIT_FAILED: i32 = 1;

/// Why the view could not be had.
#[derive(Debug)]
pub enum Error {
    /// systemctl could not be run, or failed (its message).
    Systemctl(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Systemctl(why) => write!(f, "systemctl: {why}"),
        }
    }
}

/// One unit's properties, as `systemctl show` printed them (a key may
/// repeat, as `Listen=` does for each address).
#[derive(Debug, Default, Clone)]
struct Props(BTreeMap<String, Vec<String>>);

impl Props {
    fn get(&self, key: &str) -> &str {
        self.0
            .get(key)
            .and_then(|v| v.first())
            .map_or("", String::as_str)
    }

    fn all(&self, key: &str) -> &[String] {
        self.0.get(key).map_or(&[], Vec::as_slice)
    }

    /// A timestamp property (shown with `--timestamp=unix`: `@SECONDS`).
    fn time(&self, key: &str) -> Option<u64> {
        self.get(key).strip_prefix('@')?.parse().ok()
    }

    fn number(&self, key: &str) -> Option<u64> {
        self.get(key).parse().ok()
    }
}

/// A site: its socket's and its service's properties, and its wakes.
#[derive(Debug)]
pub struct Site {
    name: String,
    socket: Props,
    service: Props,
    wakes: Option<u64>,
}

impl Site {
    /// Whether the socket takes connections (`running`: the service has
    /// it; connections are still accepted into its backlog).
    fn socket_state(&self) -> String {
        let s = &self.socket;
        match (s.get("ActiveState"), s.get("SubState")) {
            ("active", "listening" | "running") => "listening".into(),
            ("failed", _) => format!("failed ({})", s.get("Result")),
            ("", _) => "none".into(),
            (active, _) => active.into(),
        }
    }

    fn state(&self) -> String {
        let s = &self.service;
        match s.get("ActiveState") {
            "active" | "reloading" => "awake".into(),
            "activating" => "waking".into(),
            "deactivating" => "going to sleep".into(),
            "inactive" => "asleep".into(),
            "failed" => format!("failed ({})", s.get("Result")),
            "" => "unknown".into(),
            other => other.into(),
        }
    }

    fn listen(&self) -> Vec<String> {
        self.socket
            .all("Listen")
            .iter()
            .map(|l| {
                l.rsplit_once(" (")
                    .map_or(l.as_str(), |(a, _)| a)
                    .to_owned()
            })
            .collect()
    }

    /// Why the name cannot work, if it cannot.
    fn note(&self) -> Option<String> {
        if self.name == "default" {
            return Some(
                "'default' is spyglass.service's runtime directory: use another name".into(),
            );
        }
        (!valid_name(&self.name)).then(|| {
            format!(
                "a site's name is at most {NAME_MAX} letters, digits, '-' and '_' \
                 (its user is spyglass-NAME)"
            )
        })
    }
}

/// A site's name as the template's `User=spyglass-%i` takes it.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Run `spyglass sites`; the process's exit status.
pub fn run(args: &SitesArgs) -> i32 {
    match sites() {
        Ok(sites) if args.json => {
            println!("{:#}", to_json(&sites));
            0
        }
        Ok(sites) if sites.is_empty() => {
            eprintln!(
                "spyglass sites: none (add one with `systemctl enable --now spyglass@NAME.socket`)"
            );
            0
        }
        Ok(sites) => {
            print!("{}", table(&sites, now()));
            0
        }
        Err(e) => {
            eprintln!("spyglass sites: {e}");
            EXIT_FAILED
        }
    }
}

/// Every site systemd has loaded, by name.
pub fn sites() -> Result<Vec<Site>, Error> {
    let listed = systemctl(&[
        "list-units",
        "--all",
        "--plain",
        "--no-legend",
        "--full",
        "spyglass@*.socket",
        "spyglass@*.service",
    ])?;
    let mut names: Vec<String> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with(PREFIX)))
        .filter_map(|unit| Some(instance(unit)?.to_owned()))
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let units: Vec<String> = names
        .iter()
        .flat_map(|n| {
            [
                format!("{PREFIX}{n}.socket"),
                format!("{PREFIX}{n}.service"),
            ]
        })
        .collect();
    let mut args = vec!["show", "--timestamp=unix", "--property", PROPERTIES, "--"];
    args.extend(units.iter().map(String::as_str));
    let mut props: BTreeMap<String, Props> = parse_show(&systemctl(&args)?)
        .into_iter()
        .map(|p| (p.get("Id").to_owned(), p))
        .collect();
    let wakes = wakes();
    Ok(names
        .into_iter()
        .map(|name| {
            let mut take = |kind: &str| {
                props
                    .remove(&format!("{PREFIX}{name}.{kind}"))
                    .unwrap_or_default()
            };
            let (socket, service) = (take("socket"), take("service"));
            let woke = wakes.as_ref().map(|w| {
                w.get(&format!("{PREFIX}{name}.service"))
                    .copied()
                    .unwrap_or(0)
            });
            Site {
                name,
                socket,
                service,
                wakes: woke,
            }
        })
        .collect())
}

/// `spyglass@NAME.socket` -> `NAME`.
fn instance(unit: &str) -> Option<&str> {
    let rest = unit.strip_prefix(PREFIX)?;
    let name = rest
        .strip_suffix(".socket")
        .or_else(|| rest.strip_suffix(".service"))?;
    (!name.is_empty()).then_some(name)
}

/// `systemctl show` output: one block of `Key=value` lines per unit,
/// blocks apart by an empty line.
fn parse_show(text: &str) -> Vec<Props> {
    let mut out = Vec::new();
    let mut cur = Props::default();
    for line in text.lines() {
        if line.is_empty() {
            if !cur.0.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            cur.0.entry(k.to_owned()).or_default().push(v.to_owned());
        }
    }
    if !cur.0.is_empty() {
        out.push(cur);
    }
    out
}

/// Starts of each service since this boot, from the journal; None if the
/// journal cannot be read (a user outside systemd-journal and adm, say).
fn wakes() -> Option<BTreeMap<String, u64>> {
    let out = Command::new("journalctl")
        .args(["--boot", "--quiet", "--no-pager", "--output=cat"])
        .args(["--output-fields=UNIT", "_PID=1"])
        .arg(format!("MESSAGE_ID={STARTED}"))
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() || !out.stderr.is_empty() {
        return None;
    }
    let mut counts = BTreeMap::new();
    for unit in String::from_utf8_lossy(&out.stdout).lines() {
        if unit.starts_with(PREFIX) && unit.ends_with(".service") {
            *counts.entry(unit.to_owned()).or_insert(0) += 1;
        }
    }
    Some(counts)
}

fn systemctl(args: &[&str]) -> Result<String, Error> {
    let out = Command::new("systemctl")
        .arg("--no-pager")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Systemctl(e.to_string()))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(Error::Systemctl(if why.is_empty() {
            format!("exit status {}", out.status)
        } else {
            why
        }));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Seconds since the epoch as RFC 3339, UTC.
fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// The view for a person: one line per site.
fn table(sites: &[Site], now: u64) -> String {
    let rows: Vec<[String; 6]> = sites
        .iter()
        .map(|s| {
            let woke = s.service.time("ExecMainStartTimestamp").map_or_else(
                || "never".to_owned(),
                |t| {
                    let ago = crate::ctl::span(Some(now.saturating_sub(t) as f64));
                    format!("{} ({ago} ago)", rfc3339(t))
                },
            );
            let wakes = s.wakes.map_or_else(|| "-".to_owned(), |n| n.to_string());
            [
                s.name.clone(),
                s.socket_state(),
                s.state(),
                woke,
                wakes,
                s.listen().join(" "),
            ]
        })
        .collect();
    let head = ["SITE", "SOCKET", "STATE", "LAST WOKE", "WAKES", "LISTEN"];
    let mut width = head.map(str::len);
    for row in &rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(width).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&head.map(String::from));
    for row in &rows {
        line(row);
    }
    for s in sites {
        if let Some(note) = s.note() {
            let _ = writeln!(out, "{}: {note}", s.name);
        }
    }
    if sites.iter().any(|s| s.wakes.is_none()) {
        out.push_str("WAKES: the journal is not readable for this user\n");
    }
    out
}

/// The view for programs.
fn to_json(sites: &[Site]) -> Value {
    let list: Vec<Value> = sites
        .iter()
        .map(|s| {
            let time = |p: &Props, key: &str| {
                p.time(key)
                    .map_or(Value::Null, |t| json!({"unix": t, "utc": rfc3339(t)}))
            };
            let null_if_empty = |v: &str| {
                if v.is_empty() {
                    Value::Null
                } else {
                    Value::from(v)
                }
            };
            json!({
                "site": s.name,
                "socket": {
                    "unit": format!("{PREFIX}{}.socket", s.name),
                    "state": s.socket_state(),
                    "active_state": s.socket.get("ActiveState"),
                    "sub_state": s.socket.get("SubState"),
                    "enabled": s.socket.get("UnitFileState"),
                    "listen": s.listen(),
                },
                "service": {
                    "unit": format!("{PREFIX}{}.service", s.name),
                    "state": s.state(),
                    "active_state": s.service.get("ActiveState"),
                    "sub_state": s.service.get("SubState"),
                    "result": s.service.get("Result"),
                    "main_pid": s.service.number("MainPID").filter(|p| *p != 0),
                    "last_woke": time(&s.service, "ExecMainStartTimestamp"),
                    "asleep_since": if s.service.get("ActiveState") == "inactive" {
                        time(&s.service, "InactiveEnterTimestamp")
                    } else {
                        Value::Null
                    },
                    "wakes": s.wakes,
                    "restarts": s.service.number("NRestarts"),
                    "memory_bytes": s.service.number("MemoryCurrent"),
                    "status": null_if_empty(s.service.get("StatusText")),
                },
                "note": s.note(),
            })
        })
        .collect();
    json!({
        "sites": list,
        "wakes_counted": "systemd's \"Started\" messages for each service in this boot's journal",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW: &str = "Id=spyglass@blog.socket\nActiveState=active\nSubState=listening\n\
Result=success\nListen=/run/spyglass/blog.sock (Stream)\nListen=127.0.0.1:8081 (Stream)\n\n\
Id=spyglass@blog.service\nActiveState=inactive\nSubState=dead\nResult=success\nMainPID=0\n\
ExecMainStartTimestamp=@1700000000\nInactiveEnterTimestamp=@1700000060\nNRestarts=0\n\
MemoryCurrent=[not set]\nStatusText=\n";

    fn blog() -> Site {
        let mut p = parse_show(SHOW).into_iter();
        Site {
            name: "blog".into(),
            socket: p.next().unwrap(),
            service: p.next().unwrap(),
            wakes: Some(3),
        }
    }

    #[test]
    fn show_blocks_and_repeated_keys() {
        let s = blog();
        assert_eq!(s.socket.get("Id"), "spyglass@blog.socket");
        assert_eq!(s.listen(), ["/run/spyglass/blog.sock", "127.0.0.1:8081"]);
        assert_eq!(s.socket_state(), "listening");
        assert_eq!(s.state(), "asleep");
        assert_eq!(
            s.service.time("ExecMainStartTimestamp"),
            Some(1_700_000_000)
        );
        assert_eq!(s.service.number("MemoryCurrent"), None);
    }

    #[test]
    fn instances_and_names() {
        assert_eq!(instance("spyglass@blog.socket"), Some("blog"));
        assert_eq!(instance("spyglass@a.sock.service"), Some("a.sock"));
        assert_eq!(instance("spyglass@.service"), None);
        assert_eq!(instance("spyglass.service"), None);
        assert!(valid_name("shop-2_x"));
        assert!(!valid_name("example.com"));
        assert!(!valid_name(&"x".repeat(23)));
        assert!(valid_name(&"x".repeat(22)));
        let named = |name: &str| Site {
            name: name.into(),
            ..blog()
        };
        assert_eq!(named("blog").note(), None);
        assert!(
            named("default")
                .note()
                .unwrap()
                .contains("spyglass.service")
        );
        assert!(named("example.com").note().unwrap().contains("at most 22"));
    }

    #[test]
    fn table_and_json() {
        let sites = [blog()];
        let t = table(&sites, 1_700_000_090);
        let mut lines = t.lines();
        let head = lines.next().unwrap();
        assert!(
            head.starts_with("SITE  SOCKET     STATE   LAST WOKE"),
            "{t}"
        );
        let row = lines.next().unwrap();
        assert!(
            row.starts_with("blog  listening  asleep  2023-11-14T22:13:20Z (1m30s ago)  3"),
            "{t}"
        );
        assert!(
            row.ends_with("/run/spyglass/blog.sock 127.0.0.1:8081"),
            "{t}"
        );
        let v = to_json(&sites);
        let s = &v["sites"][0];
        assert_eq!(s["service"]["wakes"], 3);
        assert_eq!(s["service"]["main_pid"], Value::Null);
        assert_eq!(s["service"]["asleep_since"]["unix"], 1_700_000_060);
        assert_eq!(s["socket"]["listen"][1], "127.0.0.1:8081");
        assert_eq!(s["note"], Value::Null);
    }
}
