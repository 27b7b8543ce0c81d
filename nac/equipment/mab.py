"""MAB requests as each kind of equipment shapes them: where the device's MAC is, and what
its password is.  Pure: the admission engine calls it on every MAB request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, NamedTuple

from nac.registry.mac import try_parse_mac

#: Where the device's MAC is read from in a MAB request.
MAC_FROM: Final = ("user-name", "calling-station-id", "either")
#: What the password of a MAB request is checked against.
PASSWORDS: Final = ("mac", "fixed", "mac-or-fixed", "none")


@dataclass(frozen=True, kw_only=True)
class MabShape:
    """How one kind of equipment asks about a device by its MAC."""

    mac_from: str = "user-name"
    #: The fixed User-Name a "calling-station-id" shape sends (Huawei's and H3C's `macauth`);
    #: None: any User-Name that is not itself the MAC.
    account: str | None = None
    check: str = "mac"  # one of PASSWORDS: what the password must be
    password_file: str | None = None
    #: The fixed password, read from password_file when the client is configured.
    fixed: bytes | None = field(default=None, repr=False)

    def describe(self) -> str:
        """What a request from this shape must look like, for refusals and `nac clients`."""
        where = {
            "user-name": "User-Name = the MAC",
            "calling-station-id": "Calling-Station-Id = the MAC"
            + (f" with User-Name {self.account!r}" if self.account else ""),
            "either": "User-Name = the MAC, or Calling-Station-Id = the MAC"
            + (f" with User-Name {self.account!r}" if self.account else ""),
        }[self.mac_from]
        password = {
            "mac": "password = the MAC",
            "fixed": "the fixed password",
            "mac-or-fixed": "password = the MAC or the fixed password",
            "none": "no password checked",
        }[self.check]
        return f"{where}, {password}"



class MabRead(NamedTuple):
    """The device's MAC, or why the request is no MAB request this client's shape sends."""

    mac: int | None
    #: "not-a-mac" (no MAC where the shape puts it), "not-mab" (another shape: an account
    #: name that is not the configured one, or two MACs that disagree); None when read.
    refusal: str | None = None
    reason: str = ""
    #: Whether the MAC was User-Name (else Calling-Station-Id): MAB passwords spell it so.
    from_user: bool = True


def read_mac(user: bytes | None, calling: bytes | None, shape: MabShape) -> MabRead:
    """The MAC a MAB request is about, read as ``shape`` says."""
    user_mac = try_parse_mac(user.decode("latin-1")) if user is not None else None
    calling_mac = try_parse_mac(calling.decode("latin-1")) if calling is not None else None
    if user_mac is not None and shape.mac_from != "calling-station-id":
        if calling is not None and calling != user and calling_mac != user_mac:
            return MabRead(None, "not-mab", "Calling-Station-Id names another device than User-Name")
        return MabRead(user_mac)
    shown = user.decode(errors="replace") if user is not None else "(none)"
    if shape.mac_from == "user-name":
        if calling_mac is not None:
            return MabRead(None, "not-mab", f"User-Name {shown!r} is not a MAC address")
        return MabRead(None, "not-a-mac", f"User-Name {shown!r} is not a MAC address")
    if calling_mac is None:
        return MabRead(None, "not-a-mac", "Calling-Station-Id is not a MAC address")
    if shape.account is not None and (user is None or user.decode(errors="replace") != shape.account):
        return MabRead(None, "not-mab", f"User-Name {shown!r} is not the MAB account {shape.account!r}")
    return MabRead(calling_mac, from_user=False)
