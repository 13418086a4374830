"""Property-based: random histories of manifest edits, subset applies, kills and gc by two owners
sharing one account, against the real emulator. After every step:

- nothing declared is ever deleted (a deployment an owner declares, the job its FineTuneJob is
  matched to, a data file it needs: whoever ran, they are still there);
- nothing of the other owner is touched (its files and jobs are not deleted or cancelled, its
  deployments keep model, sku, capacity and tags);
- nothing is trained twice (no two live jobs with one identity);
- after a complete apply and gc, an owner holds only what it declares or retains.

Default run: a few histories, a few tens of seconds. ``TUNEKEEPER_PBT_EXAMPLES=N`` runs N; the
``slow`` variant runs a longer profile. The test prints how many histories and actions it tried.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tunekeeper.cloud import CloudSettings, connect
from tunekeeper.cloud.base import Cloud
from tunekeeper.reconcile import (
    NullSink,
    Observation,
    compute_digests,
    converge,
    markers,
    observe_accounts,
    plan,
    resolve,
)
from tunekeeper.reconcile.converge import collect_garbage
from tunekeeper.resources.specs import (
    DataRef,
    DeploymentSpec,
    Desired,
    FineTuneJobSpec,
    Hyperparameters,
    Method,
    ModelRef,
    Owner,
    SourceRef,
)

from .cloud_helpers import TEST_API_KEY, account_for

FAST = CloudSettings(max_retries=2, arm_retry_total=2, arm_retry_backoff_factor=0.01, polling_interval=0.01,
                     conflict_initial_delay=0.01, conflict_max_delay=0.05)
OWNERS = ("team-a", "team-b")
BASE = "gpt-4.1-mini-2025-04-14"
LIVE = frozenset(
    {
        "created",
        "validating_files",
        "queued",
        "pending",
        "running",
        "pausing",
        "paused",
        "resuming",
        "succeeded",
    }
)


# -- what an owner declares ---------------------------------------------------------------------------
@dataclass(frozen=True)
class JobChoice:
    name: str
    data: str  # which training file variant
    epochs: int
    retain: int


@dataclass(frozen=True)
class Manifests:
    jobs: tuple[JobChoice, ...]
    deployments: tuple[tuple[str, str | None], ...]  # (name, job name or None for the base model)


@st.composite
def manifests(draw: st.DrawFn, owner: str) -> Manifests:
    names = draw(st.lists(st.sampled_from(["j1", "j2"]), unique=True, max_size=2))
    jobs = tuple(JobChoice(n, draw(st.sampled_from("ab")), draw(st.integers(1, 2)), draw(st.integers(0, 1)))
                 for n in sorted(names))
    candidates = [(f"{owner}-{j}", j) for j in names] + [(f"{owner}-base", None), ("shared", None)]
    deployments = draw(st.lists(st.sampled_from(candidates), unique_by=lambda d: d[0], max_size=3))
    return Manifests(jobs, tuple(sorted(deployments, key=lambda d: d[0])))


@dataclass(frozen=True)
class Step:
    owner: int
    kind: str  # edit | apply | subset | kill | gc
    manifests: Manifests | None = None
    stop_after: int = 0


@st.composite
def histories(draw: st.DrawFn) -> list[Step]:
    # both owners start with some manifests applied, then edit, apply (all or part), get killed, collect
    steps = [Step(0, "edit", draw(manifests(OWNERS[0]))), Step(0, "apply"),
             Step(1, "edit", draw(manifests(OWNERS[1]))), Step(1, "apply")]
    for _ in range(draw(st.integers(2, 6))):
        owner = draw(st.integers(0, 1))
        kind = draw(st.sampled_from(["edit", "edit", "apply", "apply", "subset", "kill", "gc"]))
        steps.append(Step(owner, kind, draw(manifests(OWNERS[owner])) if kind == "edit" else None,
                          draw(st.integers(1, 4)) if kind == "kill" else 0))
    return steps


def data_files(folder: Path) -> dict[str, Path]:
    files = {}
    for variant in "ab":
        path = folder / f"train-{variant}.jsonl"
        lines = [json.dumps({"messages": [
            {"role": "user", "content": f"Question {i} ({variant})?"},
            {"role": "assistant", "content": f"Answer {i} ({variant})."}]}) for i in range(12)]
        path.write_text("\n".join(lines) + "\n")
        files[variant] = path
    return files


def desired_of(
    owner: str, m: Manifests, root: Path, data: dict[str, Path], *, subset: bool = False
) -> Desired:
    jobs = tuple(
        FineTuneJobSpec(
            name=j.name,
            account=None,
            base_model=BASE,
            from_job=None,
            method=Method.SUPERVISED,
            hyperparameters=Hyperparameters(n_epochs=j.epochs),
            training_file=DataRef(path=data[j.data], display=j.data),
            suffix=f"{owner}-{j.name}",
            allow_replacement=True,
            retain_previous=j.retain,
            source=SourceRef(f"{owner}/jobs.yaml", 1, 1),
        )
        for j in m.jobs
    )
    deployments = tuple(DeploymentSpec(
        name=name, account=None,
        model=ModelRef(from_job=job) if job else ModelRef(base_model="gpt-4.1-mini", version="2025-04-14"),
        source=SourceRef(f"{owner}/deploy.yaml", 1, 1)) for name, job in m.deployments)
    if subset:  # a file of the stack: its jobs only, with no deployment
        deployments = ()
    return Desired(root=root, jobs=jobs, deployments=deployments, files=(f"{owner}/jobs.yaml",),
                   owner=Owner(f"name:{owner}"), complete=not subset)


# -- the world, and the properties -------------------------------------------------------------------------
@dataclass(frozen=True)
class World:
    files: dict[str, str]  # id -> filename (not deleted)
    jobs: dict[str, dict[str, Any]]  # id -> job document
    deployments: dict[str, dict[str, Any]]  # name -> deployment document


def world(emulator: Any) -> World:
    files = {
        d["id"]: d["filename"]
        for d in emulator.store.list("file")
        if d.get("status") not in ("deleted", "deleting")
    }
    jobs = {d["id"]: d for d in emulator.store.list("job")}
    deployments = {d["name"]: d for d in emulator.store.list("deployment")}
    return World(files, jobs, deployments)


def owned_by(w: World, owner: Owner) -> tuple[set[str], set[str], dict[str, tuple[object, ...]]]:
    """(file ids, job ids, deployment name -> what must not change) carrying ``owner``'s marks."""
    files = {fid for fid, name in w.files.items() if (m := markers.file_mark(name)) and m.owner == owner.id}
    jobs = {jid for jid, d in w.jobs.items() if d["training_file"] in files}
    deployments = {
        name: (
            d["properties"]["model"]["name"],
            d["sku"]["name"],
            d["sku"].get("capacity"),
            json.dumps(d.get("tags") or {}, sort_keys=True),
        )
        for name, d in w.deployments.items()
        if (d.get("tags") or {}).get(markers.OWNER_TAG) == owner.id
    }
    return files, jobs, deployments


def declared(desired: Desired, observations: dict[str, Observation]) -> tuple[set[str], set[str], set[str]]:
    """(file ids, job ids, deployment names) that ``desired`` declares and the account holds."""
    res = resolve(desired, observations, digests=compute_digests(desired))
    files = {n.observed.id for n in res.files.values() if n.observed is not None}
    jobs = {r.matched.id for r in res.jobs.values() if r.matched is not None}
    held = {d.name for o in observations.values() for d in o.deployments}
    mine = {name for name in (d.spec.name for d in res.deployments.values()) if name in held
            and any(markers.deployment_owner(d) == desired.owner.id for o in observations.values()
                    for d in o.deployments if d.name == name)}
    return files, jobs, mine


def assert_trained_once(w: World) -> None:
    identities = Counter(
        (d["model"], d["training_file"], d.get("validation_file"), d.get("seed"), d.get("suffix"))
        for d in w.jobs.values()
        if d["status"] in LIVE
    )
    assert all(count == 1 for count in identities.values()), identities


def clock_sleep(emulator: Any) -> Callable[[float], Awaitable[None]]:
    async def sleep(seconds: float) -> None:
        emulator.clock.advance(max(seconds, 1.0) * 30)
        await asyncio.sleep(0)
    return sleep


async def run_history(emulator: Any, root: Path, steps: list[Step], stats: Counter[str]) -> None:
    data = data_files(root)
    current = [Manifests((), ()), Manifests((), ())]
    owners = [Owner(f"name:{o}") for o in OWNERS]
    cloud: Cloud = await connect(account_for(emulator), api_key=TEST_API_KEY, settings=FAST)
    clouds = {"embedded": cloud}
    try:
        for step in steps:
            stats["actions"] += 1
            me, other = step.owner, 1 - step.owner
            if step.kind == "edit":
                assert step.manifests is not None
                current[me] = step.manifests
                continue
            full = [desired_of(OWNERS[i], current[i], root, data) for i in (0, 1)]
            observations = await observe_accounts(full[me], clouds)
            before = world(emulator)
            protected = [declared(full[i], observations) for i in (0, 1)]
            theirs = owned_by(before, owners[other])
            stats["deployments seen"] += len(before.deployments)
            run = desired_of(OWNERS[me], current[me], root, data, subset=step.kind == "subset")
            if step.kind == "gc":
                await collect_garbage(run, clouds, events=NullSink(), dry_run=False)
            else:
                await converge(run, clouds, events=NullSink(), wait=True, poll_interval=0.01, timeout=60,
                               sleep=clock_sleep(emulator), stop_after=step.stop_after or None)
            after = world(emulator)
            for files, jobs, deployments in protected:  # nothing declared is deleted, whoever ran
                assert files <= set(after.files), (step, files - set(after.files))
                assert jobs <= set(after.jobs), (step, jobs - set(after.jobs))
                assert deployments <= set(after.deployments), (step, deployments - set(after.deployments))
            their_files, their_jobs, their_deployments = theirs  # nothing of the other owner is touched
            assert their_files <= set(after.files) and their_jobs <= set(after.jobs), step
            assert all(after.jobs[j]["status"] != "cancelled" or before.jobs[j]["status"] == "cancelled"
                       for j in their_jobs), step
            assert owned_by(after, owners[other])[2] == their_deployments, step
            assert_trained_once(after)
            if step.kind in ("apply", "gc") and not step.stop_after:
                await assert_only_declared_or_retained(emulator, full[me], clouds)
    finally:
        await cloud.close()


async def assert_only_declared_or_retained(emulator: Any, desired: Desired, clouds: dict[str, Cloud]) -> None:
    """After a complete run: no deletion left to plan, and what remains is declared or retained."""
    observations = await observe_accounts(desired, clouds)
    p = plan(desired, observations, digests=compute_digests(desired))
    blocked = {str(b.target) for b in p.blocked}
    if blocked or any(not a.last for a in p.actions if a.kind.changes):
        return  # not settled (a collision with the other owner, a wait): nothing to conclude yet
    assert not [a for a in p.actions if a.last], [str(a.target) for a in p.actions]
    w = world(emulator)
    files, jobs, deployments = owned_by(w, desired.owner)
    assert set(deployments) <= {d.name for d in desired.deployments}
    named = {f for j in w.jobs.values() for f in (j["training_file"], j.get("validation_file")) if f}
    res = resolve(desired, observations, digests=compute_digests(desired))
    needed = {n.observed.id for n in res.files.values() if n.observed is not None}
    assert files <= named | needed
    retain = {f"{desired.owner.key.split(':')[1]}-{j.name}": j.retain_previous for j in desired.jobs}
    served = {d["properties"]["model"]["name"] for d in w.deployments.values()}
    matched = {r.matched.id for r in res.jobs.values() if r.matched is not None}
    extra = Counter(w.jobs[j].get("suffix") for j in jobs - matched
                    if w.jobs[j].get("fine_tuned_model") not in served)
    for suffix, count in extra.items():
        assert suffix in retain and count <= retain[suffix], (suffix, count, retain)


def _check(
    emulator: Any, tmp_path_factory: pytest.TempPathFactory, examples: int, stats: Counter[str]
) -> None:
    @settings(max_examples=examples, deadline=None, derandomize=examples <= 10,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(histories())
    def check(steps: list[Step]) -> None:
        stats["histories"] += 1
        emulator.reset()
        root = tmp_path_factory.mktemp("history")
        asyncio.run(run_history(emulator, root, steps, stats))

    check()


def test_random_histories_never_delete_what_is_declared(
    _emulator_server: Any, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    stats: Counter[str] = Counter()
    _check(_emulator_server, tmp_path_factory, int(os.environ.get("TUNEKEEPER_PBT_EXAMPLES", "8")), stats)
    with capsys.disabled():
        print(f"\n  ownership properties: {stats['histories']} histories, {stats['actions']} steps tried "
              f"({stats['deployments seen']} deployments seen before a step)")


@pytest.mark.slow
def test_random_histories_long_profile(
    _emulator_server: Any, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    if not os.environ.get("TUNEKEEPER_PBT_LONG"):
        pytest.skip("set TUNEKEEPER_PBT_LONG=1 for the long profile (a hundred histories)")
    stats: Counter[str] = Counter()
    _check(_emulator_server, tmp_path_factory, 100, stats)
    with capsys.disabled():
        print(
            f"\n  ownership properties (long): {stats['histories']} histories, {stats['actions']} steps tried"
        )
