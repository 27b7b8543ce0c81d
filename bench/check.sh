#!/usr/bin/env bash
# Check with radclient that a running server (FreeRADIUS from freeradius/run.sh, or nac) applies
# the MAB policy: Accept for an ordinary MAC, Access-Reject + Reply-Message for Huawei, Accept +
# VLAN 666 for 00:10:A4, in each of the six MAC spellings; Reject for a non-MAC; silence for a
# request without Message-Authenticator.
#
#   bench/check.sh [PORT] [SECRET]      (default 18120 testing123)
set -euo pipefail

port="${1:-18120}"
secret="${2:-testing123}"
command -v radclient >/dev/null || { echo "check.sh: radclient missing (apt-get install -y freeradius-utils)" >&2; exit 1; }

failures=0
# ask MAC EXPECT_CODE [GREP...]: send one MAB Access-Request, check the reply code and contents.
ask() {
    local mac="$1" expect="$2"
    shift 2
    local out
    out="$(printf '%s\n' \
        "Message-Authenticator = 0x00" \
        "User-Name = \"$mac\"" \
        "User-Password = \"$mac\"" \
        "Calling-Station-Id = \"$mac\"" \
        "Service-Type = Call-Check" \
        "NAS-IP-Address = 127.0.0.1" \
        "NAS-Port-Type = Ethernet" \
        "NAS-Port = 50101" |
        radclient -x -r 1 -t 2 "127.0.0.1:$port" auth "$secret" 2>&1)" || true
    local ok=yes
    grep -q "Received $expect" <<<"$out" || ok=no
    local want
    for want in "$@"; do grep -q -- "$want" <<<"$out" || ok=no; done
    if [[ "$ok" == yes ]]; then
        echo "ok    $mac -> $expect $*"
    else
        echo "FAIL  $mac: wanted $expect $*; got:" >&2
        printf '      %s\n' "${out//$'\n'/$'\n'      }" >&2
        failures=$((failures + 1))
    fi
}

for mac in 3C-22-FB-12-34-56 3c:22:fb:12:34:56 3c22fb123456 3c22.fb12.3456 3c22-fb12-3456 3c22fb-123456 \
    02-AB-CD-00-00-01 00:00:0c:07:ac:01; do
    ask "$mac" Access-Accept
done
for mac in 00-E0-FC-23-19-C0 00:e0:fc:23:19:c0 00e0fc2319c0 00e0.fc23.19c0 00e0-fc23-19c0 00e0fc-2319c0 \
    28:6E:D4:01:02:03; do
    ask "$mac" Access-Reject 'Reply-Message = "Huawei'
done
for mac in 00-10-A4-23-19-C0 00:10:a4:23:19:c0 0010a42319c0 0010.a423.19c0 0010-a423-19c0 0010a4-2319c0; do
    ask "$mac" Access-Accept 'Tunnel-Type:0 = VLAN' 'Tunnel-Medium-Type:0 = IEEE-802' 'Tunnel-Private-Group-Id:0 = "666"'
done
for mac in not-a-mac 00-10-A4-23-19 0010a42319c0x 00:10-a4:23:19:c0; do
    ask "$mac" Access-Reject
done

# require_message_authenticator = yes: a request without one gets no reply at all.
out="$(printf '%s\n' 'User-Name = "3c22fb123456"' 'User-Password = "3c22fb123456"' \
    'Calling-Station-Id = "3c22fb123456"' | radclient -x -r 1 -t 1 "127.0.0.1:$port" auth "$secret" 2>&1)" || true
if grep -q "No reply" <<<"$out"; then
    echo "ok    no Message-Authenticator -> no reply"
else
    echo "FAIL  a request without Message-Authenticator was answered: $out" >&2
    failures=$((failures + 1))
fi

if ((failures)); then
    echo "check.sh: $failures check(s) failed" >&2
    exit 1
fi
echo "check.sh: all checks passed on 127.0.0.1:$port"
