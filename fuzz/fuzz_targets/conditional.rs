//! Fuzz the conditional-request parsers of the static handler: entity-tag
//! lists (RFC 9110 §13.1.1-2, §8.8.3), HTTP-dates (§5.6.7) and the
//! preconditions built on them (§13.2.2). The first byte picks the mode.
//! Properties:
//! - entity-tag lists: every tag is a quoted opaque-tag of etagc, and
//!   a malformed member ends the list; a list written from tags (random
//!   whitespace, empty members, `W/`) reads back as those tags;
//! - dates: whatever parses is a date we can write, and writing it and
//!   reading it back gives the same second; every second we can write
//!   reads back;
//! - preconditions over any field values: 412 only with `If-Match` or
//!   `If-Unmodified-Since`, 304 only with `If-None-Match` or
//!   `If-Modified-Since`; our own tag always matches `If-None-Match`.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use spyglass::fuzz::{
    Tag, Validators, Verdict, entity_tags, http_date, http_date_secs, preconditions,
};
use spyglass::http::{HeaderMap, HeaderValue, header};

fn check_tags(value: &[u8]) {
    let tags = entity_tags(value);
    if let Some(bad) = tags.iter().position(Option::is_none) {
        assert_eq!(bad, tags.len() - 1, "members after a malformed one");
    }
    for tag in tags.iter().flatten() {
        if let Tag::Entity { opaque, .. } = tag {
            assert!(opaque.len() >= 2 && opaque[0] == b'"' && opaque[opaque.len() - 1] == b'"');
            let inner = &opaque[1..opaque.len() - 1];
            assert!(
                inner
                    .iter()
                    .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
            );
        }
    }
}

fn tag_list(u: &mut Unstructured<'_>) -> Result<()> {
    let ows =
        |u: &mut Unstructured<'_>| -> Result<&'static str> { Ok(*u.choose(&["", " ", "\t"])?) };
    let mut value = Vec::new();
    let mut want: Vec<(bool, Vec<u8>)> = Vec::new();
    for i in 0..u.int_in_range(0..=6)? {
        if i > 0 || u.ratio(1, 4)? {
            value.extend_from_slice(ows(u)?.as_bytes());
            value.push(b',');
        }
        value.extend_from_slice(ows(u)?.as_bytes());
        let weak: bool = u.arbitrary()?;
        let mut opaque = vec![b'"'];
        for _ in 0..u.int_in_range(0..=12)? {
            let b: u8 = u.arbitrary()?;
            // etagc = %x21 / %x23-7E / obs-text
            opaque.push(if b == b'"' || b < 0x21 || b == 0x7f {
                b'x'
            } else {
                b
            });
        }
        opaque.push(b'"');
        if weak {
            value.extend_from_slice(b"W/");
        }
        value.extend_from_slice(&opaque);
        value.extend_from_slice(ows(u)?.as_bytes());
        want.push((weak, opaque));
    }
    let got: Vec<(bool, Vec<u8>)> = entity_tags(&value)
        .into_iter()
        .map(|t| match t {
            Some(Tag::Entity { weak, opaque }) => (weak, opaque.to_vec()),
            other => panic!("{other:?} in {:?}", String::from_utf8_lossy(&value)),
        })
        .collect();
    assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&value));
    Ok(())
}

fn dates(data: &[u8], u: &mut Unstructured<'_>) -> Result<()> {
    if let Some(secs) = http_date_secs(data) {
        let written = http_date(secs).expect("a parsed date can be written");
        assert_eq!(http_date_secs(written.as_bytes()), Some(secs));
    }
    let secs = u.int_in_range(0..=253_402_300_799i64)?;
    let written = http_date(secs).expect("in range");
    assert_eq!(
        http_date_secs(written.as_bytes()),
        Some(secs),
        "{written:?}"
    );
    Ok(())
}

fn verdicts(u: &mut Unstructured<'_>) -> Result<()> {
    let v = Validators::new(
        u.arbitrary()?,
        u.arbitrary()?,
        u.int_in_range(0..=2_000_000_000)?,
        0,
        None,
    );
    let ours = v.etag.clone();
    let names = [
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_UNMODIFIED_SINCE,
        header::IF_RANGE,
    ];
    let mut h = HeaderMap::new();
    for _ in 0..u.int_in_range(0..=5)? {
        let name = u.choose(&names)?.clone();
        let value: Vec<u8> = match u.int_in_range(0..=3)? {
            0 => ours.as_bytes().to_vec(),
            1 => http_date(u.int_in_range(0..=2_000_000_000)?)
                .map_or(vec![], |d| d.as_bytes().to_vec()),
            2 => b"*".to_vec(),
            _ => u.arbitrary()?,
        };
        if let Ok(value) = HeaderValue::from_bytes(&value) {
            h.append(name, value);
        }
    }
    let (verdict, _) = preconditions(&h, &v);
    let has = |n: &header::HeaderName| h.contains_key(n);
    if verdict == Verdict::PreconditionFailed {
        assert!(has(&header::IF_MATCH) || has(&header::IF_UNMODIFIED_SINCE));
    }
    if verdict == Verdict::NotModified {
        assert!(has(&header::IF_NONE_MATCH) || has(&header::IF_MODIFIED_SINCE));
    }
    // Our own tag in If-None-Match: 304, unless a failed If-Match wins.
    if !has(&header::IF_MATCH) && !has(&header::IF_UNMODIFIED_SINCE) {
        h.append(header::IF_NONE_MATCH, ours);
        assert_eq!(preconditions(&h, &v).0, Verdict::NotModified);
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    let _ = match mode % 4 {
        0 => {
            check_tags(rest);
            Ok(())
        }
        1 => tag_list(&mut u),
        2 => dates(rest, &mut u),
        _ => verdicts(&mut u),
    };
});
