"""A running job's progress in epochs, from the newest metrics event and the highest checkpoint
step, never from how many checkpoints the service still keeps (only the last three)."""

from __future__ import annotations

import pytest
from tunekeeper.cli._render import _unit
from tunekeeper.cloud.base import ObservedCheckpoint, ObservedEvent, ObservedJob
from tunekeeper.reconcile.apply import trained_epochs


def job(n_epochs: object = 8) -> ObservedJob:
    return ObservedJob(id="ftjob-1", status="running", model="gpt-4.1-2025-04-14", training_file="file-1",
                       created_at=0, hyperparameters={"n_epochs": n_epochs, "batch_size": 1})


def checkpoints(*steps: int) -> tuple[ObservedCheckpoint, ...]:
    return tuple(ObservedCheckpoint(f"ftchkpt-{s}", "ftjob-1", f"m:ckpt-step-{s}", s, {}, s) for s in steps)


def metrics(step: int, total_steps: int) -> ObservedEvent:
    return ObservedEvent(f"ftevent-{step}", step, "info", f"Step {step}/{total_steps}", type="metrics",
                         data={"step": step, "total_steps": total_steps})


@pytest.mark.parametrize(("n_epochs", "held", "events", "expected"), [
    (8, (), (), 0.0),
    (8, (10,), (), 1.0),
    (8, (10, 20), (), 2.0),
    (8, (60, 70, 80), (), 8.0),  # three kept checkpoints, ten steps apart: epoch 8, not 3
    (8, (40, 50, 60), (metrics(65, 80),), 6.5),  # halfway through epoch 7
    (8, (40, 50, 60), (metrics(20, 80),), 6.0),  # an old event does not pull it back
    (8, (), (metrics(90, 80),), 8.0),  # never past the total
    ("auto", (10, 20, 30), (metrics(35, 80),), 3.0),  # total unknown: checkpoints only
])
def test_trained_epochs(n_epochs: object, held: tuple[int, ...], events: tuple[ObservedEvent, ...],
                        expected: float) -> None:
    assert trained_epochs(job(n_epochs), checkpoints(*held), events) == expected


def test_job_bars_are_labelled_in_epochs() -> None:
    assert (_unit("FineTuneJob/clippy"), _unit("File/tk-1-train.jsonl"), _unit("Deployment/clippy")) == \
        ("epochs", "bytes", "")
