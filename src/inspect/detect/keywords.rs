//! Context words: what turns a number that passes a checksum into patient data, or makes it
//! look like an invoice or a PIN instead.

/// What a context word says about numbers near it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Names the identifier itself (bsn, burgerservicenummer, ...).
    Identifier,
    /// A care context (patiënt, cliënt, geboortedatum, ...).
    Care,
    /// Introduces a date of birth (geb., geboren, DOB, ...).
    Birth,
    /// Anti-context: invoices, orders, PINs, tracking codes, meeting IDs.
    Anti,
    /// Names another kind of number written right after it (KvK, AGB, order, telephone).
    Label,
}

pub const IDENTIFIER: &[&str] = &[
    // HL7 v2: the identifier type of a BSN and the authority that assigns it, in PID-3.
    "nnnld",
    "nlminbiza",
    "bsn",
    "bsn#",
    "bsn-nummer",
    "bsnnummer",
    "burgerservicenummer",
    "burger service nummer",
    "burgerservice nummer",
    "sofinummer",
    "sofi-nummer",
    "sofi nummer",
    "citizen service number",
    "persoonsnummer",
    "persoonsgebonden nummer",
    "sociaal-fiscaal nummer",
    "social-fiscal number",
];

pub const CARE: &[&str] = &[
    "patiënt",
    "patient",
    "patiënte",
    "patiënten",
    "patienten",
    "cliënt",
    "client-nummer",
    "cliëntnummer",
    "geboren",
    "geboortedatum",
    "zorgverzekeraar",
    "huisarts",
    "verwijzing",
    "verwijsbrief",
    "ontslagbrief",
    "dossier",
    "diagnose",
    "behandeling",
    "medicatie",
    "opname",
    "ziekenhuis",
    "polikliniek",
    "jeugdzorg",
    "zorgdossier",
    "medisch",
    "medical record",
];

pub const BIRTH: &[&str] = &[
    "geb.",
    "geb:",
    "geboren",
    "geboortedatum",
    "geb.datum",
    "geboorte datum",
    "dob",
    "d.o.b.",
    "date of birth",
    "born",
];

/// The length in bytes of the longest word in `BIRTH`.
pub const LONGEST_BIRTH_WORD: usize = {
    let (mut i, mut longest) = (0, 0);
    while i < BIRTH.len() {
        if BIRTH[i].len() > longest {
            longest = BIRTH[i].len();
        }
        i += 1;
    }
    longest
};

pub const ANTI: &[&str] = &[
    "factuur",
    "factuurnummer",
    "invoice",
    "order",
    "ordernummer",
    "bestelling",
    "bestelnummer",
    "pincode",
    "pin code",
    "pin:",
    "tracking",
    "track & trace",
    "track&trace",
    "trackingcode",
    "zending",
    "pakket",
    "verzending",
    "meeting id",
    "meeting-id",
    "vergadering-id",
    "conference id",
    "toegangscode",
    "access code",
    "dial-in",
    "inbelnummer",
    "kvk",
    "btw",
    "klantnummer",
    "referentienummer",
    "betalingskenmerk",
];

/// Whether a match of `word` at `start..end` of `text` stands on its own: a word made of
/// letters must not continue into letters or digits ("dob" inside "adobe", "order" inside
/// "border").
/// Labels of numbers that look like BSNs but are not: the number right after one is the
/// label's (a register, a practice code, an order), so a BSN finding there is low.
pub const LABEL: &[&str] = &[
    "kvk",
    "kvk-nummer",
    "kvk nummer",
    "kvk-nr",
    "agb",
    "agb-code",
    "agb code",
    "uzi",
    "uzi-nummer",
    "uzi nummer",
    "rsin",
    "btw",
    "btw-nummer",
    "vestigingsnummer",
    "ordernummer",
    "order",
    "bestelnummer",
    "factuurnummer",
    "factuur",
    "invoice",
    "klantnummer",
    "debiteurnummer",
    "relatienummer",
    "polisnummer",
    "artikelnummer",
    "tel",
    "tel.",
    "telefoon",
    "telefoonnummer",
    "fax",
    "mobiel",
];

pub fn stands_alone(text: &[u8], start: usize, end: usize, word: &str) -> bool {
    let w = word.as_bytes();
    let alnum = |b: u8| b.is_ascii_alphanumeric() || b >= 0x80;
    let left_ok = !w.first().is_some_and(|&c| alnum(c)) || start == 0 || !alnum(text[start - 1]);
    let right_ok = !w.last().is_some_and(|&c| alnum(c)) || end >= text.len() || !alnum(text[end]);
    left_ok && right_ok
}
