//! Path safety and segment splitting, the first thing `find` does.
//!
//! A path is refused here, before any prefix or rule is looked at, when a
//! decoding or normalising upstream could read it as a different path than
//! the one we would match: dot segments, empty segments, backslashes, control
//! characters, path parameters and anything left encoded after one decoding.
//! What passes is split into segments that are each decoded once; a segment
//! borrows from the request when it holds no `%`, so the common case does not
//! allocate.

use std::borrow::Cow;

use smallvec::SmallVec;

use percent_encoding::percent_decode_str;

/// The most segments a path may have. Real repository API paths stay far
/// below it; the bound keeps the segment list on the stack and the matcher's
/// work small whatever the request.
pub const MAX_SEGMENTS: usize = 128;

/// Why a request path was refused before matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/`.
    #[error("the path does not start with `/`")]
    NotAbsolute,
    /// A segment is, or decodes to, `.` or `..` (also inside an encoded `/`).
    #[error("the path has a `.` or `..` segment")]
    DotSegment,
    /// An empty segment (`//`) other than a trailing slash, raw or decoded.
    /// Proxies and servers often merge slashes, so such a path could be served
    /// as a different endpoint than the one matched.
    #[error("the path has an empty segment (`//`)")]
    EmptySegment,
    /// A NUL or other control character, raw or decoded.
    #[error("the path has a control character")]
    ControlChar,
    /// A backslash, raw or decoded; some servers treat it as a separator.
    #[error("the path has a backslash")]
    Backslash,
    /// A raw `;`: Java servers strip `;params` from segments (and read `..;`
    /// as `..`), so the segment they serve differs from the one we match.
    #[error("the path has a `;` path parameter")]
    Semicolon,
    /// A `%` not followed by two hex digits.
    #[error("the path has an invalid percent escape")]
    InvalidEscape,
    /// A `%` still present after one decoding, such as `%252e`.
    #[error("the path is percent-encoded twice")]
    DoubleEncoding,
    /// A segment that does not decode to UTF-8.
    #[error("the path does not decode to UTF-8")]
    InvalidUtf8,
    /// More than [`MAX_SEGMENTS`] segments.
    #[error("the path has more than {MAX_SEGMENTS} segments")]
    TooManySegments,
}

/// One path segment: where it sits in the raw path and its decoded value.
#[derive(Clone, Debug)]
pub(super) struct Seg<'r> {
    /// Byte offset of the raw segment in the path.
    pub start: usize,
    /// Byte offset just past the raw segment.
    pub end: usize,
    /// The value decoded once; borrowed (and equal to the raw text) when the
    /// segment holds no escape.
    pub value: Cow<'r, str>,
    /// [`Prefix`] of `value`, so a rule's literal can be ruled out with one
    /// integer comparison.
    pub prefix: Prefix,
}

/// The length and first eight bytes of a text, packed for quick comparison:
/// two texts with different prefixes differ, and for texts of up to eight
/// bytes equal prefixes mean equal texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Prefix {
    len: usize,
    head: u64,
}

impl Prefix {
    /// The prefix of `text`.
    pub fn of(text: &str) -> Prefix {
        let mut head = [0u8; 8];
        let n = text.len().min(8);
        head[..n].copy_from_slice(&text.as_bytes()[..n]);
        Prefix {
            len: text.len(),
            head: u64::from_le_bytes(head),
        }
    }

    /// Whether the prefix alone proves the texts equal.
    pub fn is_whole(&self) -> bool {
        self.len <= 8
    }
}

impl Seg<'_> {
    /// Whether the decoded value is the raw text itself.
    pub fn is_raw(&self) -> bool {
        matches!(self.value, Cow::Borrowed(_))
    }
}

/// The checked, decoded segments of one path; on the stack up to 16
/// segments (an API path rarely has more), on the heap beyond.
pub(super) struct Segments<'r> {
    items: SmallVec<[Seg<'r>; 16]>,
}

impl<'r> Segments<'r> {
    /// Checks `path` and splits it into decoded segments.
    ///
    /// A trailing slash is not a segment (`/a/` reads as `/a`), because most
    /// upstreams serve both alike and a template must not match one but not
    /// the other. `/` has no segments.
    pub fn parse(path: &'r str) -> Result<Self, PathError> {
        let rest = path.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
        let mut segments = Segments {
            items: SmallVec::new(),
        };
        if rest.is_empty() {
            return Ok(segments);
        }

        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let mut start = 1;
        for raw in rest.split('/') {
            let value = decode_segment(raw)?;
            segments.push(Seg {
                start,
                end: start + raw.len(),
                prefix: Prefix::of(&value),
                value,
            })?;
            start += raw.len() + 1;
        }
        Ok(segments)
    }

    /// Every segment, in order.
    pub fn all(&self) -> &[Seg<'r>] {
        &self.items
    }

    fn push(&mut self, seg: Seg<'r>) -> Result<(), PathError> {
        if self.items.len() == MAX_SEGMENTS {
            return Err(PathError::TooManySegments);
        }
        self.items.push(seg);
        Ok(())
    }
}

/// Checks one raw segment and decodes it once.
fn decode_segment(raw: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = raw.as_bytes();
    let mut plain = true;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\\' => return Err(PathError::Backslash),
            b';' => return Err(PathError::Semicolon),
            b'%' if !is_escape(bytes.get(i + 1..i + 3)) => return Err(PathError::InvalidEscape),
            b'%' => plain = false,
            _ if b.is_ascii_control() => return Err(PathError::ControlChar),
            _ if !b.is_ascii() => plain = false,
            _ => {}
        }
    }

    // Most segments are plain ASCII: decoding leaves them as they are and
    // the loop above has refused what `check_decoded` would.
    if plain {
        return match raw {
            "" => Err(PathError::EmptySegment),
            "." | ".." => Err(PathError::DotSegment),
            _ => Ok(Cow::Borrowed(raw)),
        };
    }

    // Every `%` left is a valid escape, so a borrowed value has none and
    // the `%` test below only fires on double encoding.
    let value = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| PathError::InvalidUtf8)?;
    check_decoded(&value)?;

    // Checked on the decoded value so that `%2e%2e` and `a%2F..%2Fb` are
    // caught as well as `..`: an upstream that decodes `%2F` must not be able
    // to climb out of the repository we matched.
    for piece in value.split('/') {
        match piece {
            "" => return Err(PathError::EmptySegment),
            "." | ".." => return Err(PathError::DotSegment),
            _ => {}
        }
    }
    Ok(value)
}

fn is_escape(digits: Option<&[u8]>) -> bool {
    digits.is_some_and(|d| d.iter().all(u8::is_ascii_hexdigit))
}

fn check_decoded(decoded: &str) -> Result<(), PathError> {
    if decoded.contains('%') {
        return Err(PathError::DoubleEncoding);
    }
    if decoded.contains('\\') {
        return Err(PathError::Backslash);
    }
    if decoded.chars().any(char::is_control) {
        return Err(PathError::ControlChar);
    }
    Ok(())
}

/// Whether a repository name taken from a query or form value is as safe as
/// one taken from the path: non-empty, no empty, `.` or `..` pieces, no
/// control characters or backslashes.
pub fn is_safe_repo_name(name: &str) -> bool {
    let pieces_ok = name.split('/').all(|p| !matches!(p, "" | "." | ".."));
    pieces_ok && !name.contains('\\') && !name.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(path: &str) -> Vec<String> {
        let segments = Segments::parse(path).expect("valid path");
        segments.all().iter().map(|s| s.value.to_string()).collect()
    }

    #[test]
    fn root_has_no_segments_and_trailing_slash_is_ignored() {
        assert!(values("/").is_empty());
        assert_eq!(values("/a/b/"), ["a", "b"]);
        assert_eq!(values("/a/b"), ["a", "b"]);
    }

    #[test]
    fn segments_are_decoded_one_by_one_and_borrow_when_plain() {
        let segments = Segments::parse("/api/group%2Fproject").expect("valid path");
        let [api, project] = segments.all() else {
            panic!("two segments")
        };

        assert!(api.is_raw());
        assert_eq!(project.value, "group/project");
        assert!(!project.is_raw());
        assert_eq!((project.start, project.end), (5, 20));
    }

    #[test]
    fn unsafe_paths_are_refused_with_their_reason() {
        let cases = [
            ("api", PathError::NotAbsolute),
            ("/a/../b", PathError::DotSegment),
            ("/a/./b", PathError::DotSegment),
            ("/a/%2e%2e/b", PathError::DotSegment),
            ("/a/%2E%2e/b", PathError::DotSegment),
            ("/a%2F..%2Fb", PathError::DotSegment),
            ("/a//b", PathError::EmptySegment),
            ("//", PathError::EmptySegment),
            ("/a%2F%2Fb", PathError::EmptySegment),
            ("/a%00b", PathError::ControlChar),
            ("/a\0b", PathError::ControlChar),
            ("/a\tb", PathError::ControlChar),
            ("/a%c2%85b", PathError::ControlChar),
            ("/a\\b", PathError::Backslash),
            ("/a%5cb", PathError::Backslash),
            ("/a/..;/b", PathError::Semicolon),
            ("/a%zz", PathError::InvalidEscape),
            ("/a%2", PathError::InvalidEscape),
            ("/%252e%252e", PathError::DoubleEncoding),
            ("/a%c0%ae", PathError::InvalidUtf8),
        ];
        for (path, want) in cases {
            assert_eq!(Segments::parse(path).err(), Some(want), "{path}");
        }
    }

    #[test]
    fn too_many_segments_are_refused_not_truncated() {
        let long = "/a".repeat(MAX_SEGMENTS + 1);
        assert_eq!(
            Segments::parse(&long).err(),
            Some(PathError::TooManySegments)
        );
        assert!(Segments::parse(&"/a".repeat(MAX_SEGMENTS)).is_ok());
    }

    #[test]
    fn repo_names_from_values_are_held_to_path_rules() {
        assert!(is_safe_repo_name("acme/widgets"));
        for bad in ["", "a//b", "/a", "a/", "a/../b", ".", "a\\b", "a\nb"] {
            assert!(!is_safe_repo_name(bad), "{bad:?}");
        }
    }
}
