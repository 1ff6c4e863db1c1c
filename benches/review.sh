#!/usr/bin/env bash
# Reviewers' web interface benchmark (issue 18 point 8): prints figures, asserts nothing
# beyond each step working (performance is measured, not tested).
#
# For each store (files, then PostgreSQL on loopback, fsync on), in the same run: ITEMS held
# messages (smtp-source through a policy that holds everything), a reviewer logged in through
# the login form (password and TOTP code), then wrk keeps CONC connections busy for DURATION
# on the quarantine list: the first page, a page deep in the list, and a filtered list; p50,
# p99 and pages/s of each (aim: p99 under 200 ms at 10 concurrent reviewers, 10,000 items).
#
# Usage: bash benches/review.sh     (root; installs postfix, postgresql and wrk when missing)
# Knobs: ITEMS=10000 CONC=10 DURATION=10s
set -euo pipefail
cd "$(dirname "$0")/.."
ITEMS=${ITEMS:-10000}; CONC=${CONC:-10}; DURATION=${DURATION:-10s}
command -v wrk >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk; }
# shellcheck source=benches/common.sh
source benches/common.sh
start_postgres

sink_port=$(free_port)
smtp-sink -u postfix 127.0.0.1:"$sink_port" 1000 >/dev/null 2>&1 & pids+=($!)
wait_banner "$sink_port"

password="bench-password-for-the-review-list"
secret=$(printf '%s\n' "$password" | "$SLUIS" user add alice --role reviewer --file "$work/users" \
    | awk -F'URI\\): ' '/TOTP secret/ {print $2}')

sluis_port=$(free_port); web_port=$(free_port); sluis_pid=
start_sluis() { # store section
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
$1
[web]
listen = "127.0.0.1:$web_port"
base_url = "https://review.bench.test:$web_port"
users_file = "$work/users"
[[policy.rules]]
name = "hold-all"
action = "quarantine"
CONF
    "$SLUIS" serve --config "$work/sluis.toml" 2>"$work/sluis.log" & sluis_pid=$!; pids+=($sluis_pid)
    wait_banner "$sluis_port"
}

# Logs in as a browser would (the form, its CSRF cookie, password and TOTP code); prints the
# Cookie header the session needs.
login() {
    python3 - "$web_port" "$password" "$secret" <<'PY'
import base64, hashlib, hmac, http.client, ssl, struct, sys, time, urllib.parse
port, password, secret = int(sys.argv[1]), sys.argv[2], sys.argv[3]
key = base64.b32decode(secret + "=" * (-len(secret) % 8))
step = int(time.time()) // 30
digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
o = digest[-1] & 15
code = "%06d" % ((struct.unpack(">I", digest[o:o + 4])[0] & 0x7FFFFFFF) % 1000000)
ctx = ssl._create_unverified_context()
def req(method, path, body=None, cookies=None):
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
    h = {"Cookie": "; ".join(f"{k}={v}" for k, v in (cookies or {}).items())}
    if body is not None:
        h["Content-Type"] = "application/x-www-form-urlencoded"
    c.request(method, path, body, h)
    r = c.getresponse()
    got = {}
    for k, v in r.getheaders():
        if k.lower() == "set-cookie":
            name, val = v.split(";")[0].split("=", 1)
            got[name] = val
    return r.status, r.read().decode(), got
_, page, cookies = req("GET", "/login")
csrf = page.split('name="csrf" value="')[1].split('"')[0]
form = urllib.parse.urlencode({"csrf": csrf, "name": "alice", "password": password, "code": code})
status, _, more = req("POST", "/login", form, cookies)
assert status == 303, status
cookies.update(more)
print("; ".join(f"{k}={v}" for k, v in cookies.items()))
PY
}

measure() { # cookie, path
    wrk -t2 -c"$CONC" -d"$DURATION" --latency -H "Cookie: $1" "https://127.0.0.1:$web_port$2" 2>&1 | awk '
        /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 } /Requests\/sec/ { rps = $2 }
        /Non-2xx/ { bad = $NF }
        END { printf "p50 %8s   p99 %8s   %8s pages/s   %s not 200\n", p50, p99, rps, bad + 0 }'
}

run() { # name, store section
    start_sluis "$2"
    local t0 t1
    t0=$(now)
    smtp-source -s 20 -m "$ITEMS" -f doctor@org.test -t patient@mail.test 127.0.0.1:"$sluis_port"
    t1=$(now)
    echo "== $1: $ITEMS items held in $(python3 -c "print(f'{$t1-$t0:.1f}')") s; $CONC reviewers for $DURATION each"
    # Sleep out the current TOTP step: each login needs a code not used before.
    sleep $((31 - $(date +%s) % 30))
    local cookie
    cookie=$(login)
    # One page first: the list's first reading of the store (every item), which a running
    # server does once and then keeps refreshing in the background.
    python3 -c "import http.client,ssl; c=http.client.HTTPSConnection('127.0.0.1',$web_port,context=ssl._create_unverified_context()); c.request('GET','/quarantine',headers={'Cookie':'''$cookie'''}); r=c.getresponse(); r.read(); assert r.status==200, r.status"
    printf "  %-40s %s\n" "the list, first page" "$(measure "$cookie" /quarantine)"
    printf "  %-40s %s\n" "page 100 (items 5,001-5,050)" "$(measure "$cookie" '/quarantine?page=100')"
    printf "  %-40s %s\n" "filtered (domain and age)" "$(measure "$cookie" '/quarantine?domain=org.test&older_than=1s')"
}

run files ""
run PostgreSQL "$(printf '[store]\nkind = "postgres"\nurl = "postgresql://sluis@127.0.0.1:%s/postgres"\ntls = "off"\n' "$pg_port")"
if grep -q "ERROR" "$work/sluis.log"; then echo "warning: Sluis logged errors:"; tail -5 "$work/sluis.log"; fi
