use proptest::prelude::*;

use super::*;

fn with_check(field: &str) -> String {
    format!("{field}{}", check_digit(field.as_bytes()).unwrap())
}

/// A TD3 zone (passport) with correct check digits.
fn td3(number: &str, birth: &str, expiry: &str, personal: &str) -> String {
    let personal = format!("{personal:<<14}");
    let l2 = format!(
        "{}NLD{}F{}{}",
        with_check(&format!("{number:<<9}")),
        with_check(birth),
        with_check(expiry),
        with_check(&personal)
    );
    let l2 = with_check(&l2);
    format!("P<NLDVRIES<<JAN<<<<<<<<<<<<<<<<<<<<<<<<<<<<<\n{l2}\n")
}

/// A TD1 zone (identity card).
fn td1(number: &str, optional: &str, birth: &str, expiry: &str) -> String {
    let l1 = format!(
        "I<NLD{}{optional:<<15}",
        with_check(&format!("{number:<<9}"))
    );
    let l2 = format!(
        "{}M{}NLD<<<<<<<<<<<8",
        with_check(birth),
        with_check(expiry)
    );
    format!("{l1}\n{l2}\nVRIES<<JAN<<<<<<<<<<<<<<<<<<<<\n")
}

/// ICAO 9303's check digit example: 520727 → 3; the Dutch specimen passport number.
#[test]
fn check_digits_as_icao_computes_them() {
    assert_eq!(check_digit(b"520727"), Some(3));
    assert_eq!(check_digit(b"L898902C<"), Some(3));
    assert_eq!(check_digit(b"AB2134<<<"), Some(5));
    assert_eq!(check_digit(b"ab"), None);
}

#[test]
fn passport_and_id_card_zones_with_the_bsn_in_them() {
    let found = scan(&td3("SPECI2014", "650310", "240115", "999999990"));
    assert_eq!(found.documents, ["SPECI2014"]);
    assert_eq!(found.bsns, ["999999990"]);
    let found = scan(&format!(
        "Kopie ID:\n{}",
        td1("IR1234567", "123456782", "850101", "310101")
    ));
    assert_eq!(found.documents, ["IR1234567"]);
    assert_eq!(found.bsns, ["123456782"]);
}

#[test]
fn document_numbers_need_their_words() {
    let found = scan("Kopie paspoort, documentnummer NW5K29RT1 bijgevoegd.");
    assert_eq!(found.documents, ["NW5K29RT1"]);
    for text in [
        "ID-kaart IR5K29RT1",
        "PASPOORT: IR5K29RT1",
        "IR5K29RT1 (Identiteitskaart)",
    ] {
        assert_eq!(scan(text).documents, ["IR5K29RT1"], "{text}");
    }
    // The same shape without a word near it is an order code; with the letter O it is not
    // a Dutch document number; letters only are a word.
    assert!(scan("Bestelling NW5K29RT1 verzonden.").documents.is_empty());
    assert!(scan("paspoort NO5K29RT1").documents.is_empty());
    assert!(scan("paspoort ABCDEFGH1").documents.is_empty());
}

proptest! {
    /// Any zone built with correct check digits is recognised; changing any check digit of
    /// the number, the birth date or the expiry to another digit makes it unrecognised.
    #[test]
    fn zones_hold_exactly_when_their_check_digits_do(
        number in "[A-NP-Z]{2}[A-NP-Z0-9]{6}[0-9]",
        birth in "[0-9]{6}",
        expiry in "[0-9]{6}",
        which in 0usize..3,
        delta in 1u8..10,
    ) {
        let zone = td3(&number, &birth, &expiry, "");
        prop_assert_eq!(&scan(&zone).documents, &vec![number.clone()]);
        let mut bytes = zone.into_bytes();
        let at = 45 + [9, 19, 27][which];
        bytes[at] = b'0' + (bytes[at] - b'0' + delta) % 10;
        prop_assert!(scan(&String::from_utf8(bytes).unwrap()).documents.is_empty());
    }
}

/// The search before `next_digit_after_capital`: every run of digits, kept to check the
/// block search against.
fn shaped_numbers_run_by_run(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(i) = bytes[at..].iter().position(u8::is_ascii_digit) {
        let digit = at + i;
        let run_end = bytes[digit..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .map_or(bytes.len(), |n| digit + n);
        at = run_end;
        if !bytes[..digit].last().is_some_and(u8::is_ascii_uppercase) {
            continue;
        }
        let (start, end) = token_around(bytes, digit);
        at = end;
        if is_document_number(bytes, start, end) {
            found.push((start, end));
        }
    }
    found
}

proptest! {
    /// The block search finds the same numbers as looking at every run of digits, in text
    /// made of document numbers, near misses, digits, capitals and prose.
    #[test]
    fn the_block_search_finds_what_every_run_holds(
        parts in proptest::collection::vec(
            prop_oneof![
                "[A-NP-Z]{2}[A-NP-Z0-9]{6}[0-9]",
                "[A-Z]{1,3}[0-9]{1,8}",
                "[0-9]{1,12}",
                "[A-Z0-9]{1,12}",
                "[a-z ]{0,70}",
                "[ ,.;:\n\t_é-]{1,3}",
            ],
            0..40,
        )
    ) {
        let text = parts.concat();
        prop_assert_eq!(
            shaped_numbers(text.as_bytes()),
            shaped_numbers_run_by_run(text.as_bytes())
        );
    }

    #[test]
    fn the_first_digit_after_a_capital(text in "[A-Z0-9a-z .]{0,100}", from in 0usize..110) {
        let b = text.as_bytes();
        let want = (from.max(1)..b.len())
            .find(|&q| b[q - 1].is_ascii_uppercase() && b[q].is_ascii_digit());
        prop_assert_eq!(next_digit_after_capital(b, from), want);
    }
}
