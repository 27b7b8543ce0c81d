"""The CLI's choices are typer enums (typer lists them in --help); the engine's tuples are the
one definition, and the enums may not drift from them."""

from __future__ import annotations

from nac.cli import sessions
from nac.cli.common import Action, Apply
from nac.policy.rules import ACTIONS
from nac.sessions.enforce import APPLY_MODES


def test_apply_offers_the_engines_modes_and_ask() -> None:
    assert [mode.value for mode in Apply] == [*APPLY_MODES, "ask"]
    assert (*APPLY_MODES, "ask") == sessions.APPLY_MODES


def test_action_offers_exactly_the_policys_actions() -> None:
    assert {action.value for action in Action} == set(ACTIONS)
