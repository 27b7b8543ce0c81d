#!/usr/bin/env bash
# Cold start of the helpdesk commands: each run is a new `nac` process, as when a person types it.
# Builds a database with three rules and 20,000 decisions (indexed, as a running server leaves
# them), then times `nac check`, `nac history --mac`, `nac why` and `nac rules list`: hyperfine
# (apt-get install -y hyperfine) with 2 warm-up runs and 10 timed ones, median in ms.
#
#   bench/cli_cold.sh [DIR]        (default: a fresh temporary directory; its nac.db is reused)
#   NAC_CMD="python3 -m nac" PYTHONPATH=/tmp/old bench/cli_cold.sh DIR    (another checkout)
#
# The `nac` script is resolved past a pyenv shim: the shim is a bash script that runs pyenv
# (~75 ms here) before Python starts, which is not nac's time.  The bundled registry's compiled
# form (nac/registry/cache.py) is made by the warm-up runs if it does not exist yet.
set -euo pipefail

dir="${1:-$(mktemp -d)}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
cd "$dir"  # `python -m nac` puts the working directory first on sys.path
export NAC_DB="$dir/nac.db"
# An installed nac starts from its bytecode; with PYTHONDONTWRITEBYTECODE set, every source
# newer than its .pyc would be compiled again on every run (the warm-up runs write them).
unset PYTHONDONTWRITEBYTECODE
command -v hyperfine >/dev/null || { echo "cli_cold.sh: hyperfine missing (apt-get install -y hyperfine)" >&2; exit 1; }
nac="${NAC_CMD:-$(command -v nac)}"
if [[ -z "${NAC_CMD:-}" ]] && command -v pyenv >/dev/null && pyenv which nac >/dev/null 2>&1; then
    nac="$(pyenv which nac)"
fi

if [[ ! -f "$NAC_DB" ]]; then
    python3 - "$NAC_DB" <<'EOF'
import random, sys, time
from nac.app.facade import Nac
from nac.history.record import HistoryRecord, record_row
from nac.history.tiers import collect_recent, history_count, move_recent, write_batch

nac = Nac(sys.argv[1])
nac.add_rule(kind="vendor", value="huawei", action="reject", reason="ministry ban")
nac.add_rule(kind="oui", value="00:10:A4", action="quarantine", vlan="666")
nac.add_rule(kind="mac", value="00:e0:fc:00:00:01", action="accept", reason="lab exception")
rng = random.Random(1)
now = time.time()
fields = {name: None for name in HistoryRecord._fields}
rows = []
for i in range(20_000):
    mac = "00:e0:fc:12:34:56" if i % 100 == 0 else "00:10:a4:%02x:%02x:%02x" % (rng.randrange(256), rng.randrange(256), i % 256)
    action = "reject" if mac.startswith("00:e0:fc") else "quarantine"
    record = HistoryRecord(**{**fields, "ts": now - (20_000 - i) * 30, "mac": mac, "vendor": "x",
        "prefix": mac[:8].upper(), "prefix_bits": 24, "action": action, "vlan": "666" if action == "quarantine" else None,
        "rule": "r", "reason": "bench", "client": "access-sw1", "nas_ip": "192.0.2.10", "method": "mab",
        "nas_port_id": "Gi1/0/7", "src": "192.0.2.10:50000", "message_authenticator": 1,
        "reply": 3 if action == "reject" else 2, "snapshot": "bench@0"})
    rows.append(record_row(record, 100))
for start in range(0, len(rows), 1000):
    write_batch(nac.store.conn, rows[start:start + 1000], ())
while move_recent(nac.store.conn, 100_000):
    pass
collect_recent(nac.store.conn, 1_000_000)
assert history_count(nac.store.conn) == len(rows), "the indexer dropped rows"
nac.close()
EOF
fi

python="$(command -v python3)"
if command -v pyenv >/dev/null && pyenv which python3 >/dev/null 2>&1; then
    python="$(pyenv which python3)"
fi
hyperfine -N --warmup 2 --runs 10 --export-json "$dir/cli_cold.json" \
    "$python -c pass" \
    "$nac check 00:e0:fc:12:34:56" \
    "$nac history --mac 00:e0:fc:12:34:56" \
    "$nac why 00:e0:fc:12:34:56" \
    "$nac rules list" >/dev/null
python3 - "$dir/cli_cold.json" <<'EOF'
import json, sys
for result in json.load(open(sys.argv[1]))["results"]:
    times = sorted(result["times"])
    command = result["command"].split("/")[-1]
    print(f"{result['median'] * 1000:7.1f} ms median  ({times[0] * 1000:.1f}-{times[-1] * 1000:.1f})  {command}")
EOF
