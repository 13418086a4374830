"""Faults, as figures: every example folder converges while the emulator answers 20% of all requests
with 429 + Retry-After, 5% with 5xx and drops 1% of connections, on every path; nothing is created
twice; and what that costs in requests against a fault-free run of the same folder.

    python -m tests.reliability.faults [--seed N]

Each run uses a fresh in-process emulator (loopback) and the real cloud layer (official SDK clients,
their own retry policies) through ``converge(wait=True)``; polling moves the emulator's clock
instead of sleeping. Examples with their own Account manifests (several accounts) are left out.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tunekeeper.cloud import CloudSettings, connect
from tunekeeper.emulator import Emulator
from tunekeeper.reconcile import NullSink, converge
from tunekeeper.resources import AccountSpec, AuthSpec, load

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "manifests" / "examples"
KEY = "faults-key"
# The SDKs' own retry policies, with short backoffs so a run takes seconds; Retry-After is honoured.
SETTINGS = CloudSettings(
    max_retries=6,
    arm_retry_total=6,
    arm_retry_backoff_factor=0.01,
    polling_interval=0.01,
    conflict_initial_delay=0.01,
    conflict_max_delay=0.05,
)


@dataclass(frozen=True)
class Run:
    example: str
    converged: bool
    requests: int
    loops: int
    duplicates: int
    leaks: int
    seconds: float


def add_faults(emulator: Emulator, seed: int) -> None:
    """The first rule that matches and fires decides; the probabilities make the overall rates
    20% 429, 5% 5xx and 1% dropped connections."""
    for n, plane in enumerate(("* /openai/*", "* /subscriptions/*")):
        emulator.faults.add(plane, status=429, probability=0.20, retry_after=0.05, seed=seed + 10 * n)
        emulator.faults.add(
            plane, status=503, probability=0.05 / 0.80, retry_after=0.05, seed=seed + 10 * n + 1
        )
        emulator.faults.add(plane, drop=True, probability=0.01 / 0.75, seed=seed + 10 * n + 2)


def inventory(emulator: Emulator, expected_jobs: int, expected_deployments: int) -> tuple[int, int]:
    """(duplicates, leaks): objects held twice, and objects beyond what the manifests declare."""
    files = Counter(
        d["filename"]
        for d in emulator.store.list("file")
        if d.get("purpose") == "fine-tune" and d.get("status") not in ("deleted", "deleting")
    )
    jobs = [d for d in emulator.store.list("job") if d.get("status") not in ("cancelled",)]
    deployments = Counter(d["name"] for d in emulator.store.list("deployment"))
    duplicates = sum(c - 1 for c in files.values()) + sum(c - 1 for c in deployments.values())
    duplicates += max(0, len(jobs) - expected_jobs)
    leaks = max(0, len(deployments) - expected_deployments)
    return duplicates, leaks


async def run_example(name: str, *, faults: bool, seed: int, workdir: Path) -> Run:
    folder = workdir / name
    shutil.copytree(EXAMPLES / name, folder)
    desired, _ = load([folder], root=workdir)
    with Emulator(api_key=KEY, speed=1000.0) as emulator:
        if faults:
            add_faults(emulator, seed)
        account = AccountSpec(
            name="embedded",
            endpoint=emulator.url,
            management_endpoint=emulator.url,
            subscription_id=emulator.config.subscription_id,
            resource_group=emulator.config.resource_group,
            account_name=emulator.config.account_name,
            auth=AuthSpec(kind="apiKey", api_key_env="UNUSED"),
        )

        async def sleep(seconds: float) -> None:
            emulator.clock.advance(max(seconds, 1.0) * 30)
            await asyncio.sleep(0)

        started = time.perf_counter()
        async with await connect(account, api_key=KEY, settings=SETTINGS) as cloud:
            result = await converge(
                desired,
                {"embedded": cloud},
                events=NullSink(),
                wait=True,
                poll_interval=0.01,
                timeout=300,
                sleep=sleep,
            )
            requests = cloud.request_count
        duplicates, leaks = inventory(emulator, len(desired.jobs), len(desired.deployments))
        return Run(
            name, result.converged, requests, result.loops, duplicates, leaks, time.perf_counter() - started
        )


def examples() -> list[str]:
    return sorted(
        p.name
        for p in EXAMPLES.iterdir()
        if p.is_dir() and not any("kind: Account" in f.read_text() for f in p.glob("*.yaml"))
    )


async def main_async(seed: int) -> None:
    print(
        f"{'example':22} {'converged':>9} {'requests':>9} {'faulty':>7} {'ratio':>6} {'dups':>5} {'leaks':>5}"
    )
    totals = Counter[str]()
    for name in examples():
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            clean = await run_example(name, faults=False, seed=seed, workdir=Path(a))
            faulty = await run_example(name, faults=True, seed=seed, workdir=Path(b))
        ok = clean.converged and faulty.converged
        print(
            f"{name:22} {ok!s:>9} {clean.requests:>9} {faulty.requests:>7} "
            f"{faulty.requests / max(clean.requests, 1):>6.2f} {faulty.duplicates:>5} {faulty.leaks:>5}"
        )
        totals.update(
            clean=clean.requests,
            faulty=faulty.requests,
            dups=faulty.duplicates + clean.duplicates,
            leaks=faulty.leaks + clean.leaks,
            failed=0 if ok else 1,
        )
    print(
        f"all: converged {'yes' if totals['failed'] == 0 else 'NO'}, duplicates {totals['dups']}, "
        f"leaks {totals['leaks']}, requests {totals['faulty']} with faults vs {totals['clean']} without "
        f"(x{totals['faulty'] / max(totals['clean'], 1):.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261130)
    asyncio.run(main_async(parser.parse_args().seed))


if __name__ == "__main__":
    main()
