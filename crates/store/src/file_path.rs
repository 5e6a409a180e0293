//! Paths of tenant files.
//!
//! A [`FilePath`] is relative (no leading slash), made of non-empty segments that are not
//! `.` or `..`, free of control characters and backslashes, and bounded in length. It is
//! exactly the string stored in `files.path` and looked up by the edge for `/{path}`.

use std::fmt;

/// Longest accepted path in bytes (UTF-8).
pub const MAX_PATH_LEN: usize = 1024;
/// Longest accepted segment in bytes: what common file systems allow.
pub const MAX_SEGMENT_LEN: usize = 255;
/// Deepest accepted nesting.
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FilePath(String);

/// Why a path was refused. `Display` is the tenant-facing detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilePathError {
    #[error("The file path is empty.")]
    Empty,
    #[error("The file path is {0} bytes long; at most 1024 are allowed.")]
    TooLong(usize),
    #[error("The file path has more than 32 levels of folders.")]
    TooDeep,
    #[error("The file path has an empty segment (\"//\" or a trailing slash).")]
    EmptySegment,
    #[error("The file path may not contain \".\" or \"..\" segments.")]
    DotSegment,
    #[error("A segment of the file path is {0} bytes long; at most 255 are allowed.")]
    SegmentTooLong(usize),
    #[error("The file path contains a control character (such as NUL or a newline).")]
    Control,
    #[error("The file path contains a backslash; use \"/\" to separate folders.")]
    Backslash,
}

impl FilePath {
    /// Parse a path as it appears after `/v1/files/` (already percent-decoded). One
    /// leading slash is tolerated so `/index.html` and `index.html` mean the same file.
    pub fn parse(input: &str) -> Result<Self, FilePathError> {
        Self::check(input).map(|path| FilePath(path.to_owned()))
    }

    /// What `parse` checks, without allocating: the path as it would be stored (one
    /// leading slash removed). For hot paths that only look the path up.
    pub fn check(input: &str) -> Result<&str, FilePathError> {
        let path = input.strip_prefix('/').unwrap_or(input);
        if path.is_empty() {
            return Err(FilePathError::Empty);
        }
        if path.len() > MAX_PATH_LEN {
            return Err(FilePathError::TooLong(path.len()));
        }
        if path.chars().any(char::is_control) {
            return Err(FilePathError::Control);
        }
        if path.contains('\\') {
            return Err(FilePathError::Backslash);
        }
        let mut depth = 0;
        for segment in path.split('/') {
            depth += 1;
            match segment {
                "" => return Err(FilePathError::EmptySegment),
                "." | ".." => return Err(FilePathError::DotSegment),
                s if s.len() > MAX_SEGMENT_LEN => {
                    return Err(FilePathError::SegmentTooLong(s.len()));
                }
                _ => {}
            }
        }
        if depth > MAX_DEPTH {
            return Err(FilePathError::TooDeep);
        }
        Ok(path)
    }

    /// The stored form, without a leading slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Content-Type to use when the uploader did not say: guessed from the extension,
    /// `application/octet-stream` when unknown. Text types get `charset=utf-8`.
    pub fn guess_content_type(&self) -> String {
        let mime = mime_guess::from_path(&self.0).first_or_octet_stream();
        if mime.type_() == "text" || mime.essence_str() == "application/javascript" {
            format!("{}; charset=utf-8", mime.essence_str())
        } else {
            mime.essence_str().to_owned()
        }
    }
}

impl fmt::Display for FilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Content types that mean "the uploader did not say": curl's `--data-binary` default and
/// the generic binary type. For these the type is guessed from the extension instead.
const UNSPECIFIED_CONTENT_TYPES: &[&str] = &[
    "application/x-www-form-urlencoded",
    "application/octet-stream",
    "multipart/form-data",
];

/// The Content-Type to store for an upload: the request's own when it names a real type,
/// otherwise a guess from the path's extension. A malformed header is an error.
pub fn choose_content_type(header: Option<&str>, path: &FilePath) -> Result<String, String> {
    let Some(raw) = header.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(path.guess_content_type());
    };
    let mime: mime_guess::mime::Mime = raw
        .parse()
        .map_err(|_| format!("The Content-Type header \"{raw}\" is not a valid media type."))?;
    if UNSPECIFIED_CONTENT_TYPES.contains(&mime.essence_str()) {
        return Ok(path.guess_content_type());
    }
    Ok(mime.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_paths() {
        for (input, stored) in [
            ("index.html", "index.html"),
            ("/index.html", "index.html"),
            ("css/site.css", "css/site.css"),
            ("a b/ü.txt", "a b/ü.txt"),
            (".well-known/security.txt", ".well-known/security.txt"),
            ("...", "..."),
            ("..foo", "..foo"),
        ] {
            assert_eq!(FilePath::parse(input).unwrap().as_str(), stored, "{input}");
        }
    }

    #[test]
    fn evil_paths() {
        use FilePathError::*;
        for (input, want) in [
            ("", Empty),
            ("/", Empty),
            ("../etc/passwd", DotSegment),
            ("a/../../b", DotSegment),
            ("a/./b", DotSegment),
            ("..", DotSegment),
            ("a//b", EmptySegment),
            ("dir/", EmptySegment),
            ("//etc/passwd", EmptySegment),
            ("a\0b", Control),
            ("a\nb", Control),
            ("a\u{7f}", Control),
            ("..\\windows", Backslash),
        ] {
            assert_eq!(FilePath::parse(input), Err(want), "{input:?}");
        }
        assert!(matches!(
            FilePath::parse(&"a".repeat(2000)),
            Err(TooLong(2000))
        ));
        assert!(matches!(
            FilePath::parse(&"a".repeat(256)),
            Err(SegmentTooLong(256))
        ));
        assert_eq!(FilePath::parse(&["a"; 33].join("/")), Err(TooDeep));
    }

    #[test]
    fn content_type_guess() {
        let ct = |p: &str| FilePath::parse(p).unwrap().guess_content_type();
        assert_eq!(ct("index.html"), "text/html; charset=utf-8");
        assert_eq!(ct("a.png"), "image/png");
        assert_eq!(ct("noext"), "application/octet-stream");
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_is_stable(s in "\\PC{0,300}") {
            if let Ok(p) = FilePath::parse(&s) {
                proptest::prop_assert_eq!(FilePath::parse(p.as_str()).unwrap(), p.clone());
                proptest::prop_assert!(!p.as_str().split('/').any(|seg| seg == ".." || seg.is_empty()));
            }
        }
    }
}
