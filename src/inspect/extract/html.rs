//! HTML to text for scanning. Inline tags vanish without a trace, so a number split by markup
//! (`123<b>456</b>782`) is whole again; block tags and table cells become line breaks and tabs,
//! so table columns and separate paragraphs stay apart. Entities are decoded after the tags are
//! gone, so `&lt;b&gt;` stays text.

const BLOCK: &[&str] = &[
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "tr",
    "table",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "pre",
    "hr",
    "section",
    "article",
    "header",
    "footer",
    "dd",
    "dt",
    "title",
];
const CELL: &[&str] = &["td", "th"];
const SKIP: &[&str] = &["script", "style", "head"];

pub fn to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    // memchr, not `str::find(char)`: mail HTML has a tag every few bytes, and the generic
    // char searcher's setup and compare per call cost more than the search itself.
    while let Some(lt) = memchr::memchr(b'<', rest.as_bytes()) {
        out.push_str(&rest[..lt]);
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = memchr::memmem::find(after.as_bytes(), b"-->").map_or("", |i| &after[i + 3..]);
            continue;
        }
        let Some(gt) = memchr::memchr(b'>', rest.as_bytes()) else {
            // A lone '<' is text.
            out.push_str(rest);
            rest = "";
            break;
        };
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        let bare = tag.trim_start_matches('/');
        let name = &bare[..bare
            .bytes()
            .position(|b| !b.is_ascii_alphanumeric())
            .unwrap_or(bare.len())];
        let is = |list: &[&str]| list.iter().any(|n| n.eq_ignore_ascii_case(name));
        if is(SKIP) && !tag.starts_with('/') && !tag.ends_with('/') {
            let close = format!("</{name}");
            rest = match find_ascii_ci(rest, &close) {
                Some(i) => {
                    memchr::memchr(b'>', &rest.as_bytes()[i..]).map_or("", |j| &rest[i + j + 1..])
                }
                None => "",
            };
            continue;
        }
        if is(CELL) {
            // One column per cell: only the opening tag separates.
            if !tag.starts_with('/') {
                out.push('\t');
            }
        } else if is(BLOCK) {
            out.push('\n');
        }
    }
    out.push_str(rest);
    // Most mail HTML has neither entities nor no-break spaces: then the text is done.
    if out.contains('&') {
        out = html_escape::decode_html_entities(&out).into_owned();
    }
    if out.contains('\u{a0}') {
        out = out.replace('\u{a0}', " ");
    }
    out
}

/// Where `needle` (which starts with '<') first occurs in `hay`, ASCII case ignored: only at
/// a '<', found with memchr.
fn find_ascii_ci(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    let mut at = 0;
    while let Some(i) = memchr::memchr(b'<', &h[at..]) {
        let start = at + i;
        if h.get(start..start + n.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(n))
        {
            return Some(start);
        }
        at = start + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_tags_join_block_tags_separate() {
        assert_eq!(to_text("BSN 123<b>456</b>782"), "BSN 123456782");
        assert_eq!(
            to_text("<td>BSN</td><td>123456782</td>"),
            "\tBSN\t123456782"
        );
        assert_eq!(to_text("a<br>b<p>c</p>"), "a\nb\nc\n");
        assert_eq!(to_text("x<script>var a='<b>';</script>y"), "xy");
        assert_eq!(to_text("1&nbsp;2 &amp; &lt;b&gt; &#49;"), "1 2 & <b> 1");
        assert_eq!(to_text("a <!-- 123456782 --> b"), "a  b");
        assert_eq!(to_text("5 < 6"), "5 < 6");
        // Tag names in any case.
        assert_eq!(to_text("<TD>a</TD><P>b"), "\ta\nb");
        assert_eq!(to_text("x<SCRIPT>1<b></Script>y"), "xy");
    }
}
