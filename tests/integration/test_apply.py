"""The reconcile core against the real emulator, through the real cloud implementation.

Given manifests from ``manifests/examples``, when ``converge`` runs, then the emulator holds the
files, job and deployment, status says so, and a fresh plan is empty. Time moves with the
emulator clock (``sleep`` advances it), never with real sleeping beyond a yield.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from tunekeeper.cloud import CloudSettings, connect
from tunekeeper.cloud.base import Cloud
from tunekeeper.errors import StalePlan
from tunekeeper.reconcile import (
    ActionKind,
    NullSink,
    Outcome,
    Reason,
    StateFile,
    apply,
    compute_digests,
    converge,
    markers,
    observe,
    plan,
    status,
)
from tunekeeper.resources import load
from tunekeeper.resources.specs import AccountSpec, AuthSpec, Desired

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"


def account_for(emulator: Any) -> AccountSpec:
    return AccountSpec(
        name="embedded", endpoint=emulator.url, management_endpoint=emulator.url,
        subscription_id=emulator.config.subscription_id, resource_group=emulator.config.resource_group,
        account_name=emulator.config.account_name, auth=AuthSpec(kind="apiKey", api_key_env="X"),
    )


# The SDKs' own retry policies stay on, with delays shrunk so fault tests take seconds.
FAST = CloudSettings(max_retries=2, arm_retry_total=2, arm_retry_backoff_factor=0.01, polling_interval=0.01,
                     conflict_initial_delay=0.01, conflict_max_delay=0.05)


@pytest.fixture
async def cloud(emulator: Any) -> AsyncIterator[Cloud]:
    client = await connect(account_for(emulator), api_key="test-key", settings=FAST)
    try:
        yield client
    finally:
        await client.close()


def example(name: str, tmp_path: Path) -> Desired:
    """An example folder copied under ``tmp_path``: a whole stack (its own tunekeeper.yaml), complete."""
    from tunekeeper.resources.stack import with_stack

    shutil.copytree(EXAMPLES / name, tmp_path / name)
    desired, _ = load([tmp_path / name], root=tmp_path)
    return with_stack(desired, [tmp_path / name])


def clock_sleep(emulator: Any) -> Callable[[float], Awaitable[None]]:
    """Polling advances the emulator's clock instead of waiting for it."""
    async def sleep(seconds: float) -> None:
        emulator.clock.advance(max(seconds, 1.0) * 30)
        await asyncio.sleep(0)
    return sleep


def held(emulator: Any) -> tuple[list[str], list[str], list[str]]:
    """What the emulator holds: file names, job ids, deployment names (deleted ones left out)."""
    files = [
        d["filename"] for d in emulator.store.list("file") if d.get("status") not in ("deleted", "deleting")
    ]
    jobs = [d["id"] for d in emulator.store.list("job")]
    deployments = [d["name"] for d in emulator.store.list("deployment")]
    return sorted(files), sorted(jobs), sorted(deployments)


async def test_converge_clippy_to_a_serving_deployment(emulator: Any, cloud: Cloud, tmp_path: Path) -> None:
    desired = example("clippy", tmp_path)
    state = StateFile.for_root(tmp_path)
    result = await converge(desired, {"embedded": cloud}, state=state, events=NullSink(), wait=True,
                            poll_interval=0.01, timeout=120, sleep=clock_sleep(emulator))
    assert result.converged, result.to_dict()

    files, jobs, deployments = held(emulator)
    assert len(jobs) == 1 and deployments == ["clippy"]
    assert len(files) >= 2 and all(markers.is_owned_filename(f) for f in files if "results" not in f)

    account = account_for(emulator)
    observation = await observe(cloud, account, desired, cache=StateFile.for_root(tmp_path))
    assert observation.requests == 4  # finished job details come from the state file
    again = plan(desired, {"embedded": observation}, digests=compute_digests(desired),
                 known=StateFile.for_root(tmp_path).known())
    assert again.actions == () and again.matched == 2

    rows = {r.name + r.kind: r for r in status(desired, {"embedded": observation}, state)}
    job_row, dep_row = rows["clippyFineTuneJob"], rows["clippyDeployment"]
    assert job_row.ready and job_row.job_id == jobs[0] and job_row.fine_tuned_model
    assert [c.epoch for c in job_row.checkpoints] == [1, 2, 3]
    assert job_row.metrics is not None and "train_loss" in job_row.metrics.final
    assert dep_row.ready and dep_row.deployment and dep_row.deployment.model == job_row.fine_tuned_model
    deployed = await cloud.get_deployment("clippy")
    assert deployed.tags[markers.MANAGED_BY] == "tunekeeper"
    assert deployed.tags[markers.RESOURCE_TAG] == "Deployment/clippy"
    answer = await cloud.chat("clippy", [{"role": "user", "content": "What is the capital of France?"}])
    assert answer


async def test_without_wait_returns_after_the_progress_possible_now(emulator: Any, cloud: Cloud,
                                                                    tmp_path: Path) -> None:
    desired = example("clippy", tmp_path)
    first = await converge(desired, {"embedded": cloud}, events=NullSink(), wait=False, poll_interval=0.01)
    _, jobs, deployments = held(emulator)
    assert len(jobs) == 1 and deployments == []  # training takes emulated time; nothing was waited for
    assert not first.converged
    emulator.clock.advance(24 * 3600)
    second = await converge(desired, {"embedded": cloud}, events=NullSink(), wait=False, poll_interval=0.01)
    assert second.converged, second.to_dict()
    assert held(emulator)[1] == jobs and held(emulator)[2] == ["clippy"]


async def test_continuous_chain_trains_from_the_parent_model(
    emulator: Any, cloud: Cloud, tmp_path: Path
) -> None:
    desired = example("continuous", tmp_path)
    result = await converge(desired, {"embedded": cloud}, events=NullSink(), wait=True, poll_interval=0.01,
                            timeout=120, sleep=clock_sleep(emulator))
    assert result.converged, result.to_dict()
    jobs = {d["suffix"]: d for d in emulator.store.list("job")}
    assert set(jobs) == {"ferry-tone", "ferry-facts"}
    assert jobs["ferry-facts"]["model"] == jobs["ferry-tone"]["fine_tuned_model"]
    assert held(emulator)[2] == ["ferry"]


async def test_capacity_change_updates_in_place_and_removed_manifest_deletes(
    emulator: Any, cloud: Cloud, tmp_path: Path
) -> None:
    desired = example("clippy", tmp_path)
    clouds = {"embedded": cloud}
    await converge(desired, clouds, events=NullSink(), wait=True, poll_interval=0.01, timeout=120,
                   sleep=clock_sleep(emulator))
    import dataclasses

    bigger = dataclasses.replace(
        desired, deployments=(dataclasses.replace(desired.deployments[0], capacity=2),)
    )
    obs = await observe(cloud, account_for(emulator), bigger)
    p = plan(bigger, {"embedded": obs}, digests=compute_digests(bigger))
    assert [(a.kind, a.reason) for a in p.actions] == [(ActionKind.UPDATE_DEPLOYMENT, Reason.SPEC_CHANGED)]
    import json

    from tunekeeper.reconcile import Plan, render_plan
    # a plan saved by `plan -o json`, applied later
    saved = Plan.from_dict(json.loads(render_plan(p, "json")))
    result = await apply(saved, bigger, clouds, events=NullSink())
    assert [o.outcome for _, o in result.outcomes] == [Outcome.DONE]
    assert (await cloud.get_deployment("clippy")).capacity == 2

    # a saved plan made before someone else changed the deployment is refused
    stale = plan(desired, {"embedded": await observe(cloud, account_for(emulator), desired)},
                 digests=compute_digests(desired))
    op = await cloud.begin_update_deployment("clippy", capacity=3)
    await op.result()
    with pytest.raises(StalePlan, match="Deployment/clippy changed after the plan was made"):
        await apply(stale, desired, clouds, events=NullSink())

    jobs_only = dataclasses.replace(desired, deployments=())
    result2 = await converge(jobs_only, clouds, events=NullSink(), wait=True, poll_interval=0.01, timeout=60,
                             sleep=clock_sleep(emulator))
    assert result2.converged and held(emulator)[2] == []


async def test_drift_recreates_a_vanished_deployment(emulator: Any, cloud: Cloud, tmp_path: Path) -> None:
    desired = example("clippy", tmp_path)
    state = StateFile.for_root(tmp_path)
    await converge(
        desired,
        {"embedded": cloud},
        state=state,
        events=NullSink(),
        wait=True,
        poll_interval=0.01,
        timeout=120,
        sleep=clock_sleep(emulator),
    )
    op = await cloud.begin_delete_deployment("clippy")
    await op.result()
    obs = await observe(cloud, account_for(emulator), desired)
    p = plan(
        desired,
        {"embedded": obs},
        digests=compute_digests(desired),
        known=StateFile.for_root(tmp_path).known(),
    )
    assert [(a.kind, a.reason) for a in p.actions] == [(ActionKind.CREATE_DEPLOYMENT, Reason.DRIFT)]
    result = await converge(
        desired,
        {"embedded": cloud},
        state=StateFile.for_root(tmp_path),
        events=NullSink(),
        wait=True,
        poll_interval=0.01,
        timeout=60,
        sleep=clock_sleep(emulator),
    )
    assert result.converged and held(emulator)[2] == ["clippy"] and len(held(emulator)[1]) == 1


async def test_bad_data_file_is_reported_not_retried(emulator: Any, cloud: Cloud, tmp_path: Path) -> None:
    desired = example("clippy", tmp_path)
    training = desired.jobs[0].training_file.path
    assert training is not None
    training.write_text('{"messages": "not a list"}\n')
    result = await converge(desired, {"embedded": cloud}, events=NullSink(), wait=True, poll_interval=0.01,
                            timeout=60, sleep=clock_sleep(emulator))
    assert result.settled and not result.converged
    assert [(str(b.target).split("/")[0], b.reason) for b in result.remaining.blocked] == [
        ("Deployment", Reason.JOB_FAILED), ("File", Reason.FILE_FAILED), ("FineTuneJob", Reason.FILE_FAILED)]
    assert any("not a list" in b.message for b in result.remaining.blocked)
    job_row = next(r for r in result.statuses if r.kind == "FineTuneJob")
    data = job_row.condition("DataValidated")
    assert data is not None and data.status == "False" and "not a list" in data.message
    assert held(emulator)[1] == []  # no training on bad data


async def test_replacement_allowed_retrains_once_and_refused_changes_nothing(
    emulator: Any, cloud: Cloud, tmp_path: Path
) -> None:
    import dataclasses

    from tunekeeper.errors import ReplacementNotAllowed
    from tunekeeper.resources.specs import Hyperparameters

    desired = example("clippy", tmp_path)
    clouds = {"embedded": cloud}
    state = StateFile.for_root(tmp_path)
    await converge(
        desired,
        clouds,
        state=state,
        events=NullSink(),
        wait=True,
        poll_interval=0.01,
        timeout=120,
        sleep=clock_sleep(emulator),
    )
    (old_job,) = held(emulator)[1]
    job = desired.jobs[0]
    changed = dataclasses.replace(job, hyperparameters=Hyperparameters(n_epochs=2))

    refused = dataclasses.replace(desired, jobs=(changed,))
    with pytest.raises(ReplacementNotAllowed) as info:
        await converge(refused, clouds, state=state, events=NullSink(), wait=False)
    assert "clippy.yaml:3" in info.value.message and "spec.hyperparameters.n_epochs" in info.value.message
    assert held(emulator)[1] == [old_job]

    allowed = dataclasses.replace(desired, jobs=(dataclasses.replace(changed, allow_replacement=True),))
    result = await converge(allowed, clouds, state=state, events=NullSink(), wait=True, poll_interval=0.01,
                            timeout=120, sleep=clock_sleep(emulator))
    assert result.converged, result.to_dict()
    (new_job,) = [j for j in held(emulator)[1] if j != old_job]
    assert held(emulator)[1] == sorted([old_job, new_job])  # trained once more; the replaced model is kept
    deployed = await cloud.get_deployment("clippy")
    assert f"ft-{new_job.removeprefix('ftjob-')}" in deployed.model_name
    again = await converge(allowed, clouds, state=state, events=NullSink(), wait=False)
    assert again.converged and again.actions == 0


async def test_failed_job_reports_azure_error_and_is_not_retried(
    emulator: Any, cloud: Cloud, tmp_path: Path
) -> None:
    import dataclasses

    from tunekeeper.resources.specs import Method

    desired = example("clippy", tmp_path)
    wrong_method = dataclasses.replace(
        desired, jobs=(dataclasses.replace(desired.jobs[0], method=Method.DPO),)
    )
    result = await converge(
        wrong_method,
        {"embedded": cloud},
        events=NullSink(),
        wait=True,
        poll_interval=0.01,
        timeout=120,
        sleep=clock_sleep(emulator),
    )
    assert result.settled and not result.converged
    assert len(held(emulator)[1]) == 1 and held(emulator)[2] == []
    row = next(r for r in result.statuses if r.kind == "FineTuneJob")
    succeeded = row.condition("Succeeded")
    assert succeeded is not None and succeeded.status == "False" and succeeded.reason == "TrainingFailed"
    assert row.error and "invalid" in row.error
    again = await converge(wrong_method, {"embedded": cloud}, events=NullSink(), wait=False)
    assert again.actions == 0 and len(held(emulator)[1]) == 1


async def test_observe_cost_does_not_grow_with_manifests(emulator: Any, cloud: Cloud, tmp_path: Path) -> None:
    import dataclasses

    desired = example("clippy", tmp_path)
    many = dataclasses.replace(
        desired,
        jobs=tuple(
            dataclasses.replace(desired.jobs[0], name=f"clippy-{i}", suffix=f"c{i}") for i in range(50)
        ),
        deployments=tuple(
            dataclasses.replace(
                desired.deployments[0],
                name=f"clippy-{i}",
                model=dataclasses.replace(desired.deployments[0].model, from_job=f"clippy-{i}"),
            )
            for i in range(50)
        ),
    )
    one = await observe(cloud, account_for(emulator), desired)
    fifty = await observe(cloud, account_for(emulator), many)
    assert one.requests == fifty.requests == 4


async def test_shared_data_is_uploaded_once_and_urls_are_imported(
    emulator: Any, cloud: Cloud, tmp_path: Path
) -> None:
    import dataclasses
    import functools
    import http.server
    import threading

    from tunekeeper.resources.specs import DataRef

    desired = example("clippy", tmp_path)
    job = desired.jobs[0]
    assert job.training_file.path is not None
    # a blob store stand-in on the loopback interface (the emulator imports only from this machine)
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(job.training_file.path.parent)
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/{job.training_file.path.name}?sig=SECRET"
    twin = dataclasses.replace(job, name="clippy-twin", suffix="twin")
    imported = dataclasses.replace(job, name="clippy-imported", suffix="imported", validation_file=None,
                                   training_file=DataRef(url=url, display=url))
    both = dataclasses.replace(desired, jobs=(job, twin, imported), deployments=())
    try:
        first = plan(both, {"embedded": await observe(cloud, account_for(emulator), both)},
                     digests=compute_digests(both))
        assert "SECRET" not in str(first.to_dict())
        result = await converge(both, {"embedded": cloud}, events=NullSink(), wait=True, poll_interval=0.01,
                                timeout=120, sleep=clock_sleep(emulator))
    finally:
        server.shutdown()
        server.server_close()
    assert result.converged, result.to_dict()
    data_files = sorted(d["filename"] for d in emulator.store.list("file") if d.get("purpose") == "fine-tune")
    # training + validation uploaded once, one import
    assert len(data_files) == 3 and len(set(data_files)) == 3
    assert sorted(d["suffix"] for d in emulator.store.list("job")) == ["clippy", "imported", "twin"]


@pytest.mark.parametrize("good", [True, False])
async def test_eval_gate_against_a_candidate_deployment(emulator: Any, cloud: Cloud, tmp_path: Path,
                                                        good: bool) -> None:
    import dataclasses

    from tunekeeper.resources.specs import DataRef, Gates

    desired = example("clippy", tmp_path)
    training = desired.jobs[0].training_file.path
    assert training is not None
    eval_file = training.with_name("eval.jsonl")
    lines = training.read_text().splitlines()[:3]
    if not good:
        lines = [line.replace("Paris.", "Lyon.") for line in lines]
    eval_file.write_text("\n".join(lines) + "\n")
    dep = dataclasses.replace(desired.deployments[0],
                              gates=Gates(eval_file=DataRef(path=eval_file, display="data/eval.jsonl")))
    gated = dataclasses.replace(desired, deployments=(dep,))
    state = StateFile.for_root(tmp_path)
    result = await converge(gated, {"embedded": cloud}, state=state, events=NullSink(), wait=True,
                            poll_interval=0.01, timeout=120, sleep=clock_sleep(emulator))
    assert held(emulator)[2] == (["clippy"] if good else [])  # the candidate is gone either way
    assert result.converged is good, result.to_dict()
    row = next(r for r in result.statuses if r.kind == "Deployment")
    gates = row.condition("GatesPassed")
    assert gates is not None and gates.status == ("True" if good else "False")
    if not good:
        assert "failed the eval set" in gates.message
        again = await converge(
            gated, {"embedded": cloud}, state=StateFile.for_root(tmp_path), events=NullSink(), wait=False
        )
        assert again.actions == 0  # judged once; not re-evaluated until the model or the eval set changes


async def test_epoch_checkpoints_and_metric_gates(emulator: Any, cloud: Cloud, tmp_path: Path) -> None:
    import dataclasses

    from tunekeeper.resources.specs import Gates, MetricGate

    desired = example("promote-checkpoint", tmp_path)  # n_epochs 4: Azure keeps epochs 2, 3 and 4
    base = desired.deployments[0]
    variants = (
        dataclasses.replace(base, name="epoch-3", model=dataclasses.replace(base.model, checkpoint=3)),
        dataclasses.replace(base, name="epoch-1", model=dataclasses.replace(base.model, checkpoint=1)),
        dataclasses.replace(
            base, name="strict", gates=Gates(metrics=(MetricGate("full_valid_loss", "<", 0.01),))
        ),
    )
    several = dataclasses.replace(desired, deployments=variants)
    result = await converge(several, {"embedded": cloud}, events=NullSink(), wait=True, poll_interval=0.01,
                            timeout=120, sleep=clock_sleep(emulator))
    assert result.settled and not result.converged
    assert held(emulator)[2] == ["epoch-3"]
    blocked = {b.target.name: b.reason for b in result.remaining.blocked}
    assert blocked == {"epoch-1": Reason.CHECKPOINT_NOT_RETAINED, "strict": Reason.GATE_FAILED}
    job_row = next(r for r in result.statuses if r.kind == "FineTuneJob")
    epoch3 = next(c for c in job_row.checkpoints if c.epoch == 3)
    assert (await cloud.get_deployment("epoch-3")).model_name == epoch3.id
    strict = next(r for r in result.statuses if r.name == "strict")
    gates = strict.condition("GatesPassed")
    assert gates is not None and gates.status == "False" and "full_valid_loss" in gates.message


# A DeveloperTier deployment: the plan compares ARM's spelling with ARM's spelling, so after apply a
# fresh plan is empty, whichever spelling the manifest used.
@pytest.mark.parametrize("written", ["DeveloperTier", "Developer"])
async def test_developer_tier_deployment_converges_and_then_plans_nothing(
        emulator: Any, cloud: Cloud, tmp_path: Path, written: str) -> None:
    # given the Clippy example with a developer deployment, spelled as ARM does or as the portal does
    shutil.copytree(EXAMPLES / "clippy", tmp_path / "clippy")
    manifest = tmp_path / "clippy" / "clippy.yaml"
    manifest.write_text(manifest.read_text().replace("name: Standard", f"name: {written}"))
    desired, warnings = load([tmp_path / "clippy"], root=tmp_path)
    assert [w.hint for w in warnings] == (["write DeveloperTier"] if written == "Developer" else [])
    # when it converges
    result = await converge(
        desired,
        {"embedded": cloud},
        state=StateFile.for_root(tmp_path),
        events=NullSink(),
        wait=True,
        poll_interval=0.01,
        timeout=120,
        sleep=clock_sleep(emulator),
    )
    assert result.converged, result.to_dict()
    # then Azure holds a DeveloperTier deployment and nothing is left to do
    assert emulator.store.get("deployment", "clippy")["sku"]["name"] == "DeveloperTier"
    observation = await observe(cloud, account_for(emulator), desired, cache=StateFile.for_root(tmp_path))
    again = plan(desired, {"embedded": observation}, digests=compute_digests(desired),
                 known=StateFile.for_root(tmp_path).known())
    assert again.actions == ()


class _ProgressLog(NullSink):
    """Keeps every progress report: (key, done, total)."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, float, float | None]] = []

    def progress(self, key: str, label: str, done: float, total: float | None) -> None:
        self.reports.append((key, done, total))


async def test_training_progress_counts_epochs_past_the_three_kept_checkpoints(
        emulator: Any, cloud: Cloud, tmp_path: Path) -> None:
    # given an 8-epoch job (the service keeps only its last three checkpoints), training at Azure's
    # pace so that only the test moves time: each poll advances the clock by 30 s, about half an epoch
    shutil.copytree(EXAMPLES / "clippy", tmp_path / "clippy")
    manifest = tmp_path / "clippy" / "clippy.yaml"
    manifest.write_text(manifest.read_text().replace("n_epochs: 3", "n_epochs: 8"))
    desired, _ = load([tmp_path / "clippy"], root=tmp_path)
    desired = dataclasses.replace(desired, deployments=())

    async def half_epoch(seconds: float) -> None:
        emulator.clock.advance(30)
        await asyncio.sleep(0)

    log = _ProgressLog()
    original, emulator.clock.speed = emulator.clock.speed, 1.0
    try:
        # when it trains to the end
        result = await converge(desired, {"embedded": cloud}, events=log, wait=True, poll_interval=0.01,
                                timeout=120, sleep=half_epoch)
    finally:
        emulator.clock.speed = original
    assert result.converged, result.to_dict()
    # then its bar went up epoch by epoch, never back, through every epoch, and ended at 8 of 8
    training = [(done, total) for key, done, total in log.reports if key == "FineTuneJob/clippy"]
    assert {total for _, total in training} == {8.0}
    done = [d for d, _ in training]
    assert done == sorted(done) and done[-1] == 8.0
    assert {int(d) for d in done} == set(range(9)), done


async def test_a_twin_cancelled_by_someone_else_does_not_fail_the_run(emulator: Any, cloud: Cloud,
                                                                      tmp_path: Path) -> None:
    """Two applies at once: both plan to cancel the same twin; the second cancel gets 409
    "cannot be cancelled because it is cancelled", which means the work is done, not a failure."""
    desired = example("clippy", tmp_path)
    clouds = {"embedded": cloud}
    await converge(desired, clouds, events=NullSink(), wait=False, poll_interval=0.01)
    (job,) = [j for j in await cloud.list_jobs()]
    from tunekeeper.cloud.base import JobRequest
    await cloud.create_job(JobRequest(model=job.model, training_file=job.training_file,
                                      validation_file=job.validation_file, suffix=job.suffix, seed=job.seed,
                                      hyperparameters=desired.jobs[0].hyperparameters))
    observations = {"embedded": await observe(cloud, account_for(emulator), desired)}
    p = plan(desired, observations, digests=compute_digests(desired))
    cancels = [a for a in p.actions if a.kind is ActionKind.CANCEL_JOB]
    assert len(cancels) == 1
    await cloud.cancel_job(cancels[0].payload.job_id)  # type: ignore[union-attr]  # the other apply was first
    emulator.clock.advance(600)
    result = await apply(p, desired, clouds, events=NullSink(), observations=observations,
                         digests=compute_digests(desired))
    assert not result.errors, result.errors
    outcome = next(o for a, o in result.outcomes if a.kind is ActionKind.CANCEL_JOB)
    assert outcome.outcome is Outcome.DONE and "already" in outcome.message


async def test_replace_trains_again_on_purpose_and_a_failed_job_is_never_retried_silently(
    emulator: Any, cloud: Cloud, tmp_path: Path
) -> None:
    import dataclasses

    from tunekeeper.errors import PlanError
    from tunekeeper.resources.specs import Method

    desired = example("clippy", tmp_path)
    clouds = {"embedded": cloud}
    broken = dataclasses.replace(desired, jobs=(dataclasses.replace(desired.jobs[0], method=Method.DPO),))
    await converge(broken, clouds, events=NullSink(), wait=True, poll_interval=0.01, timeout=120,
                   sleep=clock_sleep(emulator))
    (failed,) = held(emulator)[1]
    again = await converge(broken, clouds, events=NullSink(), wait=False)
    assert again.actions == 0 and held(emulator)[1] == [failed]  # never retried silently

    replaced = await converge(broken, clouds, events=NullSink(), wait=False, replace=frozenset({"clippy"}))
    (new_job,) = held(emulator)[1]
    assert new_job != failed and replaced.actions >= 2  # the failed job deleted, a new one created
    await converge(broken, clouds, events=NullSink(), wait=True, poll_interval=0.01, timeout=120,
                   sleep=clock_sleep(emulator))  # it fails again, as the same data must

    fixed = await converge(desired, clouds, events=NullSink(), wait=True, poll_interval=0.01, timeout=120,
                           sleep=clock_sleep(emulator))
    assert fixed.converged, fixed.to_dict()
    with pytest.raises(PlanError, match="serves a deployment"):  # --replace never deletes what serves
        await converge(desired, clouds, events=NullSink(), wait=False, replace=frozenset({"clippy"}))


async def test_timeout_bounds_the_whole_run_requests_in_flight_included(emulator: Any, cloud: Cloud,
                                                                        tmp_path: Path) -> None:
    import time

    desired = example("clippy", tmp_path)
    emulator.faults.add("POST /openai/files", latency=30.0)  # an upload that hangs
    started = time.monotonic()
    result = await converge(desired, {"embedded": cloud}, events=NullSink(), wait=True, poll_interval=0.01,
                            timeout=1.0)
    assert result.timed_out and not result.converged
    assert time.monotonic() - started < 10
