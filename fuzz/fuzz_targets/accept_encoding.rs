//! Fuzz `Accept-Encoding` with q-values (RFC 9110 §12.5.3, §12.4.2). The
//! first byte picks the mode. Raw mode splits the rest into field lines;
//! structured mode writes a list of codings with q-values (random case,
//! whitespace, `q`/`Q`, trailing zeros, other parameters, empty members)
//! and checks the answer against what the list means. Properties:
//! - the answer is a subset of {br, gzip} without repeats;
//! - for structured lists: a coding is offered iff its q (its own, else
//!   `*`'s) is above 0 and not below identity's (its own, else `*`'s),
//!   best q first, br before gzip on a tie; the first mention counts.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use spyglass::fuzz::accept_encoding;

const NAMES: [&str; 8] = [
    "br", "gzip", "x-gzip", "identity", "*", "deflate", "zstd", "compress",
];

/// A member: index into NAMES, and q in thousandths (None: no q).
type Member = (usize, Option<u16>);

fn meaning(members: &[Member]) -> Vec<&'static str> {
    let first = |names: &[&str]| {
        members
            .iter()
            .find(|(n, _)| names.contains(&NAMES[*n]))
            .map(|(_, q)| q.unwrap_or(1000))
    };
    let any = first(&["*"]);
    let identity = first(&["identity"]).or(any);
    let q_br = first(&["br"]).or(any).unwrap_or(0);
    let q_gzip = first(&["gzip", "x-gzip"]).or(any).unwrap_or(0);
    let mut out = vec![("br", q_br), ("gzip", q_gzip)];
    out.sort_by_key(|(_, q)| std::cmp::Reverse(*q)); // stable: br first on a tie
    out.into_iter()
        .filter(|(_, q)| *q > 0 && identity.is_none_or(|i| *q >= i))
        .map(|(n, _)| n)
        .collect()
}

fn qvalue(u: &mut Unstructured<'_>, q: u16) -> Result<String> {
    Ok(match q {
        1000 => u.choose(&["1", "1.", "1.0", "1.00", "1.000"])?.to_string(),
        0 if u.ratio(1, 2)? => "0".into(),
        q => {
            let s = format!("0.{q:03}");
            // Trailing zeros may go: 0.500 = 0.50 = 0.5.
            let keep = s.trim_end_matches('0').len().max(2);
            s[..u.int_in_range(keep..=s.len())?].to_string()
        }
    })
}

fn structured(u: &mut Unstructured<'_>) -> Result<(Vec<String>, Vec<Member>)> {
    let ows =
        |u: &mut Unstructured<'_>| -> Result<&'static str> { Ok(*u.choose(&["", " ", "\t"])?) };
    let mut lines = vec![String::new()];
    let mut members = Vec::new();
    for _ in 0..u.int_in_range(0..=8)? {
        if u.ratio(1, 6)? {
            lines.push(String::new());
        }
        let line = lines.last_mut().expect("one line");
        if !line.is_empty() || u.ratio(1, 4)? {
            line.push_str(ows(u)?);
            line.push(',');
        }
        line.push_str(ows(u)?);
        let n = u.choose_index(NAMES.len())?;
        let name = NAMES[n];
        line.push_str(&if u.arbitrary()? {
            name.to_ascii_uppercase()
        } else {
            name.to_string()
        });
        if u.ratio(1, 4)? {
            line.push_str(&format!("{};{}level=5", ows(u)?, ows(u)?));
        }
        let q = if u.arbitrary()? {
            let q = u.int_in_range(0..=1000)?;
            let v = qvalue(u, q)?;
            line.push_str(&format!(
                "{};{}{}={v}",
                ows(u)?,
                ows(u)?,
                u.choose(&["q", "Q"])?
            ));
            Some(q)
        } else {
            None
        };
        members.push((n, q));
    }
    Ok((lines, members))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let lines: Vec<&[u8]> = rest.split(|&b| b == b'\n').collect();
        let got = accept_encoding(lines.iter().copied());
        assert!(got.len() <= 2 && got.iter().all(|c| ["br", "gzip"].contains(c)));
        assert!(got.len() < 2 || got[0] != got[1]);
        return;
    }
    let Ok((lines, members)) = structured(&mut Unstructured::new(rest)) else {
        return;
    };
    let got = accept_encoding(lines.iter().map(|l| l.as_bytes()));
    assert_eq!(got, meaning(&members), "{lines:?}");
});
