"""Observe: what one account holds, with a number of requests that does not grow with manifests.

Called by ``converge``, by ``apply`` (to check a saved plan) and by the CLI (``plan``,
``status``). Four list calls (files, jobs, deployments, models; pagination is the cloud's
business), then the checkpoints of this owner's jobs still training (progress), and, only for
its jobs that succeeded and whose details are not cached yet, their checkpoints and
results.csv. Finished jobs never change, so with a state file a steady state costs the four
list calls. ``compute_digests`` hashes local data files (the I/O ``plan`` must
not do). Nothing here changes anything in the account.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

from tunekeeper.cloud.base import Cloud, ObservedCheckpoint, ObservedFile, ObservedJob
from tunekeeper.diagnostics import Diagnostic
from tunekeeper.errors import DatasetError, NotFound, TunekeeperError
from tunekeeper.reconcile import markers
from tunekeeper.reconcile.model import MetricsSummary, Observation
from tunekeeper.reconcile.resolution import account_of, accounts_used
from tunekeeper.reconcile.state import StateFile
from tunekeeper.resources.specs import AccountSpec, Desired


def compute_digests(desired: Desired) -> dict[Path, str]:
    """sha256 (hex) of every local data file the jobs name (and eval gate files), streamed."""
    out: dict[Path, str] = {}
    problems: list[Diagnostic] = []
    wanted = [(ref, job.source, "check the path; data paths are relative to the manifest")
              for job in desired.jobs for ref in (job.training_file, job.validation_file)]
    wanted += [(dep.gates.eval_file, dep.source, "check spec.gates.evalFile") for dep in desired.deployments]
    for ref, source, hint in wanted:
        if ref is None or ref.path is None or ref.path in out:
            continue
        try:
            with ref.path.open("rb") as handle:
                out[ref.path] = hashlib.file_digest(handle, "sha256").hexdigest()
        except OSError as exc:
            problems.append(Diagnostic(source.path, source.line, source.column, "error",
                                       f"cannot read {ref.display or ref.path}: {exc.strerror}", hint=hint))
    if problems:
        raise DatasetError(problems)
    return out


async def observe(
    cloud: Cloud, account: AccountSpec, desired: Desired, *, cache: StateFile | None = None
) -> Observation:
    """List the account; fetch details of owned finished jobs that are not cached."""
    start = cloud.request_count
    files, jobs, deployments, models = await asyncio.gather(
        cloud.list_files(), cloud.list_jobs(), cloud.list_deployments(), cloud.list_models()
    )
    suffixes = {
        markers.effective_suffix(s) for s in desired.jobs if account_of(desired, s.account) == account.name
    }
    marks = {f.id: mark for f in files if (mark := markers.file_mark(f.filename)) is not None}
    checkpoints: dict[str, tuple[ObservedCheckpoint, ...]] = {}
    results: dict[str, MetricsSummary] = {}
    for job in jobs:
        mark = marks.get(job.training_file)
        # this owner's jobs (garbage collection must know what each one could be served by), and
        # legacy ones a declared resource may adopt
        if mark is None or not (mark.owner == desired.owner.id
                                or (mark.owner is None and (job.suffix or None) in suffixes)):
            continue
        if job.status == "running":  # progress for status: its checkpoints so far (one per finished epoch)
            checkpoints[job.id] = tuple(
                sorted(await cloud.list_checkpoints(job.id), key=lambda c: c.step_number)
            )
            continue
        if job.status != "succeeded":
            continue
        cached = cache.job_details(job.id) if cache is not None else None
        if cached is None:
            cached = await fetch_job_details(cloud, job, files)
            if cache is not None:
                cache.record_job_details(job.id, *cached)
        checkpoints[job.id], summary = cached
        if summary is not None:
            results[job.id] = summary
    return Observation(
        account=account.name, files=tuple(files), jobs=tuple(jobs), deployments=tuple(deployments),
        models=tuple(models), checkpoints=checkpoints, results=results,
        requests=cloud.request_count - start,
    )


async def fetch_job_details(
    cloud: Cloud, job: ObservedJob, files: list[ObservedFile] | tuple[ObservedFile, ...] = ()
) -> tuple[tuple[ObservedCheckpoint, ...], MetricsSummary | None]:
    """A finished job's checkpoints (by step) and the summary of its results.csv (None if absent)."""
    found = await cloud.list_checkpoints(job.id)
    checkpoints = tuple(sorted(found, key=lambda c: c.step_number))
    summary = None
    if job.result_files:
        try:
            data = await cloud.download_file(job.result_files[0])
        except NotFound:
            data = b""
        summary = summarize_results(data) if data else None
    return checkpoints, summary


def summarize_results(data: bytes) -> MetricsSummary | None:
    """Final value of each metric in results.csv (None when the file cannot be read)."""
    from tunekeeper.reconcile.results import parse_results

    try:
        parsed = parse_results(data)
    except TunekeeperError:
        return None
    final: dict[str, float] = {}
    for metric in parsed.columns:
        point = parsed.last(metric)
        if point is not None:
            final[metric] = point.value
    return MetricsSummary(
        final=final, steps=len(parsed.steps), last_step=parsed.steps[-1] if parsed.steps else None
    )


async def observe_accounts(
    desired: Desired,
    clouds: Mapping[str, Cloud],
    *,
    also: Iterable[str] = (),
    cache: StateFile | None = None,
) -> dict[str, Observation]:
    """Observe, concurrently, every account the manifests use or declare (plus ``also``).

    With no account named at all, every connected account is observed. An account that is used
    but has no connection is an error naming it.
    """
    names = set(accounts_used(desired)) | set(also) | {a.name for a in desired.accounts if a.name in clouds}
    if not names and clouds:
        names = set(clouds)
    missing = sorted(n for n in names if n not in clouds)
    if missing:
        raise TunekeeperError(
            f"No connection to account {missing[0]!r}",
            hint="declare an Account with that name, or name one that exists in spec.account",
        )
    specs = {a.name: a for a in desired.accounts}
    found = await asyncio.gather(*(
        observe(clouds[n], specs.get(n) or standin_account(n), desired, cache=cache) for n in sorted(names)
    ))
    return {o.account: o for o in found}


def standin_account(name: str) -> AccountSpec:
    """A stand-in AccountSpec for an account known only by name (the embedded emulator)."""
    return AccountSpec(name=name, endpoint="", subscription_id="", resource_group="", account_name=name)
