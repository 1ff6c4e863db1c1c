#!/usr/bin/env bash
# Sets up and runs the whole test suite: installs the Debian packages the end-to-end tests use
# (Postfix, smtp-sink, swaks), then runs formatting and lint checks and every test.
# Needs root (apt-get, and Postfix starts as root). Usage: bash tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh: run as root: it installs Debian packages and starts Postfix instances" >&2
    exit 2
fi

packages=(postfix swaks libnet-ssleay-perl libio-socket-ssl-perl openssl knot knot-dnsutils unbound
          nginx prometheus python3 python3-yaml systemd util-linux procps dns-root-data
          postgresql postgresql-client iproute2 chromium)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing: ${missing[*]}"
    # Keep the packaged daemons from starting (and taking port 25) during the install.
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

# The portal's browser tests: Debian's Chromium (above) driven by playwright-core, with axe-core,
# both pinned in tests/browser/package-lock.json. Node.js comes with this kind of machine; a
# machine without it gets Debian's.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm
fi
echo "== npm ci (tests/browser)"
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error

# The checks below need rustfmt and clippy; a minimal Rust toolchain comes without them.
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo check (fuzz targets, so they keep compiling)"
cargo check -p sluis-fuzz --locked --quiet
echo "== cargo test (vendored mail-parser: upstream's own suite against our patch)"
cargo test -p mail-parser --features serde,full_encoding --locked --quiet
echo "== cargo test"
rm -rf target/tmp/sluis-logs
cargo test --all-targets --locked
echo "== logs: no patient identifier in any log of the suite"
bash tests/check_logs.sh
