//! `format=flowed` plain text (RFC 3676): a line that ends in a space continues on the next,
//! so a number a mail client wrapped ("BSN 123456" / "782") is whole again before detection.

/// Unwraps flowed `text`; `delsp` (the `DelSp=yes` parameter) means the soft-break space was
/// added by the sender and goes.
pub fn unwrap(text: &str, delsp: bool) -> String {
    let mut out = String::with_capacity(text.len());
    // The quote depth of the paragraph being joined, when the last line was flowed.
    let mut open: Option<usize> = None;
    for raw in text.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let depth = line.bytes().take_while(|&b| b == b'>').count();
        let mut body = &line[depth..];
        // Space-stuffing (§4.4): one leading space was added by the sender.
        body = body.strip_prefix(' ').unwrap_or(body);
        // A flowed line continues only on a line of the same quote depth (§4.5).
        if open != Some(depth) {
            if !out.is_empty() {
                out.push('\n');
            }
            if depth > 0 {
                out.push_str(&">".repeat(depth));
                out.push(' ');
            }
        }
        // The signature separator "-- " is never flowed (§4.3).
        let flowed = body.ends_with(' ') && body != "-- ";
        if flowed && delsp {
            body = &body[..body.len() - 1];
        }
        out.push_str(body);
        open = flowed.then_some(depth);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_breaks_join_and_hard_breaks_stay() {
        assert_eq!(
            unwrap(
                "Patiënt met BSN \r\n123456782 is \r\nopgenomen.\r\nGroet,\r\n-- \r\nA.",
                false
            ),
            "Patiënt met BSN 123456782 is opgenomen.\nGroet,\n-- \nA."
        );
    }

    #[test]
    fn delsp_removes_the_added_space_so_split_digits_join() {
        assert_eq!(unwrap("BSN 1234 \r\n56782\r\n", true), "BSN 123456782\n");
    }

    #[test]
    fn quote_depth_and_stuffing() {
        assert_eq!(
            unwrap(
                ">> oud \r\n>> bericht\r\n> nieuw \r\nniet geciteerd\r\n  ingesprongen",
                false
            ),
            ">> oud bericht\n> nieuw \nniet geciteerd\n ingesprongen"
        );
    }
}
