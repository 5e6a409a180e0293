//! A deploy's site rules, read from its `_redirects` and `_headers` files in Netlify's
//! formats, checked when the deploy is made (a malformed line refuses it, by number) and
//! applied by the edges.
//!
//! `_redirects`: one rule a line, `FROM TO [STATUS][!]`; `#` starts a comment. `FROM` is a
//! path pattern: literal segments, `:name` placeholders (one segment each) and a final `*`
//! (the rest, `:splat` in `TO`). STATUS is 301 (the default), 302, 303, 307 or 308 for a
//! redirect (`TO` a path or an `http(s)://` URL), 200 for a rewrite and 404 for a not-found
//! page (`TO` a path of the same site: the edge is no proxy). Rules apply in order, first
//! match wins, and only where no file answers the path, unless forced with `!`.
//!
//! `_headers`: a path pattern on a line of its own, then indented `Name: value` lines; every
//! block whose pattern matches adds its headers. The headers the edge owns
//! (`Content-Length`, `Transfer-Encoding`, `Connection`, `Content-Encoding`,
//! `Strict-Transport-Security`) cannot be set.

use serde::{Deserialize, Serialize};

/// The file holding redirect and rewrite rules.
pub const REDIRECTS_FILE: &str = "_redirects";
/// The file holding custom headers.
pub const HEADERS_FILE: &str = "_headers";
/// The page served, with status 404, for paths nothing answers.
pub const NOT_FOUND_PAGE: &str = "404.html";

/// Rule lines kept at most per file, and headers per block.
pub const MAX_RULES: usize = 1000;
const OWNED_HEADERS: [&str; 5] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "content-encoding",
    "strict-transport-security",
];

/// A deploy's rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    #[serde(default)]
    pub redirects: Vec<Redirect>,
    #[serde(default)]
    pub headers: Vec<HeaderBlock>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redirect {
    pub from: String,
    pub to: String,
    pub status: u16,
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderBlock {
    pub path: String,
    pub headers: Vec<(String, String)>,
}

/// What a rule makes of a request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Answer with a redirect to this location.
    Redirect { status: u16, location: String },
    /// Serve this path of the site instead, with this status (200 or 404).
    Rewrite { status: u16, path: String },
}

impl Rules {
    /// Parse the two files' contents (either may be absent).
    pub fn parse(redirects: Option<&str>, headers: Option<&str>) -> Result<Self, String> {
        Ok(Self {
            redirects: redirects
                .map(parse_redirects)
                .transpose()?
                .unwrap_or_default(),
            headers: headers.map(parse_headers).transpose()?.unwrap_or_default(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.redirects.is_empty() && self.headers.is_empty()
    }

    /// The first rule for `path` (`file_exists`: a file answers it, so only forced rules
    /// apply), with placeholders and the splat filled in.
    pub fn action(&self, path: &str, file_exists: bool) -> Option<Action> {
        self.redirects
            .iter()
            .filter(|r| r.force || !file_exists)
            .find_map(|r| {
                let captures = matches(&r.from, path)?;
                let to = fill(&r.to, &captures);
                Some(match r.status {
                    200 | 404 => Action::Rewrite {
                        status: r.status,
                        path: to,
                    },
                    status => Action::Redirect {
                        status,
                        location: to,
                    },
                })
            })
    }

    /// The custom headers for `path`, in file order.
    pub fn headers_for<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a (String, String)> {
        self.headers
            .iter()
            .filter(move |b| matches(&b.path, path).is_some())
            .flat_map(|b| &b.headers)
    }
}

fn parse_redirects(text: &str) -> Result<Vec<Redirect>, String> {
    let mut rules = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        if rules.len() == MAX_RULES {
            return Err(format!(
                "{REDIRECTS_FILE} line {n}: more than {MAX_RULES} rules"
            ));
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (from, to, status) = match fields[..] {
            [from, to] => (from, to, "301"),
            [from, to, status] => (from, to, status),
            _ => {
                return Err(format!(
                    "{REDIRECTS_FILE} line {n}: expected \"FROM TO [STATUS]\" (conditions such as Country= or query parameters are not supported)"
                ));
            }
        };
        let (status, force) = match status.strip_suffix('!') {
            Some(s) => (s, true),
            None => (status, false),
        };
        let status: u16 = match status.parse() {
            Ok(s @ (200 | 301 | 302 | 303 | 307 | 308 | 404)) => s,
            _ => {
                return Err(format!(
                    "{REDIRECTS_FILE} line {n}: status {status:?} is not one of 200, 301, 302, 303, 307, 308, 404"
                ));
            }
        };
        check_pattern(from).map_err(|e| format!("{REDIRECTS_FILE} line {n}: {e}"))?;
        let absolute = to.starts_with("http://") || to.starts_with("https://");
        if matches!(status, 200 | 404) && !to.starts_with('/') {
            return Err(format!(
                "{REDIRECTS_FILE} line {n}: a {status} rule must name a path of this site (starting with /), not {to:?}: the edge does not proxy to other hosts"
            ));
        }
        if !absolute && !to.starts_with('/') {
            return Err(format!(
                "{REDIRECTS_FILE} line {n}: the target {to:?} must be a path (starting with /) or an http(s) URL"
            ));
        }
        if to.chars().any(|c| c.is_control()) {
            return Err(format!(
                "{REDIRECTS_FILE} line {n}: the target has control characters"
            ));
        }
        rules.push(Redirect {
            from: from.to_owned(),
            to: to.to_owned(),
            status,
            force,
        });
    }
    Ok(rules)
}

fn parse_headers(text: &str) -> Result<Vec<HeaderBlock>, String> {
    let mut blocks: Vec<HeaderBlock> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let indented = raw.starts_with(' ') || raw.starts_with('\t');
        if !indented {
            check_pattern(line).map_err(|e| format!("{HEADERS_FILE} line {n}: {e}"))?;
            if blocks.len() == MAX_RULES {
                return Err(format!(
                    "{HEADERS_FILE} line {n}: more than {MAX_RULES} blocks"
                ));
            }
            blocks.push(HeaderBlock {
                path: line.to_owned(),
                headers: Vec::new(),
            });
            continue;
        }
        let Some(block) = blocks.last_mut() else {
            return Err(format!(
                "{HEADERS_FILE} line {n}: a header before any path line (a path starts a block; its headers are indented below it)"
            ));
        };
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("{HEADERS_FILE} line {n}: expected \"Name: value\""));
        };
        let (name, value) = (name.trim(), value.trim());
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!(
                "{HEADERS_FILE} line {n}: {name:?} is not a valid header name"
            ));
        }
        if http::HeaderValue::from_str(value).is_err() {
            return Err(format!(
                "{HEADERS_FILE} line {n}: the value of {name} is not a valid header value"
            ));
        }
        if OWNED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{HEADERS_FILE} line {n}: {name} is set by the platform and cannot be changed"
            ));
        }
        if block.headers.len() == MAX_RULES {
            return Err(format!(
                "{HEADERS_FILE} line {n}: more than {MAX_RULES} headers in a block"
            ));
        }
        block.headers.push((name.to_owned(), value.to_owned()));
    }
    Ok(blocks)
}

fn check_pattern(pattern: &str) -> Result<(), String> {
    if !pattern.starts_with('/') {
        return Err(format!("the path pattern {pattern:?} must start with /"));
    }
    let segments: Vec<&str> = pattern.split('/').skip(1).collect();
    for (i, s) in segments.iter().enumerate() {
        if s.contains('*') && (*s != "*" || i + 1 != segments.len()) {
            return Err(format!(
                "in {pattern:?}, * may only stand for the last segment (\"/docs/*\")"
            ));
        }
    }
    Ok(())
}

/// The captures of `path` against `pattern` (`splat` for `*`), or `None`. Trailing
/// slashes are ignored on both sides.
fn matches(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
    let pat: Vec<&str> = pattern.trim_end_matches('/').split('/').skip(1).collect();
    let got: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let mut captures = Vec::new();
    for (i, p) in pat.iter().enumerate() {
        if *p == "*" {
            captures.push((
                "splat".to_owned(),
                got.get(i..).unwrap_or_default().join("/"),
            ));
            return Some(captures);
        }
        let g = got.get(i)?;
        match p.strip_prefix(':') {
            Some(name) if !g.is_empty() => captures.push((name.to_owned(), (*g).to_owned())),
            Some(_) => return None,
            None if p == g => {}
            None => return None,
        }
    }
    (got.len() == pat.len()).then_some(captures)
}

fn fill(to: &str, captures: &[(String, String)]) -> String {
    let mut out = to.to_owned();
    // Longest names first, so `:id` does not eat into `:identity`.
    let mut sorted: Vec<&(String, String)> = captures.iter().collect();
    sorted.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    for (name, value) in sorted {
        out = out.replace(&format!(":{name}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(redirects: &str) -> Rules {
        Rules::parse(Some(redirects), None).unwrap()
    }

    #[test]
    fn redirects_match_in_order_with_placeholders_and_splats() {
        let r = rules(
            "# comments and blank lines\n\n\
             /old            /new\n\
             /blog/:year/:slug  /posts/:year-:slug 302\n\
             /docs/*         https://docs.example.com/:splat 308\n\
             /app/*          /app/index.html   200\n\
             /forced         /elsewhere 301!\n\
             /*              /index.html 200\n",
        );
        let redirect = |status, location: &str| {
            Some(Action::Redirect {
                status,
                location: location.into(),
            })
        };
        let rewrite = |path: &str| {
            Some(Action::Rewrite {
                status: 200,
                path: path.into(),
            })
        };
        assert_eq!(r.action("/old", false), redirect(301, "/new"));
        assert_eq!(r.action("/old/", false), redirect(301, "/new"));
        assert_eq!(
            r.action("/blog/2026/hello", false),
            redirect(302, "/posts/2026-hello")
        );
        assert_eq!(
            r.action("/docs/a/b.html", false),
            redirect(308, "https://docs.example.com/a/b.html")
        );
        assert_eq!(
            r.action("/app/settings/42", false),
            rewrite("/app/index.html")
        );
        assert_eq!(r.action("/anything", false), rewrite("/index.html"));
        // A file answering the path shadows every rule but a forced one.
        assert_eq!(r.action("/old", true), None);
        assert_eq!(r.action("/forced", true), redirect(301, "/elsewhere"));
        assert_eq!(r.action("/blog/2026", false), rewrite("/index.html"));
    }

    #[test]
    fn malformed_redirects_name_their_line() {
        for (text, want) in [
            ("/a /b 302\n/c", "line 2"),
            ("/a /b 418", "line 1: status \"418\""),
            ("/a https://other.example.com/ 200", "does not proxy"),
            ("/a b", "must be a path"),
            ("a /b", "must start with /"),
            ("/a/*/b /c", "last segment"),
            ("/a /b 302 Country=de", "not supported"),
        ] {
            let err = Rules::parse(Some(text), None).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn headers_apply_by_pattern_except_the_edges_own() {
        let r = Rules::parse(
            None,
            Some(
                "/*\n  X-Frame-Options: DENY\n\n/assets/*\n  Cache-Control: public, max-age=31536000, immutable\n",
            ),
        )
        .unwrap();
        let got: Vec<_> = r.headers_for("/assets/app.js").cloned().collect();
        assert_eq!(
            got,
            [
                ("X-Frame-Options".into(), "DENY".into()),
                (
                    "Cache-Control".into(),
                    "public, max-age=31536000, immutable".into()
                )
            ]
        );
        assert_eq!(r.headers_for("/index.html").count(), 1);
        for (text, want) in [
            (
                "/*\n  Content-Encoding: gzip",
                "line 2: Content-Encoding is set by the platform",
            ),
            (
                "/*\n  Strict-Transport-Security: max-age=0",
                "set by the platform",
            ),
            ("  X-A: b", "line 1: a header before any path"),
            ("/*\n  no colon", "line 2: expected"),
            ("/*\n  Bad Name: x", "not a valid header name"),
        ] {
            let err = Rules::parse(None, Some(text)).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn rules_survive_storage_as_json() {
        let r = rules("/* /index.html 200");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(serde_json::from_value::<Rules>(json).unwrap(), r);
    }
}
