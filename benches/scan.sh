#!/usr/bin/env bash
# Inspection benchmark: prints figures, asserts nothing.
#
# `sluis scan` over a generated corpus of about 110 MiB (plain letters, HTML, PDF/DOCX/CSV
# attachments) against ripgrep searching the bare BSN pattern over the same files, in the same
# run, warm page cache, both using all cores, best of five runs each: MB/s of both and the
# ratio. ripgrep only matches bytes; Sluis parses MIME, decodes base64 and quoted-printable,
# inflates attachments, extracts text and checks context, so the ratio is the price of reading
# mail the way a person does.
#
# Usage: bash benches/scan.sh     (installs ripgrep from Debian when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v rg >/dev/null; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ripgrep
fi
cargo build --release --locked -q
work=$(mktemp -d /tmp/sluis-scan-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
python3 -c 'import reportlab, fpdf' 2>/dev/null || pip install -q reportlab fpdf2
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends fonts-dejavu-core
python3 benches/gen_scan_corpus.py "$work/corpus"
bytes=$(du -sb "$work/corpus" | cut -f1)
cat "$work"/corpus/*.eml > /dev/null   # warm the page cache for both

# Best of five runs each, taken in turns, so a noisy neighbour or a cold cache does not decide.
now() { date +%s.%N; }
rg_best=999 sl_best=999 pdf_best=999
mapfile -t pdf_messages < "$work/pdf-messages.txt"
for _ in 1 2 3 4 5; do
    t0=$(now); rg --no-config -c '\b[0-9]{9}\b' "$work/corpus" > "$work/rg.out" || true; t1=$(now)
    target/release/sluis scan --format json "$work"/corpus/*.eml > "$work/sluis.out" || [ $? = 1 ]; t2=$(now)
    rg_best=$(python3 -c "print(min($rg_best, $t1 - $t0))")
    sl_best=$(python3 -c "print(min($sl_best, $t2 - $t1))")
    t3=$(now); target/release/sluis scan --format json "${pdf_messages[@]}" > /dev/null || [ $? = 1 ]; t4=$(now)
    pdf_best=$(python3 -c "print(min($pdf_best, $t4 - $t3))")
done
python3 - "$bytes" "$rg_best" "$sl_best" "$work/sluis.out" "$pdf_best" "${#pdf_messages[@]}" <<'PY'
import json, sys
size, rg_s, sl_s, out = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
pdf_s, pdf_n = float(sys.argv[5]), int(sys.argv[6])
mb = size / 1e6
rg, sl = mb / rg_s, mb / sl_s
lines = [json.loads(l) for l in open(out)]
print(f"corpus: {len(lines)} messages, {mb:.0f} MB; best of 5 runs each")
print(f"ripgrep '\\b[0-9]{{9}}\\b'   : {rg_s:6.2f} s  {rg:8.0f} MB/s")
print(f"sluis scan                 : {sl_s:6.2f} s  {sl:8.0f} MB/s  ({sum(l['sensitive'] for l in lines)} sensitive)")
print(f"ratio sluis/ripgrep        : {sl / rg:.2f}")
# The messages carrying a PDF, scanned alone: their whole inspection (MIME, PDF, detection),
# so an upper bound on the time PDF extraction takes.
print(f"messages with a PDF ({pdf_n:4d})  : {pdf_s:6.2f} s  = {100 * pdf_s / sl_s:.0f}% of the scan (upper bound on PDF extraction)")
PY
