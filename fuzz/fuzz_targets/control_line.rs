//! Fuzz the control socket's command line (`control::parse`, `words`): the
//! bytes a local client writes to `spyglass ctl`'s socket. Properties:
//! - never a panic; a command is only one the socket may ask for (not a
//!   signal's: fast stop, one worker more or fewer, reap), with a worker
//!   count of at least 1, a process id above 0, an application command
//!   name that is not empty and not an option;
//! - the two spellings agree: the words of any line, written as a JSON
//!   array, read back as the same words and the same command; written
//!   with blanks (when no word is empty or holds whitespace, and the
//!   first does not open a JSON array), likewise.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spyglass::control::{parse, words};
use spyglass::signals::Command;

fuzz_target!(|line: &[u8]| {
    let parsed = parse(line);
    match &parsed {
        Ok(Command::Status | Command::Reload | Command::GracefulStop | Command::Recycle(None)) => {}
        Ok(Command::SetWorkers(n)) => assert!(*n >= 1),
        Ok(Command::Recycle(Some(pid))) => assert!(*pid > 0),
        Ok(Command::App { name, worker, .. }) => {
            assert!(!name.is_empty() && !name.starts_with('-'));
            assert!(worker.is_none_or(|p| p > 0));
        }
        Ok(other) => panic!("a command line asked for {other:?}"),
        Err(_) => {}
    }
    let Ok(ws) = words(line) else {
        assert!(parsed.is_err());
        return;
    };
    assert!(ws.iter().map(String::len).sum::<usize>() <= line.len());

    let json = serde_json::to_string(&ws).expect("strings");
    assert_eq!(words(json.as_bytes()).as_ref(), Ok(&ws), "{json}");
    assert_eq!(parse(json.as_bytes()), parsed, "{json}");

    let plain = ws
        .iter()
        .all(|w| !w.is_empty() && !w.chars().any(char::is_whitespace));
    if plain && ws.first().is_none_or(|w| !w.starts_with('[')) {
        let blanks = ws.join(" ");
        assert_eq!(words(blanks.as_bytes()).as_ref(), Ok(&ws), "{blanks:?}");
        assert_eq!(parse(blanks.as_bytes()), parsed, "{blanks:?}");
    }
});
