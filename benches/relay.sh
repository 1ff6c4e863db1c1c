#!/usr/bin/env bash
# Relay benchmark: prints figures, asserts nothing (performance is measured, not tested).
#
#   1. throughput: smtp-source -> smtp-sink directly and -> Sluis -> smtp-sink (RUNS pairs, the
#      median pair's ratio), and -> a Postfix relay hop -> smtp-sink (counted until the sink has
#      them all), in the same run (10 KiB messages, 20 sessions): messages/s of each and Sluis's
#      ratios to the other two; beside
#      it, direct and through Sluis again with smtp-source and smtp-sink on core 0 and Sluis on
#      core 1 (what Sluis relays on a core of its own);
#   2. latency: SESSIONS sessions at once, LAT messages each, end of DATA to the reply, to
#      smtp-sink directly and through Sluis: p50 and p99 of both, and what Sluis adds;
#   3. memory: Sluis's RSS with 1,000 idle sessions, and its peak RSS while relaying one
#      40 MiB message (bounded by limits.memory_buffer: the rest is spooled to disk).
#
# Usage: bash benches/relay.sh        (root; installs postfix for smtp-source/smtp-sink)
# Knobs: N=20000 HOP_N=5000 SESSIONS=20 SIZE=10240 IDLE=1000 LAT=100 RUNS=5
# (N messages per throughput run: about 2 s direct, 4 s through Sluis, long enough for a steady
# state; 5,000 made runs of half a second. HOP_N for the Postfix hop, which takes 6 s for 5,000.)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}; HOP_N=${HOP_N:-5000}; SESSIONS=${SESSIONS:-20}; SIZE=${SIZE:-10240}; IDLE=${IDLE:-1000}; LAT=${LAT:-100}; RUNS=${RUNS:-5}

# shellcheck source=benches/common.sh
source benches/common.sh

sink_port=$(free_port); sluis_port=$(free_port)
smtp-sink -u postfix 127.0.0.1:"$sink_port" 1000 >/dev/null 2>&1 & sink_pid=$!; pids+=($sink_pid)
wait_banner "$sink_port"

start_sluis() {
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
# Relaying is measured, with every decision audited (fsync'd). The 40 MiB message is over the
# inspection bound, hence "uninspectable", hence confidential: under the NTA 7516 profile it
# would wait for a posture lookup, and there is no DNS here. Deliver everything instead.
[[policy.rules]]
name = "deliver"
action = "deliver"
CONF
    "$SLUIS" serve --config "$work/sluis.toml" 2>"$work/sluis.log" & sluis_pid=$!; pids+=($sluis_pid)
    wait_banner "$sluis_port"
}

run_source() { # port [cpu] -> messages/s (smtp-source on that cpu only, when given)
    local t0 t1
    t0=$(now)
    ${2:+taskset -c "$2"} smtp-source -s "$SESSIONS" -l "$SIZE" -m "$N" -f bench@org.test -t sink@partner.test 127.0.0.1:"$1"
    t1=$(now)
    python3 -c "print(f'{$N/($t1-$t0):.0f}')"
}

# RUNS pairs, direct then through Sluis, one after the other: the direct run alone moves by
# 10-15 % from run to run on this machine kind, so one pair says little; the median pair's
# ratio is the figure, every pair is printed, and so are the pairs' mean and range. (Five
# pairs: with three, one build's figure ranged from 0.50 to 0.55 over three runs.)
echo "== throughput: $N messages of $SIZE bytes, $SESSIONS sessions, $RUNS pairs of runs"
start_sluis
pairs=()
for r in $(seq "$RUNS"); do
    d=$(run_source "$sink_port"); v=$(run_source "$sluis_port")
    pairs+=("$d $v")
    python3 -c "print(f'pair $r: smtp-source -> smtp-sink $d msg/s, -> sluis -> smtp-sink $v msg/s, ratio {$v/$d:.2f}')"
done
read -r direct via mean lo hi < <(printf '%s\n' "${pairs[@]}" | python3 -c "
import sys
pairs = sorted((v / d, d, v) for d, v in (map(float, l.split()) for l in sys.stdin))
_, d, v = pairs[len(pairs) // 2]
r = [p[0] for p in pairs]
print(int(d), int(v), f'{sum(r) / len(r):.2f}', f'{r[0]:.2f}', f'{r[-1]:.2f}')")
echo "ratio over the $RUNS pairs         : mean $mean, from $lo to $hi"
echo "smtp-source -> smtp-sink          : $direct msg/s (the median pair)"
echo "smtp-source -> sluis -> smtp-sink : $via msg/s (the median pair)"
if grep -q "451\|ERROR" "$work/sluis.log"; then echo "warning: Sluis logged errors:"; tail -5 "$work/sluis.log"; fi

# A Postfix relay hop in Sluis's place, to a sink that counts (-c): delivered, not just queued.
trap 'stop_postfix hop; cleanup' EXIT
count_port=$(free_port); hop_port=$(free_port)
smtp-sink -u postfix -c 127.0.0.1:"$count_port" 1000 >"$work/count.out" 2>/dev/null & pids+=($!)
wait_banner "$count_port"
postfix_instance hop "$hop_port" "$count_port"
delivered() { tr '\r' '\n' < "$work/count.out" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1; }
t0=$(now)
smtp-source -s "$SESSIONS" -l "$SIZE" -m "$HOP_N" -f bench@org.test -t sink@partner.test 127.0.0.1:"$hop_port"
for _ in $(seq 1200); do [ "$(delivered)" -ge "$HOP_N" ] 2>/dev/null && break; sleep 0.1; done
t1=$(now)
hop=$(python3 -c "print(f'{$(delivered)/($t1-$t0):.0f}')")
echo "smtp-source -> postfix -> smtp-sink: $hop msg/s (until delivered: $(delivered) of $HOP_N)"
stop_postfix hop
python3 -c "print(f'ratio sluis/direct                 : {$via/$direct:.3f} (the median pair; aim: at least 0.5)')"
python3 -c "print(f'ratio sluis/postfix hop            : {$via/$hop:.1f} (aim: at least 4)')"

# Not the aim's layout, printed beside it: above, smtp-source, smtp-sink and Sluis share every
# core, so the ratio is largely that of their CPU per message. Here smtp-source and smtp-sink
# get core 0 and Sluis core 1 (taskset), in both runs: what Sluis relays on a core of its own.
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    taskset -a -p -c 0 "$sink_pid" >/dev/null; taskset -a -p -c 1 "$sluis_pid" >/dev/null
    pdirect=$(run_source "$sink_port" 0); pvia=$(run_source "$sluis_port" 0)
    echo "one core for smtp-source and smtp-sink, one for Sluis (taskset):"
    echo "  smtp-source -> smtp-sink          : $pdirect msg/s"
    echo "  smtp-source -> sluis -> smtp-sink : $pvia msg/s"
    python3 -c "print(f'  ratio sluis/direct               : {$pvia/$pdirect:.2f}')"
    all="0-$(( $(nproc) - 1 ))"
    taskset -a -p -c "$all" "$sink_pid" >/dev/null; taskset -a -p -c "$all" "$sluis_pid" >/dev/null
fi

# End of DATA to the reply, SESSIONS sessions at once: smtp-sink directly, then through Sluis.
# A Rust client, one thread per session (benches/smtp_latency.rs): its own share is microseconds.
latency() { cargo bench --bench smtp_latency --locked -q -- "$1" "$SESSIONS" "$LAT" "$SIZE"; } # port -> "p50 p99" ms
echo "== latency: $SESSIONS sessions x $LAT messages, end of DATA to reply (ms)"
read -r d50 d99 < <(latency "$sink_port")
read -r s50 s99 < <(latency "$sluis_port")
printf '%-34s p50 %6s  p99 %6s\n' "smtp-sink directly" "$d50" "$d99" "through Sluis" "$s50" "$s99"
python3 -c "print(f'Sluis adds                         : p50 {$s50 - $d50:.2f} ms, p99 {$s99 - $d99:.2f} ms (aim: p99 at most 5 ms)')"

echo "== memory: $IDLE idle sessions"
ulimit -n 8192
base=$(rss_kb "$sluis_pid")
python3 - "$sluis_port" "$IDLE" > "$work/idle.out" <<'PY' & idle_pid=$!; pids+=($idle_pid)
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    assert s.recv(100).startswith(b"220")
    socks.append(s)
print("ready", flush=True)
time.sleep(60)
PY
for _ in $(seq 300); do grep -q ready "$work/idle.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$work/idle.out" || { echo "idle sessions did not open"; exit 1; }
sleep 0.5
idle=$(rss_kb "$sluis_pid")
echo "RSS before: $((base / 1024)) MiB; with $IDLE idle sessions: $((idle / 1024)) MiB ($(( (idle - base) / IDLE )) KiB per session)"
kill "$idle_pid" 2>/dev/null || true

# Peak RSS of a fresh process relaying one message of the given MiB.
peak_for() {
    kill "$sluis_pid"; wait "$sluis_pid" 2>/dev/null || true
    start_sluis
    local before after
    before=$(hwm_kb "$sluis_pid")
    smtp-source -s 1 -l $(($1 * 1024 * 1024)) -m 1 -f bench@org.test -t sink@partner.test 127.0.0.1:"$sluis_port"
    after=$(hwm_kb "$sluis_pid")
    echo "peak RSS before: $((before / 1024)) MiB; after relaying $1 MiB: $((after / 1024)) MiB ($2)"
}
echo "== memory: single large messages (memory_buffer 1 MiB, inspect.max_message_size 25 MiB)"
peak_for 40 "over the inspection bound: streamed through the spool"
peak_for 20 "inspected: parsed in memory"
