"""Benchmark: HTTP requests and time of observe + plan for 1,000 FineTuneJobs and 1,000 Deployments.

The point of observing with list calls is that the number of requests per account does not grow
with the number of manifests. This script measures it against the obvious alternative, one GET
per resource, in the same run and through the same cloud implementation:

1. generate a project in a temp dir: N FineTuneJobs (each with its own small training file) and
   N Deployments serving their final models;
2. start an emulator in-process (fast clock, quota and limits for N of everything) and seed it: the files and
   jobs are created by tunekeeper's own ``converge`` (so they carry its ownership markers and
   have trained), and the N deployments — which through ARM's long-running operations would
   take N polling rounds — are written straight into the emulator's store, cloned from one
   created through ARM, with the tags the planner asks for;
3. measure ``observe`` + ``plan`` as ``tunekeeper plan`` runs them in steady state (requests
   from ``cloud.request_count``, wall time, and the pure ``plan`` time alone; the details of
   finished jobs come from the state file, filled by one cold observe measured separately),
   check the plan is empty (everything adopted), then GET each job and each deployment one by
   one (the baseline) and print both and their ratio.

Usage: ``python bench/observe_plan.py [--count N]`` (``make bench`` runs it with N = 1000).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunekeeper.cloud import Cloud, DeploymentRequest, connect
from tunekeeper.emulator import Emulator, EmulatorConfig
from tunekeeper.reconcile import (
    Action,
    ActionKind,
    NullSink,
    StateFile,
    compute_digests,
    converge,
    markers,
    observe,
    plan,
)
from tunekeeper.resources import load
from tunekeeper.resources.specs import AccountSpec, AuthSpec, Desired, Sku

API_KEY = "bench-key"
BASE_MODEL = "gpt-4.1-mini-2025-04-14"
SKU = "GlobalStandard"


# -- the project ---------------------------------------------------------------------------------
def write_project(root: Path, count: int) -> None:
    """N FineTuneJobs with their own data, N Deployments of their final models (two YAML files)."""
    (root / "data").mkdir(parents=True)
    jobs: list[str] = []
    deployments: list[str] = []
    for i in range(count):
        name = f"job-{i:04d}"
        lines = []
        for k in range(10):
            example = {"messages": [
                {"role": "system", "content": "You answer in one short sentence."},
                {"role": "user", "content": f"Question {k} for team {i}?"},
                {"role": "assistant", "content": f"Answer {k} for team {i}."},
            ]}
            lines.append(json.dumps(example))
        (root / "data" / f"train-{i:04d}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        jobs.append(
            "apiVersion: tunekeeper.io/v1alpha1\nkind: FineTuneJob\n"
            f"metadata:\n  name: {name}\n"
            f"spec:\n  baseModel: {BASE_MODEL}\n  method:\n    type: supervised\n    hyperparameters:\n"
            f"      n_epochs: 1\n  trainingFile: data/train-{i:04d}.jsonl\n  seed: {i}\n"
        )
        deployments.append(
            "apiVersion: tunekeeper.io/v1alpha1\nkind: Deployment\n"
            f"metadata:\n  name: dep-{i:04d}\n"
            f"spec:\n  model:\n    fromJob: {name}\n    checkpoint: final\n  sku:\n    name: {SKU}\n    "
            f"capacity: 1\n"
        )
    (root / "jobs.yaml").write_text("---\n".join(jobs), encoding="utf-8")
    (root / "deployments.yaml").write_text("---\n".join(deployments), encoding="utf-8")


def account_for(emulator: Emulator) -> AccountSpec:
    config = emulator.config
    return AccountSpec(name="bench", endpoint=emulator.url, subscription_id=config.subscription_id,
                       resource_group=config.resource_group, account_name=config.account_name,
                       management_endpoint=emulator.url, auth=AuthSpec(kind="apiKey"))


# -- seeding ---------------------------------------------------------------------------------------
async def seed(emulator: Emulator, cloud: Cloud, desired: Desired) -> None:
    account = desired.accounts[0]
    started = time.perf_counter()
    jobs_only = dataclasses.replace(desired, deployments=())
    result = await converge(
        jobs_only, {account.name: cloud}, events=NullSink(), wait=True, poll_interval=0.05, timeout=1800
    )
    if not result.converged:
        raise SystemExit("seeding: the jobs did not converge")
    print(
        f"seeded {len(desired.jobs)} files and jobs through converge in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )

    started = time.perf_counter()
    observation = await observe(cloud, account, desired)
    creates = [a for a in plan(desired, {account.name: observation}, digests=compute_digests(desired)).actions
               if a.kind is ActionKind.CREATE_DEPLOYMENT]
    if len(creates) != len(desired.deployments):
        raise SystemExit(
            f"seeding: expected {len(desired.deployments)} deployments to create, got {len(creates)}"
        )
    specs = {d.name: d for d in desired.deployments}
    template = await _template(emulator, cloud, creates[0], specs)
    now = emulator.clock.now()
    with emulator.store.transaction():
        for action in creates:
            name = action.target.name
            after = action.after or {}
            doc = copy.deepcopy(template)
            doc["name"] = name
            doc["id"] = template["id"].rsplit("/", 1)[0] + "/" + name
            doc["properties"]["model"]["name"] = after["model"]
            doc["properties"]["model"]["version"] = after["version"]
            doc["tags"] = _tags(name, after, specs)
            doc["_created_at"] = now
            emulator.store.put("deployment", name, doc)
    print(
        f"seeded {len(creates)} deployments into the emulator store in {time.perf_counter() - started:.1f} s",
        flush=True,
    )


async def _template(
    emulator: Emulator, cloud: Cloud, action: Action, specs: dict[str, Any]
) -> dict[str, Any]:
    """Create the first deployment through ARM for real; its stored document is the clone template."""
    after = action.after or {}
    name = action.target.name
    version = after.get("version")
    operation = await cloud.begin_create_deployment(DeploymentRequest(
        name=name, model_name=str(after["model"]), model_version=None if version is None else str(version),
        sku=Sku(str(after["sku"])), capacity=int(str(after["capacity"])), tags=_tags(name, after, specs),
    ))
    emulator.clock.advance(3600)
    await operation.result()
    doc = emulator.store.get("deployment", name)
    assert doc is not None and doc["properties"]["provisioningState"] == "Succeeded", doc
    return doc


def _tags(name: str, after: Mapping[str, object], specs: dict[str, Any]) -> dict[str, str]:
    """The tags the plan's create action carries (owner included), checked against the markers."""
    planned = after["tags"]
    assert isinstance(planned, Mapping)
    version = after.get("version")
    spec_hash = markers.deployment_spec_hash(str(after["model"]), None if version is None else str(version),
                                             str(after["sku"]), int(str(after["capacity"])))
    assert planned[markers.SPEC_HASH_TAG] == spec_hash and specs[name].name == name
    return {str(k): str(v) for k, v in planned.items()}


# -- measuring -------------------------------------------------------------------------------------
async def measure(cloud: Cloud, desired: Desired, state_path: Path) -> dict[str, float]:
    """Cold observe (no state file: finished jobs' checkpoints and results.csv are fetched once),
    warm observe + plan (the steady state of `tunekeeper plan`), then the one-GET baseline."""
    account = desired.accounts[0]
    digests = compute_digests(desired)
    state = StateFile(state_path)

    before = cloud.request_count
    started = time.perf_counter()
    await observe(cloud, account, desired, cache=state)
    cold_seconds = time.perf_counter() - started
    cold_requests = cloud.request_count - before

    before = cloud.request_count
    started = time.perf_counter()
    observation = await observe(cloud, account, desired, cache=state)
    observed_at = time.perf_counter()
    result = plan(desired, {account.name: observation}, digests=digests, known=state.known())
    planned_at = time.perf_counter()
    warm_requests = cloud.request_count - before
    if result.has_changes:
        raise SystemExit(f"the seeded account should match the manifests, but the plan has "
                         f"{len(result.actions)} actions, e.g. {result.actions[0]}")

    before = cloud.request_count
    baseline_started = time.perf_counter()
    for job in sorted(observation.jobs, key=lambda j: j.id):
        await cloud.get_job(job.id)
    for deployment in observation.deployments:
        await cloud.get_deployment(deployment.name)
    baseline_seconds = time.perf_counter() - baseline_started
    baseline_requests = cloud.request_count - before
    return {
        "cold_requests": cold_requests,
        "cold_seconds": cold_seconds,
        "observe_plan_requests": warm_requests,
        "observe_seconds": observed_at - started,
        "plan_seconds": planned_at - observed_at,
        "baseline_requests": baseline_requests,
        "baseline_seconds": baseline_seconds,
        "matched": result.matched,
    }


async def run(count: int) -> dict[str, float]:
    quota = {sku: 10 * count for sku in EmulatorConfig().quota}
    with tempfile.TemporaryDirectory(prefix="tk-bench-") as tmp:
        root = Path(tmp)
        write_project(root, count)
        # Azure's per-resource limits (50 fine-tune files, 100 jobs kept, ...) raised to fit the benchmark.
        config = EmulatorConfig(
            api_key=API_KEY,
            speed=1_000_000.0,
            quota=quota,
            max_fine_tune_files=2 * count,
            max_jobs=2 * count,
            max_active_jobs=2 * count,
        )
        with Emulator(config=config) as emulator:
            desired, _ = load([root], root=root)
            desired = dataclasses.replace(desired, accounts=(account_for(emulator),))
            cloud = await connect(desired.accounts[0], api_key=API_KEY)
            try:
                await seed(emulator, cloud, desired)
                return await measure(cloud, desired, root / ".tunekeeper" / "state.json")
            finally:
                await cloud.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="FineTuneJobs, and as many Deployments")
    args = parser.parse_args()
    figures = asyncio.run(run(args.count))
    ratio = figures["baseline_requests"] / max(1, figures["observe_plan_requests"])
    print(
        f"\n{args.count} FineTuneJobs + {args.count} Deployments "
        f"(all adopted, {int(figures['matched'])} matched)"
    )
    print(
        f"  observe + plan          : {int(figures['observe_plan_requests']):>6} HTTP requests  "
        f"observe {figures['observe_seconds'] * 1000:8.1f} ms  plan {figures['plan_seconds'] * 1000:8.1f} ms"
    )
    print(f"  one GET per resource    : {int(figures['baseline_requests']):>6} HTTP requests  "
          f"        {figures['baseline_seconds'] * 1000:8.1f} ms")
    print(f"  ratio                   : {ratio:.0f}x fewer requests with list calls")
    print(
        f"  first observe, no cache : {int(figures['cold_requests']):>6} HTTP requests  "
        f"        {figures['cold_seconds'] * 1000:8.1f} ms  (checkpoints and results.csv of each finished "
        f"job, fetched once and kept in the state file)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
