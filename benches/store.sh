#!/usr/bin/env bash
# Store benchmark: prints figures, asserts nothing (performance is measured, not tested).
#
# Holds through each backend, in the same run, with a policy that holds everything:
#   1. throughput: smtp-source -> Sluis (hold) in 20 sessions, for the files store and for
#      PostgreSQL (Debian's server on loopback, fsync on, started here), against the same
#      messages delivered to smtp-sink (no hold) as the reference;
#   2. latency: one session sending one message after another, the time from the end of
#      DATA to the reply: p50 and p99 for delivery, a hold on files and a hold on PostgreSQL,
#      and what a hold adds to the reply at p99 (the aim: at most 5 ms for PostgreSQL).
#
# Usage: bash benches/store.sh     (root; installs postfix and postgresql when missing)
# Knobs: N=2000 SESSIONS=20 SIZE=10240 SEQ=400
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-2000}; SESSIONS=${SESSIONS:-20}; SIZE=${SIZE:-10240}; SEQ=${SEQ:-400}

# shellcheck source=benches/common.sh
source benches/common.sh
start_postgres
sink_port=$(free_port)
smtp-sink -u postfix 127.0.0.1:"$sink_port" 1000 >/dev/null 2>&1 & pids+=($!)
wait_banner "$sink_port"

sluis_port=$(free_port); sluis_pid=
start_sluis() { # action (deliver|quarantine), store section
    [ -n "$sluis_pid" ] && { kill "$sluis_pid"; wait "$sluis_pid" 2>/dev/null || true; }
    rm -rf "$work/spool"
    cat > "$work/sluis.toml" <<CONF
[server]
hostname = "bench.test"
listen = ["127.0.0.1:$sluis_port"]
spool_dir = "$work/spool"
[limits]
sessions = 5000
sessions_per_client = 5000
[log]
level = "warn"
[upstream.lanes.default]
address = "127.0.0.1:$sink_port"
[policy]
notify_quarantined = false
[quarantine]
max_bytes = 10737418240
$2
[[policy.rules]]
name = "all"
action = "$1"
CONF
    "$SLUIS" serve --config "$work/sluis.toml" 2>"$work/sluis.log" & sluis_pid=$!; pids+=($sluis_pid)
    wait_banner "$sluis_port"
}

run_source() { # -> messages/s
    local t0 t1
    t0=$(now)
    smtp-source -s "$SESSIONS" -l "$SIZE" -m "$N" -f bench@org.test -t p@partner.test 127.0.0.1:"$sluis_port"
    t1=$(now)
    python3 -c "print(f'{$N/($t1-$t0):.0f}')"
}

# One session, SEQ messages one after another; the end-of-DATA reply times in ms, sorted.
latencies() { cargo bench --bench smtp_latency --locked -q -- "$sluis_port" 1 "$SEQ" "$SIZE"; }

files_store=""
pg_store=$(printf '[store]\nkind = "postgres"\nurl = "postgresql://sluis@127.0.0.1:%s/postgres"\ntls = "off"\n' "$pg_port")

echo "== throughput: $N messages of $SIZE bytes, $SESSIONS sessions"
start_sluis deliver "$files_store"; deliver=$(run_source)
echo "deliver to smtp-sink (no hold)     : $deliver msg/s"
start_sluis quarantine "$files_store"; hold_files=$(run_source)
echo "hold, files store                  : $hold_files msg/s"
start_sluis quarantine "$pg_store"; hold_pg=$(run_source)
echo "hold, PostgreSQL store             : $hold_pg msg/s"
held=$(runuser -u postgres -- "$pgbin/psql" -h "$work/pg" -p "$pg_port" -U sluis -d postgres -Atc "SELECT count(*) FROM sluis_quarantine")
echo "   (items in PostgreSQL: $held of $N)"

echo "== latency: $SEQ messages in one session, end of DATA to reply (ms)"
start_sluis deliver "$files_store"; read -r d50 d99 < <(latencies)
start_sluis quarantine "$files_store"; read -r f50 f99 < <(latencies)
start_sluis quarantine "$pg_store"; read -r p50 p99 < <(latencies)
printf '%-28s p50 %6s  p99 %6s\n' "deliver (no hold)" "$d50" "$d99" "hold, files" "$f50" "$f99" "hold, PostgreSQL" "$p50" "$p99"
python3 -c "print(f'a PostgreSQL hold adds at p99  : {$p99 - $d99:.2f} ms over delivery, {$p99 - $f99:.2f} ms over a files hold (aim: <= 5 ms)')"
if grep -q "ERROR" "$work/sluis.log"; then echo "warning: Sluis logged errors:"; tail -5 "$work/sluis.log"; fi
