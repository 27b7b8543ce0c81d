"""The recent tier's on-disk format: one group commit's decisions as one blob.

A blob is ``NACH`` (4 octets), the format version (1 octet), then a MessagePack array
(https://github.com/msgpack/msgpack/blob/master/spec.md) with one array per decision: the
fields of :data:`nac.history.record.HISTORY_COLUMNS`, in that order, each nil, an integer, a
float (64-bit) or a UTF-8 string.  MessagePack is a published format with implementations in
every language, so a file stays readable by any later nac on any Python, and by other tools.

Version 1 is the first.  A reader refuses a version newer than it knows; a later version that
changes the fields says how the older ones are read.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Final

import msgpack

from nac.errors import NacError

MAGIC: Final = b"NACH"
VERSION: Final = 1
_HEADER: Final = MAGIC + bytes((VERSION,))
# Surrogates cannot come from nac's own decoding (errors="replace"), but a blob must never fail
# to encode: a failed group commit withholds every reply in it.
_UNICODE_ERRORS: Final = "surrogatepass"

_local = threading.local()


class FormatError(NacError):
    """A blob this nac cannot read: not one of nac's, or from a newer version."""


def encode(rows: Sequence[Sequence[object]]) -> bytes:
    """The blob for ``rows`` (each ``HISTORY_COLUMNS`` in order)."""
    packer = getattr(_local, "packer", None)
    if packer is None:  # a Packer reuses its buffer: a third cheaper than packb; one per thread
        packer = _local.packer = msgpack.Packer(unicode_errors=_UNICODE_ERRORS)
    packed: bytes = packer.pack(rows)
    return _HEADER + packed


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
