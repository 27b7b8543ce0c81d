"""Follow a policy file or directory (`[policy] watch`), as configuration management or git
distributes it to every nac node: an edit is checked whole and imported atomically, as
`nac policy import` does; a broken edit is refused and the rules in force stay.

A directory holds several ``*.toml`` files read in name order: their rules together make the
policy (ids unique across files), and at most one of them may set ``[defaults]``/``[groups]``.
The 802.1X user groups of all files (``[user_groups.NAME]``, each name in one file) replace the
database's when any file has them (nac/eap/groupfile.py); the server reads them at each
authentication, so the next one uses them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from nac.errors import NacError, PolicyError
from nac.policy.decide import Defaults, Policy, Rule
from nac.policy.file import diff_policies, load_policy_file
from nac.registry.families import Family
from nac.registry.oui import Registry
from nac.store import Store

if TYPE_CHECKING:
    from pyrad.dictionary import Dictionary

    from nac.eap.profiles import Profile

log = logging.getLogger("nac.watch")


class PolicyWatcher:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._dictionary: Dictionary | None = None  # loaded at the first file with user groups

    def files(self) -> list[Path]:
        if self.path.is_dir():
            return sorted(p for p in self.path.glob("*.toml") if p.is_file())
        return [self.path]

    def signature(self) -> tuple[tuple[str, int, int], ...]:
        out = []
        for path in self.files():
            try:
                stat = path.stat()
            except OSError:
                continue
            out.append((str(path), stat.st_mtime_ns, stat.st_size))
        return tuple(out)

    def load(self, registry: Registry, families: Mapping[str, Family]) -> tuple[Defaults, list[Rule]]:
        """Every file parsed and the whole policy compiled against the registry, or PolicyError."""
        files = self.files()
        if not files:
            raise PolicyError(f"{self.path}: no policy file (*.toml)")
        defaults: Defaults | None = None
        defaults_from = ""
        rules: list[Rule] = []
        seen: dict[str, str] = {}
        for path in files:
            file_defaults, file_rules = load_policy_file(path)
            text = path.read_text(encoding="utf-8")
            if "[defaults]" in text or "[groups]" in text:
                if defaults is not None:
                    raise PolicyError(
                        f"{path}: [defaults] or [groups] again (already set in {defaults_from})"
                    )
                defaults, defaults_from = file_defaults, str(path)
            for rule in file_rules:
                if rule.id in seen:
                    raise PolicyError(f"{path}: rule id {rule.id!r} is used in {seen[rule.id]} too")
                seen[rule.id] = str(path)
            rules.extend(file_rules)
        defaults = defaults or Defaults()
        policy = Policy(rules, registry=registry, defaults=defaults, families=families)
        for rule in rules:
            if rule.kind == "vendor" and not policy.covered(rule.value):
                raise PolicyError(
                    f"{seen[rule.id]}: rule {rule.id}: vendor {rule.value!r} matches no organisation in the "
                    f"registry ({registry.snapshot.id})"
                )
        return defaults, rules

    def user_groups(self) -> dict[str, Profile] | None:
        """Every file's user groups together, or None when no file has any; PolicyError."""
        from nac.eap.groupfile import SECTION, parse_user_groups  # noqa: PLC0415 - pyrad
        from nac.resources import load_dictionary  # noqa: PLC0415

        groups: dict[str, Profile] | None = None
        where: dict[str, str] = {}
        for path in self.files():
            text = path.read_text(encoding="utf-8")
            if SECTION not in text:  # most files have none: no dictionary, no second parse
                continue
            if self._dictionary is None:
                self._dictionary = load_dictionary()
            found = parse_user_groups(text, origin=str(path), dictionary=self._dictionary)
            if found is None:
                continue
            for name in found:
                if name in where:
                    raise PolicyError(f"{path}: user group {name!r} is set in {where[name]} too")
                where[name] = str(path)
            groups = {**(groups or {}), **found}
        return groups

    def poll(self, store: Store, registry: Registry, families: Mapping[str, Family]) -> bool:
        """Import the files if they changed since the last look; True if the rules changed."""
        signature = self.signature()
        if signature == self._signature:
            return False
        self._signature = signature
        try:
            defaults, rules = self.load(registry, families)
            groups = self.user_groups()
        except (NacError, OSError, UnicodeDecodeError) as exc:
            log.error("policy %s refused, the rules in force stay: %s", self.path, exc)
            return False
        diff = diff_policies(store.defaults(), store.rules(), defaults, rules)
        regrouped = groups is not None and _groups_differ(store, groups)
        if not (diff.added or diff.removed or diff.changed or diff.defaults or regrouped):
            return False
        try:
            subject = str(self.path)
            store.set_policy(defaults, rules, action="policy.watch", subject=subject, user_groups=groups)
        except NacError as exc:  # a removed user group that users still belong to
            log.error("policy %s refused, the rules in force stay: %s", self.path, exc)
            return False
        log.info(
            "policy %s imported: %d rules (%d added, %d removed, %d changed)%s",
            self.path,
            len(rules),
            len(diff.added),
            len(diff.removed),
            len(diff.changed),
            f", {len(groups)} user groups" if groups is not None else "",
        )
        return True


def _groups_differ(store: Store, groups: Mapping[str, Profile]) -> bool:
    from nac.eap.groups import read_groups  # noqa: PLC0415 - pyrad

    return read_groups(store.conn) != dict(groups)
