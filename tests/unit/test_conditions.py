"""set_condition: lastTransitionTime moves only when status flips."""

from __future__ import annotations

from datetime import UTC, datetime

from tunekeeper.reconcile import Condition, set_condition

T1 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
T2 = datetime(2026, 1, 1, 11, 0, tzinfo=UTC)
T3 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_first_visit_stamps_and_appends() -> None:
    conds = set_condition((), Condition("Ready", "Unknown", "NotCreated", "No job yet."), T1)
    conds = set_condition(conds, Condition("Succeeded", "Unknown", "NotCreated"), T1)
    assert [c.type for c in conds] == ["Ready", "Succeeded"]
    assert conds[0].last_transition_time == "2026-01-01T10:00:00Z"


def test_transition_time_moves_only_when_status_flips() -> None:
    conds = set_condition((), Condition("Ready", "False", "TrainingRunning", "Epoch 1 of 3."), T1)
    conds = set_condition(conds, Condition("Ready", "False", "TrainingRunning", "Epoch 2 of 3."), T2)
    assert conds[0].message == "Epoch 2 of 3." and conds[0].last_transition_time == "2026-01-01T10:00:00Z"
    conds = set_condition(conds, Condition("Ready", "True", "TrainingSucceeded", "Done."), T3)
    assert conds[0].status == "True" and conds[0].last_transition_time == "2026-01-01T12:00:00Z"


def test_round_trips_through_the_kubernetes_shape() -> None:
    cond = set_condition((), Condition("Ready", "True", "Serving", "Serving m.", observed_generation=7), T1)[
        0
    ]
    data = cond.to_dict()
    assert data == {"type": "Ready", "status": "True", "reason": "Serving", "message": "Serving m.",
                    "lastTransitionTime": "2026-01-01T10:00:00Z", "observedGeneration": 7}
    assert Condition.from_dict(data) == cond


def test_set_condition_does_not_mutate_its_input() -> None:
    before = set_condition((), Condition("Ready", "False", "A"), T1)
    after = set_condition(before, Condition("Ready", "True", "B"), T2)
    assert before[0].status == "False" and after[0].status == "True"
