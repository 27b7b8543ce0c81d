"""Run every kept fuzz input once through its target, without atheris: the hand-made
starting inputs in fuzz/seeds/TARGET/ (a MAB request with and without Message-Authenticator,
Proxy-State, EAP, Status-Server, Accounting; the MAC spellings), the crashes in
fuzz/crashes/TARGET/ and, where a fuzzing run left one, the corpus in fuzz/corpus/TARGET/.

    python3 fuzz/replay.py [TARGET ...]      (all targets when none is named)

Exits non-zero, naming the file, when an input fails its target's contract.  fuzz/sanitize.sh
runs it on the C modules built with AddressSanitizer.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
sys.path.insert(0, str(FUZZ))

from targets import TARGETS  # noqa: E402 - fuzz/ is not a package


def replay(names: list[str]) -> int:
    failures = 0
    for name in names:
        target = TARGETS[name]
        inputs = sorted(
            path
            for kind in ("seeds", "crashes", "corpus")
            for path in (FUZZ / kind / name).glob("*")
            if path.is_file()
        )
        start = time.monotonic()
        for path in inputs:
            try:
                target(path.read_bytes())
            except Exception as exc:  # any exception at all breaks the target's contract
                failures += 1
                where = path.relative_to(FUZZ.parent)
                print(f"replay: {where}: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"replay: {name}: {len(inputs)} inputs in {time.monotonic() - start:.1f} s")
    return failures


def main() -> None:
    names = sys.argv[1:] or list(TARGETS)
    unknown = [name for name in names if name not in TARGETS]
    if unknown:
        raise SystemExit(f"usage: {sys.argv[0]} [{'|'.join(TARGETS)} ...]; unknown: {', '.join(unknown)}")
    if replay(names):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
