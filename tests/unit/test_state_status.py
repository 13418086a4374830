"""status(): rows with conditions, from observations and the state file (pure given digests and now)."""

from __future__ import annotations

from datetime import UTC, datetime

from tunekeeper.reconcile import StateFile, record_status, status

from .test_plan import (
    DIGESTS,
    DONE,
    FT_MODEL,
    READY_FILES,
    SPEC,
    ckpt,
    deployment,
    deployment_spec,
    desired,
    job_for,
    observed,
)

T1 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
T2 = datetime(2026, 1, 1, 11, 0, tzinfo=UTC)


def test_running_job_reports_epochs_and_keeps_transition_time() -> None:
    state = StateFile(None)
    running = job_for(SPEC, "running")
    seen = observed(READY_FILES, [running], checkpoints={running.id: (ckpt(10, 0.5), ckpt(20, 0.4))})
    rows = status(desired([SPEC]), seen, state, digests=DIGESTS, now=T1)
    record_status(state, rows)
    (row,) = rows
    ready = row.condition("Ready")
    assert ready is not None and (ready.status, ready.reason) == ("False", "TrainingRunning")
    assert ready.message.startswith("Epoch 2 of 3 finished; checkpoint ftchkpt-20 available")
    assert [c.epoch for c in row.checkpoints] == [1, 2]

    later = status(desired([SPEC]), seen, state, digests=DIGESTS, now=T2)[0].condition("Ready")
    assert later is not None and later.last_transition_time == "2026-01-01T10:00:00Z"
    done = status(desired([SPEC]), observed(READY_FILES, [DONE]), state, digests=DIGESTS, now=T2)[0]
    flipped = done.condition("Ready")
    assert (
        flipped is not None
        and flipped.status == "True"
        and flipped.last_transition_time == "2026-01-01T11:00:00Z"
    )


def test_failed_job_carries_azure_error() -> None:
    failed = job_for(SPEC, "failed", error_code="invalidTrainingFile", error_message="Line 3 is not JSON")
    (row,) = status(desired([SPEC]), observed(READY_FILES, [failed]), None, digests=DIGESTS, now=T1)
    assert row.error == "invalidTrainingFile: Line 3 is not JSON."
    cond = row.condition("Succeeded")
    assert cond is not None and (cond.status, cond.reason) == ("False", "TrainingFailed")


def test_deployment_row_and_json_shape() -> None:
    rows = status(
        desired([SPEC], [deployment_spec()]),
        observed(READY_FILES, [DONE], [deployment(model=FT_MODEL)]),
        None,
        digests=DIGESTS,
        now=T1,
    )
    dep = rows[1].to_dict()
    assert (
        dep["kind"] == "Deployment" and dep["phase"] == "Serving" and dep["provisioning_state"] == "Succeeded"
    )
    assert dep["model"] == FT_MODEL and dep["sku"] == "Standard" and dep["capacity"] == 1
    assert [c["type"] for c in dep["conditions"]] == ["GatesPassed", "Ready"]  # type: ignore[index]
    job = rows[0].to_dict()
    assert [c["type"] for c in job["conditions"]] == ["DataValidated", "Succeeded", "Ready"]  # type: ignore[index]


def test_every_condition_is_written_on_the_first_visit() -> None:
    rows = status(desired([SPEC], [deployment_spec()]), observed(), None, digests=DIGESTS, now=T1)
    assert [[c.status for c in r.conditions] for r in rows] == [
        ["Unknown", "Unknown", "False"],
        ["Unknown", "False"],
    ]
