"""Network device profiles: how each family of switch or controller does MAC authentication
and dynamic authorization, as reviewable data (``nac/data/equipment.toml``, plus an
operator's file of the same format), with per-client overrides in ``[[client]]``.

A profile says where the device's MAC is (User-Name, or Calling-Station-Id behind a fixed
account name), what the password is (the MAC, a fixed password from a file, or none), and how
a re-authorization is spelled.  ``generic`` is what nac did before profiles: User-Name and
password are the MAC, RFC 5176 CoA.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from nac.equipment.coa import BOUNCE, DEFAULT_SESSION, DISCONNECT, REAUTH, check_session
from nac.equipment.mab import MAC_FROM, PASSWORDS, MabShape
from nac.equipment.reply import ReplyShape, parse_reply
from nac.errors import ConfigError

SHIPPED: Final = Path(__file__).resolve().parent.parent / "data" / "equipment.toml"
DEFAULT: Final = "generic"
#: The profile settings a [[client]] may override, with their config key.
OVERRIDES: Final = {
    "mab_mac_from": "mac_from",
    "mab_account": "account",
    "mab_password": "check",
    "mab_password_file": "password_file",
}
_KEYS: Final = {"title", "docs", "mab", "coa", "reply"}
_MAB_KEYS: Final = {"mac_from", "account", "password"}
_COA_KEYS: Final = {"reauth", "bounce", "disconnect", "session"}


@dataclass(frozen=True, kw_only=True)
class NasProfile:
    name: str
    title: str = ""
    docs: tuple[str, ...] = ()
    mab: MabShape = field(default_factory=MabShape)
    reauth: str = "rfc5176"
    #: Cisco's bounce-host-port for a VLAN change of a wired MAB device, or "none".
    bounce: str = "none"
    disconnect: str = "rfc5176"
    #: The identifying attributes its Disconnect and CoA requests carry (nac/equipment/coa.py).
    session: tuple[str, ...] = DEFAULT_SESSION
    #: How it takes a decision's VLAN: tunnel attributes, a role (nac/equipment/reply.py).
    reply: ReplyShape = field(default_factory=ReplyShape)
    origin: str = ""


def load_profiles(extra: str | None = None) -> dict[str, NasProfile]:
    """The shipped profiles, then an operator's file (whose profiles may replace shipped ones)."""
    profiles = parse_profiles(SHIPPED.read_text(encoding="utf-8"), origin=str(SHIPPED))
    if extra is not None:
        try:
            text = Path(extra).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{extra}: cannot read the equipment profiles: {exc.strerror}") from None
        profiles.update(parse_profiles(text, origin=extra))
    return profiles


def parse_profiles(text: str, *, origin: str) -> dict[str, NasProfile]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: {exc}") from None
    return {name: _profile(name, raw, origin) for name, raw in data.items()}


def _profile(name: str, raw: Any, origin: str) -> NasProfile:
    where = f"{origin}: [{name}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    _known(raw, _KEYS, where)
    mab = raw.get("mab", {})
    coa = raw.get("coa", {})
    if not isinstance(mab, dict) or not isinstance(coa, dict):
        raise ConfigError(f"{where}: mab and coa are tables")
    _known(mab, _MAB_KEYS, f"{where} mab")
    _known(coa, _COA_KEYS, f"{where} coa")
    docs = raw.get("docs", [])
    if not isinstance(docs, list) or not all(isinstance(d, str) for d in docs):
        raise ConfigError(f"{where}: docs is a list of references")
    shape = check_shape(
        MabShape(
            mac_from=mab.get("mac_from", "user-name"),
            account=mab.get("account"),
            check=mab.get("password", "mac"),
        ),
        where=where,
        configured=False,
    )
    for key, allowed in (("reauth", REAUTH), ("bounce", BOUNCE), ("disconnect", DISCONNECT)):
        if coa.get(key, allowed[0]) not in allowed:
            raise ConfigError(f"{where}: coa.{key} must be one of {', '.join(allowed)}")
    session = check_session(coa["session"], where=f"{where} coa") if "session" in coa else DEFAULT_SESSION
    return NasProfile(
        name=name,
        title=str(raw.get("title", "")),
        docs=tuple(docs),
        mab=shape,
        reauth=coa.get("reauth", "rfc5176"),
        bounce=coa.get("bounce", "none"),
        disconnect=coa.get("disconnect", "rfc5176"),
        session=session,
        reply=parse_reply(raw.get("reply", {}), where=where),
        origin=origin,
    )


def check_shape(shape: MabShape, *, where: str, configured: bool = True) -> MabShape:
    """Validate a shape; for a configured client, read its fixed password file."""
    if shape.mac_from not in MAC_FROM:
        raise ConfigError(f"{where}: mac_from must be one of {', '.join(MAC_FROM)}")
    if shape.check not in PASSWORDS:
        raise ConfigError(f"{where}: password must be one of {', '.join(PASSWORDS)}")
    if shape.account is not None and (not isinstance(shape.account, str) or not shape.account):
        raise ConfigError(f"{where}: account must be a non-empty user name")
    if not configured:
        return shape
    if shape.check == "fixed" and shape.password_file is None:
        raise ConfigError(f"{where}: a fixed MAB password needs mab_password_file")
    if shape.password_file is None:
        return shape
    try:
        fixed = Path(shape.password_file).read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read mab_password_file: {exc.strerror}") from None
    if not fixed:
        raise ConfigError(f"{where}: mab_password_file {shape.password_file} is empty")
    return replace(shape, fixed=fixed)


def client_shape(
    profile: NasProfile, overrides: Mapping[str, Any], *, where: str
) -> MabShape:
    """The profile's MAB shape with a client's ``mab_*`` overrides, checked and ready."""
    changes = {OVERRIDES[key]: value for key, value in overrides.items() if key in OVERRIDES}
    for key, value in changes.items():
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: mab_{key} must be a non-empty string")
    return check_shape(replace(profile.mab, **changes), where=where)


def _known(raw: Mapping[str, Any], keys: set[str], where: str) -> None:
    unknown = sorted(set(raw) - keys)
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}")
