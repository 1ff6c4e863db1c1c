#!/usr/bin/env bash
# Fails when any log written by Sluis during the test suite contains a patient identifier from
# the test material: every 9-digit number and IBAN in tests/corpus/generate.py and in the
# end-to-end tests' messages. Run by tests/run.sh after the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
logs=target/tmp/sluis-logs
if [ ! -d "$logs" ] || [ -z "$(ls -A "$logs")" ]; then
    echo "check_logs: no Sluis logs in $logs: the end-to-end tests did not run" >&2
    exit 1
fi
ids=$(mktemp)
trap 'rm -f "$ids"' EXIT
# Identifiers: all the corpus embeds (tests/corpus/identifiers.txt, written by generate.py),
# and the 9-digit runs (BSN-like) and IBANs the end-to-end tests write into their messages.
{
    cat tests/corpus/identifiers.txt
    grep -ohE '\b[0-9]{9}\b|\bNL[0-9]{2}[A-Z]{4}[0-9]{10}\b' tests/*.rs
} | sort -u > "$ids"
count=$(wc -l < "$ids")
files=$(ls "$logs" | wc -l)
if hits=$(grep -rFf "$ids" "$logs"); then
    echo "check_logs: patient identifiers found in Sluis logs:" >&2
    echo "$hits" | head -20 >&2
    exit 1
fi
echo "check_logs: $files Sluis logs, no line holds any of $count identifiers from the test material"
