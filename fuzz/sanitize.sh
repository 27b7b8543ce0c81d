#!/usr/bin/env bash
# nac's two C modules under AddressSanitizer and UndefinedBehaviorSanitizer: builds them into a
# temporary directory (the in-place nac/*.so are left alone), then runs on that build the tests
# that hold each C function to its Python twin or to the socket methods, the hostile-caller
# tests, and every kept fuzz input once: seeds, crashes, corpus (fuzz/replay.py; no fuzzing).
# Exits non-zero on a failed test or on any sanitizer report.
#   bash fuzz/sanitize.sh [pytest arguments, instead of the default test files]
#   SANITIZE_KEEP=1 bash fuzz/sanitize.sh     (keeps the build and the logs in /tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

# A stock python3 is not built with ASan, so the runtime is preloaded (it must come first).
libasan="$(gcc -print-file-name=libasan.so)"
if [ ! -e "$libasan" ]; then
  echo "sanitize: gcc has no libasan.so (Debian: apt-get install libasan8)" >&2
  exit 2
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/nac-sanitize.XXXXXX")"
trap '[ -n "${SANITIZE_KEEP:-}" ] || rm -rf "$work"' EXIT
mkdir -p "$work/site" "$work/reports"

# -fno-wrapv undoes CPython's -fwrapv, so that a signed overflow in a bound check is reported.
if ! CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -fno-wrapv -g" \
  LDFLAGS="-fsanitize=address,undefined" \
  python3 setup.py build_ext --build-lib "$work/lib" --build-temp "$work/obj" >"$work/build.log" 2>&1; then
  cat "$work/build.log" >&2
  exit 1
fi
for module in _speedups _udp; do
  if ! compgen -G "$work/lib/nac/$module.*.so" >/dev/null; then
    cat "$work/build.log" >&2
    echo "sanitize: nac.$module did not build (setup.py marks it optional)" >&2
    exit 1
  fi
done

# nac itself still comes from the checkout; only its two C modules come from the sanitized
# build.  A sitecustomize does it, so that any python3 a test starts gets them too.
cat >"$work/site/sitecustomize.py" <<'EOF'
import importlib.machinery
import importlib.util
import os
import sys


class _SanitizedModules:
    """nac._speedups and nac._udp from the directory in NAC_SANITIZED."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name not in ("nac._speedups", "nac._udp"):
            return None
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            file = os.path.join(os.environ["NAC_SANITIZED"], name.split(".")[1] + suffix)
            if os.path.exists(file):
                return importlib.util.spec_from_file_location(name, file)
        raise ImportError(f"no sanitized build of {name} in {os.environ['NAC_SANITIZED']}")


sys.meta_path.insert(0, _SanitizedModules)
EOF

# Code under ASan runs a few times slower: hypothesis's 200 ms deadline per example would
# fail tests for being slow, not wrong.
cat >"$work/site/nac_sanitize_profile.py" <<'EOF'
from hypothesis import settings

settings.register_profile("sanitize", deadline=None)
settings.load_profile("sanitize")
EOF

export NAC_SANITIZED="$work/lib/nac"
export PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}"
export LD_PRELOAD="$libasan${LD_PRELOAD:+:$LD_PRELOAD}"
# CPython frees little at exit, so leak reports would be noise.  ASan's reports go to files,
# so that one from a child process counts too; UBSan's runtime ignores log_path, so its
# reports are found in the output (pytest's --capture=sys leaves the C code's stderr alone).
# PYTHONMALLOC=malloc puts every object, not only the C modules' buffers, under ASan.
export ASAN_OPTIONS="detect_leaks=0:log_path=$work/reports/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONMALLOC=malloc
export PYTHONFAULTHANDLER=1

python3 - <<'EOF'
import nac._speedups, nac._udp, os
for module in (nac._speedups, nac._udp):
    assert module.__file__.startswith(os.environ["NAC_SANITIZED"]), module.__file__
EOF

status=0
if [ "$#" -eq 0 ]; then
  set -- tests/test_speedups.py tests/test_udp.py tests/test_c_robustness.py
fi
python3 -m pytest -q -p no:cacheprovider -p nac_sanitize_profile --capture=sys "$@" 2>&1 | tee "$work/run.log" || status=$?
python3 fuzz/replay.py 2>&1 | tee -a "$work/run.log" || status=$?

if compgen -G "$work/reports/*" >/dev/null || grep -q "runtime error:" "$work/run.log"; then
  cat "$work"/reports/* >&2 2>/dev/null || true
  echo "sanitize: sanitizer reports above" >&2
  status=1
fi
echo "sanitize: built and ran in $(( SECONDS - start )) s under ASan+UBSan, exit $status"
exit "$status"
