"""The audit trail's hash chain: every policy change, linked so that an edit shows.

Each row's hash is ``sha256(previous hash + canonical row)``, where the canonical row is the
row's fields as compact, key-sorted JSON.  Changing, inserting or deleting a row breaks the link
of every row after it; deleting the newest rows is caught by the head hash the store keeps
beside the table (``meta.audit_head``).  Pure: the store reads and writes the rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final, NamedTuple

#: The hash before the first row.
GENESIS: Final = "0" * 64
#: The fields a row's hash covers, in the table's order.
FIELDS: Final = ("id", "time", "user", "action", "subject", "before", "after")


def canonical(row: Mapping[str, Any]) -> str:
    """The row's hashed fields as canonical JSON (``before``/``after`` are JSON text already)."""
    return json.dumps({key: row[key] for key in FIELDS}, sort_keys=True, separators=(",", ":"))


def row_hash(previous: str, row: Mapping[str, Any]) -> str:
    return hashlib.sha256((previous + canonical(row)).encode("utf-8")).hexdigest()


def chain_row(
    previous: str,
    *,
    row_id: int,
    time: str,
    user: str,
    action: str,
    subject: str,
    before: object,
    after: object,
) -> dict[str, Any]:
    """The next row of the chain after the one hashed ``previous``: every column, ``prev`` and
    ``hash`` included, as each store inserts it (its ``hash`` is the new head)."""
    row = {
        "id": row_id,
        "time": time,
        "user": user,
        "action": action,
        "subject": subject,
        "before": snapshot_json(before),
        "after": snapshot_json(after),
    }
    return {**row, "prev": previous, "hash": row_hash(previous, row)}


def snapshot_json(value: object) -> str | None:
    """``before``/``after`` as stored: canonical JSON, or ``None`` when there is nothing."""
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Verdict(NamedTuple):
    ok: bool
    rows: int
    bad_row: int | None  # id of the first row whose link or hash is wrong
    problem: str


def verify_chain(rows: Iterable[Mapping[str, Any]], head: str | None) -> Verdict:
    """Walk the chain from the first row; ``head`` is the hash the store recorded last."""
    previous = GENESIS
    count = 0
    for row in rows:
        count += 1
        if row["prev"] != previous:
            return Verdict(False, count, row["id"], f"row {row['id']}: its link to the row before is broken")
        expected = row_hash(previous, row)
        if row["hash"] != expected:
            return Verdict(False, count, row["id"], f"row {row['id']}: its contents do not match its hash")
        previous = expected
    if (head or GENESIS) != previous:
        return Verdict(
            False, count, None, "the newest rows are missing: the chain ends before the recorded head"
        )
    return Verdict(True, count, None, "")
