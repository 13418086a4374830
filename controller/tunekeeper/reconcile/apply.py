"""Apply: carry out a plan's actions against the accounts, one at a time, in plan order.

Called by ``converge`` (with the observations the plan was made from) and by the CLI for a
saved plan (then ``apply`` observes again and refuses the plan if what it would change moved:
``StalePlan``). Each action runs from its typed payload alone: apply never re-resolves the
manifests and never reads an action's display fields. Every object it creates carries the ownership markers of
``markers.py``, so a crash between any two requests is adopted by the next run. Prerequisites are checked at
the moment an action runs (a file still processing, a parent still training): the action is then
DEFERRED to the next loop, never forced. A transient cloud error makes the action RETRY on the
next loop; a permanent one FAILS that resource only, and the other resources carry on.
Waits are single checks, not loops: ``converge`` does the waiting.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tunekeeper.cloud.base import (
    Cloud,
    JobRequest,
    ObservedCheckpoint,
    ObservedEvent,
    ObservedFile,
    ObservedJob,
)
from tunekeeper.errors import (
    NotFound,
    PermanentCloudError,
    PlanError,
    StalePlan,
    TransientCloudError,
    TunekeeperError,
)
from tunekeeper.reconcile import gates
from tunekeeper.reconcile.evaluation import evaluate
from tunekeeper.reconcile.events import ActionOutcome, EventSink, Outcome
from tunekeeper.reconcile.model import (
    Action,
    ActionKind,
    DeploymentPayload,
    DeploymentRefPayload,
    EvalPayload,
    FilePayload,
    FileRefPayload,
    JobPayload,
    JobRefPayload,
    Known,
    ModelDeletePayload,
    Observation,
    Plan,
)
from tunekeeper.reconcile.observe import compute_digests, observe_accounts
from tunekeeper.reconcile.planning import touched_state
from tunekeeper.reconcile.resolution import FAILED_JOB, best_file, resolve

TERMINAL_JOB = frozenset({"succeeded", *FAILED_JOB})
from tunekeeper.resources.specs import Desired


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What one apply pass did."""

    outcomes: tuple[tuple[Action, ActionOutcome], ...]
    executed: int  # actions started (what ``stop_after`` counts)
    stopped: bool  # stop_after was reached before the end of the plan
    errors: Mapping[str, str] = field(default_factory=dict)  # "Kind/name" -> permanent error message
    retry_after: float | None = None  # the longest Retry-After a transient error asked for
    created_jobs: Mapping[str, str] = field(default_factory=dict)  # FineTuneJob name -> new job id
    evals: Mapping[str, bool] = field(default_factory=dict)  # eval gate verdicts reached (gates.eval_key)

    @property
    def progressed(self) -> bool:
        """True when something finished or changed (worth observing again right away)."""
        return any(o.outcome is Outcome.DONE for _, o in self.outcomes)

    @property
    def retrying(self) -> bool:
        return any(o.outcome is Outcome.RETRY for _, o in self.outcomes)


def trained_epochs_total(job: ObservedJob) -> float | None:
    """The job's resolved n_epochs (None while the service has not resolved "auto")."""
    epochs = job.hyperparameters.get("n_epochs")
    if isinstance(epochs, (int, float)) and not isinstance(epochs, bool) and epochs > 0:
        return float(epochs)
    return None


def trained_epochs(job: ObservedJob, checkpoints: Sequence[ObservedCheckpoint],
                   listed: Sequence[ObservedEvent]) -> float:
    """How many epochs a running job has trained, from the furthest it is known to have got.

    Not the number of checkpoints: the service keeps only the last three, so that count stops at
    3. Two sources, the larger wins: the newest metrics event (``step`` of ``total_steps``, as a
    fraction of n_epochs), and the highest checkpoint step over the steps per epoch (one
    checkpoint per epoch, so consecutive checkpoints are one epoch apart; one or two held means
    one or two epochs done).
    """
    total = trained_epochs_total(job)
    from_metrics = 0.0
    for event in listed if total is not None else ():
        data = event.data or {}
        step, steps = data.get("step"), data.get("total_steps")
        if (
            event.type == "metrics"
            and isinstance(step, (int, float))
            and isinstance(steps, (int, float))
            and steps > 0
        ):
            from_metrics = max(from_metrics, (total or 0.0) * min(float(step), float(steps)) / float(steps))
    ordered = sorted(checkpoints, key=lambda c: c.step_number)
    per_epoch = gates.steps_per_epoch(job, ordered)
    from_checkpoints = float(round(ordered[-1].step_number / per_epoch)) if per_epoch else float(len(ordered))
    done = max(from_metrics, from_checkpoints)
    return min(done, total) if total is not None else done


class _Deferred(Exception):
    """A prerequisite is not ready yet; the action waits for the next loop."""


async def apply(
    plan: Plan, desired: Desired, clouds: Mapping[str, Cloud], *, events: EventSink,
    stop_after: int | None = None, known: Known | None = None,
    observations: Mapping[str, Observation] | None = None, digests: Mapping[Path, str] | None = None,
    skip: frozenset[str] = frozenset(), seen_events: set[str] | None = None,
    created_jobs: Mapping[str, str] | None = None, evals: Mapping[str, bool] | None = None,
) -> ApplyResult:
    """Carry out ``plan``. Without ``observations`` the accounts are observed again and a stale plan refused.

    Each action is executed from its payload alone; ``desired`` gives the stack root (local data
    paths in payloads are relative to it) and the import URLs a plan file leaves out. ``skip``
    names targets ("Kind/name") not to touch (resources that already failed this run);
    ``seen_events`` holds the ids of job events already reported (converge keeps it across loops);
    ``created_jobs`` and ``evals`` carry what earlier passes of the same saved plan learned.
    """
    if observations is None:
        digests = digests if digests is not None else compute_digests(desired)
        observations = await observe_accounts(desired, clouds, also={a.account for a in plan.actions})
        check_fresh(plan, desired, observations, digests=digests, known=known or Known())
    run = _Run(observations, clouds, events, seen_events if seen_events is not None else set(), desired)
    run.created_jobs.update(created_jobs or {})
    run.evals.update(evals or {})
    outcomes: list[tuple[Action, ActionOutcome]] = []
    executed = 0
    stopped = False
    unfinished = False  # a change of this pass did not succeed (yet): deletions that run last wait
    for action in plan.actions:
        label = str(action.target)
        if label in run.errors or label in skip:
            unfinished = unfinished or action.last or action.kind.changes
            continue
        if stop_after is not None and executed >= stop_after:
            stopped = True
            break
        if action.last and unfinished:
            outcome = ActionOutcome(Outcome.DEFERRED, "waits until every other change of the plan succeeded")
            events.action_finished(action, outcome)
            outcomes.append((action, outcome))
            continue
        executed += 1
        events.action_started(action)
        outcome = await run.execute(action)
        events.action_finished(action, outcome)
        outcomes.append((action, outcome))
        if outcome.outcome is not Outcome.DONE and _holds_back_deletions(action):
            unfinished = True
        if outcome.outcome is Outcome.FAILED:
            run.errors[label] = outcome.message
        if outcome.outcome is Outcome.RETRY:
            run.retry_after = max(run.retry_after or 0.0, outcome.retry_after or 0.0)
    return ApplyResult(
        tuple(outcomes),
        executed,
        stopped,
        dict(run.errors),
        run.retry_after,
        dict(run.created_jobs),
        dict(run.evals),
    )


def _holds_back_deletions(action: Action) -> bool:
    """Must this action have succeeded before prune and garbage collection run? Changes and a
    deployment still provisioning do (a renamed deployment serves before the old one goes); a
    job training or a file processing does not (hours of training must not hold back a prune)."""
    return action.last or (action.kind.changes and action.kind is not ActionKind.CANCEL_JOB) \
        or action.kind is ActionKind.WAIT_DEPLOYMENT


def check_fresh(plan: Plan, desired: Desired, observations: Mapping[str, Observation], *,
                digests: Mapping[Path, str], known: Known) -> None:
    """Raise StalePlan naming the first target whose observed state moved since ``plan`` was made."""
    resolution = resolve(desired, observations, digests=digests, known=known)
    now = touched_state(resolution, observations, plan.actions)
    for label, value in sorted(plan.touched.items()):
        if now.get(label) != value:
            target = label.partition(":")[2]
            raise StalePlan(
                f'Plan is stale: {target} changed after the plan was made. Run "tunekeeper plan" again.',
                hint="a saved plan applies only to the account as it was observed",
            )


class _Run:
    """The state of one apply pass: what this pass created, and the errors so far."""

    def __init__(
        self, observations: Mapping[str, Observation], clouds: Mapping[str, Cloud], events: EventSink,
        seen_events: set[str], desired: Desired,
    ) -> None:
        self.observations = observations
        self.seen_events = seen_events
        self.clouds = clouds
        self.events = events
        self.root = desired.root
        # Import URLs by digest: a plan file never holds them (SAS tokens), the manifests do.
        self.urls = {hashlib.sha256(ref.url.encode()).hexdigest(): ref.url
                     for job in desired.jobs for ref in (job.training_file, job.validation_file)
                     if ref is not None and ref.url is not None}
        self.files: dict[tuple[str, str], ObservedFile] = {}
        # Files this pass uploaded or imported: their answer is fresh, so asking again at once would
        # only race the service's processing (a job then created or deferred by a millisecond).
        self.added_now: set[tuple[str, str]] = set()
        self.created_jobs: dict[str, str] = {}
        self.evals: dict[str, bool] = {}
        self.errors: dict[str, str] = {}
        self.retry_after: float | None = None

    async def execute(self, action: Action) -> ActionOutcome:
        try:
            message = await self._dispatch(action, self.clouds[action.account])
        except _Deferred as wait:
            return ActionOutcome(Outcome.DEFERRED, str(wait))
        except TransientCloudError as exc:
            return ActionOutcome(Outcome.RETRY, exc.message, exc.retry_after)
        except PermanentCloudError as exc:
            return ActionOutcome(Outcome.FAILED, _cloud_message(exc))
        except TunekeeperError as exc:
            return ActionOutcome(Outcome.FAILED, exc.message)
        return ActionOutcome(Outcome.DONE, message)

    async def _dispatch(self, action: Action, cloud: Cloud) -> str:
        kind, p = action.kind, action.payload
        if isinstance(p, FilePayload):
            return await self._add_file(action, p, cloud)
        if isinstance(p, FileRefPayload):
            if kind is ActionKind.DELETE_FILE:
                await cloud.delete_file(p.file_id)
                return f"Deleted file {p.file_id} ({p.name})"
            file = await self._file(action.account, p.name, cloud, refresh=True)
            if file is None:
                raise _Deferred(f"{p.name} is not in the account any more")
            return f"{file.id} processed"
        if isinstance(p, JobPayload):
            return await self._create_job(action, p, cloud)
        if isinstance(p, JobRefPayload):
            if kind is ActionKind.CANCEL_JOB:
                return await self._cancel_job(p.job_id, cloud)
            return await self._follow_job(action, p, cloud)
        if isinstance(p, ModelDeletePayload):
            return await self._delete_model(p, cloud)
        if isinstance(p, DeploymentPayload):
            return await self._put_deployment(action, p, cloud)
        if isinstance(p, EvalPayload):
            model = p.candidate.model_name
            self.events.progress(str(action.target), f"Evaluating {model}", 0, 1)
            verdict = await evaluate(cloud, p, self.root)
            self.evals[p.eval_key] = verdict.passed
            self.events.progress(str(action.target), f"Evaluating {model}", 1, 1)
            return verdict.message
        if kind is ActionKind.DELETE_DEPLOYMENT:
            operation = await cloud.begin_delete_deployment(p.name)
            await operation.result()
            return f"Deleted Deployment {p.name}"
        return await self._follow_deployment(action, p, cloud)

    # -- deletions ------------------------------------------------------------------------------
    async def _cancel_job(self, job_id: str, cloud: Cloud) -> str:
        try:
            job = await cloud.cancel_job(job_id)
        except PermanentCloudError as exc:
            if exc.status_code != 409:
                raise
            # Another run (or a person) got there first: "cannot be cancelled because it is cancelled".
            job = await cloud.get_job(job_id)
            if job.status not in TERMINAL_JOB:
                raise
            return f"Job {job.id} was already {job.status}"
        return f"Cancelled job {job.id}"

    async def _delete_model(self, p: ModelDeletePayload, cloud: Cloud) -> str:
        """Delete a finished job (and with it its model), then the results files nothing else names."""
        try:
            job = await cloud.get_job(p.job_id)
        except NotFound:
            job = None
        if job is not None:
            if job.status not in TERMINAL_JOB:
                raise _Deferred(f"job {job.id} is {job.status}; it is deleted once it stopped")
            await cloud.delete_job(p.job_id)
        for file_id in p.result_files:
            await cloud.delete_file(file_id)
        what = f"model {p.fine_tuned_model}" if p.fine_tuned_model else f"job {p.job_id}"
        results = f" and {len(p.result_files)} results file(s)" if p.result_files else ""
        return f"Deleted {what}{results}"

    # -- files ----------------------------------------------------------------------------------
    async def _add_file(self, action: Action, p: FilePayload, cloud: Cloud) -> str:
        key = str(action.target)
        if p.path is not None:
            def on_progress(done: int, total: int) -> None:
                self.events.progress(key, f"Uploading {p.display or p.name}", done, total)

            file = await cloud.upload_file(self.root / p.path, filename=p.name, add_bom=True,
                                           on_progress=on_progress)
            verb = "Uploaded"
        else:
            url = p.url or self.urls.get(p.digest)
            if url is None:
                raise PlanError(f"No manifest declares the URL of {p.name} any more",
                                hint='run "tunekeeper plan" again')
            file = await cloud.import_file(url, filename=p.name)
            verb = "Imported"
        self.files[(action.account, p.name)] = file
        self.added_now.add((action.account, p.name))
        return f"{verb} {p.name} as {file.id}"

    async def _file(self, account: str, name: str, cloud: Cloud, *, refresh: bool) -> ObservedFile | None:
        """The current copy of a data file; raises _Deferred while it is processing."""
        file = self.files.get((account, name))
        if file is None:
            observed = self.observations.get(account)
            file = best_file(observed.files, name) if observed is not None else None
        if file is None:
            return None
        if file.status != "processed" and refresh and (account, name) not in self.added_now:
            try:
                file = await cloud.get_file(file.id)
            except NotFound:
                return None
            self.files[(account, name)] = file
        if file.status == "error":
            raise PermanentCloudError(f"File {file.id} ({name}) failed processing: "
                                      f"{file.status_details or 'no details given'}")
        if file.status != "processed":
            raise _Deferred(f"{name} is {file.status}")
        return file

    # -- jobs -------------------------------------------------------------------------------------
    async def _create_job(self, action: Action, p: JobPayload, cloud: Cloud) -> str:
        model = p.model if p.model is not None else await self._parent_model(p, cloud)
        training = await self._file(action.account, p.training_file, cloud, refresh=True)
        if training is None:
            raise _Deferred(f"{p.training_file} is not uploaded yet")
        validation_id = None
        if p.validation_file is not None:
            validation = await self._file(action.account, p.validation_file, cloud, refresh=True)
            if validation is None:
                raise _Deferred(f"{p.validation_file} is not uploaded yet")
            validation_id = validation.id
        request = JobRequest(
            model=model, training_file=training.id, validation_file=validation_id, method=p.method,
            hyperparameters=p.hyperparameters, suffix=p.suffix, seed=p.seed, training_type=p.training_type,
        )
        job = await cloud.create_job(request)
        self.created_jobs[action.target.name] = job.id
        return f"Created job {job.id} from {model}"

    async def _parent_model(self, p: JobPayload, cloud: Cloud) -> str:
        parent_id = p.parent_job_id or self.created_jobs.get(p.parent or "")
        if parent_id is None:
            raise _Deferred(f"waiting for FineTuneJob {p.parent}")
        job = await cloud.get_job(parent_id)
        if job.status != "succeeded" or not job.fine_tuned_model:
            raise _Deferred(f"waiting for FineTuneJob {p.parent} (job {job.id} is {job.status})")
        return job.fine_tuned_model

    async def _follow_job(self, action: Action, p: JobRefPayload, cloud: Cloud) -> str:
        job = await cloud.get_job(p.job_id)
        listed = await cloud.list_job_events(p.job_id)  # newest first, as the service lists them
        observed = self.observations.get(action.account)
        self._report_training(
            action, job, observed.checkpoints.get(job.id, ()) if observed is not None else (), listed
        )
        oldest_first = sorted(enumerate(listed), key=lambda pair: (pair[1].created_at, -pair[0]))
        for _, event in oldest_first:
            if event.id not in self.seen_events:
                self.seen_events.add(event.id)
                if event.type == "message":
                    self.events.message(f"{action.target}: {event.message}")
        if job.status == "succeeded":
            return f"Job {job.id} succeeded: {job.fine_tuned_model}"
        if job.status in FAILED_JOB:
            raise PermanentCloudError(f"Job {job.id} {job.status}: "
                                      f"{job.error_code or 'error'}: {job.error_message or 'no message'}")
        raise _Deferred(f"job {job.id} is {job.status}")

    def _report_training(self, action: Action, job: ObservedJob, checkpoints: Sequence[ObservedCheckpoint],
                         listed: Sequence[ObservedEvent]) -> None:
        """Epochs trained so far, of the job's resolved n_epochs (the unit the CLI shows for a job)."""
        total = trained_epochs_total(job)
        if job.status == "succeeded":
            self.events.progress(
                str(action.target), f"Training {action.target.name}", total or 1.0, total or 1.0
            )
        elif job.status == "running":
            self.events.progress(str(action.target), f"Training {action.target.name}",
                                 trained_epochs(job, checkpoints, listed), total)

    # -- deployments ----------------------------------------------------------------------------
    async def _put_deployment(self, action: Action, p: DeploymentPayload, cloud: Cloud) -> str:
        if p.request is None:
            raise _Deferred(f"waiting for {p.label}")
        if p.eval_key is not None:
            verdict = self.evals.get(p.eval_key)
            if verdict is None:
                raise _Deferred("waiting for the eval gate")
            if not verdict:
                raise _Deferred("the candidate failed the eval gate; the deployment keeps what it serves")
        request = p.request
        key = str(action.target)
        self.events.progress(key, f"Provisioning {request.name}", 0, 1)
        operation = await cloud.begin_create_deployment(request)
        deployment = await operation.result()
        state = deployment.provisioning_state if deployment is not None else "Succeeded"
        if state == "Failed":
            raise PermanentCloudError(f"Deployment {request.name} failed to provision")
        self.events.progress(key, f"Provisioning {request.name}", 1, 1)
        verb = "Created" if action.kind is ActionKind.CREATE_DEPLOYMENT else "Updated"
        return (f"{verb} Deployment {request.name} ({request.model_name}, "
                f"{request.sku.value} x{request.capacity})")

    async def _follow_deployment(self, action: Action, p: DeploymentRefPayload, cloud: Cloud) -> str:
        try:
            deployment = await cloud.get_deployment(p.name)
        except NotFound:
            return f"Deployment {p.name} is gone"
        self.events.progress(str(action.target), f"Provisioning {p.name}",
                             1 if deployment.provisioning_state == "Succeeded" else 0, 1)
        if deployment.provisioning_state == "Failed":
            raise PermanentCloudError(f"Deployment {p.name} failed to provision")
        if deployment.provisioning_state != "Succeeded":
            raise _Deferred(f"provisioning state {deployment.provisioning_state}")
        return f"Deployment {p.name} provisioned"


def _cloud_message(exc: PermanentCloudError) -> str:
    parts = [exc.message]
    if exc.code:
        parts.append(f"({exc.code})")
    return " ".join(parts)
