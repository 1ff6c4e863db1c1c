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
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |i| &after[i + 3..]);
            continue;
        }
        let Some(gt) = rest.find('>') else {
            // A lone '<' is text.
            out.push_str(rest);
            rest = "";
            break;
        };
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if SKIP.contains(&name.as_str()) && !tag.starts_with('/') && !tag.ends_with('/') {
            let close = format!("</{name}");
            rest = match find_ascii_ci(rest, &close) {
                Some(i) => rest[i..].find('>').map_or("", |j| &rest[i + j + 1..]),
                None => "",
            };
            continue;
        }
        if CELL.contains(&name.as_str()) {
            // One column per cell: only the opening tag separates.
            if !tag.starts_with('/') {
                out.push('\t');
            }
        } else if BLOCK.contains(&name.as_str()) {
            out.push('\n');
        }
    }
    out.push_str(rest);
    html_escape::decode_html_entities(&out).replace('\u{a0}', " ")
}

fn find_ascii_ci(hay: &str, needle: &str) -> Option<usize> {
    let h = hay.as_bytes();
    let n = needle.as_bytes();
    h.windows(n.len()).position(|w| w.eq_ignore_ascii_case(n))
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
    }
}
