#!/usr/bin/env bash
# Builds the Debian package: bash deploy/debian/build-deb.sh [OUTDIR]
#   - the binary (SLUIS_BIN=path to use a prebuilt one; otherwise cargo build --release),
#   - the systemd unit (deploy/systemd/sluis.service),
#   - /etc/sluis/sluis.toml (config/sluis.toml with the spool in /var/lib/sluis), a conffile,
#   - sluis(8), the README and the Postfix snippets under /usr/share/doc/sluis.
# Needs only dpkg-deb (dpkg), which every Debian system has.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-target/debian}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
if [ -z "${SLUIS_BIN:-}" ]; then
    cargo build --release --locked
    SLUIS_BIN=target/release/sluis
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
install -D -m 0755 "$SLUIS_BIN" "$stage/usr/bin/sluis"
# Debug information stays out of the package (as dh_strip would do).
if command -v strip >/dev/null; then strip --strip-debug "$stage/usr/bin/sluis"; fi
install -D -m 0644 deploy/systemd/sluis.service "$stage/lib/systemd/system/sluis.service"
install -d -m 0755 "$stage/etc/sluis"
sed 's|^spool_dir = .*|spool_dir = "/var/lib/sluis"|; s|^hostname = .*|# hostname = "sluis.example.org"   # default: this host'"'"'s name|' \
    config/sluis.toml > "$stage/etc/sluis/sluis.toml"
chmod 0644 "$stage/etc/sluis/sluis.toml"
install -D -m 0644 README.md "$stage/usr/share/doc/sluis/README.md"
install -d -m 0755 "$stage/usr/share/doc/sluis/examples/postfix"
install -m 0644 deploy/postfix/*.cf "$stage/usr/share/doc/sluis/examples/postfix/"
install -d -m 0755 "$stage/usr/share/man/man8"
"$stage/usr/bin/sluis" manpage | gzip -9n > "$stage/usr/share/man/man8/sluis.8.gz"
"$stage/usr/bin/sluis" config check --config "$stage/etc/sluis/sluis.toml" > /dev/null

install -d -m 0755 "$stage/DEBIAN"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: sluis
Version: $version
Architecture: $arch
Maintainer: Sluis developers <sluis@localhost>
Section: mail
Priority: optional
Depends: adduser, libc6
Recommends: postfix
Installed-Size: $(du -sk "$stage" | cut -f1)
Homepage: https://localhost/sluis
Description: outbound mail gateway enforcing NTA 7516
 Sluis sits in front of an organisation's MTA and enforces NTA 7516, the Dutch
 standard for secure e-mail in healthcare: it inspects outbound mail for
 patient data, relays it to the MTA lane its TLS requirements call for, and
 never answers 250 before the upstream has accepted a message.
CONTROL
echo /etc/sluis/sluis.toml > "$stage/DEBIAN/conffiles"
cat > "$stage/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if ! getent passwd sluis >/dev/null; then
        adduser --system --group --home /var/lib/sluis --no-create-home \
            --gecos "Sluis mail gateway" sluis >/dev/null
    fi
    install -d -o sluis -g sluis -m 0700 /var/lib/sluis
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null || true
    fi
    echo "sluis: edit /etc/sluis/sluis.toml, check it with 'sluis config check --config /etc/sluis/sluis.toml',"
    echo "sluis: then 'systemctl enable --now sluis'. See /usr/share/doc/sluis/README.md."
fi
exit 0
POSTINST
cat > "$stage/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ "$1" = purge ]; then
    rm -rf /var/lib/sluis
    if getent passwd sluis >/dev/null; then deluser --system sluis >/dev/null || true; fi
fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null || true; fi
exit 0
POSTRM
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/postrm"

mkdir -p "$out"
deb="$out/sluis_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zgzip --build "$stage" "$deb" >/dev/null
echo "$deb"
