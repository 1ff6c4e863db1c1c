#!/usr/bin/env python3
"""Generates the scan benchmark corpus: about 110 MB of .eml files in DIR (plain letters, HTML
mail, and PDF, DOCX and CSV attachments), reproducibly (seeded). Usage: gen_scan_corpus.py DIR"""
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "corpus"))
import generate as g  # noqa: E402  (the test corpus's document builders)

WORDS = ("de het een en van in is dat op te voor met zijn niet aan er maar om ook als dan bij nog "
         "uit wel naar kan dit wordt worden tot over door zo heeft afspraak overleg afdeling zorg "
         "behandeling uitslag onderzoek verslag rapport bespreking planning rooster dienst team "
         "collega groet vriendelijke graag vraag antwoord week maand jaar morgen vandaag gisteren "
         "patiënt cliënt arts verpleging apotheek recept medicatie controle opname ontslag").split()
rnd = random.Random(7516)


def sentence():
    words = [rnd.choice(WORDS) for _ in range(rnd.randint(6, 16))]
    if rnd.random() < 0.15:
        words.insert(rnd.randrange(len(words)), str(rnd.randint(10, 99999)))
    if rnd.random() < 0.05:
        words.insert(rnd.randrange(len(words)), f"{rnd.randint(1, 28):02d}-{rnd.randint(1, 12):02d}-{rnd.randint(1940, 2024)}")
    return " ".join(words).capitalize() + "."


def prose(size):
    out, n = [], 0
    while n < size:
        para = " ".join(sentence() for _ in range(rnd.randint(3, 7)))
        out.append(para)
        n += len(para) + 2
    return "\n\n".join(out) + "\n"


def with_identifier(text):
    if rnd.random() < 0.1:
        b = g.bsns(1, rnd.randint(100000000, 900000000))[0]
        return text + f"\nBetreft patiënt met BSN {b}.\n"
    return text


def real_pdf(text, i):
    lines = [l[k:k + 90] for l in text.split("\n") if l.strip() for k in range(0, len(l), 90)]
    if i % 2:
        from fpdf import FPDF
        pdf = FPDF()
        pdf.add_page()
        pdf.add_font("DejaVu", fname="/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
        pdf.set_font("DejaVu", size=10)
        for line in lines:
            pdf.cell(text=line, new_x="LMARGIN", new_y="NEXT")
        return bytes(pdf.output())
    import io
    from reportlab.pdfgen import canvas
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pageCompression=1)
    y = 800
    for line in lines:
        if y < 60:
            c.showPage()
            y = 800
        c.drawString(50, y, line)
        y -= 12
    c.save()
    return buf.getvalue()


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    total, i = 0, 0
    pdfs = []
    while total < 110 * 1024 * 1024:
        kind = i % 10
        m = g.base(f"Bericht {i}", None)
        if kind < 5:
            m.set_content(with_identifier(prose(20000)))
        elif kind < 8:
            paras = "".join(f"<p>{p}</p>" for p in prose(30000).split("\n\n"))
            table = "<table>" + "".join(f"<tr><td>{rnd.choice(WORDS)}</td><td>{rnd.randint(0, 10**6)}</td></tr>" for _ in range(100)) + "</table>"
            m.set_content("Zie HTML.\n")
            m.add_alternative(f"<html><body>{paras}{table}</body></html>", subtype="html")
        else:
            m.set_content(with_identifier(prose(3000)))
            att = i % 3
            if att == 0:
                # PDFs from real producers: reportlab (Type1 font, ASCII85 then Flate) and
                # fpdf2 (an embedded TrueType font as a CID font with a ToUnicode map), the
                # kinds of content streams and fonts hospital software writes.
                text = with_identifier(prose(30000))
                g.attach(m, real_pdf(text, i), f"brief{i}.pdf", "application", "pdf")
                pdfs.append(f"m{i:05d}.eml")
            elif att == 1:
                g.attach(m, g.docx([[p] for p in prose(40000).split("\n\n")]), f"verslag{i}.docx",
                         "application", "vnd.openxmlformats-officedocument.wordprocessingml.document")
            else:
                rows = "Datum;Omschrijving;Aantal\n" + "".join(
                    f"2024-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d};{rnd.choice(WORDS)};{rnd.randint(1, 500)}\n" for _ in range(2500))
                g.attach(m, rows.encode(), f"export{i}.csv", "text", "csv")
        data = m.as_bytes(policy=g.SMTP)
        with open(os.path.join(out, f"m{i:05d}.eml"), "wb") as f:
            f.write(data)
        total += len(data)
        i += 1
    with open(os.path.join(os.path.dirname(out.rstrip("/")), "pdf-messages.txt"), "w") as f:
        f.write("\n".join(os.path.join(out, p) for p in pdfs) + "\n")
    print(f"{i} messages ({len(pdfs)} with a real producer's PDF), {total / 1048576:.0f} MiB")


if __name__ == "__main__":
    main()
