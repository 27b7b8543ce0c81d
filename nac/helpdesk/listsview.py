"""The helpdesk page's ban-list section: per list in force, the devices refused under it, by
site (the NAS client's group in the policy, else the client's name).  Built on the server as
escaped HTML, so it needs no script and shows what `nac stats` counts."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from nac.app.lists import ListTally


def lists_section(tallies: Sequence[ListTally], *, since: str | None) -> str:
    """The section's HTML (empty when no list is in force)."""
    if not tallies:
        return ""
    span = f"the last {since}" if since else "all history"
    out = [f"<h2>Ban lists in force: devices refused by site ({escape(span)})</h2>"]
    for tally in tallies:
        out.append(
            f'<table class="banlist" data-list="{escape(tally.banlist)}"><caption>'
            f"{escape(tally.banlist)}: {tally.devices_rejected} devices refused "
            f"({tally.rejected} refusals)</caption>"
            "<thead><tr><th>site</th><th>devices refused</th><th>refusals</th><th>decisions</th>"
            "</tr></thead><tbody>"
        )
        for site in tally.sites:
            out.append(
                f"<tr><td>{escape(site.site)}</td><td>{site.devices_rejected}</td>"
                f"<td>{site.rejected}</td><td>{site.decisions}</td></tr>"
            )
        if not tally.sites:
            out.append('<tr><td colspan="4">no decisions under this list</td></tr>')
        out.append("</tbody></table>")
    return "\n".join(out)
