#!/usr/bin/env bash
# Pickup portal benchmark (issue 17 point 9): prints figures, asserts nothing beyond each step
# working (performance is measured, not tested).
#
#   1. the portal at SESSIONS concurrent recipients: each opens its link, asks for the code,
#      has it checked, and reads the message page 10 times (each its own HTTPS connection and
#      cookies, as a browser): p50/p99 of the code check and of the message page (aim: p99
#      under 100 ms at 50 sessions);
#   2. sealing: a 1 MB message with patient data, one after another, end of DATA to the
#      reply: delivered through a lane to smtp-sink (the reference, inspection and the fsync'd
#      audit log included) and sealed for the portal (sealed, stored with fsync, the
#      notification relayed to smtp-sink) in the same run: what sealing adds (aim: at most
#      10 %).
#
# Usage: bash benches/portal.sh     (root; installs postfix and wrk when missing)
# Knobs: RECIPIENTS=200 SESSIONS=50 SEQ=40 SIZE=1048576
set -euo pipefail
cd "$(dirname "$0")/.."
RECIPIENTS=${RECIPIENTS:-200}; SESSIONS=${SESSIONS:-50}; SEQ=${SEQ:-40}; SIZE=${SIZE:-1048576}
command -v wrk >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk; }
# shellcheck source=benches/common.sh
source benches/common.sh

sink_port=$(free_port); portal_port=$(free_port); sluis_port=$(free_port)
mkdir -p "$work/dumps"; chown postfix "$work/dumps"
smtp-sink -u postfix -d "$work/dumps/%M." 127.0.0.1:"$sink_port" 1000 >/dev/null 2>&1 & pids+=($!)
wait_banner "$sink_port"

python3 - "$RECIPIENTS" > "$work/directory.csv" <<'PY'
import sys
print("address,phone")
for i in range(int(sys.argv[1])):
    print(f"pat{i}@patients.test,+316{10000000 + i}")
PY
cat > "$work/sluis.toml" <<CONF
[server]
hostname = "bench.test"
listen = ["127.0.0.1:$sluis_port"]
spool_dir = "$work/spool"
[limits]
recipients = 1000
sessions = 1000
sessions_per_client = 1000
message_size = 20000000
[log]
level = "warn"
[upstream.lanes.default]
address = "127.0.0.1:$sink_port"
[recipients]
personal_domains = ["patients.test"]
[portal]
listen = "127.0.0.1:$portal_port"
base_url = "https://portal.bench.test:$portal_port"
from = "beveiligd@org.test"
organisation = "Bench Ziekenhuis"
directory_file = "$work/directory.csv"
[portal.sms]
kind = "file"
path = "$work/sms.jsonl"
[[policy.rules]]
name = "to-portal"
action = "portal"
when = { class = ["personal"] }
[[policy.rules]]
name = "deliver"
action = "deliver"
CONF
"$SLUIS" serve --config "$work/sluis.toml" 2>"$work/sluis.log" & pids+=($!)
wait_banner "$sluis_port"

echo "== 1. the portal at $SESSIONS concurrent sessions ($RECIPIENTS recipients)"
python3 - "$sluis_port" "$RECIPIENTS" <<'PY'
import smtplib, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
msg = ("From: Dr. Jansen <jansen@org.test>\r\nSubject: bench\r\n\r\n"
       "Patient J. de Vries, BSN 123456782.\r\n")
# One message per patient, as a hospital sends them.
with smtplib.SMTP("127.0.0.1", port, timeout=120) as s:
    for i in range(n):
        s.sendmail("jansen@org.test", [f"pat{i}@patients.test"], msg)
PY
for _ in $(seq 300); do
    [ "$(grep -l 'Beveiligd bericht van' "$work"/dumps/* 2>/dev/null | wc -l)" -ge "$RECIPIENTS" ] && break
    sleep 0.1
done
read -r c50 c99 _ m50 m99 _ n < <(python3 benches/portal_load.py web "$portal_port" "$work/dumps" "$work/sms.jsonl" "$SESSIONS" "$work/cookies")
echo "  Python browsers, each its own TLS connection (the client is part of what is measured):"
printf "  %-34s p50 %6s ms   p99 %6s ms   (%s sessions)\n" "code check (POST /code)" "$c50" "$c99" "$n"
printf "  %-34s p50 %6s ms   p99 %6s ms   (%s pages)\n" "message page (GET /message)" "$m50" "$m99" "$((n * 10))"
echo "  wrk, $SESSIONS connections, each request another visit's cookies:"
wrk_run() { # mode, cookies, duration
    COOKIES="$2" MODE="$1" wrk -t2 -c"$SESSIONS" -d"$3" --latency -s benches/portal_wrk.lua \
        "https://127.0.0.1:$portal_port" 2>&1 | awk -v mode="$1" '
        /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 } /Requests\/sec/ { rps = $2 }
        /^ +[0-9]+ requests in/ { n = $1 } /Non-2xx/ { bad = $NF }
        END { rate = (mode == "page") ? rps " req/s, " : ""
              printf "p50 %8s   p99 %8s   %s%s requests, %s not 2xx/3xx\n", p50, p99, rate, n, bad + 0 }'
}
printf "  %-34s %s\n" "message page (GET /message)" "$(wrk_run page "$work/cookies" 10s)"
# Four wrong codes per visit and then the threads stop (nobody is locked out), so the code
# check has no steady rate to print, only its latencies.
printf "  %-34s %s\n" "code check, wrong code (POST /code)" "$(wrk_run code "$work/cookies.waiting" 30s)"

echo "== 2. a $SIZE-byte message, $SEQ one after another, end of DATA to the reply"
read -r d50 d99 dmean < <(python3 benches/portal_load.py relay "$sluis_port" "someone@partner.test" "$SEQ" "$SIZE")
read -r p50 p99 pmean < <(python3 benches/portal_load.py relay "$sluis_port" "pat1@patients.test" "$SEQ" "$SIZE")
printf "  %-34s p50 %7s ms   p99 %7s ms   mean %7s ms\n" "delivered through a lane" "$d50" "$d99" "$dmean"
printf "  %-34s p50 %7s ms   p99 %7s ms   mean %7s ms\n" "sealed for the portal" "$p50" "$p99" "$pmean"
python3 -c "print(f'  sealing adds {($pmean / $dmean - 1) * 100:+.1f} % to the mean ({$p50 / $d50 * 100 - 100:+.1f} % at p50)')"
