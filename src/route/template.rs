//! Path templates: parsing at config load and matching on the request path.
//!
//! A template is a list of segment patterns matched against the decoded
//! segments of a request with a small backtracking matcher. `**` and
//! `{repo+}` take as few segments as they can; a template may hold at most two
//! of them, and the matcher only loops on the first, so matching stays linear
//! in the number of segments.

use super::capture::{Captures, Span, MAX_CAPTURES};
use super::path::{Prefix, Seg};

/// The most `**` and `{repo+}` one template may hold.
const MAX_VARIABLE: usize = 2;

/// Why a rule's `path` template was refused at config load.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template does not start with `/`.
    #[error("a template must start with `/`")]
    NotAbsolute,
    /// A `{` without its `}`.
    #[error("`{0}` is not closed")]
    Unclosed(String),
    /// A capture other than `{repo}` and `{repo+}`.
    #[error("`{0}` is not a capture; expected `{{repo}}` or `{{repo+}}`")]
    UnknownCapture(String),
    /// `{`, `}` or `*` somewhere other than at the start of a segment, or a
    /// `**` with more text in its segment.
    #[error(
        "`{0}`: `{{`, `}}` and `*` may only start a segment, and `**` must be the whole segment"
    )]
    Misplaced(String),
    /// A `%` in a template; templates are written decoded.
    #[error("`{0}` contains `%`; write templates decoded, as they are matched")]
    Percent(String),
    /// An empty segment (`//`); request paths with one are refused anyway.
    #[error("a template may not have an empty segment (`//`)")]
    EmptySegment,
    /// More than two `**` and `{repo+}` in one template.
    #[error("a template may hold at most {MAX_VARIABLE} of `**` and `{{repo+}}`")]
    TooManyVariable,
    /// More than four captures in one template.
    #[error("a template may hold at most {MAX_CAPTURES} captures")]
    TooManyCaptures,
}

/// One segment pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Elem {
    /// Exactly this decoded text.
    Literal(Box<str>),
    /// `*` or `*suffix`: one segment ending in `suffix`.
    Any { suffix: Box<str> },
    /// `{repo}` or `{repo}suffix`: one segment, captured without `suffix`.
    Repo { suffix: Box<str> },
    /// `**`: zero or more segments.
    AnyMany,
    /// `{repo+}` or `{repo+}suffix`: one or more segments, the last ending in
    /// `suffix`, captured without it.
    RepoMany { suffix: Box<str> },
}

impl Elem {
    fn is_variable(&self) -> bool {
        matches!(self, Elem::AnyMany | Elem::RepoMany { .. })
    }

    fn is_capture(&self) -> bool {
        matches!(self, Elem::Repo { .. } | Elem::RepoMany { .. })
    }

    fn min_len(&self) -> usize {
        usize::from(!matches!(self, Elem::AnyMany))
    }
}

/// A compiled path template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Template {
    elems: Vec<Elem>,
    /// For each position (and one past the end): the fewest segments the
    /// elements from there on need, and whether they need exactly that many.
    rest: Vec<(usize, bool)>,
    /// Literal segments whose position is fixed (before the first or after
    /// the last `**`/`{repo+}`), deepest first. A preset holds dozens of
    /// rules and a request fails most of them on one of these comparisons,
    /// so they are checked before the backtracking walk.
    anchors: Vec<Anchor>,
    /// Literal segments between two variable parts (`/**/variables/**`):
    /// their position is not fixed, but a path without them anywhere cannot
    /// match, which is cheaper to see than to walk.
    floating: Vec<(Prefix, Box<str>)>,
    /// `rest[0]`: the fewest segments a path needs, and whether exactly.
    need: usize,
    exact: bool,
}

/// A literal at a fixed position: counted from the start, or from the end.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Anchor {
    from_end: bool,
    pos: usize,
    text: Box<str>,
    /// Compared first: most anchors fail on it without touching the text.
    prefix: Prefix,
}

impl Anchor {
    fn new(from_end: bool, pos: usize, text: Box<str>) -> Anchor {
        let prefix = Prefix::of(&text);
        Anchor {
            from_end,
            pos,
            text,
            prefix,
        }
    }

    /// Whether the segment at the anchor's position is its literal. The
    /// caller has checked that the path has enough segments.
    #[inline]
    fn holds(&self, segs: &[Seg<'_>]) -> bool {
        let index = if self.from_end {
            segs.len() - self.pos
        } else {
            self.pos
        };
        let seg = &segs[index];
        seg.prefix == self.prefix && (self.prefix.is_whole() || *seg.value == *self.text)
    }
}

/// The literals of `elems` that lie between its first and last variable part.
fn floating(elems: &[Elem]) -> Vec<(Prefix, Box<str>)> {
    let first = elems.iter().position(Elem::is_variable);
    let last = elems.iter().rposition(Elem::is_variable);
    let (Some(first), Some(last)) = (first, last) else {
        return Vec::new();
    };
    elems[first..last]
        .iter()
        .filter_map(|e| match e {
            Elem::Literal(text) => Some((Prefix::of(text), text.clone())),
            _ => None,
        })
        .collect()
}

/// The anchors of `elems`: fixed-position literals, most selective first.
fn anchors(elems: &[Elem]) -> Vec<Anchor> {
    let literal = |e: &Elem| match e {
        Elem::Literal(text) => Some(text.clone()),
        _ => None,
    };
    let head = elems.iter().take_while(|e| !e.is_variable()).count();
    let mut anchors: Vec<Anchor> = Vec::new();
    if head < elems.len() {
        let tail = elems.iter().rev().take_while(|e| !e.is_variable());
        let from_end = tail
            .enumerate()
            .filter_map(|(i, e)| literal(e).map(|text| (i + 1, text)));
        anchors.extend(from_end.map(|(pos, text)| Anchor::new(true, pos, text)));
    }
    let from_start = elems[..head].iter().enumerate().rev();
    anchors.extend(
        from_start.filter_map(|(pos, e)| literal(e).map(|text| Anchor::new(false, pos, text))),
    );
    anchors
}

impl Template {
    /// Parses a template such as `/api/v4/projects/{repo}/**/notes`.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let rest = src.strip_prefix('/').ok_or(TemplateError::NotAbsolute)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let elems = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/')
                .map(parse_elem)
                .collect::<Result<Vec<_>, _>>()?
        };

        if elems.iter().filter(|e| e.is_variable()).count() > MAX_VARIABLE {
            return Err(TemplateError::TooManyVariable);
        }
        if elems.iter().filter(|e| e.is_capture()).count() > MAX_CAPTURES {
            return Err(TemplateError::TooManyCaptures);
        }
        let rest = rest_table(&elems);
        let anchors = anchors(&elems);
        let (need, exact) = rest[0];
        let floating = floating(&elems);
        Ok(Template {
            elems,
            rest,
            anchors,
            floating,
            need,
            exact,
        })
    }

    /// Whether the template holds a `{repo}` or `{repo+}`.
    pub fn has_capture(&self) -> bool {
        self.elems.iter().any(Elem::is_capture)
    }

    /// A quick test that most non-matching paths fail: the segment count
    /// and the most selective literal. Inlined into the rule loop, so that
    /// the dozens of preset rules a request passes by cost no calls.
    #[inline]
    pub fn may_match(&self, segs: &[Seg<'_>]) -> bool {
        let n = segs.len();
        n >= self.need
            && (!self.exact || n == self.need)
            && self.anchors.first().is_none_or(|a| a.holds(segs))
    }

    /// Matches the decoded segments; `Some` holds the captures.
    pub fn matches(&self, segs: &[Seg<'_>]) -> Option<Captures> {
        if !self.may_match(segs) || !self.anchors.iter().skip(1).all(|a| a.holds(segs)) {
            return None;
        }
        let present = |(prefix, text): &(Prefix, Box<str>)| {
            segs.iter()
                .any(|s| s.prefix == *prefix && *s.value == **text)
        };
        if !self.floating.iter().all(present) {
            return None;
        }
        let mut captures = Captures::default();
        self.walk(0, 0, segs, &mut captures).then_some(captures)
    }

    fn walk(&self, at: usize, si: usize, segs: &[Seg<'_>], caps: &mut Captures) -> bool {
        let left = segs.len() - si;
        let (need, exact) = self.rest[at];
        if left < need || (exact && left != need) {
            return false;
        }
        match self.elems.get(at) {
            None => true,
            Some(elem) if elem.is_variable() => self.walk_many(at, si, segs, caps),
            Some(elem) => self.walk_one(elem, at, si, segs, caps),
        }
    }

    fn walk_one(
        &self,
        elem: &Elem,
        at: usize,
        si: usize,
        segs: &[Seg<'_>],
        caps: &mut Captures,
    ) -> bool {
        let value = &segs[si].value;
        let accepted = match elem {
            Elem::Literal(text) => **value == **text,
            Elem::Any { suffix } | Elem::Repo { suffix } => has_suffix(value, suffix),
            Elem::AnyMany | Elem::RepoMany { .. } => false,
        };
        if !accepted {
            return false;
        }

        let mark = caps.len();
        if let Elem::Repo { suffix } = elem {
            caps.push(Span {
                start: si,
                end: si + 1,
                suffix_len: suffix.len(),
            });
        }
        if self.walk(at + 1, si + 1, segs, caps) {
            return true;
        }
        caps.truncate(mark);
        false
    }

    fn walk_many(&self, at: usize, si: usize, segs: &[Seg<'_>], caps: &mut Captures) -> bool {
        let elem = &self.elems[at];
        let (need_after, exact_after) = self.rest[at + 1];
        let last = segs.len() - need_after;
        // When nothing variable follows, the only end that can work is `last`.
        let first = if exact_after {
            last
        } else {
            si + elem.min_len()
        };

        let mark = caps.len();
        for end in first..=last {
            if let Elem::RepoMany { suffix } = elem {
                if !has_suffix(&segs[end - 1].value, suffix) {
                    continue;
                }
                caps.push(Span {
                    start: si,
                    end,
                    suffix_len: suffix.len(),
                });
            }
            if self.walk(at + 1, end, segs, caps) {
                return true;
            }
            caps.truncate(mark);
        }
        false
    }
}

/// Whether a segment ends in `suffix` with at least one byte before it, so a
/// capture is never empty.
fn has_suffix(value: &str, suffix: &str) -> bool {
    value.len() > suffix.len() && value.ends_with(suffix)
}

fn parse_elem(seg: &str) -> Result<Elem, TemplateError> {
    let misplaced = || TemplateError::Misplaced(seg.to_owned());
    if seg.is_empty() {
        return Err(TemplateError::EmptySegment);
    }
    if seg.contains('%') {
        return Err(TemplateError::Percent(seg.to_owned()));
    }

    let (head, suffix) = split_head(seg)?;
    if suffix.contains(['{', '}', '*']) {
        return Err(misplaced());
    }
    let suffix: Box<str> = suffix.into();
    match head {
        "" => Ok(Elem::Literal(suffix)),
        "**" if suffix.is_empty() => Ok(Elem::AnyMany),
        "**" => Err(misplaced()),
        "*" => Ok(Elem::Any { suffix }),
        "{repo}" => Ok(Elem::Repo { suffix }),
        "{repo+}" => Ok(Elem::RepoMany { suffix }),
        other => Err(TemplateError::UnknownCapture(other.to_owned())),
    }
}

/// Splits a segment into its pattern head (`*`, `**`, `{name}` or nothing for
/// a literal) and the literal text after it.
fn split_head(seg: &str) -> Result<(&str, &str), TemplateError> {
    if seg.starts_with("**") {
        return Ok(seg.split_at(2));
    }
    if seg.starts_with('*') {
        return Ok(seg.split_at(1));
    }
    if seg.starts_with('{') {
        let close = seg
            .find('}')
            .ok_or_else(|| TemplateError::Unclosed(seg.to_owned()))?;
        return Ok(seg.split_at(close + 1));
    }
    Ok(("", seg))
}

fn rest_table(elems: &[Elem]) -> Vec<(usize, bool)> {
    let mut rest = vec![(0, true); elems.len() + 1];
    for (i, elem) in elems.iter().enumerate().rev() {
        let (need, exact) = rest[i + 1];
        rest[i] = (need + elem.min_len(), exact && !elem.is_variable());
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::super::capture::join_captures;
    use super::super::path::Segments;
    use super::*;

    /// The joined capture of `template` on `path`, or `None` if it does not match.
    fn capture(template: &str, path: &str) -> Option<String> {
        let template = Template::parse(template).expect("valid template");
        let segments = Segments::parse(path).expect("valid path");
        let captures = template.matches(segments.all())?;
        Some(join_captures(captures.spans(), segments.all(), path).into_owned())
    }

    #[test]
    fn literal_and_wildcards_match_whole_segments() {
        assert_eq!(capture("/a/*/c", "/a/b/c"), Some(String::new()));
        assert_eq!(capture("/a/*/c", "/a/b/x/c"), None);
        assert_eq!(capture("/a/**", "/a"), Some(String::new()));
        assert_eq!(capture("/a/**", "/a/b/c"), Some(String::new()));
        assert_eq!(capture("/a", "/a/"), Some(String::new()));
        assert_eq!(capture("/", "/"), Some(String::new()));
        assert_eq!(capture("/a/b", "/a/bb"), None);
    }

    #[test]
    fn double_star_in_the_middle_matches_zero_or_more_segments() {
        let t = "/p/{repo}/**/notes";
        assert_eq!(capture(t, "/p/x/notes").as_deref(), Some("x"));
        assert_eq!(capture(t, "/p/x/issues/1/notes").as_deref(), Some("x"));
        assert_eq!(capture(t, "/p/x/issues/1/notes/2"), None);
    }

    #[test]
    fn suffix_capture_strips_the_suffix_and_needs_a_name_before_it() {
        let t = "/{repo+}.git/info/refs";
        assert_eq!(
            capture(t, "/acme/widgets.git/info/refs").as_deref(),
            Some("acme/widgets")
        );
        assert_eq!(capture(t, "/a/b/c.git/info/refs").as_deref(), Some("a/b/c"));
        assert_eq!(capture(t, "/.git/info/refs"), None);
        assert_eq!(capture(t, "/acme/widgets/info/refs"), None);
        assert_eq!(
            capture("/x/{repo}.json", "/x/42.json").as_deref(),
            Some("42")
        );
    }

    #[test]
    fn several_captures_are_joined_with_a_slash() {
        let t = "/projects/{repo}/repos/{repo}/pull-requests";
        let got = capture(t, "/projects/KEY/repos/slug/pull-requests");
        assert_eq!(got.as_deref(), Some("KEY/slug"));
        assert_eq!(
            capture("/r/{repo}/{repo}", "/r/ws/slug").as_deref(),
            Some("ws/slug")
        );
    }

    #[test]
    fn variable_parts_take_the_fewest_segments() {
        assert_eq!(
            capture("/{repo+}/-/**", "/a/b/-/c/-/d").as_deref(),
            Some("a/b")
        );
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        let cases = [
            ("api", TemplateError::NotAbsolute),
            ("/p/{repo", TemplateError::Unclosed("{repo".into())),
            ("/p/{name}", TemplateError::UnknownCapture("{name}".into())),
            ("/p/v{repo}", TemplateError::Misplaced("v{repo}".into())),
            ("/p/**x", TemplateError::Misplaced("**x".into())),
            ("/p/a*", TemplateError::Misplaced("a*".into())),
            ("/p/a%2Fb", TemplateError::Percent("a%2Fb".into())),
            ("/p//x", TemplateError::EmptySegment),
            ("/**/a/**/b/**", TemplateError::TooManyVariable),
            (
                "/{repo}/{repo}/{repo}/{repo}/{repo}",
                TemplateError::TooManyCaptures,
            ),
        ];
        for (src, want) in cases {
            assert_eq!(Template::parse(src), Err(want), "{src}");
        }
    }

    #[test]
    fn unclosed_brace_message_names_the_segment() {
        let err = Template::parse("/{repo").expect_err("unclosed");
        assert_eq!(err.to_string(), "`{repo` is not closed");
    }
}
