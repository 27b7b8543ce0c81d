"""What a device's profile does to the policy's decision: pure, on the request path.

The policy has decided with the profiled family (nac/policy/decide.py applies vendor rules to it when
the MAC has no registry entry).  Here the decision's reason says so, and a profile that
contradicts the MAC's registry entry (an OUI of one maker, DHCP evidence of another: a forged
MAC) is flagged, or quarantined or rejected as ``on_conflict`` says.
"""

from __future__ import annotations

from typing import Final

from nac.policy.decide import REASON_MAX, Decision, Policy
from nac.registry.oui import VendorMatch

SPOOF_SUSPECTED: Final = "builtin:spoof-suspected"
ON_CONFLICT: Final = ("flag", "quarantine", "reject")


def apply_profile(
    policy: Policy, decision: Decision, match: VendorMatch | None, *, mac: int, family: str, on_conflict: str
) -> tuple[Decision, str | None]:
    """The decision with the profile's effect, and the vendor history shows when the maker
    came from the profile (None: it came from the registry)."""
    known = policy.families.get(family)
    name = known.name if known is not None else family
    if match is None:  # randomized or unregistered: the manufacturer is the profile's
        reason = f"{decision.reason} (manufacturer {name} from the device's DHCP profile)"
        return decision._replace(reason=reason[:REASON_MAX]), f"{name} (profiled)"
    if not policy.spoofed(match, family):
        return decision, None
    reason = f"spoof suspected: the MAC's prefix is {match.organization}'s, its DHCP profile says {name}"
    if on_conflict == "flag" or policy.has_mac_rule(mac):  # an operator's exact-MAC rule stands
        return decision._replace(reason=f"{decision.reason} ({reason})"[:REASON_MAX]), None
    vlan = policy.defaults.quarantine_vlan if on_conflict == "quarantine" else None
    # Quarantine needs a VLAN; without a default quarantine VLAN a suspected spoof fails closed.
    action = on_conflict if vlan is not None or on_conflict == "reject" else "reject"
    return Decision(action, vlan, SPOOF_SUSPECTED, reason[:REASON_MAX]), None
