"""Sync and health, the two axes of status (pure): health from the Ready reason, sync from the plan."""

from __future__ import annotations

import pytest
from tunekeeper.reconcile.health import health_of, sync_of
from tunekeeper.reconcile.model import Blocked, Plan, Reason, ResourceKey

KEY = ResourceKey("Deployment", "support-bot")


@pytest.mark.parametrize(("reason", "serving", "paused", "health"), [
    ("Serving", True, False, "Healthy"),
    ("TrainingSucceeded", False, False, "Healthy"),
    ("TrainingRunning", False, False, "Progressing"),
    ("Provisioning", False, False, "Progressing"),
    ("NotDeployed", False, False, "Missing"),
    ("TrainingFailed", False, False, "Degraded"),
    ("GateFailed", False, False, "Degraded"),  # nothing serves
    ("GateFailed", True, False, "Healthy"),  # the previous model still serves
    ("Serving", True, True, "Suspended"),
    ("SomethingNew", False, False, "Unknown"),
])
def test_health(reason: str, serving: bool, paused: bool, health: str) -> None:
    assert health_of(reason, "why.", serving=serving, paused=paused).status == health


def test_a_gate_that_failed_while_the_previous_model_serves_says_so() -> None:
    axis = health_of("GateFailed", "full_valid_loss 2.1 < 1.5 failed.", serving=True)
    assert axis.message == "Still serving the previous model. full_valid_loss 2.1 < 1.5 failed."


def test_sync_from_the_plan() -> None:
    blocked = Plan("2", "f", (), (Blocked(KEY, Reason.GATE_FAILED, "The gate failed.", "prod"),))
    assert sync_of(KEY, "prod", Plan("2", "f", ())).status == "Synced"
    assert (sync_of(KEY, "prod", blocked).status, sync_of(KEY, "prod", blocked).message) == (
        "OutOfSync", "Blocked (gate failed): The gate failed.")
    assert sync_of(KEY, "dev", blocked).status == "Synced"  # another account's resource of that name
    assert sync_of(KEY, "prod", None).status == "Unknown"
