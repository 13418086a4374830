"""Metric gates: each comparison, a metric the service did not report, and the two spellings of
validation accuracy (results.csv's ``validation_mean_token_accuracy``, checkpoints' ``valid_...``)."""

from __future__ import annotations

import pytest
from tunekeeper.reconcile.gates import failed_gates
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
