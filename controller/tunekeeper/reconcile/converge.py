"""Converge: observe -> plan -> apply, again and again, until the accounts match the manifests.

Called by ``tunekeeper apply`` (and, later, by the operator's handlers); ``apply_saved`` runs
``tunekeeper apply PLANFILE``: exactly the saved plan's actions, no new plan. Without ``wait`` it
makes all the progress possible now (uploads, job creation once files are processed,
deployments of finished jobs) and returns; with ``wait`` it polls until nothing is left to do
(or ``timeout``): the result is ``converged`` when the accounts match the manifests, and only
``settled`` when what is left waits on a person (a failed job, a failed gate, an error). A
resource whose action failed permanently is left alone for the rest of the run and reported in
status; transient errors (after the SDKs' own retries) are retried on the next loop after their
Retry-After, with backoff, a bounded number of times: an action that keeps failing fails its
resource with the last error, so the run ends non-zero instead of retrying forever. ``timeout``
bounds the whole run, requests in flight included. After any failure, nothing is pruned or
collected for the rest of the run. The state file is written after every loop. Each loop observes once and
resolves once; plan, status and error propagation share that one ``Resolution``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from tunekeeper.cloud.base import Cloud
from tunekeeper.errors import PlanError, TransientCloudError
from tunekeeper.reconcile.apply import ApplyResult, apply, check_fresh
from tunekeeper.reconcile.events import EventSink, Outcome
from tunekeeper.reconcile.model import PLAN_FORMAT_VERSION, Action, DeploymentPayload, Plan
from tunekeeper.reconcile.observe import compute_digests, observe_accounts
from tunekeeper.reconcile.planning import plan
from tunekeeper.reconcile.resolution import Resolution, resolve
from tunekeeper.reconcile.state import StateFile
from tunekeeper.reconcile.status import ResourceStatus, record_status, status
from tunekeeper.resources.specs import Desired

Sleep = Callable[[float], Awaitable[None]]
NO_WAIT_LOOPS = 25  # without --wait: at most this many observe/apply rounds (progress stops much sooner)
NO_WAIT_RETRIES = 2  # without --wait: passes an action may meet transient errors before its resource fails
MAX_TRANSIENT_ROUNDS = 6  # with --wait: the same, with backoff between passes (bounded, never forever)
MAX_BACKOFF = 60.0  # seconds between passes at most, unless Retry-After asks for more
T = TypeVar("T")


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
    desired: Desired,
    clouds: Mapping[str, Cloud],
    *,
    state: StateFile | None = None,
    events: EventSink,
    wait: bool,
    poll_interval: float = 2.0,
    timeout: float | None = None,
    stop_after: int | None = None,
    sleep: Sleep | None = None,
    digests: Mapping[Path, str] | None = None,
    replace: frozenset[str] = frozenset(),
) -> ConvergeResult:
    """Loop observe -> plan -> apply; see the module docstring for when it returns.

    ``replace`` names FineTuneJobs to train again on purpose (``apply --replace``): each is
    replaced once, by the first loop that creates its new job.
    """
    sleep = sleep or asyncio.sleep
    digests = digests if digests is not None else compute_digests(desired)
    persist = state is not None
    state = state if state is not None else StateFile(None)
    clock = _Deadline(timeout)
    remaining_budget = stop_after
    errors: dict[str, str] = {}
    failing: dict[str, int] = {}  # target -> consecutive passes its action met a transient error
    to_replace = set(replace)
    loops = actions = observe_failures = 0
    last_plan: Plan | None = None
    rows: list[ResourceStatus] = []
    seen_events: set[str] = set()
    limit = MAX_TRANSIENT_ROUNDS if wait else NO_WAIT_RETRIES

    def finish(*, settled: bool, stopped: bool = False, timed_out: bool = False) -> ConvergeResult:
        shown = last_plan if last_plan is not None else Plan(PLAN_FORMAT_VERSION, "", ())
        return ConvergeResult(settled, shown, tuple(rows), loops, actions, stopped, timed_out, dict(errors))

    while True:
        loops += 1
        try:
            observations = await clock.bound(observe_accounts(desired, clouds, cache=state))
        except _TimedOut:
            return finish(settled=False, timed_out=True)
        except TransientCloudError as exc:
            observe_failures += 1
            if observe_failures > limit:
                raise
            await sleep(_backoff(poll_interval, observe_failures, exc.retry_after))
            continue
        observe_failures = 0
        known = state.known()
        resolution = resolve(desired, observations, digests=digests, known=known)  # once per loop
        last_plan = plan(desired, observations, digests=digests, known=known, resolution=resolution,
                         replace=frozenset(to_replace))
        rows = status(desired, observations, state, digests=digests, errors=errors, resolution=resolution)
        record_status(state, rows)
        if persist:
            state.save()
        # after a failure nothing is deleted for the rest of the run: prune waits for a clean pass
        pending = [a for a in last_plan.actions if str(a.target) not in errors and not (a.last and errors)]
        if not pending:
            return finish(settled=True)
        if remaining_budget is not None and remaining_budget <= 0:
            return finish(settled=False, stopped=True)
        try:
            result = await clock.bound(apply(
                last_plan, desired, clouds, events=events, stop_after=remaining_budget, known=known,
                observations=observations, digests=digests, skip=frozenset(errors), seen_events=seen_events))
        except _TimedOut:
            return finish(settled=False, timed_out=True)
        actions += result.executed
        if remaining_budget is not None:
            remaining_budget -= result.executed
        errors.update(result.errors)
        _give_up_on_repeated_failures(result, failing, errors, limit)
        _propagate(errors, resolution)
        _remember_jobs(state, result)
        to_replace -= set(result.created_jobs)
        for key, passed in result.evals.items():
            state.record_eval(key, passed)
        if persist:
            state.save()
        if result.stopped:
            return finish(settled=False, stopped=True)
        if clock.expired():
            return finish(settled=False, timed_out=True)
        if result.progressed:
            if not wait and loops >= NO_WAIT_LOOPS:
                return finish(settled=False)
            continue
        if result.retrying:
            rounds = max(failing.values(), default=1)
            await sleep(_backoff(poll_interval if wait else 0.0, rounds, result.retry_after))
            continue
        if not wait:
            return finish(settled=False)
        await sleep(poll_interval)


class _TimedOut(Exception):
    """The run's deadline (``timeout``) passed."""


class _Deadline:
    """The whole run's time budget: every observe and apply pass is bounded by what is left of it."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.started = time.monotonic()

    def expired(self) -> bool:
        return self.timeout is not None and time.monotonic() - self.started >= self.timeout

    async def bound(self, work: Awaitable[T]) -> T:
        if self.timeout is None:
            return await work
        left = self.timeout - (time.monotonic() - self.started)
        try:
            return await asyncio.wait_for(work, max(left, 0.001))
        except TimeoutError:
            raise _TimedOut from None


def _backoff(interval: float, rounds: int, retry_after: float | None) -> float:
    """Exponential backoff over passes (the SDKs already retried each request), capped; Retry-After wins."""
    delay: float = min(interval * 2.0 ** max(rounds - 1, 0), MAX_BACKOFF)
    return max(delay, retry_after or 0.0)


def _give_up_on_repeated_failures(result: ApplyResult, failing: dict[str, int], errors: dict[str, str],
                                  limit: int) -> None:
    """An action that met a transient error (after the SDK's own retries) in ``limit`` passes in a row
    fails its resource with the last error: the run then ends non-zero instead of retrying forever."""
    for action, outcome in result.outcomes:
        target = str(action.target)
        if outcome.outcome is Outcome.RETRY:
            failing[target] = failing.get(target, 0) + 1
            if failing[target] >= limit:
                errors.setdefault(
                    target, f"Still failing after {failing[target]} attempts: {outcome.message}"
                )
        elif outcome.outcome is Outcome.DONE:
            failing.pop(target, None)


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
        waiting = any(_needs_new_plan(a) for a in pending)
        executable = [a for a in pending if not _needs_new_plan(a) and not (a.last and waiting)]
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


async def collect_garbage(
    desired: Desired, clouds: Mapping[str, Cloud], *, state: StateFile | None = None, events: EventSink,
    dry_run: bool, digests: Mapping[Path, str] | None = None,
) -> ConvergeResult:
    """``tunekeeper gc``: only the deletions of a plan (prune and garbage collection), nothing created.

    Refused unless the run loaded its whole stack. The plan foresees the cascade (a model whose
    deployment goes, then its files), so one pass deletes what it showed; ``dry_run`` shows it only.
    """
    if not desired.complete:
        raise PlanError(
            "gc needs the whole stack: these paths are only part of it",
            hint="run it on the stack root (the folder holding tunekeeper.yaml, or the repository root)",
        )
    digests = digests if digests is not None else compute_digests(desired)
    state = state if state is not None else StateFile(None)
    observations = await observe_accounts(desired, clouds, cache=state)
    full = plan(desired, observations, digests=digests, known=state.known())
    deletions = replace(full, actions=tuple(a for a in full.actions if a.last), blocked=())
    if dry_run or not deletions.actions:
        return ConvergeResult(not deletions.actions, deletions, (), 1, 0)
    result = await apply(
        deletions, desired, clouds, events=events, observations=observations, digests=digests
    )
    left = tuple(a for a, o in result.outcomes if o.outcome is not Outcome.DONE)
    return ConvergeResult(not left, replace(deletions, actions=left), (), 1, result.executed,
                          errors=dict(result.errors))


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
