#!/usr/bin/env bash
# FreeRADIUS 3.2 as the 802.1X reference for bench/eap_bench.py: Debian's configuration copied
# into DIR, its eap module pointed at the same lab PKI nac uses (`nac certs init`), one user for
# PEAP/TTLS-MSCHAPv2, one client, the default site on 127.0.0.1:PORT; runs in the foreground.
#
#   bench/freeradius/eap.sh DIR PKI PORT SECRET USER PASSWORD
set -euo pipefail
dir="$1" pki="$2" port="$3" secret="$4" user="$5" password="$6"
raddb="$dir/raddb"
rm -rf "$raddb"
mkdir -p "$dir"
cp -a /etc/freeradius/3.0 "$raddb"
sed -i \
    -e 's|^\(\s*\)private_key_password = whatever|\1# the lab key has no password|' \
    -e "s|^\(\s*\)private_key_file = .*|\1private_key_file = $pki/server.key|" \
    -e "s|^\(\s*\)certificate_file = /etc/ssl/certs/ssl-cert-snakeoil.pem|\1certificate_file = $pki/server.pem|" \
    -e "s|^\(\s*\)ca_file = /etc/ssl/certs/ca-certificates.crt|\1ca_file = $pki/ca.pem|" \
    "$raddb/mods-available/eap"
{ printf '%s Cleartext-Password := "%s"\n' "$user" "$password"; cat "$raddb/mods-config/files/authorize"; } \
    >"$raddb/authorize.new"
mv "$raddb/authorize.new" "$raddb/mods-config/files/authorize"
cat >"$raddb/clients.conf" <<EOF
client bench {
	ipaddr = 127.0.0.1
	secret = $secret
	require_message_authenticator = yes
}
EOF
# The default site's four listeners (auth/acct, IPv4/IPv6) on PORT..PORT+3, IPv4 on loopback.
perl -0pi -e '$n=0; s/^(\s*)port = 0$/$1."port = ".('"$port"'+$n++)/mge' "$raddb/sites-enabled/default"
sed -i 's/^\(\s*\)ipaddr = \*$/\1ipaddr = 127.0.0.1/' "$raddb/sites-enabled/default"
sed -i \
    -e "s|^logdir = .*|logdir = $dir|" \
    -e "s|^run_dir = .*|run_dir = $dir|" \
    -e '/^security {/,/^}/{s/^\s*user = .*//;s/^\s*group = .*//;s/^\s*reject_delay = .*/\treject_delay = 0/}' \
    "$raddb/radiusd.conf"
exec freeradius -f -d "$raddb" -l stdout
