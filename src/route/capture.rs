//! What a template captured, and the repository name it spells.
//!
//! Captures are recorded as segment spans in a fixed array while the matcher
//! walks, so matching never allocates; the name is built only once a rule has
//! matched, and borrows from the request path whenever it can.

use std::borrow::Cow;

use super::path::Seg;

/// The most `{repo}` and `{repo+}` captures one template may hold.
pub(super) const MAX_CAPTURES: usize = 4;

/// Where one capture sits: segments `start..end`, minus `suffix_len` bytes at
/// the end of the last one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Span {
    pub start: usize,
    pub end: usize,
    pub suffix_len: usize,
}

/// The captures of one successful match, in template order.
#[derive(Debug, Default)]
pub(super) struct Captures {
    spans: [Span; MAX_CAPTURES],
    len: usize,
}

impl Captures {
    /// The captured spans, in template order.
    pub fn spans(&self) -> &[Span] {
        &self.spans[..self.len]
    }

    /// How many captures are recorded, to undo later ones on backtracking.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Forgets the captures recorded after `len`.
    pub fn truncate(&mut self, len: usize) {
        self.len = len.min(self.len);
    }

    /// Records one capture.
    pub fn push(&mut self, span: Span) {
        // The template parser refuses more than MAX_CAPTURES captures.
        self.spans[self.len] = span;
        self.len += 1;
    }
}

/// The repository name the captures spell, joined with `/`. It borrows from
/// the request path when the captured segments needed no decoding and lie
/// next to each other (`{repo}/{repo}`, `{repo+}.git`).
pub(super) fn join_captures<'r>(spans: &[Span], segs: &[Seg<'r>], path: &'r str) -> Cow<'r, str> {
    if let Some(raw) = contiguous_raw(spans, segs, path) {
        return Cow::Borrowed(raw);
    }

    let mut name = String::new();
    for span in spans {
        for seg in &segs[span.start..span.end] {
            if !name.is_empty() {
                name.push('/');
            }
            name.push_str(&seg.value);
        }
        name.truncate(name.len() - span.suffix_len);
    }
    Cow::Owned(name)
}

fn contiguous_raw<'r>(spans: &[Span], segs: &[Seg<'r>], path: &'r str) -> Option<&'r str> {
    let (first, last) = (spans.first()?, spans.last()?);
    let adjacent = spans
        .windows(2)
        .all(|w| w[0].end == w[1].start && w[0].suffix_len == 0);
    let covered = &segs[first.start..last.end];
    if !adjacent || !covered.iter().all(Seg::is_raw) {
        return None;
    }
    let start = covered.first()?.start;
    let end = covered.last()?.end - last.suffix_len;
    path.get(start..end)
}
#[cfg(test)]
mod tests {
    use super::super::path::Segments;
    use super::super::template::Template;
    use super::*;

    #[test]
    fn captures_borrow_from_the_path_unless_decoding_or_gaps_need_a_copy() {
        let path = "/r/ws/slug.git/x";
        let segments = Segments::parse(path).expect("valid path");
        let template = Template::parse("/r/{repo}/{repo}.git/x").expect("valid template");
        let caps = template.matches(segments.all()).expect("matches");
        assert!(matches!(
            join_captures(caps.spans(), segments.all(), path),
            Cow::Borrowed("ws/slug")
        ));

        let path = "/r/group%2Fproject/x";
        let segments = Segments::parse(path).expect("valid path");
        let template = Template::parse("/r/{repo}/x").expect("valid template");
        let caps = template.matches(segments.all()).expect("matches");
        let name = join_captures(caps.spans(), segments.all(), path);
        assert!(matches!(name, Cow::Owned(ref s) if s == "group/project"));
    }
}
