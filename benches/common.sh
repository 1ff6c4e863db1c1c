# Shared by the SMTP benchmarks (sourced): Postfix for smtp-sink and smtp-source, a release
# build, a scratch directory cleaned up with every process started, and small helpers.
if ! command -v smtp-sink >/dev/null && [ ! -x /usr/sbin/smtp-sink ]; then
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postfix
fi
export PATH="$PATH:/usr/sbin"
cargo build --release --locked -q
SLUIS=$PWD/target/release/sluis

work=$(mktemp -d /tmp/sluis-bench-XXXXXX); chmod 755 "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
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
