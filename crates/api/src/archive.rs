//! Reading a deploy's archive defensively: a tar, optionally gzip- or zstd-compressed
//! (recognised by its magic bytes), read whole before anything is stored.
//!
//! Only regular files and directories are accepted (links, devices and fifos name the
//! entry in the refusal); GNU long names and PAX paths are resolved by the `tar` crate
//! before the path rules apply; `./` prefixes are dropped; two entries whose paths are
//! equal once case-folded and NFC-normalised are refused (they would collide on a
//! case-insensitive disk, or look alike to a person); a PAX global header (`git archive`
//! writes one) is skipped. Bounded: the bytes the decompressor may produce, the ratio of
//! those to the upload (a bomb), the number of entries, each file's size, and the time
//! spent.

use std::collections::HashSet;
use std::io::Read;
use std::time::{Duration, Instant};

use landlord_store::{FilePath, NewFile};
use unicode_normalization::UnicodeNormalization;

/// The bounds one archive is read within.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Bytes the archive may expand to (tar headers included).
    pub max_expanded: u64,
    /// Expanded bytes per uploaded byte, beyond the first MiB.
    pub max_ratio: u64,
    /// Entries (files and directories).
    pub max_entries: usize,
    /// One file's size.
    pub max_file: u64,
    /// Time to read it all.
    pub max_time: Duration,
}

/// Why an archive was refused, in words for the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed, or an entry breaks a rule: 422.
    Invalid(String),
    /// A size bound: 413.
    TooLarge(String),
}

/// The files of `upload`, or why it is refused.
pub fn read(upload: &[u8], bounds: Bounds) -> Result<Vec<NewFile>, Refusal> {
    let started = Instant::now();
    let raw: Box<dyn Read + '_> = match upload {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(upload)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Box::new(
            zstd::stream::read::Decoder::with_buffer(upload)
                .map_err(|e| Refusal::Invalid(format!("the zstd stream cannot be read: {e}")))?,
        ),
        _ => Box::new(upload),
    };
    let by_ratio = (upload.len() as u64)
        .saturating_mul(bounds.max_ratio)
        .max(1 << 20);
    let (limit, why) = match by_ratio < bounds.max_expanded {
        true => (
            by_ratio,
            format!(
                "{} times the upload's size (a compression bomb?)",
                bounds.max_ratio
            ),
        ),
        false => (bounds.max_expanded, "the limit".to_owned()),
    };
    let mut archive = tar::Archive::new(Bounded {
        inner: raw,
        read: 0,
        limit,
        why,
    });
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    let mut entries = 0usize;
    let entries_iter = archive.entries().map_err(unreadable)?;
    for entry in entries_iter {
        let mut entry = entry.map_err(unreadable)?;
        entries += 1;
        if entries > bounds.max_entries {
            return Err(Refusal::TooLarge(format!(
                "the archive has more than {} entries (files and directories), the limit",
                bounds.max_entries
            )));
        }
        if started.elapsed() > bounds.max_time {
            return Err(Refusal::TooLarge(format!(
                "reading the archive took longer than {} s, the limit",
                bounds.max_time.as_secs()
            )));
        }
        if let Some(file) = entry_file(&mut entry, bounds, &mut seen)? {
            files.push(file);
        }
    }
    if files.is_empty() {
        return Err(Refusal::Invalid(
            "the archive holds no file (a tar of the site's files, optionally gzip- or zstd-compressed, is expected)".into(),
        ));
    }
    Ok(files)
}

/// One entry's file (`None` for a directory or a PAX global header), or why the archive
/// is refused; `seen` holds the paths so far, case-folded and NFC-normalised.
fn entry_file<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    bounds: Bounds,
    seen: &mut HashSet<String>,
) -> Result<Option<NewFile>, Refusal> {
    let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    let kind = entry.header().entry_type();
    match kind {
        tar::EntryType::Directory | tar::EntryType::XGlobalHeader => return Ok(None),
        tar::EntryType::Regular | tar::EntryType::Continuous => {}
        other => {
            return Err(Refusal::Invalid(format!(
                "entry {}: {} are not accepted, only regular files and directories",
                shown(&raw_path),
                kind_name(other)
            )));
        }
    }
    let path = entry_path(&raw_path)?;
    let key: String = path.as_str().nfc().collect::<String>().to_lowercase();
    if !seen.insert(key) {
        return Err(Refusal::Invalid(format!(
            "entry {}: another entry has the same path (compared without case, `./` and Unicode form)",
            shown(&raw_path)
        )));
    }
    let size = entry.header().size().map_err(unreadable)?;
    if size > bounds.max_file {
        return Err(Refusal::TooLarge(format!(
            "entry {}: {size} bytes, larger than the per-file limit ({} bytes)",
            shown(&raw_path),
            bounds.max_file
        )));
    }
    let mut body = Vec::with_capacity(size as usize);
    entry.read_to_end(&mut body).map_err(unreadable)?;
    Ok(Some(NewFile {
        content_type: path.guess_content_type(),
        path,
        body,
    }))
}

/// The stored path of an entry: `./` and one leading `/`-free form, checked by the file
/// path rules.
fn entry_path(raw: &str) -> Result<FilePath, Refusal> {
    let mut path = raw;
    while let Some(rest) = path.strip_prefix("./") {
        path = rest;
    }
    if raw.starts_with('/') {
        return Err(Refusal::Invalid(format!(
            "entry {}: absolute paths are not accepted",
            shown(raw)
        )));
    }
    FilePath::parse(path).map_err(|e| Refusal::Invalid(format!("entry {}: {e}", shown(raw))))
}

fn unreadable(e: std::io::Error) -> Refusal {
    match e.kind() {
        std::io::ErrorKind::FileTooLarge => Refusal::TooLarge(e.to_string()),
        _ => Refusal::Invalid(format!("the archive cannot be read: {e}")),
    }
}

fn kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "symbolic links",
        tar::EntryType::Link => "hard links",
        tar::EntryType::Char => "character devices",
        tar::EntryType::Block => "block devices",
        tar::EntryType::Fifo => "fifos",
        tar::EntryType::GNUSparse => "sparse files",
        _ => "entries of this type",
    }
}

/// An entry's name as the tenant typed it, kept short.
fn shown(raw: &str) -> String {
    let short: String = raw.chars().take(200).collect();
    format!("{short:?}")
}

/// A reader that fails once more than `limit` bytes came out of it (a decompression bomb
/// stops here, not in memory).
struct Bounded<R> {
    inner: R,
    read: u64,
    limit: u64,
    /// What the limit is, for the refusal.
    why: String,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                format!(
                    "the archive expands to more than {} bytes, {}",
                    self.limit, self.why
                ),
            ));
        }
        Ok(n)
    }
}
