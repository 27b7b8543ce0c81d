#!/usr/bin/env bash
# Fuzz one target for a set time: bash fuzz/run.sh TARGET SECONDS
# Crashes land in fuzz/crashes/TARGET/ (each one fixed and kept as a regression test in
# tests/test_fuzz_regressions.py); the corpus grows in fuzz/corpus/TARGET/, from the
# hand-made inputs in fuzz/seeds/TARGET/ where there are some.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?target: decode, handle, eap, mac, prefix, policy or dhcp}"
seconds="${2:-600}"
mkdir -p "fuzz/corpus/$target" "fuzz/crashes/$target"
seeds=()
if [ -d "fuzz/seeds/$target" ]; then seeds=("fuzz/seeds/$target"); fi
exec python3 fuzz/targets.py "$target" -max_total_time="$seconds" -print_final_stats=1 \
  -artifact_prefix="fuzz/crashes/$target/" "fuzz/corpus/$target" "${seeds[@]}"
