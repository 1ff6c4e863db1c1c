#!/usr/bin/env bash
# Kill soak: prints figures, asserts nothing; takes minutes, so it is not part of CI.
#
# A real Postfix in front (its queue and retries) relays N messages, each with a unique
# Message-ID, through a hop to smtp-sink, which keeps every message it receives. While they
# flow, the hop is killed with SIGKILL K times at random moments and started again at once.
# Then the front queue is drained and the sink's messages counted: lost (never arrived) and
# duplicated (arrived more than once). The hop is Sluis (deliver-everything policy, audit log
# on), then a Postfix relay hop in its place, in the same run.
#
# Usage: bash benches/soak.sh     (root; installs postfix when missing)
# Knobs: N=1500 KILLS=100 SENDERS=4
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1500}; KILLS=${KILLS:-100}; SENDERS=${SENDERS:-4}

# shellcheck source=benches/common.sh
source benches/common.sh

trap 'stop_postfix front; stop_postfix hop; cleanup' EXIT
queued() { postqueue -c "$work/$1" -p 2>/dev/null | grep -c '^[0-9A-F]' || true; }

# Every process of a Postfix instance: its master and the children in its session.
kill9_postfix() {
    local master
    master=$(head -1 "$work/$1/q/pid/master.pid" 2>/dev/null | tr -d ' ')
    [ -n "$master" ] || return 0
    pkill -9 -s "$(ps -o sid= -p "$master" | tr -d ' ')" 2>/dev/null || true
}

sink_port=$(free_port); front_port=$(free_port); hop_port=$(free_port)
mkdir -p "$work/sink"; chown postfix "$work/sink"
# -d: each message to its own file (strftime template plus a random suffix).
smtp-sink -u postfix -d "$work/sink/%H%M%S." 127.0.0.1:"$sink_port" 1000 >/dev/null 2>&1 & pids+=($!)
wait_banner "$sink_port"

send_all() { # run tag: N messages to the front Postfix, SENDERS sessions at once
    python3 - "$front_port" "$N" "$SENDERS" "$1" <<'PY'
import smtplib, sys, threading
port, n, senders, tag = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def send(start):
    s = smtplib.SMTP("127.0.0.1", port)
    for i in range(start, n, senders):
        msg = (f"From: <soak@org.test>\r\nTo: <r@partner.test>\r\nSubject: soak {i}\r\n"
               f"Message-ID: <{tag}-{i}@soak.test>\r\n\r\nmessage {i}\r\n")
        s.sendmail("soak@org.test", ["r@partner.test"], msg)
    s.quit()
ts = [threading.Thread(target=send, args=(k,)) for k in range(senders)]
[t.start() for t in ts]; [t.join() for t in ts]
PY
}

count() { # tag -> "lost duplicated"
    grep -h -o "^Message-ID: <$1-[0-9]*@soak.test>" -r "$work/sink" 2>/dev/null | sort | uniq -c |
        awk -v n="$N" '{seen++; if ($1 > 1) dup += $1 - 1} END {printf "%d %d\n", n - seen, dup}'
}

drain() { # instance: flush until its queue is empty (at most 10 minutes)
    for _ in $(seq 300); do
        [ "$(queued "$1")" = 0 ] && return 0
        postqueue -c "$work/$1" -f 2>/dev/null || true
        sleep 2
    done
    echo "warning: $1 still has $(queued "$1") queued after 10 minutes" >&2
}

# The killer: KILLS times, wait a random 0.05-0.6 s, kill -9 the hop, start it again.
soak() { # tag, kill command, start command
    local tag=$1 t0
    send_all "$tag" & local sender=$!
    t0=$(now)
    for _ in $(seq "$KILLS"); do
        sleep "$(python3 -c 'import random; print(round(random.uniform(0.05, 0.6), 3))')"
        $2; $3
    done
    wait "$sender"
    drain front
    read -r lost dup < <(count "$tag")
    printf '%-18s %d kills in %.0f s: %d of %d lost, %d duplicated\n' \
        "$tag" "$KILLS" "$(python3 -c "print($(now) - $t0)")" "$lost" "$N" "$dup"
}

# 1. Sluis as the hop.
cat > "$work/sluis.toml" <<CONF
[server]
hostname = "soak.test"
listen = ["127.0.0.1:$hop_port"]
spool_dir = "$work/spool"
[log]
level = "warn"
[upstream.lanes.default]
address = "127.0.0.1:$sink_port"
[[policy.rules]]
name = "deliver"
action = "deliver"
CONF
sluis_pid=
start_sluis() {
    "$SLUIS" serve --config "$work/sluis.toml" 2>>"$work/sluis.log" & sluis_pid=$!; pids+=($sluis_pid)
    wait_banner "$hop_port"
}
kill_sluis() { kill -9 "$sluis_pid" 2>/dev/null || true; wait "$sluis_pid" 2>/dev/null || true; }
start_sluis
postfix_instance front "$front_port" "$hop_port"
echo "== $N messages through a Postfix front, the hop killed $KILLS times"
soak sluis kill_sluis start_sluis
log="$work/spool/audit/audit.jsonl"
unknown=$(grep -c '"unknown":true' "$log" || true)
written=$(grep -c '"positive_reply":"written"' "$log" || true)
read_n=$(grep -c '"positive_reply":"read"' "$log" || true)
repeats=$(grep -c '"repeat_of"' "$log" || true)
echo "   (Sluis's audit log: outcomes the kills cut off, recorded at the next start: $unknown with"
echo "    \"unknown\" ($written of them with the 250 being written), $read_n with the 250 read;"
echo "    $repeats retries of a message whose reply a kill cut off, answered, not delivered again)"
kill_sluis

# 2. A Postfix relay hop in Sluis's place, on the same port.
postfix_instance hop "$hop_port" "$sink_port"
start_hop() { start_postfix hop "$hop_port"; }
soak postfix-hop "kill9_postfix hop" start_hop
drain hop
read -r lost dup < <(count postfix-hop)
printf '%-18s after draining the hop too: %d lost, %d duplicated\n' postfix-hop "$lost" "$dup"
stop_postfix hop; stop_postfix front
