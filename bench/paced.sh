#!/bin/bash
# The latency goal of issue 9, measured: a full-load run (window 128) finds the peak, then
# paced (open-loop) runs at fractions of it, each against a fresh server and database.
#
#   bench/paced.sh [duration-seconds] [percent ...]      # default: 20 s at 60 70 80 80 %
#
# The server runs on core 0, the generator on core 1; "loop cpu" is the event loop thread's
# CPU over the run (from /proc/PID/task/PID/stat), "peak RSS" the last server's VmHWM.
set -euo pipefail
DURATION=${1:-20}
shift || true
PERCENTS=${*:-60 70 80 80}
PORT=${PORT:-19812}
WORK=$(mktemp -d)
trap 'kill "$(cat "$WORK/pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$WORK"' EXIT
printf 'testing123\n' > "$WORK/secret"

fresh() {
    if [ -f "$WORK/pid" ]; then
        local old
        old=$(cat "$WORK/pid")
        kill "$old" 2>/dev/null || true
        while kill -0 "$old" 2>/dev/null; do sleep 0.2; done
    fi
    rm -f "$WORK"/nac.db*
    python3 -m nac rules add --vendor huawei --action reject --reason x --db "$WORK/nac.db" > /dev/null
    python3 -m nac rules add --oui 00:10:A4 --action quarantine --vlan 666 --db "$WORK/nac.db" > /dev/null
    taskset -c 0 python3 -m nac serve --db "$WORK/nac.db" --bind 127.0.0.1 \
        --auth-port "$PORT" --acct-port $((PORT + 1)) > "$WORK/serve.log" 2>&1 &
    echo $! > "$WORK/pid"
    for _ in $(seq 50); do
        grep -q "ready:" "$WORK/serve.log" && return 0
        sleep 0.2
    done
    echo "the server did not start:" >&2
    cat "$WORK/serve.log" >&2
    exit 1
}

load() {
    taskset -c 1 python3 -m nac bench --secret-file "$WORK/secret" --port "$PORT" --duration "$DURATION" "$@" |
        grep -E "throughput|latency" | tr -s ' ' | tr '\n' ' '
}

loop_cpu() {  # clock ticks of the server's main thread
    local pid
    pid=$(cat "$WORK/pid")
    awk '{print $14 + $15}' "/proc/$pid/task/$pid/stat"
}

fresh
full=$(load --window 128)
echo "full load, window 128: $full"
peak=$(echo "$full" | sed -E 's/.*throughput ([0-9,]+).*/\1/' | tr -d ,)
hz=$(getconf CLK_TCK)
for pct in $PERCENTS; do
    rate=$((peak * pct / 100))
    fresh
    before=$(loop_cpu)
    out=$(load --rate "$rate" --window 1024)
    after=$(loop_cpu)
    echo "paced at ${pct}% ($rate/s): $out loop cpu $(((after - before) * 100 / (hz * DURATION)))%"
done
echo "peak RSS of the last server: $(grep VmHWM "/proc/$(cat "$WORK/pid")/status" | tr -s ' ')"
