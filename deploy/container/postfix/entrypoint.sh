#!/bin/sh
# Builds main.cf/master.cf from Debian's defaults plus the shipped Sluis snippets, then runs
# Postfix in the foreground. ROLE=front: relayhost is Sluis (deploy/postfix/relayhost-main.cf).
# ROLE=upstream: the lanes (deploy/postfix/lanes-master.cf), bound to the container's address.
set -e
cp /usr/share/postfix/main.cf.dist /etc/postfix/main.cf
cat >> /etc/postfix/main.cf <<CONF
maillog_file = /dev/stdout
mynetworks = 127.0.0.0/8 ${MYNETWORKS}
myhostname = ${ROLE}.compose.test
CONF
case "$ROLE" in
front)
    sed "s/\[127.0.0.1\]:2525/[${SLUIS_HOST}]:${SLUIS_PORT}/" /snippets/relayhost-main.cf >> /etc/postfix/main.cf
    ;;
upstream)
    sed "s/127.0.0.1:\(1002[5-7]\) inet/0.0.0.0:\1 inet/; s|mynetworks=127.0.0.0/8|mynetworks=127.0.0.0/8,${MYNETWORKS}|; s|socketmap:inet:127.0.0.1:8461:|socketmap:inet:${SLUIS_HOST}:${SLUIS_POLICY_PORT}:|" \
        /snippets/lanes-master.cf >> /etc/postfix/master.cf
    sed "s|sluis.example.org=smtp:\[127.0.0.1\]:2526|${SLUIS_HOSTNAME}=smtp:[${SLUIS_HOST}]:${SLUIS_REPORT_PORT}|" \
        /snippets/lanes-main.cf >> /etc/postfix/main.cf
    ;;
*)
    echo "entrypoint: ROLE must be front or upstream" >&2; exit 2
    ;;
esac
exec postfix start-fg
