//! Fuzz the `Range` parser (RFC 9110 §14.1.2, §14.2) of the static handler.
//! The first byte picks the representation's length and the mode. Raw mode
//! parses the rest as the field value; structured mode builds a value from
//! a list of range specs (random case, whitespace, empty members, leading
//! zeros) and checks the result against what the specs mean. Properties:
//! - every span lies within the representation and is not empty;
//! - one span is `One`; `Many` has 2 to `MAX_RANGES` spans that together
//!   ask for no more than the whole (overlap gets the whole file: 200);
//! - an empty representation never yields a span;
//! - structured values parse to exactly the spans their specs name.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use spyglass::fuzz::{MAX_RANGES, Ranges, Span, range};

fn check(r: &Ranges, len: u64) {
    let within = |s: &Span| s.start <= s.end && s.end < len;
    match r {
        Ranges::Ignore | Ranges::Unsatisfiable => {}
        Ranges::One(s) => assert!(within(s), "{s:?} of {len}"),
        Ranges::Many(spans) => {
            assert!((2..=MAX_RANGES).contains(&spans.len()));
            assert!(spans.iter().all(within), "{spans:?} of {len}");
            assert!(spans.iter().map(Span::len).sum::<u64>() <= len);
        }
    }
}

#[derive(Debug)]
enum Spec {
    /// `first-last` (possibly invalid: last < first) or `first-`.
    From(u64, Option<u64>),
    /// `-suffix`.
    Suffix(u64),
}

/// RFC 9110 §14.1.2: what the specs ask of `len` bytes, under the handler's
/// policy (at most MAX_RANGES specs, no overlap beyond the whole).
fn meaning(specs: &[Spec], len: u64) -> Ranges {
    if specs.is_empty()
        || specs.len() > MAX_RANGES
        || specs
            .iter()
            .any(|s| matches!(s, Spec::From(f, Some(l)) if l < f))
    {
        return Ranges::Ignore;
    }
    if len == 0 {
        let suffix = specs.iter().any(|s| matches!(s, Spec::Suffix(k) if *k > 0));
        return if suffix {
            Ranges::Ignore
        } else {
            Ranges::Unsatisfiable
        };
    }
    let spans: Vec<Span> = specs
        .iter()
        .filter_map(|s| match *s {
            Spec::From(f, l) if f < len => Some(Span {
                start: f,
                end: l.map_or(len - 1, |l| l.min(len - 1)),
            }),
            Spec::Suffix(k) if k > 0 => Some(Span {
                start: len - k.min(len),
                end: len - 1,
            }),
            _ => None,
        })
        .collect();
    match spans.len() {
        0 => Ranges::Unsatisfiable,
        1 => Ranges::One(spans[0]),
        _ if spans.iter().map(Span::len).sum::<u64>() > len => Ranges::Ignore,
        _ => Ranges::Many(spans),
    }
}

fn number(u: &mut Unstructured<'_>, len: u64) -> Result<u64> {
    Ok(match u.int_in_range(0..=3)? {
        0 => u.int_in_range(0..=len.saturating_add(2))?,
        1 => len.saturating_sub(u.int_in_range(0..=3)?),
        2 => u.int_in_range(0..=20)?,
        _ => u.arbitrary()?,
    })
}

fn structured(u: &mut Unstructured<'_>, len: u64) -> Result<(String, Vec<Spec>)> {
    let ows = |u: &mut Unstructured<'_>| -> Result<&'static str> {
        Ok(*u.choose(&["", " ", "\t", "  "])?)
    };
    let mut value = u.choose(&["bytes=", "BYTES=", "Bytes="])?.to_string();
    let mut specs = Vec::new();
    for i in 0..u.int_in_range(1..=MAX_RANGES + 2)? {
        if i > 0 {
            value.push_str(ows(u)?);
            value.push(',');
        }
        if u.ratio(1, 8)? {
            value.push_str(ows(u)?);
            value.push(',');
        }
        value.push_str(ows(u)?);
        let zeros = "0".repeat(u.int_in_range(0..=2)?);
        let spec = match u.int_in_range(0..=2)? {
            0 => {
                let (f, l) = (number(u, len)?, number(u, len)?);
                value.push_str(&format!("{zeros}{f}-{l}"));
                Spec::From(f, Some(l))
            }
            1 => {
                let f = number(u, len)?;
                value.push_str(&format!("{f}-"));
                Spec::From(f, None)
            }
            _ => {
                let k = number(u, len)?;
                value.push_str(&format!("-{zeros}{k}"));
                Spec::Suffix(k)
            }
        };
        specs.push(spec);
        value.push_str(ows(u)?);
    }
    Ok((value, specs))
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let len = match pick >> 1 {
        0 => 0,
        n if n < 100 => u64::from(n),
        n => u64::from(n) << 40,
    };
    if pick & 1 == 0 {
        check(&range(rest, len), len);
        return;
    }
    let mut u = Unstructured::new(rest);
    let Ok((value, specs)) = structured(&mut u, len) else {
        return;
    };
    let got = range(value.as_bytes(), len);
    check(&got, len);
    assert_eq!(got, meaning(&specs, len), "{value:?} of {len}: {specs:?}");
});
