"""One error tree; the type says whose fault it was (h11's Local/RemoteProtocolError)."""

from __future__ import annotations


class NacError(Exception):
    """Base of every error nac raises on purpose."""


class PacketError(NacError):
    """The peer sent something we must drop: malformed, unverifiable or not allowed.

    ``reason`` is a short, stable token used as the drop counter's label and in the log line.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ConfigError(NacError):
    """The operator's configuration is wrong; names the file, line and setting."""


class PolicyError(NacError):
    """A rule or policy file is wrong; names the rule (and file and line where there is one)."""


class InvalidMacError(NacError, ValueError):
    """A string is not a MAC address in a spelling that real gear uses."""


class InvalidPrefixError(NacError, ValueError):
    """A string is not a 24-, 28- or 36-bit IEEE prefix."""


class DatabaseFileError(NacError):
    """The database file cannot be used as asked: missing, unreadable, read-only, not a nac
    database, or made by a newer nac.  Names the file and the cause, in one line."""
