"""Converge: observe -> plan -> apply, again and again, until the accounts match the manifests.

Called by ``tunekeeper apply`` (and, later, by the operator's handlers); ``apply_saved`` runs
``tunekeeper apply PLANFILE``: exactly the saved plan's actions, no new plan. Without ``wait`` it
makes all the progress possible now (uploads, job creation once files are processed,
deployments of finished jobs) and returns; with ``wait`` it polls until nothing is left to do
(or ``timeout``): the result is ``converged`` when the accounts match the manifests, and only
``settled`` when what is left waits on a person (a failed job, a failed gate, an error). A resource whose
action failed permanently is left alone for the rest of the run and reported in status; transient errors are
retried on the next loop after their Retry-After. The state file is written after every loop. Each loop
observes once and resolves once; plan, status and error propagation share that one ``Resolution``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from tunekeeper.cloud.base import Cloud
from tunekeeper.errors import TransientCloudError
from tunekeeper.reconcile.apply import ApplyResult, apply, check_fresh
from tunekeeper.reconcile.events import EventSink, Outcome
from tunekeeper.reconcile.model import Action, DeploymentPayload, Plan
from tunekeeper.reconcile.observe import compute_digests, observe_accounts
from tunekeeper.reconcile.planning import plan
from tunekeeper.reconcile.resolution import Resolution, resolve
from tunekeeper.reconcile.state import StateFile
from tunekeeper.reconcile.status import ResourceStatus, record_status, status
from tunekeeper.resources.specs import Desired

Sleep = Callable[[float], Awaitable[None]]
NO_WAIT_LOOPS = 25  # without --wait: at most this many observe/apply rounds (progress stops much sooner)
NO_WAIT_RETRIES = 3  # without --wait: transient errors retried this many times before returning


@dataclass(frozen=True, slots=True)
class ConvergeResult:
    settled: bool  # nothing more can be done now: every action left belongs to a failed resource
    remaining: Plan  # the last plan: what is still in progress, and what is blocked
    statuses: tuple[ResourceStatus, ...]
    loops: int
    actions: int  # actions started over all loops
    stopped: bool = False  # stop_after was reached
    timed_out: bool = False
    errors: Mapping[str, str] = field(default_factory=dict)  # "Kind/name" -> permanent error

    @property
    def converged(self) -> bool:
        """The accounts match the manifests: settled, nothing blocked, no errors."""
        return self.settled and not self.remaining.blocked and not self.errors

    def to_dict(self) -> dict[str, object]:
        return {
            "converged": self.converged,
            "ok": self.converged,
            "settled": self.settled,
            "loops": self.loops,
            "actions": self.actions,
            "stopped": self.stopped,
            "timed_out": self.timed_out,
            "errors": dict(self.errors),
            "remaining": self.remaining.to_dict(),
            "status": [s.to_dict() for s in self.statuses],
        }


async def converge(
    desired: Desired, clouds: Mapping[str, Cloud], *, state: StateFile | None = None, events: EventSink,
    wait: bool, poll_interval: float = 2.0, timeout: float | None = None, stop_after: int | None = None,
    sleep: Sleep | None = None, digests: Mapping[Path, str] | None = None,
) -> ConvergeResult:
    """Loop observe -> plan -> apply; see the module docstring for when it returns."""
    sleep = sleep or asyncio.sleep
    digests = digests if digests is not None else compute_digests(desired)
    persist = state is not None
    state = state if state is not None else StateFile(None)
    started = time.monotonic()
    remaining_budget = stop_after
    errors: dict[str, str] = {}
    loops = actions = transient_rounds = 0
    last_plan: Plan | None = None
    rows: list[ResourceStatus] = []
    seen_events: set[str] = set()

    def finish(*, settled: bool, stopped: bool = False, timed_out: bool = False) -> ConvergeResult:
        assert last_plan is not None
        return ConvergeResult(
            settled, last_plan, tuple(rows), loops, actions, stopped, timed_out, dict(errors)
        )

    while True:
        loops += 1
        try:
            observations = await observe_accounts(desired, clouds, cache=state)
        except TransientCloudError as exc:
            transient_rounds += 1
            if (not wait and transient_rounds > NO_WAIT_RETRIES) or _expired(started, timeout):
                raise
            await sleep(max(poll_interval, exc.retry_after or 0.0))
            continue
        known = state.known()
        resolution = resolve(desired, observations, digests=digests, known=known)  # once per loop
        last_plan = plan(desired, observations, digests=digests, known=known, resolution=resolution)
        rows = status(desired, observations, state, digests=digests, errors=errors, resolution=resolution)
        record_status(state, rows)
        if persist:
            state.save()
        pending = [a for a in last_plan.actions if str(a.target) not in errors]
        if not pending:
            return finish(settled=True)
        if remaining_budget is not None and remaining_budget <= 0:
            return finish(settled=False, stopped=True)
        result = await apply(
            last_plan,
            desired,
            clouds,
            events=events,
            stop_after=remaining_budget,
            known=known,
            observations=observations,
            digests=digests,
            skip=frozenset(errors),
            seen_events=seen_events,
        )
        actions += result.executed
        if remaining_budget is not None:
            remaining_budget -= result.executed
        errors.update(result.errors)
        _propagate(errors, resolution)
        _remember_jobs(state, result)
        for key, passed in result.evals.items():
            state.record_eval(key, passed)
        if persist:
            state.save()
        if result.stopped:
            return finish(settled=False, stopped=True)
        if _expired(started, timeout):
            return finish(settled=False, timed_out=True)
        if result.progressed:
            transient_rounds = 0
            if not wait and loops >= NO_WAIT_LOOPS:
                return finish(settled=False)
            continue
        if result.retrying:
            transient_rounds += 1
            if not wait and transient_rounds > NO_WAIT_RETRIES:
                return finish(settled=False)
            await sleep(max(poll_interval if wait else 0.0, result.retry_after or 0.0))
            continue
        if not wait:
            return finish(settled=False)
        await sleep(poll_interval)


async def apply_saved(
    saved: Plan, desired: Desired, clouds: Mapping[str, Cloud], *, state: StateFile | None = None,
    events: EventSink, wait: bool, poll_interval: float = 2.0, timeout: float | None = None,
    sleep: Sleep | None = None, digests: Mapping[Path, str] | None = None,
) -> ConvergeResult:
    """Execute exactly the actions of a saved plan (no new plan is made), refusing it when stale.

    The world is observed first and ``check_fresh`` raises StalePlan naming what moved. Then the
    plan's actions run in order; those deferred (a file still processing, a parent still
    training) run again after ``poll_interval`` — with ``wait`` until each is done or failed (or
    ``timeout``), without it while passes still make progress. An action whose payload waits on
    something this plan cannot know (a deployment of a model not trained when the plan was made)
    is left for the next plan: the result lists it as still in progress.
    """
    sleep = sleep or asyncio.sleep
    digests = digests if digests is not None else compute_digests(desired)
    persist = state is not None
    state = state if state is not None else StateFile(None)
    started = time.monotonic()
    observations = await observe_accounts(
        desired, clouds, also={a.account for a in saved.actions}, cache=state
    )
    check_fresh(saved, desired, observations, digests=digests, known=state.known())
    pending = list(saved.actions)
    errors: dict[str, str] = {}
    created: dict[str, str] = {}
    evals: dict[str, bool] = {}
    seen_events: set[str] = set()
    loops = actions = 0
    settled = timed_out = False
    while True:
        loops += 1
        result = await apply(replace(saved, actions=tuple(pending)), desired, clouds, events=events,
                             observations=observations, digests=digests, skip=frozenset(errors),
                             seen_events=seen_events, created_jobs=created, evals=evals)
        actions += result.executed
        errors.update(result.errors)
        created.update(result.created_jobs)
        evals.update(result.evals)
        for name, job_id in result.created_jobs.items():
            state.remember_job(name, job_id)
        for key, passed in result.evals.items():
            state.record_eval(key, passed)
        finished = {id(a) for a, o in result.outcomes if o.outcome in (Outcome.DONE, Outcome.FAILED)}
        pending = [a for a in pending if id(a) not in finished and str(a.target) not in errors]
        executable = [a for a in pending if not _needs_new_plan(a)]
        if not executable:
            settled = not pending
            break
        if _expired(started, timeout):
            timed_out = True
            break
        if not wait and not result.progressed and not result.retrying:
            break
        await sleep(max(poll_interval, result.retry_after or 0.0))
        observations = await observe_accounts(
            desired, clouds, also={a.account for a in saved.actions}, cache=state
        )
    resolution = resolve(desired, observations, digests=digests, known=state.known())
    rows = status(desired, observations, state, digests=digests, errors=errors, resolution=resolution)
    record_status(state, rows)
    if persist:
        state.save()
    remaining = replace(saved, actions=tuple(pending))
    return ConvergeResult(settled, remaining, tuple(rows), loops, actions, False, timed_out, errors)


def _needs_new_plan(action: Action) -> bool:
    """An action whose payload waits on a value only a later plan can know (the model to deploy)."""
    return isinstance(action.payload, DeploymentPayload) and action.payload.request is None


def _expired(started: float, timeout: float | None) -> bool:
    return timeout is not None and time.monotonic() - started >= timeout


def _remember_jobs(state: StateFile, result: ApplyResult) -> None:
    """A job id is recorded as soon as it exists, so the next plan knows it even before it is adopted."""
    for name, job_id in result.created_jobs.items():
        state.remember_job(name, job_id)


def _propagate(errors: dict[str, str], res: Resolution) -> None:
    """A failed file fails the jobs that need it; a failed job fails its children and deployments."""
    if not errors:
        return
    changed = True
    while changed:
        changed = False
        for name, r in res.jobs.items():
            key = f"FineTuneJob/{name}"
            if key in errors:
                continue
            for need in (r.training, r.validation):
                if need is not None and f"File/{need.name}" in errors:
                    errors[key] = (
                        f"Data file {need.ref.display or need.name} was refused: "
                        f"{errors[f'File/{need.name}']}"
                    )
                    changed = True
                    break
            else:
                if r.spec.from_job and f"FineTuneJob/{r.spec.from_job}" in errors:
                    errors[key] = f"Parent FineTuneJob {r.spec.from_job} failed."
                    changed = True
        for name, d in res.deployments.items():
            key = f"Deployment/{name}"
            job = d.spec.model.from_job
            if key not in errors and job and f"FineTuneJob/{job}" in errors and d.selection is None:
                errors[key] = f"FineTuneJob {job} failed."
                changed = True
