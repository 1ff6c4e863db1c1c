#!/usr/bin/env python3
"""Writes the inspection test corpus: .eml files and manifest.json with what each must yield.

Run from anywhere: python3 tests/corpus/generate.py. The output is committed; the Rust test
tests/inspect_corpus.rs checks every file against the manifest. All identifiers here are made
up: numbers that pass the 11-proof or mod-97 but belong to nobody.
"""
import io
import json
import os
import struct
import zipfile
import zlib
from email.message import EmailMessage
from email.policy import SMTP

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "messages")
manifest = []


def elfproef(d):
    s = sum(int(c) * w for c, w in zip(d[:8], range(9, 1, -1))) - int(d[8])
    return s % 11 == 0 and d != "000000000"


EMBEDDED = set()  # every identifier written into the corpus, for the log check


def bsns(n, start=100000000):
    out, x = [], start
    while len(out) < n:
        x += 7919
        d = f"{x % 1000000000:09d}"
        if elfproef(d):
            out.append(d)
    EMBEDDED.update(out)
    return out


B1, B2, B3 = "123456782", "111222333", bsns(1, 234567000)[0]
IBAN = "NL91ABNA0417164300"
EMBEDDED.update([B1, B2, B3, IBAN, "PAT-0012345", "ZK79927398713"])


def save(name, msg, sensitive, must=(), must_not=(), uninspectable=None, config=None):
    # Fixed boundaries, so the corpus is the same on every run.
    for i, part in enumerate(msg.walk()):
        if part.is_multipart():
            part.set_boundary(f"sluis-corpus-{i}-{zlib.crc32(name.encode()):08x}")
    data = msg.as_bytes(policy=SMTP)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    manifest.append({
        "file": name,
        "sensitive": sensitive,
        # [detector, confidence, substring of location]
        "must": [list(m) for m in must],
        "must_not": list(must_not),
        "uninspectable": uninspectable,
        "config": config,
    })


def base(subject, body, **kw):
    m = EmailMessage()
    m["From"] = kw.get("from_", "Dr. A. Jansen <a.jansen@zkh.test>")
    m["To"] = kw.get("to", "Huisartsenpraktijk <praktijk@huisarts.test>")
    m["Subject"] = subject
    m["Message-ID"] = f"<{zlib.crc32(subject.encode()):08x}@zkh.test>"
    if body is not None:
        m.set_content(body, charset=kw.get("charset", "utf-8"), cte=kw.get("cte"))
    return m


def member(name, method=zipfile.ZIP_DEFLATED):
    """A ZIP member with a fixed timestamp, so archives are the same on every run."""
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.compress_type = method
    return info


def zip_bytes(files, method=zipfile.ZIP_DEFLATED):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        for name, data in files:
            z.writestr(member(name, method), data)
    return b.getvalue()


def docx(paragraph_runs):
    body = "".join(
        "<w:p>" + "".join(f"<w:r><w:t xml:space=\"preserve\">{r}</w:t></w:r>" for r in runs) + "</w:p>"
        for runs in paragraph_runs)
    doc = ('<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/'
           f'wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>')
    return zip_bytes([("[Content_Types].xml", "<Types/>"), ("word/document.xml", doc)])


def xlsx(rows):
    strings, index = [], {}
    def sid(v):
        if v not in index:
            index[v] = len(strings); strings.append(v)
        return index[v]
    xml_rows = []
    for r in rows:
        cells = []
        for v in r:
            if v.isdigit():
                cells.append(f"<c><v>{v}</v></c>")
            else:
                cells.append(f'<c t="s"><v>{sid(v)}</v></c>')
        xml_rows.append("<row>" + "".join(cells) + "</row>")
    sheet = "<worksheet><sheetData>" + "".join(xml_rows) + "</sheetData></worksheet>"
    sst = "<sst>" + "".join(f"<si><t>{s}</t></si>" for s in strings) + "</sst>"
    return zip_bytes([("[Content_Types].xml", "<Types/>"), ("xl/workbook.xml", "<workbook/>"),
                      ("xl/sharedStrings.xml", sst), ("xl/worksheets/sheet1.xml", sheet)])


def odt(paragraphs):
    ps = "".join(f"<text:p>{p}</text:p>" for p in paragraphs)
    content = ('<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
               'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:text>'
               f"{ps}</office:text></office:body></office:document-content>")
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        z.writestr(member("mimetype", zipfile.ZIP_STORED), "application/vnd.oasis.opendocument.text")
        z.writestr(member("content.xml"), content)
    return b.getvalue()


def pdf(content_ops, compress=True, extra_trailer="", image_only=False):
    stream = content_ops.encode("latin-1")
    objs = ["<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>"]
    if image_only:
        data = zlib.compress(bytes(range(256)) * 40)
        objs.append(("<< /Type /XObject /Subtype /Image /Width 64 /Height 160 /BitsPerComponent 8 "
                     f"/ColorSpace /DeviceGray /Filter /FlateDecode /Length {len(data)} >>", data))
    elif compress:
        data = zlib.compress(stream)
        objs.append((f"<< /Length {len(data)} /Filter /FlateDecode >>", data))
    else:
        objs.append((f"<< /Length {len(stream)} >>", stream))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    for i, o in enumerate(objs, 1):
        out += f"{i} 0 obj\n".encode()
        if isinstance(o, tuple):
            out += o[0].encode() + b"\nstream\n" + o[1] + b"\nendstream"
        else:
            out += o.encode()
        out += b"\nendobj\n"
    out += f"trailer\n<< /Root 1 0 R /Size {len(objs) + 1} {extra_trailer}>>\n%%EOF\n".encode()
    return bytes(out)


def attach(m, data, filename, maintype="application", subtype="octet-stream"):
    m.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)


def encrypted_zip(name, data):
    z = bytearray(zip_bytes([(name, data)], zipfile.ZIP_STORED))
    # Set the "encrypted" flag in the local and central headers: what a password-protected
    # archive looks like to a reader without the password.
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = z.find(sig)
        flags = struct.unpack_from("<H", z, i + off)[0] | 1
        struct.pack_into("<H", z, i + off, flags)
    return bytes(z)


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))

    # --- positives: where it looks ---------------------------------------------------------
    save("pos-plain-bsn.eml", base("Verwijzing", f"Beste collega,\n\nHierbij de verwijzing voor patiënt\nJ. de Vries, BSN {B1}.\n"),
         True, [("bsn", "high", "part 1 text/plain")])
    save("pos-dotted-bsn-qp-latin1.eml",
         base("Uitslag", f"Cliënt mevr. Özdemir, burgerservicenummer {B2[:4]}.{B2[4:6]}.{B2[6:]}, uitslag bijgevoegd. Hoogachtend,\n",
              charset="iso-8859-1", cte="quoted-printable"),
         True, [("bsn", "high", "text/plain")])
    save("pos-spaced-bsn-base64.eml", base("Dossier", f"Sofinummer: {B3[:3]} {B3[3:6]} {B3[6:]}\n", cte="base64"),
         True, [("bsn", "high", "text/plain")])
    eight = bsns(200, 10000000)
    eight = next(d for d in eight if d.startswith("0"))[1:]
    save("pos-eight-digit-bsn.eml", base("Opname", f"BSN {eight} (voorloopnul weggevallen)\n"),
         True, [("bsn", "high", "text/plain")])
    save("pos-subject-encoded-word.eml", base(f"Patiënt met BSN {B1} – spoed", "Zie onderwerp.\n"),
         True, [("bsn", "high", "header Subject")])
    save("pos-display-name.eml", base("Afspraak", "Graag een afspraak inplannen.\n",
                                      to=f'"Patient BSN {B2}" <afspraken@zkh.test>'),
         True, [("bsn", "high", "header To (display name)")])

    m = base("Labuitslag", None)
    m.set_content("Zie HTML.\n")
    m.add_alternative(f"<html><body><p>Patiënt:</p><table><tr><td>BSN</td><td>{B1[:3]}<b>{B1[3:6]}</b><span>{B1[6:]}</span></td></tr></table>"
                      "<p>Geboortedatum: 02-11-1974</p></body></html>", subtype="html")
    save("pos-html-split-by-tags.eml", m, True,
         [("bsn", "high", "text/html"), ("date-of-birth", "medium", "text/html")])

    inner = base("Oorspronkelijk bericht", f"Patiënt BSN {B3}, opgenomen op afdeling 4B.\n")
    outer = base("Fwd: Oorspronkelijk bericht", "Zie bijgevoegd bericht.\n")
    outer.add_attachment(inner)
    save("pos-nested-rfc822.eml", outer, True, [("bsn", "high", "part 2 message/rfc822/")])

    # Only the header names the column: rows far below it are identifiers through the column.
    rows = "Naam;BSN;Afdeling\n" + "".join(f"Lid {i:02d};{b};Interne\n" for i, b in enumerate(bsns(30, 300000000)))
    m = base("Overzicht", "In de bijlage de lijst.\n")
    attach(m, rows.encode(), "lijst.dat")  # text whatever the declared type
    save("pos-csv-octet-stream-column.eml", m, True, [("bsn", "high", "attachment lijst.dat")],
         config={"expect_high_bsn": 30})

    m = base("Brief", "Brief in de bijlage.\n")
    attach(m, pdf(f"BT /F1 12 Tf 72 700 Td (Betreft pati\\353nt) Tj 0 -14 Td [(BSN: ) -50 ({B1[:5]}) -20 ({B1[5:]})] TJ ET"),
           "brief.pdf", "application", "pdf")
    save("pos-pdf-flate.eml", m, True, [("bsn", "high", "attachment brief.pdf")])

    m = base("Verslag", "Verslag bijgevoegd.\n")
    attach(m, docx([["Verslag van patiënt"], ["BSN ", B2[:4], B2[4:]]]), "verslag.docx",
           "application", "vnd.openxmlformats-officedocument.wordprocessingml.document")
    save("pos-docx-runs.eml", m, True, [("bsn", "high", "attachment verslag.docx/word/document.xml")])

    m = base("Export", "Export uit het EPD.\n")
    attach(m, xlsx([["Naam", "Afdeling", "BSN"]] + [[f"Lid {i:02d} met een langere naam", "Cardiologie", b]
                                                  for i, b in enumerate(bsns(12, 400000000))]),
           "export.xlsx", "application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    save("pos-xlsx-column.eml", m, True, [("bsn", "high", "export.xlsx/xl/worksheets/sheet1.xml")],
         config={"expect_high_bsn": 12})

    m = base("Notitie", "Zie notitie.\n")
    attach(m, odt(["Cliënt dossier", f"Burgerservicenummer {B3}"]), "notitie.odt",
           "application", "vnd.oasis.opendocument.text")
    save("pos-odt.eml", m, True, [("bsn", "high", "attachment notitie.odt/content.xml")])

    inner_zip = zip_bytes([("intake.txt", f"Intake patiënt, BSN {B1}\n")])
    m = base("Archief", "Archief bijgevoegd.\n")
    attach(m, zip_bytes([("readme.txt", "Zie map.\n"), ("map/intake.zip", inner_zip),
                         ("map/verslag.docx", docx([[f"Patiënt BSN {B2}"]]))]), "archief.zip", "application", "zip")
    save("pos-zip-nested.eml", m, True,
         [("bsn", "high", "archief.zip/map/intake.zip/intake.txt"),
          ("bsn", "high", "archief.zip/map/verslag.docx/word/document.xml")])

    save("pos-filename.eml", (lambda m: (attach(m, b"\x89PNG\r\n\x1a\n" + bytes(200), f"scan BSN {B1}.png", "image", "png"), m)[1])(
        base("Scan", "Scan van het formulier.\n")), True, [("bsn", "high", "(name)")])

    save("pos-dob-iban-patnr.eml",
         base("Machtiging", f"Patiëntnummer PAT-0012345, geboren 3 maart 1958, rekening {IBAN} voor de eigen bijdrage.\n"),
         True, [("date-of-birth", "medium", "text/plain"), ("iban", "medium", "text/plain"),
                ("patient-number", "high", "text/plain")],
         config={"identifiers": [{"name": "patient-number", "pattern": r"\bPAT-[0-9]{7}\b",
                                  "keywords": ["patiëntnummer", "patnr"]}]})

    save("pos-dashed-bsn.eml", base("Intake", f"Cliënt, bsn {B1[:3]}-{B1[3:6]}-{B1[6:]}, intake gepland.\n"),
         True, [("bsn", "high", "text/plain")])
    save("pos-case-number-luhn.eml", base("Zaak", "Zaaknummer ZK79927398713 (en niet ZK79927398710).\n"),
         True, [("case-number", "high", "text/plain")],
         config={"identifiers": [{"name": "case-number", "pattern": r"\bZK[0-9]{11}\b", "checksum": "luhn"}],
                 "expect_count": {"case-number": 1}})
    wijk = base("Melding", f"Wijkteam melding over {B2}, graag terugbellen.\n")
    save("pos-extra-care-keyword.eml", wijk, True, [("bsn", "high", "text/plain")],
         config={"care_keywords": ["wijkteam"]})
    save("neg-without-extra-care-keyword.eml", wijk, False, [("bsn", "low", "text/plain")])

    # --- negatives, the tricky ones ----------------------------------------------------------
    save("neg-patient-invoice-medium.eml",
         base("Factuur behandeling", f"Factuur voor de behandeling van patiënt, factuurnummer {B3}.\n"),
         # The number right after "factuurnummer" is that label's: low, not medium.
         False, [("bsn", "low", "text/plain")])
    save("neg-invoice-number.eml", base("Factuur 2024-118", f"Factuurnummer {B1}\nBedrag: EUR 1.250,00\nBetalen op {IBAN} o.v.v. het factuurnummer.\n"),
         False, [("bsn", "low", "text/plain"), ("iban", "low", "text/plain")])
    save("neg-dial-in-pin.eml", base("Teams-vergadering MDO", f"Deelnemen via telefoon: +31 20 123 4567\nConference ID: {B2[:3]} {B2[3:6]} {B2[6:]}#\n"),
         False, [("bsn", "low", "text/plain")])
    save("neg-tracking-code.eml", base("Uw zending", f"Track & Trace: 3SDEVC{B1}NL en 3S{B3}.\nUw pakket wordt morgen bezorgd.\n"),
         False, must_not=["bsn"])
    save("neg-longer-digit-runs.eml", base("Referentie", f"Kenmerk 9{B1}1 en 0{B1}0-2 en A{B1}.\n"), False, must_not=["bsn"])
    save("neg-random-number-no-context.eml", base("Tabel", f"Meetwaarden: {B1} {B2} {B3}\n"),
         False, [("bsn", "low", "text/plain")])
    orders = "Datum;Ordernummer;Bedrag\n" + "".join(f"2024-01-{i + 1:02d};{b};12,50\n" for i, b in enumerate(bsns(20, 500000000)))
    m = base("Bestellingen januari", "Overzicht bijgevoegd.\n")
    attach(m, orders.encode(), "bestellingen.csv", "text", "csv")
    save("neg-csv-order-column.eml", m, False, [("bsn", "low", "attachment bestellingen.csv")])
    save("neg-dates-no-birth-context.eml", base("Planning", "Overleg op 12-03-2025 en 1974-11-02 en 3 maart 2024.\n"),
         False, must_not=["date-of-birth"])
    save("neg-not-11-proof.eml", base("Bestelling", "Patiënt vroeg naar bestelling 123456789 en 987654321.\n"), False, must_not=["bsn"])
    m = base("Foto", "Foto van de afdeling.\n")
    attach(m, b"\xff\xd8\xff\xe0" + f"JFIF BSN {B1} ".encode() + bytes(300), "afdeling.jpg", "image", "jpeg")
    save("neg-image-bytes-not-text.eml", m, False, must_not=["bsn", "uninspectable"])
    save("neg-adobe-not-dob.eml", base("Software", "Adobe 12-03-1961 update en Adobe Reader.\n"), False, must_not=["date-of-birth"])

    # --- uninspectable -----------------------------------------------------------------------
    m = base("Beveiligd", "Wachtwoord volgt per SMS.\n")
    attach(m, encrypted_zip("dossier.txt", f"BSN {B1}".encode()), "dossier.zip", "application", "zip")
    save("unin-encrypted-zip.eml", m, False, uninspectable="encrypted archive member")
    m = base("Beveiligd", "PDF met wachtwoord.\n")
    attach(m, pdf("BT (x) Tj ET", extra_trailer="/Encrypt 9 0 R "), "brief.pdf", "application", "pdf")
    save("unin-encrypted-pdf.eml", m, False, uninspectable="encrypted PDF")
    m = base("Scan", "Gescande brief.\n")
    attach(m, pdf("", image_only=True), "scan.pdf", "application", "pdf")
    save("unin-scanned-pdf.eml", m, False, uninspectable="PDF without text")
    m = base("Kapot", "Bijlage.\n")
    attach(m, b"PK\x03\x04" + bytes(100), "kapot.zip", "application", "zip")
    save("unin-corrupt-zip.eml", m, False, uninspectable="corrupt")
    m = base("Groot", "Bijlage.\n")
    attach(m, zip_bytes([("nullen.txt", b"0" * (8 * 1024 * 1024))]), "groot.zip", "application", "zip")
    save("unin-zip-bomb.eml", m, False, uninspectable="over the bound",
         config={"max_decompressed_bytes": 1048576})
    deep = zip_bytes([("x.txt", f"BSN {B1}")])
    for i in range(8):
        deep = zip_bytes([(f"laag{i}.zip", deep)])
    m = base("Diep", "Bijlage.\n")
    attach(m, deep, "diep.zip", "application", "zip")
    save("unin-nested-too-deep.eml", m, False, uninspectable="nested too deeply")
    m = base("Oud", "Bijlage.\n")
    attach(m, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), "oud.doc", "application", "msword")
    save("unin-legacy-doc.eml", m, False, uninspectable="corrupt OLE compound file")

    many = base("Veel delen", None)
    many.set_content("Deel 0.\n")
    for i in range(12):
        attach(many, f"deel {i}\n".encode(), f"deel{i}.txt", "text", "plain")
    save("unin-too-many-parts.eml", many, False, uninspectable="too many parts", config={"max_parts": 5})
    save("unin-time-limit.eml", base("Traag", f"Patiënt BSN {B1}.\n"), False,
         uninspectable="time limit", config={"max_time_ns": 1})

    with open(os.path.join(HERE, "identifiers.txt"), "w") as f:
        f.write("".join(f"{i}\n" for i in sorted(EMBEDDED)))
    with open(os.path.join(HERE, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(manifest)} messages")


if __name__ == "__main__":
    main()
