"""What a running server picks up without a restart: rules and registry from the database, the
watched policy file, and the configuration file on SIGHUP.

The server's tick calls PolicyPoller.poll; its signal handler calls PolicyPoller.reload.  The
poller owns the configuration, client table and registry in force and the versions they were
read at; the server reads them from it.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from nac.admission.engine import Engine
from nac.config import Config
from nac.equipment.clients import ClientTable
from nac.equipment.reply import vlan_name_conflicts
from nac.errors import NacError
from nac.history.writer import HistoryWriter
from nac.policy.decide import Policy
from nac.registry.families import Family
from nac.registry.oui import Registry
from nac.resources import load_active_registry
from nac.serve.watch import PolicyWatcher
from nac.store import Store, StoreError

if TYPE_CHECKING:
    from nac.eap.eap import EapServer  # OpenSSL is loaded only when 802.1X is on

#: The server's logger: these lines are the server's, whichever module writes them.
log = logging.getLogger("nac.server")

#: Settings a reload cannot change: the sockets and the database are open already, and the
#: directory's connections and threads are made once.
RESTART_ONLY = ("bind", "auth_port", "acct_port", "db", "journal", "ldap")


class PolicyPoller:
    def __init__(
        self,
        config: Config,
        *,
        store: Store,
        engine: Engine,
        registry: Registry,
        families: Mapping[str, Family],
        clients: ClientTable,
        history: HistoryWriter,
        counters: Counter[str],
        reload_config: Callable[[], Config] | None = None,
        build_eap: Callable[[Config], EapServer | None] | None = None,
    ) -> None:
        self.config = config
        self.clients = clients
        self.registry = registry
        self.store = store
        self.engine = engine
        self.families = families
        self.history = history
        self.counters = counters
        self.rules_version = store.rules_version()
        self.registry_version = store.registry_version()
        self._watcher = PolicyWatcher(config.policy_watch) if config.policy_watch else None
        self._reload_config = reload_config
        self._build_eap = build_eap

    def poll(self) -> None:
        """One tick: the watched policy, then the rules and the registry in the database."""
        if self._watcher is not None:
            self.poll_watch()
        self.poll_rules()
        self.poll_registry()

    def poll_rules(self) -> None:
        """Apply rule changes made by the CLI (or another process) to this server's policy."""
        try:
            version = self.store.rules_version()
        except StoreError as exc:
            log.warning("cannot read the rules version: %s", exc)
            return
        if version == self.rules_version:
            return
        try:
            policy = Policy(
                self.store.rules(),
                registry=self.registry,
                defaults=self.store.defaults(),
                families=self.families,
            )
        except (NacError, StoreError) as exc:
            self.counters["rule_reload_failures"] += 1
            log.error(
                "rules changed (version %d) but cannot be applied: %s; keeping the old rules", version, exc
            )
            self.rules_version = version
            return
        self.engine.policy = policy
        self.rules_version = version
        self.counters["rule_reloads"] += 1
        log.info("rules reloaded: %d rules (version %d)", len(policy.rules), version)
        conflict = vlan_name_conflicts(policy, self.clients.clients)
        if conflict is not None:
            log.warning("%s", conflict)

    def poll_watch(self) -> None:
        """Import the watched policy file or directory when it changes ([policy] watch)."""
        assert self._watcher is not None
        try:
            self._watcher.poll(self.store, self.registry, self.families)
        except StoreError as exc:
            log.error("cannot import the watched policy: %s", exc)

    def poll_registry(self) -> None:
        """Swap in a registry that `nac oui import` wrote, with the policy compiled against it."""
        try:
            version = self.store.registry_version()
        except StoreError as exc:
            log.warning("cannot read the registry version: %s", exc)
            return
        if version == self.registry_version:
            return
        self.registry_version = version
        try:
            registry = load_active_registry(self.store)
            policy = Policy(
                self.store.rules(), registry=registry, defaults=self.store.defaults(), families=self.families
            )
        except (NacError, StoreError) as exc:
            self.counters["registry_reload_failures"] += 1
            log.error(
                "the registry changed but cannot be loaded: %s; keeping %s", exc, self.registry.snapshot.id
            )
            return
        self.registry = registry
        self.engine.policy = policy
        gc.freeze()  # the new registry too: it lives as long as the process (see Server.serve)
        self.counters["registry_reloads"] += 1
        log.info("registry reloaded: %s (%d entries)", registry.snapshot.id, len(registry))

    def reload(self) -> None:
        """SIGHUP / `systemctl reload nac`: clients, secrets and settings from the config file,
        rules and registry from the database.  An invalid config is refused; the old one stays."""
        if self._reload_config is not None:
            try:
                config = self._reload_config()
            except NacError as exc:
                self.counters["config_reload_failures"] += 1
                log.error("reload refused, keeping the running configuration: %s", exc)
                return
            moved = [name for name in RESTART_ONLY if getattr(config, name) != getattr(self.config, name)]
            if moved:
                log.warning("%s changed: takes effect at the next restart", ", ".join(moved))
                config = dataclasses.replace(config, **{name: getattr(self.config, name) for name in moved})
            eap = self.engine.eap
            if self._build_eap is not None:
                try:
                    # Certificates and keys are read again, so a renewed certificate is
                    # used from now on; conversations in progress start over.
                    eap = self._build_eap(config)
                except (NacError, OSError, ValueError) as exc:
                    self.counters["config_reload_failures"] += 1
                    log.error("reload refused, keeping the running configuration: [eap]: %s", exc)
                    return
            self.clients = ClientTable(config.clients)
            self.engine.duplicate_ttl = config.duplicate_ttl
            self.engine.eap = eap
            self.config = config
            self.history.on_failure = config.on_history_failure
            self.history.retention = config.history_retention
            log.info("configuration reloaded from %s: %d clients", config.source, len(config.clients))
        self.rules_version = -1  # re-read the rules even if their version did not move
        self.poll_rules()
        self.poll_registry()
        self.counters["reloads"] += 1
