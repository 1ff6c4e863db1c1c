# Shared by the SMTP benchmarks (sourced): Postfix for smtp-sink and smtp-source, a release
# build, a scratch directory cleaned up with every process started, and small helpers.
if ! command -v smtp-sink >/dev/null && [ ! -x /usr/sbin/smtp-sink ]; then
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postfix
fi
export PATH="$PATH:/usr/sbin"
cargo build --release --locked -q
# The SMTP latency client (benches/smtp_latency.rs), built now so that no run waits for it.
cargo bench --bench smtp_latency --locked -q --no-run 2>/dev/null
SLUIS=$PWD/target/release/sluis

work=$(mktemp -d /tmp/sluis-bench-XXXXXX); chmod 755 "$work"
pids=()
cleanup() { # stops what was started, waits up to 10 s for it to end (Sluis syncs its audit log
    # as it stops: removing its spool under it left the directory behind), then removes $work
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for _ in $(seq 100); do
        local alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
wait_banner() {
    for _ in $(seq 100); do
        python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1',$1)); sys.exit(0 if s.recv(3)==b'220' else 1)" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listening on $1" >&2; exit 1
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

# Postfix instances of the benches (the test harness's services, chroot off), in $work/<name>.
master_cf() { # the instance's smtpd, then the services every test instance has
    echo "127.0.0.1:$1 inet n - n - - smtpd"
    cat tests/fixtures/postfix/master.cf
}

postfix_instance() { # name, smtpd port, relayhost port
    local d="$work/$1"
    mkdir -p "$d/data" "$d/q"; chown postfix "$d/data"
    cat > "$d/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $d/q
data_directory = $d/data
mail_owner = postfix
syslog_name = bench-$1
maillog_file = $d/maillog
maillog_file_prefixes = $work
inet_protocols = ipv4
inet_interfaces = 127.0.0.1
myhostname = $1.bench.test
mydestination =
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:$3
smtpd_peername_lookup = no
# Retry soon: the benches wait for queues to drain.
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 4s
smtp_connect_timeout = 5s
default_destination_concurrency_limit = 20
EOF
    master_cf "$2" > "$d/master.cf"
    start_postfix "$1" "$2"
}

start_postfix() { # name, port: start (again), waiting until its smtpd answers
    local out
    # After a kill -9 its postlogd is gone, and the start's postsuper (as postfix) then writes
    # to the log file itself: postlogd created it as root, so hand it over first.
    [ -f "$work/$1/maillog" ] && chown postfix "$work/$1/maillog"
    for _ in 1 2 3; do
        out=$(script -qec "postfix -c $work/$1 start" /dev/null 2>&1) || true
        for _ in $(seq 50); do
            python3 -c "import socket; socket.create_connection(('127.0.0.1', $2), 0.2)" 2>/dev/null && return 0
            sleep 0.2
        done
    done
    echo "postfix $1 did not start: $out" >&2; tail -5 "$work/$1/maillog" >&2; exit 1
}
stop_postfix() { [ -f "$work/$1/main.cf" ] && postfix -c "$work/$1" stop >/dev/null 2>&1 || true; }

# Debian's PostgreSQL on loopback (fsync on), in $work/pg, as the postgres user; sets pgbin
# and pg_port. Installs the package when missing.
start_postgres() {
    if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql
    fi
    pgbin=$(dirname "$(ls /usr/lib/postgresql/*/bin/postgres | head -1)")
    pg_port=$(free_port)
    mkdir "$work/pg"; chown postgres: "$work/pg"
    runuser -u postgres -- "$pgbin/initdb" -D "$work/pg/data" -U sluis --auth=trust --no-sync -E UTF8 --locale=C >/dev/null
    runuser -u postgres -- "$pgbin/postgres" -D "$work/pg/data" -c listen_addresses=127.0.0.1 \
        -c port="$pg_port" -c unix_socket_directories="$work/pg" >"$work/pg.log" 2>&1 & pids+=($!)
    for _ in $(seq 100); do "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && break; sleep 0.1; done
}
