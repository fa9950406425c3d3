//! `Accept-Encoding` (RFC 9110 §12.5.3): which precompressed sibling, if
//! any, a client would rather have than the file itself.
//!
//! Q-values are read properly (`br;q=0` refuses brotli, `*` covers what is
//! not named); ties go to the smaller coding (br, then gzip). The identity
//! file is never refused: when a client excludes it (`identity;q=0`,
//! `*;q=0`) and no sibling it accepts exists, it still gets the file, as
//! §12.5.3 recommends, rather than a 406.

/// A content coding we serve from a sibling file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Br = 0,
    Gzip = 1,
}

impl Coding {
    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// The sibling's suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            Coding::Br => ".br",
            Coding::Gzip => ".gz",
        }
    }

    /// Both, in order of preference on a tie.
    pub const ALL: [Coding; 2] = [Coding::Br, Coding::Gzip];
}

/// Q-values in thousandths.
type Q = u16;

/// What one or more `Accept-Encoding` values say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accept {
    br: Option<Q>,
    gzip: Option<Q>,
    identity: Option<Q>,
    any: Option<Q>,
}

impl Accept {
    /// Parse every value of the field (members of later lines add to the
    /// earlier ones; the first mention of a coding counts).
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Accept {
        let mut a = Accept::default();
        for value in values {
            for member in value.split(|&b| b == b',') {
                let Some((name, q)) = member_q(member) else {
                    continue;
                };
                let slot = if name.eq_ignore_ascii_case(b"br") {
                    &mut a.br
                } else if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip")
                {
                    &mut a.gzip
                } else if name.eq_ignore_ascii_case(b"identity") {
                    &mut a.identity
                } else if name == b"*" {
                    &mut a.any
                } else {
                    continue;
                };
                slot.get_or_insert(q);
            }
        }
        a
    }

    fn q(&self, c: Coding) -> Q {
        let named = match c {
            Coding::Br => self.br,
            Coding::Gzip => self.gzip,
        };
        named.or(self.any).unwrap_or(0)
    }

    /// The codings worth a sibling, best first: acceptable (q > 0) and not
    /// ranked below an identity the client rated explicitly (or by `*`).
    pub fn wanted(&self) -> impl Iterator<Item = Coding> + '_ {
        let identity = self.identity.or(self.any);
        let mut order = Coding::ALL;
        // Stable: br stays ahead of gzip on equal q.
        order.sort_by_key(|c| std::cmp::Reverse(self.q(*c)));
        order
            .into_iter()
            .filter(move |c| self.q(*c) > 0 && identity.is_none_or(|i| self.q(*c) >= i))
    }
}

/// `coding *( OWS ";" OWS param )` with its q (1 when absent); None for an
/// empty or malformed member.
fn member_q(member: &[u8]) -> Option<(&[u8], Q)> {
    let mut fields = member.split(|&b| b == b';');
    let name = fields.next()?.trim_ascii();
    if name.is_empty() {
        return None;
    }
    let mut q = 1000;
    for param in fields {
        let param = param.trim_ascii();
        let eq = param.iter().position(|&b| b == b'=')?;
        let (k, v) = (param[..eq].trim_ascii(), param[eq + 1..].trim_ascii());
        if k.eq_ignore_ascii_case(b"q") {
            q = qvalue(v)?;
        }
    }
    Some((name, q))
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`.
fn qvalue(v: &[u8]) -> Option<Q> {
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(dot) => (&v[..dot], &v[dot + 1..]),
        None => (v, &[][..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: Q = 0;
    for (i, d) in frac.iter().enumerate() {
        thousandths += Q::from(d - b'0') * [100, 10, 1][i];
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Coding::*;

    #[test]
    fn wanted_table() {
        let cases: &[(&[&str], &[Coding])] = &[
            // Accept-Encoding lines => codings to try, best first
            (&[""], &[]),
            (&["gzip"], &[Gzip]),
            (&["br"], &[Br]),
            (&["gzip, deflate, br"], &[Br, Gzip]),
            (&["gzip, deflate, br, zstd"], &[Br, Gzip]),
            (&["GZIP, BR"], &[Br, Gzip]),
            (&["x-gzip"], &[Gzip]),
            (&["br;q=0.5, gzip;q=0.8"], &[Gzip, Br]),
            (&["br;q=0.8, gzip;q=0.8"], &[Br, Gzip]),
            (&["br ; q=0.9 , gzip"], &[Gzip, Br]),
            (&["br;q=0, gzip"], &[Gzip]),
            (&["br;q=0.000, gzip;q=0.001"], &[Gzip]),
            (&["br;Q=1.000"], &[Br]),
            (&["*"], &[Br, Gzip]),
            (&["*;q=0"], &[]),
            (&["*;q=0, gzip"], &[Gzip]),
            (&["*, br;q=0"], &[Gzip]),
            (&["identity"], &[]),
            (&["identity, gzip"], &[Gzip]),
            (&["identity;q=1, gzip;q=0.5"], &[]),
            (&["identity;q=0.5, gzip;q=0.5, br;q=0.4"], &[Gzip]),
            (&["identity;q=0, gzip"], &[Gzip]),
            (&["identity;q=0"], &[]),
            (&["*;q=0.5, gzip"], &[Gzip, Br]),
            (&["gzip", "br"], &[Br, Gzip]),
            (&["br;q=0", "br"], &[]),
            // Malformed members are dropped, the rest stands.
            (&["br;q=2, gzip"], &[Gzip]),
            (&["br;q=0.5.5, gzip"], &[Gzip]),
            (&["br;q=0.1234"], &[]),
            (&["br;q=, gzip"], &[Gzip]),
            (&["br;q"], &[]),
            (&["br;level=5"], &[Br]),
            (&[",,br,,"], &[Br]),
        ];
        for (lines, want) in cases {
            let a = Accept::parse(lines.iter().map(|l| l.as_bytes()));
            let got: Vec<Coding> = a.wanted().collect();
            assert_eq!(&got, want, "{lines:?}");
        }
    }

    #[test]
    fn qvalues() {
        let cases: &[(&str, Option<Q>)] = &[
            ("0", Some(0)),
            ("1", Some(1000)),
            ("0.5", Some(500)),
            ("0.05", Some(50)),
            ("0.123", Some(123)),
            ("1.0", Some(1000)),
            ("1.000", Some(1000)),
            ("0.", Some(0)),
            ("1.001", None),
            ("0.1234", None),
            ("2", None),
            (".5", None),
            ("", None),
            ("0.a", None),
        ];
        for (v, want) in cases {
            assert_eq!(qvalue(v.as_bytes()), *want, "{v:?}");
        }
    }
}
