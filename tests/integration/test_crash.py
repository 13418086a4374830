"""Crash safety and fault tolerance of converge, against the real emulator.

Given the Clippy example, when converge stops after N actions (a crash between any two steps)
and runs again, then the emulator holds exactly one of each data file, job and deployment.
When the emulator answers 429 (with Retry-After) and 503 on the paths apply uses, converge
still converges, with nothing created twice.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from tunekeeper.cloud.base import Cloud
from tunekeeper.reconcile import Action, ActionKind, ActionOutcome, NullSink, StateFile, converge

from . import test_apply
from .test_apply import clock_sleep, example

cloud = test_apply.cloud  # the same fixture: a connected Cloud with the SDK retries shrunk

# The Clippy example takes this many actions from nothing. Pass 1: two uploads, then create_job
# and create_deployment wait (the files were just uploaded, the job does not exist). Pass 2
# (the files processed): create_job, create_deployment waits. Pass 3 (the job is queued):
# wait_job, create_deployment waits. The clock moves 30 emulated seconds; pass 4:
# create_deployment. Passes 1-3 follow each other without sleeping.
FULL_RUN_ACTIONS = 9


def inventory(emulator: Any) -> tuple[list[str], list[str], list[str]]:
    """Training data files, jobs (by suffix) and deployments the emulator holds."""
    files = [d["filename"] for d in emulator.store.list("file")
             if d.get("purpose") == "fine-tune" and d.get("status") not in ("deleted", "deleting")]
    jobs = [d.get("suffix") or "" for d in emulator.store.list("job")]
    deployments = [d["name"] for d in emulator.store.list("deployment")]
    return sorted(files), sorted(jobs), sorted(deployments)


def assert_exactly_one_of_each(emulator: Any) -> None:
    files, jobs, deployments = inventory(emulator)
    assert len(files) == 2 and len(set(files)) == 2, files
    assert all(f.startswith("tk-") for f in files)
    assert jobs == ["clippy"], jobs
    assert deployments == ["clippy"], deployments


class _ProcessingTakesItsTime(NullSink):
    """Moves the clock past a file's processing once its upload finished: whether pass 2 saw the
    file processed (a 2 ms race at speed 1000) would otherwise decide if a wait_file was planned."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator

    def action_finished(self, action: Action, outcome: ActionOutcome) -> None:
        if action.kind is ActionKind.UPLOAD_FILE:
            self.emulator.clock.advance(1.0)  # 1000 s of processing at the test emulator's speed


async def test_full_run_takes_the_expected_number_of_actions(
    emulator: Any, cloud: Cloud, tmp_path: Path
) -> None:
    """Keeps FULL_RUN_ACTIONS honest, so the crash test below stops after every one of them."""
    result = await converge(
        example("clippy", tmp_path),
        {"embedded": cloud},
        events=_ProcessingTakesItsTime(emulator),
        wait=True,
        poll_interval=0.01,
        timeout=120,
        sleep=clock_sleep(emulator),
    )
    assert result.converged
    assert result.actions == FULL_RUN_ACTIONS, result.actions
    assert_exactly_one_of_each(emulator)


@pytest.mark.parametrize("stop_after", range(1, FULL_RUN_ACTIONS + 1))
async def test_crash_after_each_action_then_rerun(
    emulator: Any, cloud: Cloud, tmp_path: Path, stop_after: int
) -> None:
    desired = example("clippy", tmp_path)
    clouds = {"embedded": cloud}
    first = await converge(
        desired,
        clouds,
        state=StateFile.for_root(tmp_path),
        events=_ProcessingTakesItsTime(emulator),
        wait=True,
        poll_interval=0.01,
        timeout=120,
        stop_after=stop_after,
        sleep=clock_sleep(emulator),
    )
    assert first.actions <= stop_after
    # every other rerun also loses the state file: the markers alone must be enough
    state = StateFile.for_root(tmp_path) if stop_after % 2 else StateFile(None)
    second = await converge(desired, clouds, state=state, events=NullSink(), wait=True, poll_interval=0.01,
                            timeout=120, sleep=clock_sleep(emulator))
    assert second.converged, second.to_dict()
    assert_exactly_one_of_each(emulator)
    third = await converge(desired, clouds, state=state, events=NullSink(), wait=False, poll_interval=0.01)
    assert third.converged and third.actions == 0 and third.remaining.actions == ()


@pytest.mark.slow
async def test_converges_through_throttling_and_server_errors(
    emulator: Any, cloud: Cloud, tmp_path: Path
) -> None:
    for pattern, status in [
        ("POST /openai/files", 429), ("GET /openai/files", 503), ("GET /openai/files/*", 503),
        ("POST /openai/fine_tuning/jobs", 429), ("GET /openai/fine_tuning/jobs", 503),
        ("GET /openai/fine_tuning/jobs/*/checkpoints", 503), ("GET /openai/models", 500),
        ("GET */deployments", 503),
    ]:
        emulator.faults.add(pattern, status=status, retry_after=0.05, times=4)
    # ARM waits whole seconds
    emulator.faults.add("PUT */deployments/*", status=429, retry_after=0.05, times=1)
    result = await converge(example("clippy", tmp_path), {"embedded": cloud}, events=NullSink(), wait=True,
                            poll_interval=0.01, timeout=120, sleep=clock_sleep(emulator))
    assert result.converged, result.to_dict()
    assert_exactly_one_of_each(emulator)


@pytest.mark.slow
async def test_faults_that_outlast_the_sdk_retries_are_retried_by_the_next_loop(
    emulator: Any, cloud: Cloud, tmp_path: Path
) -> None:
    emulator.faults.add("POST /openai/fine_tuning/jobs", status=503, retry_after=0.05, times=12)
    # ARM waits whole seconds
    emulator.faults.add("PUT */deployments/*", status=429, retry_after=0.05, times=4)
    result = await converge(example("clippy", tmp_path), {"embedded": cloud}, events=NullSink(), wait=True,
                            poll_interval=0.01, timeout=120, sleep=clock_sleep(emulator))
    assert result.converged, result.to_dict()
    assert result.loops > 3
    assert_exactly_one_of_each(emulator)


async def test_a_job_created_twice_by_a_retried_request_trains_once(emulator: Any, cloud: Cloud,
                                                                      tmp_path: Path) -> None:
    from tunekeeper.cloud.base import JobRequest
    from tunekeeper.resources.specs import Hyperparameters, Method

    # the jobs only (the twin is the point); once the first job exists the clock moves when converge
    # polls, not on its own: at the suite's emulator speed a whole training takes a third of a real
    # second, and a slow observe would let the twin finish training before a plan could see it run
    desired = dataclasses.replace(example("clippy", tmp_path), deployments=())
    await converge(desired, {"embedded": cloud}, events=NullSink(), wait=False, poll_interval=0.01)
    original, emulator.clock.speed = emulator.clock.speed, 1.0
    try:
        (first,) = emulator.store.list("job")
        # the same create again, as an SDK retry after a lost response would send it
        await cloud.create_job(JobRequest(
            model=first["model"], training_file=first["training_file"],
            validation_file=first["validation_file"], method=Method.SUPERVISED,
            hyperparameters=Hyperparameters(n_epochs=3), suffix=first["suffix"], seed=first["seed"],
        ))
        result = await converge(desired, {"embedded": cloud}, events=NullSink(), wait=True,
                                poll_interval=0.01, timeout=120, sleep=clock_sleep(emulator))
    finally:
        emulator.clock.speed = original
    assert result.converged, result.to_dict()
    # the twin was cancelled before it trained, then collected (a cancelled job of this stack holds no model)
    statuses = {d["id"]: d["status"] for d in emulator.store.list("job")}
    assert statuses == {first["id"]: "succeeded"}


async def test_an_upload_the_service_ran_twice_leaves_one_copy(
    emulator: Any, cloud: Cloud, tmp_path: Path
) -> None:
    from tunekeeper.reconcile import compute_digests, markers

    desired = example("clippy", tmp_path)
    ref = desired.jobs[0].training_file
    assert ref.path is not None
    name = markers.remote_filename(ref, compute_digests(desired)[ref.path])
    for _ in range(2):  # a retried upload whose first answer was lost
        await cloud.upload_file(ref.path, filename=name, add_bom=True)
    result = await converge(desired, {"embedded": cloud}, events=NullSink(), wait=True, poll_interval=0.01,
                            timeout=120, sleep=clock_sleep(emulator))
    assert result.converged, result.to_dict()
    assert_exactly_one_of_each(emulator)
