#!/usr/bin/env bash
# Inspection benchmark: prints figures, asserts nothing.
#
# `sluis scan` over a generated corpus of about 110 MiB (plain letters, HTML, PDF/DOCX/CSV
# attachments) against ripgrep searching the bare BSN pattern over the same files, in the same
# run, warm page cache, both using all cores: MB/s of both and the ratio. ripgrep only matches
# bytes; Sluis parses MIME, decodes base64 and quoted-printable, inflates attachments, extracts
# text and checks context, so the ratio is the price of reading mail the way a person does.
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
python3 benches/gen_scan_corpus.py "$work/corpus"
bytes=$(du -sb "$work/corpus" | cut -f1)
cat "$work"/corpus/*.eml > /dev/null   # warm the page cache for both

now() { date +%s.%N; }
t0=$(now); rg --no-config -c '\b[0-9]{9}\b' "$work/corpus" > "$work/rg.out" || true; t1=$(now)
t2=$(now); target/release/sluis scan --format json "$work"/corpus/*.eml > "$work/sluis.out" || [ $? = 1 ]; t3=$(now)
python3 - "$bytes" "$t0" "$t1" "$t2" "$t3" "$work/sluis.out" <<'PY'
import json, sys
size, t0, t1, t2, t3, out = int(sys.argv[1]), *map(float, sys.argv[2:6]), sys.argv[6]
mb = size / 1e6
rg, sl = mb / (t1 - t0), mb / (t3 - t2)
lines = [json.loads(l) for l in open(out)]
print(f"corpus: {len(lines)} messages, {mb:.0f} MB")
print(f"ripgrep '\\b[0-9]{{9}}\\b'   : {t1 - t0:6.2f} s  {rg:8.0f} MB/s")
print(f"sluis scan                 : {t3 - t2:6.2f} s  {sl:8.0f} MB/s  ({sum(l['sensitive'] for l in lines)} sensitive)")
print(f"ratio sluis/ripgrep        : {sl / rg:.2f}")
PY
