"""The user's authorization profile after a successful 802.1X authentication, under the vendor
policy: the device's manufacturer decides first (reject, quarantine), and a user's profile
applies only to a device that decision admits.  History's reason names the user, the groups
and the profile either way, so the helpdesk sees both.  Pure: the profile comes from an
injected lookup (nac/eap/users.py reads it from the database).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from nac.eap.profiles import Authorization
from nac.equipment.clients import Client
from nac.equipment.reply import refuse_vlan_name
from nac.policy.decide import REASON_MAX, Decision

#: History's reason: the vendor decision's own reason and what was said of the user.
NOTED_MAX: Final = 2 * REASON_MAX

Authorize = Callable[[str], Authorization | None]


def user_profile(
    decision: Decision, client: Client, authorize: Authorize | None, identity: str | None
) -> tuple[Decision, Decision, bytes]:
    """(the decision the reply is built from, the one history records, the profile's other
    reply attributes).  The first keeps the vendor decision's reason: a quarantine's
    Reply-Message never names a user, and reply bodies stay few enough to memoize."""
    authz = authorize(identity) if authorize is not None and identity is not None else None
    if authz is None:
        return decision, decision, b""
    said = authz.describe()
    if authz.profile is None:
        return decision, _noted(decision, said), b""
    if decision.action != "accept":
        return (
            decision,
            _noted(decision, f"{said}, not applied: {decision.action} by rule {decision.rule}"),
            b"",
        )
    vlan = authz.settings.vlan
    if vlan is not None and decision.vlan is not None and vlan != decision.vlan:
        # A rule that admits the device into a VLAN is the vendor policy's word: it stands.
        said += f"; VLAN {decision.vlan} of rule {decision.rule} kept"
        vlan = decision.vlan
    applied = decision._replace(vlan=vlan if vlan is not None else decision.vlan)
    if client.vlan_ids_only and applied.vlan is not None:
        refused = refuse_vlan_name(applied, client=client.name, profile=client.profile)
        if refused.action == "reject":
            return refused, _noted(refused, said), b""
    return applied, _noted(applied, said), authz.body


def _noted(decision: Decision, said: str) -> Decision:
    return decision._replace(reason=f"{decision.reason}; {said}"[:NOTED_MAX])
