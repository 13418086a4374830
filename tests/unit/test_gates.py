"""Metric gates: each comparison, a metric the service did not report, and the two spellings of
validation accuracy (results.csv's ``validation_mean_token_accuracy``, checkpoints' ``valid_...``)."""

from __future__ import annotations

import pytest
from tunekeeper.cloud.base import ObservedCheckpoint, ObservedJob
from tunekeeper.reconcile.gates import epochs_of, failed_gates
from tunekeeper.resources.specs import MetricGate

METRICS = {"full_valid_loss": 0.5, "valid_mean_token_accuracy": 0.8}


@pytest.mark.parametrize(("gate", "passes"), [
    (MetricGate("full_valid_loss", "<", 0.6), True),
    (MetricGate("full_valid_loss", "<", 0.5), False),
    (MetricGate("full_valid_loss", "<=", 0.5), True),
    (MetricGate("full_valid_loss", ">", 0.5), False),
    (MetricGate("full_valid_loss", ">=", 0.5), True),
    (MetricGate("validation_mean_token_accuracy", ">=", 0.75), True),
    (MetricGate("validation_mean_token_accuracy", ">=", 0.85), False),
    (MetricGate("valid_mean_token_accuracy", ">", 0.79), True),
])
def test_gate_compares_the_reported_metric(gate: MetricGate, passes: bool) -> None:
    failures = failed_gates([gate], METRICS)
    assert (failures == []) is passes
    if not passes:
        assert "the gate needs" in failures[0]


def test_a_metric_not_reported_fails_its_gate() -> None:
    failures = failed_gates([MetricGate("train_loss", "<", 1.0)], METRICS)
    assert failures == ["train_loss was not reported (gate train_loss < 1)"]


def _job(status: str, n_epochs: object = 8) -> ObservedJob:
    return ObservedJob(id="ftjob-1", status=status, model="gpt-4.1-2025-04-14", training_file="file-1",
                       created_at=0, hyperparameters={"n_epochs": n_epochs})


def _checkpoints(*steps: int) -> list[ObservedCheckpoint]:
    return [ObservedCheckpoint(f"ftchkpt-{s}", "ftjob-1", f"m:ckpt-step-{s}", s, {}, 0) for s in steps]


@pytest.mark.parametrize(("status", "steps", "expected"), [
    # The service holds the last three checkpoints: a running 8-epoch job past epoch 3.
    ("running", (40, 50, 60), [4, 5, 6]),
    ("running", (10,), [1]),
    ("running", (10, 20), [1, 2]),
    ("succeeded", (60, 70, 80), [6, 7, 8]),
])
def test_epochs_of_held_checkpoints(status: str, steps: tuple[int, ...], expected: list[int]) -> None:
    held = _checkpoints(*steps)
    epochs = epochs_of(_job(status), held)
    assert [epochs[c.id] for c in held] == expected
