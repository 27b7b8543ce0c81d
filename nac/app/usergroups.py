"""A policy file's 802.1X user groups (``[user_groups.NAME]``, nac/eap/groupfile.py) in the
policy commands: checked with the rest of the file, shown by `nac policy check` and `diff`,
imported in the rules' transaction and audit row, and written back by `nac policy export`.

They live in the SQLite database beside the users (nac/eap/users.py); PostgreSQL shares
neither yet, so a file that has them is refused there rather than imported without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from nac.app.results import PolicyImport
from nac.errors import PolicyError
from nac.policy.decide import Defaults, Rule
from nac.policy.file import PolicyDiff, diff_policies
from nac.policy.stored import PolicyStore
from nac.resources import load_dictionary
from nac.store import Store

if TYPE_CHECKING:
    from nac.eap.profiles import Profile

# nac/eap's modules load pyrad: imported where they are used, so other commands do without.


def file_groups(path: str | Path, store: PolicyStore) -> dict[str, Profile] | None:
    """The file's user groups, checked as `nac groups add` checks them, or None when it has no
    ``[user_groups]`` table; PolicyError for a bad one, or for any on PostgreSQL."""
    from nac.eap.groupfile import parse_user_groups  # noqa: PLC0415

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read: {exc.strerror}") from None
    groups = parse_user_groups(text, origin=str(path), dictionary=load_dictionary())
    if groups is not None and not isinstance(store, Store):
        raise PolicyError(
            f"{path}: [user_groups] cannot be imported into PostgreSQL (802.1X users and groups are"
            " not shared there yet): take them out of the file and give each server its groups in"
            " its own database (nac groups add --db FILE, or [policy] watch on the server)"
        )
    return groups


def policy_diff(
    store: PolicyStore, path: str | Path, defaults: Defaults, rules: Sequence[Rule]
) -> tuple[PolicyDiff, dict[str, Profile] | None]:
    """What importing the file changes, its user groups included, and those groups; refused
    when the file would remove a group that users belong to."""
    from nac.eap.groupfile import diff_user_groups  # noqa: PLC0415
    from nac.eap.groups import read_groups, refuse_removing_members  # noqa: PLC0415

    diff = diff_policies(store.defaults(), store.rules(), defaults, rules)
    groups = file_groups(path, store)
    if groups is None or not isinstance(store, Store):
        return diff, groups
    old = read_groups(store.conn)
    refuse_removing_members(store.conn, old.keys() - groups.keys(), origin=str(path))
    return replace(diff, user_groups=diff_user_groups(old, groups)), groups


def checked_count(
    store: PolicyStore, path: str | Path, defaults: Defaults, rules: Sequence[Rule]
) -> int | None:
    """`nac policy check`: how many user groups the file has (None: no table), once they pass
    every check an import makes."""
    groups = policy_diff(store, path, defaults, rules)[1]
    return None if groups is None else len(groups)


def import_policy(
    store: PolicyStore, path: str | Path, defaults: Defaults, rules: Sequence[Rule], *, warnings: list[str]
) -> PolicyImport:
    """Replace the defaults, every rule and (when the file has them) the user groups, in one
    transaction and one audit row."""
    diff, groups = policy_diff(store, path, defaults, rules)
    if groups is not None and isinstance(store, Store):
        store.set_policy(defaults, rules, action="policy.import", subject=str(path), user_groups=groups)
    else:
        store.set_policy(defaults, rules, action="policy.import", subject=str(path))
    return PolicyImport(
        **{f.name: getattr(diff, f.name) for f in fields(diff)},  # the diff, user groups and all
        file=str(path),
        rules=len(rules),
        rules_version=store.rules_version(),
        warnings=warnings,
    )


def export(store: PolicyStore) -> str:
    """The database's user groups as policy-file tables (nothing on PostgreSQL, or with none)."""
    from nac.eap.groupfile import dump_user_groups  # noqa: PLC0415
    from nac.eap.groups import read_groups  # noqa: PLC0415

    return dump_user_groups(read_groups(store.conn)) if isinstance(store, Store) else ""
