#!/usr/bin/env bash
# Hostile inputs: prints, for each, the gateway's peak RSS (VmHWM of a fresh process) and the
# time it took; asserts nothing (limits are tested in tests/hostile.rs, figures measured here).
#
#   nested   one message of 100,000 nested message/rfc822 parts (3 MB)
#   parts    one message of 100,000 parts (1 MB) to 40 recipients
#   bsns     one message of 20 MB, a BSN with context on every line (~900,000 findings)
#   slow     200 sessions trickling a command a byte at a time
#   auth     60 concurrent AUTH attempts with a wrong password (argon2, 19 MiB each)
#
# Usage: bash benches/hostile.sh   (root; installs postfix for smtp-sink and swaks)
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=benches/common.sh
source benches/common.sh
hwm_mib() { awk '/^VmHWM/ {printf "%d", $2/1024}' "/proc/$1/status"; }

sink_port=$(free_port)
smtp-sink -u postfix 127.0.0.1:"$sink_port" 1000 >/dev/null 2>&1 & pids+=($!)
wait_banner "$sink_port"

printf 'wrong-is-not-this\n' | "$SLUIS" passwd ehr > "$work/credentials"

# A fresh gateway for each input, so that its peak RSS is that input's.
start_sluis() {
    port=$(free_port)
    cat > "$work/sluis.toml" <<CONF
[server]
hostname = "bench.test"
listen = ["127.0.0.1:$port"]
spool_dir = "$work/spool-$port"
allow_networks = ["127.0.0.1/32"]
[limits]
sessions = 1000
sessions_per_client = 1000
[timeouts]
command = "5s"
[log]
level = "warn"
[auth]
enabled = true
credentials_file = "$work/credentials"
[upstream.lanes.default]
address = "127.0.0.1:$sink_port"
[[policy.rules]]
name = "refuse-uninspectable"
action = "refuse"
when = { uninspectable = true }
[[policy.rules]]
name = "deliver"
action = "deliver"
CONF
    "$SLUIS" serve --config "$work/sluis.toml" 2>"$work/sluis-$port.log" & sluis_pid=$!; pids+=($sluis_pid)
    wait_banner "$port"
}

report() { # name, seconds, what happened
    printf '%-7s peak RSS %4s MiB  %6.2f s  %s\n' "$1" "$(hwm_mib "$sluis_pid")" "$2" "$3"
    kill "$sluis_pid"; wait "$sluis_pid" 2>/dev/null || true
}

send_file() { # port, file, recipients -> seconds and the reply
    python3 - "$1" "$2" "$3" <<'PY'
import smtplib, sys, time
port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
data = open(path, "rb").read()
t0 = time.time()
s = smtplib.SMTP("127.0.0.1", port, timeout=120)
try:
    s.sendmail("a@org.test", [f"r{i}@partner.test" for i in range(n)], data)
    reply = "250"
except smtplib.SMTPException as e:
    reply = str(e)[:60]
s.quit()
print(f"{time.time() - t0:.2f} {reply}")
PY
}

python3 - "$work" <<'PY'
import random, sys
w = sys.argv[1]
open(f"{w}/nested.eml", "wb").write(
    b"From: a@org.test\r\nSubject: n\r\nContent-Type: message/rfc822\r\n\r\n"
    + b"Content-Type: message/rfc822\r\n\r\n" * 100000 + b"Subject: i\r\n\r\nhi\r\n")
open(f"{w}/parts.eml", "wb").write(
    b'From: a@org.test\r\nSubject: many\r\nContent-Type: multipart/mixed; boundary="z"\r\n\r\n'
    + b"--z\r\n\r\nx\r\n" * 100000 + b"--z--\r\n")
def bsn():
    while True:
        d = [random.randint(0, 9) for _ in range(8)]
        s = sum((9 - i) * d[i] for i in range(8))
        for last in range(10):
            if (s - last) % 11 == 0:
                return "".join(map(str, d)) + str(last)
with open(f"{w}/bsns.eml", "wb") as f:
    f.write(b"From: a@org.test\r\nSubject: lijst\r\n\r\n")
    size = 0
    while size < 20 * 1024 * 1024:
        line = ("BSN %s patient\r\n" % bsn()).encode()
        f.write(line)
        size += len(line)
PY

echo "== hostile inputs, one fresh gateway each (release build)"
start_sluis; read -r secs reply < <(send_file "$port" "$work/nested.eml" 1); report nested "$secs" "reply $reply"
start_sluis; read -r secs reply < <(send_file "$port" "$work/parts.eml" 40)
audit=$(stat -c %s "$work/spool-$port/audit/audit.jsonl"); report parts "$secs" "reply $reply; audit log $audit bytes"
start_sluis; read -r secs reply < <(send_file "$port" "$work/bsns.eml" 1); report bsns "$secs" "reply $reply"

start_sluis
secs=$(python3 - "$port" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
socks = []
for _ in range(200):
    s = socket.create_connection(("127.0.0.1", port)); s.recv(100); socks.append(s)
t0 = time.time(); closed = 0
# One byte a second per session, at most 15 s: the 5 s command timeout must end them all.
for _ in range(15):
    for s in socks:
        try:
            s.send(b"N")
        except OSError:
            pass
    time.sleep(1)
    closed = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(200).startswith(b"421"):
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    if closed == len(socks):
        break
print(f"{time.time() - t0:.2f} {closed}")
PY
)
read -r t closed <<<"$secs"; report slow "$t" "$closed of 200 trickling sessions cut off by the command timeout"

start_sluis
secs=$(python3 - "$port" <<'PY'
import smtplib, ssl, sys, time, threading
port = int(sys.argv[1])
# From 60 addresses: the per-address back-off would otherwise queue them one after another.
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
refused = []
def guess(i):
    s = smtplib.SMTP("127.0.0.1", port, timeout=120, source_address=(f"127.0.5.{i + 1}", 0))
    s.starttls(context=ctx)
    try:
        s.login("ehr", "guess-%d" % i)
    except smtplib.SMTPAuthenticationError:
        refused.append(i)
    s.quit()
t0 = time.time()
ts = [threading.Thread(target=guess, args=(i,)) for i in range(60)]
for t in ts: t.start()
for t in ts: t.join()
print(f"{time.time() - t0:.2f} {len(refused)}")
PY
)
read -r t refused <<<"$secs"; report auth "$t" "$refused of 60 wrong passwords refused (auth.check_memory 128 MiB: 6 checks at once)"
