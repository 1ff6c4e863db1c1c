//! Turns positions in a TOML file into what an administrator needs: a line number and the dotted
//! key, e.g. `sluis.toml:12: server.allow_networks: invalid IP network`.

use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, Value};

/// The line (1-based) at byte `offset` of `src`.
pub fn line_of(src: &str, offset: usize) -> usize {
    src.as_bytes()[..offset.min(src.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The dotted path of the innermost key whose key or value covers `offset`.
pub fn key_at(doc: &ImDocument<&str>, offset: usize) -> Option<String> {
    let mut found = None;
    walk_table(doc.as_table(), String::new(), offset, &mut found);
    found
}

/// The byte span of `path` (dotted) in the document: the key's own span when it has one.
pub fn span_of(doc: &ImDocument<&str>, path: &str) -> Option<Range<usize>> {
    let mut table = doc.as_table();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        // `identifiers[2]`: the third table of an array of tables.
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let (key, item) = table.get_key_value(name)?;
        let item_table = match index {
            Some(i) => item.as_array_of_tables()?.get(i)?,
            None => {
                if parts.peek().is_none() {
                    return key.span().or_else(|| item.span());
                }
                item.as_table()?
            }
        };
        if parts.peek().is_none() {
            return item_table.span();
        }
        table = item_table;
    }
    None
}

fn covers(span: Option<Range<usize>>, offset: usize) -> bool {
    span.is_some_and(|s| s.start <= offset && offset < s.end.max(s.start + 1))
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn walk_table(table: &Table, prefix: String, offset: usize, found: &mut Option<String>) {
    for (name, item) in table.iter() {
        let path = join(&prefix, name);
        let key_span = table.key(name).and_then(|k| k.span());
        if covers(key_span, offset) || covers(item.span(), offset) {
            *found = Some(path.clone());
        }
        walk_item(item, path, offset, found);
    }
}

fn walk_item(item: &Item, path: String, offset: usize, found: &mut Option<String>) {
    match item {
        Item::Table(t) => walk_table(t, path, offset, found),
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                walk_table(t, format!("{path}[{i}]"), offset, found);
            }
        }
        Item::Value(Value::InlineTable(t)) => {
            for (name, value) in t.iter() {
                let sub = join(&path, name);
                if covers(value.span(), offset) {
                    *found = Some(sub);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_key_and_line() {
        let src = "[server]\nhostname = \"a\"\n\n[upstream.lanes.strict]\naddress = \"x\"\n";
        let doc = ImDocument::parse(src).unwrap();
        let at = src.find("\"x\"").unwrap();
        assert_eq!(
            key_at(&doc, at).as_deref(),
            Some("upstream.lanes.strict.address")
        );
        assert_eq!(line_of(src, at), 5);
        let span = span_of(&doc, "server.hostname").unwrap();
        assert_eq!(line_of(src, span.start), 2);
        let src = "[[inspect.identifiers]]\nname = \"a\"\n\n[[inspect.identifiers]]\nname = \"b\"\npattern = \"(\"\n";
        let doc = ImDocument::parse(src).unwrap();
        let span = span_of(&doc, "inspect.identifiers[1].pattern").unwrap();
        assert_eq!(line_of(src, span.start), 6);
    }
}
