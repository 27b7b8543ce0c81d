"""The recent tier's on-disk format: one group commit's decisions as one blob.

A blob is ``NACH`` (4 octets), the format version (1 octet), then a MessagePack array
(https://github.com/msgpack/msgpack/blob/master/spec.md) with one array per decision: the
fields of :data:`nac.history.record.HISTORY_COLUMNS`, in that order, each nil, an integer, a
float (64-bit) or a UTF-8 string.  MessagePack is a published format with implementations in
every language, so a file stays readable by any later nac on any Python, and by other tools.

Version 1 is the first.  A reader refuses a version newer than it knows; a later version that
changes the fields says how the older ones are read.

Two smaller blobs serve the MAC index (nac/history/macindex.py), each its own magic, then the
version (1 octet), then a MessagePack array of three arrays of equal length:

* a batch's keys, ``NACK``: the decisions' MACs (nil for none), times and actions, in the
  batch's order, stored beside the batch so that indexing it reads three fields, not 24;
* a posting list, ``NACP``: one MAC's decision ids (ascending), times and actions.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Final

import msgpack

from nac.errors import NacError

MAGIC: Final = b"NACH"
KEYS_MAGIC: Final = b"NACK"
POSTINGS_MAGIC: Final = b"NACP"
VERSION: Final = 1
_HEADER: Final = MAGIC + bytes((VERSION,))
_KEYS_HEADER: Final = KEYS_MAGIC + bytes((VERSION,))
_POSTINGS_HEADER: Final = POSTINGS_MAGIC + bytes((VERSION,))

#: One MAC's decisions, or a batch's keys: ids (or nothing for keys), times, actions.
Columns = tuple[list[Any], list[float], list[str]]
# Surrogates cannot come from nac's own decoding (errors="replace"), but a blob must never fail
# to encode: a failed group commit withholds every reply in it.
_UNICODE_ERRORS: Final = "surrogatepass"

_local = threading.local()


class FormatError(NacError):
    """A blob this nac cannot read: not one of nac's, or from a newer version."""


def _pack(value: object) -> bytes:
    packer = getattr(_local, "packer", None)
    if packer is None:  # a Packer reuses its buffer: a third cheaper than packb; one per thread
        packer = _local.packer = msgpack.Packer(unicode_errors=_UNICODE_ERRORS)
    packed: bytes = packer.pack(value)
    return packed


def encode(rows: Sequence[Sequence[object]]) -> bytes:
    """The blob for ``rows`` (each ``HISTORY_COLUMNS`` in order)."""
    return _HEADER + _pack(rows)


def encode_keys(rows: Sequence[Sequence[object]], mac: int, ts: int, action: int) -> bytes:
    """The keys blob of ``rows``: the fields at ``mac``, ``ts`` and ``action`` of each."""
    return _KEYS_HEADER + _pack(
        ([row[mac] for row in rows], [row[ts] for row in rows], [row[action] for row in rows])
    )


def encode_postings(columns: Columns) -> bytes:
    return _POSTINGS_HEADER + _pack(columns)


def _columns(blob: bytes, magic: bytes, what: str) -> Columns:
    if blob[:4] != magic or len(blob) < 5:
        raise FormatError(f"not a nac {what}")
    if blob[4] > VERSION:
        raise FormatError(f"{what} format {blob[4]} is newer than this nac reads ({VERSION})")
    first, second, third = msgpack.unpackb(blob[5:], raw=False, unicode_errors=_UNICODE_ERRORS)
    if not len(first) == len(second) == len(third):
        raise FormatError(f"{what}: columns of unequal length")
    return first, second, third


def decode_keys(blob: bytes) -> Columns:
    """MACs, times and actions of a batch, in its order."""
    return _columns(blob, KEYS_MAGIC, "history batch keys")


def decode_postings(blob: bytes) -> Columns:
    """Ids, times and actions of one MAC's decisions."""
    return _columns(blob, POSTINGS_MAGIC, "MAC posting list")


def decode(blob: bytes, width: int) -> list[tuple[object, ...]]:
    """The rows in ``blob``, each ``width`` fields long."""
    if blob[:4] != MAGIC or len(blob) < 5:
        raise FormatError("not a nac history batch")
    version = blob[4]
    if version > VERSION:
        raise FormatError(f"history batch format {version} is newer than this nac reads ({VERSION})")
    rows: list[tuple[object, ...]] = list(
        msgpack.unpackb(blob[5:], use_list=False, raw=False, unicode_errors=_UNICODE_ERRORS)
    )
    if any(len(row) != width for row in rows):
        raise FormatError(f"history batch rows are not {width} fields long")
    return rows


def is_current(blob: bytes) -> bool:
    return blob[:4] == MAGIC
