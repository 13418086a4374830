"""Benchmark: Azure requests of the operator's namespace runs, shared by resources vs one run each.

The operator reconciles a namespace's resources together: every handler (create, update, resume,
the timer of each resource) asks its namespace's ``Stack`` for a run that started recently enough,
and a run observes each account once with the core's list calls. The obvious alternative is one
run per resource, each observing the account for itself. This script measures both, in the same
process, through the same ``Stack`` and cloud implementation:

1. an emulator in-process (fast clock, limits raised), and a namespace of N FineTuneJobs (one
   shared training file, distinct suffixes) plus their Account, as kopf's indexes would hold them;
2. a first run uploads the file and creates the N jobs; the emulator's clock is moved until they
   all succeeded, and a second run adopts them (steady state from then on);
3. N timer calls in one round (each accepts a run that started since the round began: the first
   call's run serves all), then N calls that each need a fresh run (the baseline); the HTTP requests both cost
   (``cloud.request_count``) and their wall time are printed with their ratio.

Usage: ``python bench/operator_runs.py [--count N]`` (``make bench`` runs it with N = 50).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from tunekeeper.emulator import Emulator, EmulatorConfig
from tunekeeper.operator.kube import Kube
from tunekeeper.operator.settings import OperatorSettings
from tunekeeper.operator.stack import Resource, Stack

REPO = Path(__file__).resolve().parents[1]
KEY_ENV = "TK_BENCH_OPERATOR_KEY"
NAMESPACE = "bench"


def body(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "tunekeeper.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": f"uid-{kind}-{name}", "generation": 1},
        "spec": spec,
    }


def namespace(emulator: Emulator, count: int) -> list[Resource]:
    c = emulator.config
    account = Resource(
        "Account",
        body(
            "Account",
            "bench",
            {
                "endpoint": emulator.url,
                "managementEndpoint": emulator.url,
                "subscriptionId": c.subscription_id,
                "resourceGroup": c.resource_group,
                "accountName": c.account_name,
                "auth": {"apiKeyFromEnv": KEY_ENV},
            },
        ),
    )
    jobs = [
        Resource(
            "FineTuneJob",
            body(
                "FineTuneJob",
                f"job-{i}",
                {
                    "baseModel": "gpt-4.1-mini-2025-04-14",
                    "trainingFile": "clippy/data/training.jsonl",
                    "method": {"type": "supervised", "hyperparameters": {"n_epochs": 1}},
                    "suffix": f"job-{i}",
                },
            ),
        )
        for i in range(count)
    ]
    return [account, *jobs]


def requests_of(stack: Stack) -> int:
    return sum(cloud.request_count for cloud in stack._clouds.values())


async def measure(count: int) -> None:
    config = EmulatorConfig(
        api_key="bench-key",
        speed=1_000_000.0,
        max_fine_tune_files=2 * count + 10,
        max_jobs=2 * count + 10,
        max_active_jobs=2 * count + 10,
    )
    os.environ[KEY_ENV] = config.api_key
    with tempfile.TemporaryDirectory(prefix="tk-bench-operator-") as tmp, Emulator(config=config) as emulator:
        data = Path(tmp)
        shutil.copytree(REPO / "manifests" / "examples" / "clippy", data / NAMESPACE / "clippy")
        settings = OperatorSettings(data_dir=data, cluster_name="bench", interval=30.0, poll_interval=0.01)
        stack = Stack(NAMESPACE, settings, Kube(), lambda *_: None)
        resources = namespace(emulator, count)
        try:
            await stack.reconcile(lambda: resources, since=time.monotonic())
            emulator.clock.advance(24 * 3600)
            first = await stack.reconcile(lambda: resources, since=time.monotonic())
            trained = sum(1 for v in first.verdicts.values() if v.status.get("jobStatus") == "succeeded")
            await stack.reconcile(lambda: resources, since=time.monotonic())  # job details now cached

            before, started = requests_of(stack), time.perf_counter()
            moment = time.monotonic()  # the last run is older than this, as it is an interval after it
            for _ in range(count):  # every resource's timer fires: the first starts a run, it serves all
                await stack.reconcile(lambda: resources, since=moment)
            shared, shared_time = requests_of(stack) - before, time.perf_counter() - started

            before, started = requests_of(stack), time.perf_counter()
            for _ in range(count):  # baseline: each resource gets a run of its own
                await stack.reconcile(lambda: resources, since=time.monotonic())
            alone, alone_time = requests_of(stack) - before, time.perf_counter() - started
        finally:
            await stack.close()
    print(f"namespace: 1 Account, {count} FineTuneJobs ({trained} trained, steady state)")
    print(f"  {count} timer calls sharing runs : {shared:5d} requests, {shared_time:6.2f} s")
    print(f"  {count} runs, one per resource   : {alone:5d} requests, {alone_time:6.2f} s")
    print(
        f"  ratio (one each / shared)   : {alone / max(shared, 1):5.1f}x requests, "
        f"{alone_time / max(shared_time, 1e-9):5.1f}x time"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=50, help="FineTuneJobs in the namespace (default 50)")
    asyncio.run(measure(parser.parse_args().count))


if __name__ == "__main__":
    main()
