//! Choosing a stored representation: `Accept-Encoding` q-values against the variants a
//! file has (RFC 9110 §12.5.3), and single byte ranges on the identity body (§14).
//! Pure functions: the edge never compresses on the request path.

/// A content coding the edge can serve from storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Br,
    Zstd,
    Gzip,
}

impl Encoding {
    /// The token in `Accept-Encoding` and `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Br => "br",
            Self::Zstd => "zstd",
            Self::Gzip => "gzip",
        }
    }
}

/// The representation to send: among `available` (the stored variants, smallest first),
/// the one the client accepts with the highest q-value, ties going to the smaller. The
/// identity body competes with the q-value the client gave it (`identity` or `*`), and is
/// what is sent when no variant is acceptable, even when excluded (a 406 helps nobody).
pub fn choose(accept_encoding: Option<&str>, available: &[Encoding]) -> Encoding {
    let Some(header) = accept_encoding else {
        return Encoding::Identity;
    };
    let (mut star, mut identity) = (None, None);
    let mut explicit: [(Encoding, Option<f32>); 3] = [
        (Encoding::Br, None),
        (Encoding::Zstd, None),
        (Encoding::Gzip, None),
    ];
    for item in header.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let q = parts
            .find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim().eq_ignore_ascii_case("q").then(|| v.trim())
            })
            .map_or(Some(1.0), |v| {
                v.parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q))
            });
        let Some(q) = q else { continue };
        if coding == "*" {
            star = Some(q);
        } else if coding.eq_ignore_ascii_case("identity") {
            identity = Some(q);
        } else if let Some(slot) = explicit.iter_mut().find(|(e, _)| {
            coding.eq_ignore_ascii_case(e.token())
                || (*e == Encoding::Gzip && coding.eq_ignore_ascii_case("x-gzip"))
        }) {
            slot.1 = Some(q);
        }
    }
    let q_of = |e: Encoding| {
        explicit
            .iter()
            .find(|(x, _)| *x == e)
            .and_then(|(_, q)| *q)
            .or(star)
            .unwrap_or(0.0)
    };
    let identity_q = identity.or(star).unwrap_or(0.0);
    let mut best = (Encoding::Identity, identity_q);
    // Smallest first, so a tie keeps the smaller body.
    for &e in available.iter().rev() {
        let q = q_of(e);
        if q > 0.0 && q >= best.1 {
            best = (e, q);
        }
    }
    best.0
}

/// What a `Range` header asks of a body of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// No range, or one the edge ignores (not bytes, several ranges): the whole body.
    Whole,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// No byte of it exists: 416.
    Unsatisfiable,
}

/// One `bytes=` range (RFC 9110 §14.1.2): `a-b`, `a-`, or the suffix `-n`.
pub fn range(header: Option<&str>, len: u64) -> Range {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Range::Whole;
    };
    if spec.contains(',') {
        return Range::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Range::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    match (first.is_empty(), last.is_empty()) {
        (true, false) => match parse(last) {
            Some(0) => Range::Unsatisfiable,
            Some(n) if len > 0 => Range::Part {
                start: len.saturating_sub(n),
                end: len - 1,
            },
            Some(_) => Range::Unsatisfiable,
            None => Range::Whole,
        },
        (false, _) => {
            let Some(start) = parse(first) else {
                return Range::Whole;
            };
            let end = match last.is_empty() {
                true => Some(u64::MAX),
                false => parse(last),
            };
            match end {
                None => Range::Whole,
                Some(end) if end < start => Range::Whole,
                Some(_) if start >= len => Range::Unsatisfiable,
                Some(end) => Range::Part {
                    start,
                    end: end.min(len - 1),
                },
            }
        }
        (true, true) => Range::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::Encoding::{Br, Gzip, Identity, Zstd};
    use super::*;

    const ALL: &[Encoding] = &[Br, Zstd, Gzip];

    #[test]
    fn accept_encoding_picks_by_q_value_then_size() {
        let cases: &[(Option<&str>, &[Encoding], Encoding)] = &[
            (None, ALL, Identity),
            (Some("gzip, deflate, br, zstd"), ALL, Br),
            (Some("gzip, deflate, br, zstd"), &[Zstd, Gzip], Zstd),
            (Some("gzip, deflate"), ALL, Gzip),
            (Some("x-gzip"), ALL, Gzip),
            (Some("br;q=0.5, gzip"), ALL, Gzip),
            (Some("br;q=0, gzip;q=0"), ALL, Identity),
            (Some("*"), ALL, Br),
            (Some("*;q=0.5, identity"), ALL, Identity),
            (Some("gzip;q=0.5"), ALL, Gzip),
            (Some("gzip;q=0.5, identity"), ALL, Identity),
            (Some("identity;q=0, gzip;q=0.2"), ALL, Gzip),
            (Some("identity;q=0"), ALL, Identity),
            (Some("BR"), ALL, Br),
            (Some("br;q=2, gzip"), ALL, Gzip),
            (Some("br;q=abc"), ALL, Identity),
            (Some(""), ALL, Identity),
            (Some("gzip, br"), &[], Identity),
            (Some("deflate"), ALL, Identity),
        ];
        for (header, available, want) in cases {
            assert_eq!(
                choose(*header, available),
                *want,
                "{header:?} of {available:?}"
            );
        }
    }

    #[test]
    fn byte_ranges() {
        let part = |start, end| Range::Part { start, end };
        let cases = [
            (None, 100, Range::Whole),
            (Some("bytes=0-9"), 100, part(0, 9)),
            (Some("bytes=90-"), 100, part(90, 99)),
            (Some("bytes=90-200"), 100, part(90, 99)),
            (Some("bytes=-10"), 100, part(90, 99)),
            (Some("bytes=-200"), 100, part(0, 99)),
            (Some("bytes=100-"), 100, Range::Unsatisfiable),
            (Some("bytes=-0"), 100, Range::Unsatisfiable),
            (Some("bytes=0-0"), 0, Range::Unsatisfiable),
            (Some("bytes=5-2"), 100, Range::Whole),
            (Some("bytes=0-1,5-6"), 100, Range::Whole),
            (Some("items=0-1"), 100, Range::Whole),
            (Some("bytes=x-1"), 100, Range::Whole),
            (Some("bytes=-"), 100, Range::Whole),
        ];
        for (header, len, want) in cases {
            assert_eq!(range(header, len), want, "{header:?} of {len}");
        }
    }
}
