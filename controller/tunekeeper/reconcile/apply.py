"""Apply: carry out a plan's actions against the accounts, one at a time, in plan order.

Called by ``converge`` (with the observations the plan was made from) and by the CLI for a
saved plan (then ``apply`` observes again and refuses the plan if what it would change moved:
``StalePlan``). Every object it creates carries the ownership markers of ``markers.py``, so a
crash between any two requests is adopted by the next run. Prerequisites are checked at the
moment an action runs (a file still processing, a parent still training): the action is then
DEFERRED to the next loop, never forced. A transient cloud error makes the action RETRY on the
next loop; a permanent one FAILS that resource only, and the other resources carry on.
Waits are single checks, not loops: ``converge`` does the waiting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tunekeeper.cloud.base import (
    Cloud,
    DeploymentRequest,
    JobRequest,
    ObservedCheckpoint,
    ObservedEvent,
    ObservedFile,
    ObservedJob,
)
from tunekeeper.errors import NotFound, PermanentCloudError, StalePlan, TransientCloudError, TunekeeperError
from tunekeeper.reconcile import gates, planning
from tunekeeper.reconcile.evaluation import evaluate
from tunekeeper.reconcile.events import ActionOutcome, EventSink, Outcome
from tunekeeper.reconcile.model import Action, ActionKind, Known, Observation, Plan
from tunekeeper.reconcile.observe import compute_digests, observe_accounts
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

    def to_dict(self) -> dict[str, object]:
        return {
            "executed": self.executed, "stopped": self.stopped, "errors": dict(self.errors),
            "outcomes": [{"action": a.to_dict(), "outcome": o.outcome.value, "message": o.message}
                         for a, o in self.outcomes],
        }


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
        if event.type == "metrics" and isinstance(step, (int, float)) and isinstance(steps, (int, float)) and steps > 0:
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
) -> ApplyResult:
    """Carry out ``plan``. Without ``observations`` the accounts are observed again and a stale plan refused.

    ``skip`` names targets ("Kind/name") not to touch (resources that already failed this run);
    ``seen_events`` holds the ids of job events already reported (converge keeps it across loops).
    """
    digests = digests if digests is not None else compute_digests(desired)
    known = known or Known()
    if observations is None:
        observations = await observe_accounts(desired, clouds, also={a.account for a in plan.actions})
        resolution = planning.resolve(desired, observations, digests=digests, known=known)
        now = planning.touched_state(resolution, observations, plan.actions)
        for label, value in sorted(plan.touched.items()):
            if now.get(label) != value:
                target = label.partition(":")[2]
                raise StalePlan(f'Plan is stale: {target} changed after the plan was made. Run "tunekeeper plan" again.',
                                hint="a saved plan applies only to the account as it was observed")
    else:
        resolution = planning.resolve(desired, observations, digests=digests, known=known)
    run = _Run(resolution, observations, clouds, events, seen_events if seen_events is not None else set())
    outcomes: list[tuple[Action, ActionOutcome]] = []
    executed = 0
    stopped = False
    for action in plan.actions:
        label = str(action.target)
        if label in run.errors or label in skip:
            continue
        if stop_after is not None and executed >= stop_after:
            stopped = True
            break
        executed += 1
        events.action_started(action)
        outcome = await run.execute(action)
        events.action_finished(action, outcome)
        outcomes.append((action, outcome))
        if outcome.outcome is Outcome.FAILED:
            run.errors[label] = outcome.message
        if outcome.outcome is Outcome.RETRY:
            run.retry_after = max(run.retry_after or 0.0, outcome.retry_after or 0.0)
    return ApplyResult(tuple(outcomes), executed, stopped, dict(run.errors), run.retry_after, dict(run.created_jobs),
                       dict(run.evals))


class _Run:
    """The state of one apply pass: what this pass created, and the errors so far."""

    def __init__(
        self, resolution: planning.Resolution, observations: Mapping[str, Observation], clouds: Mapping[str, Cloud],
        events: EventSink, seen_events: set[str],
    ) -> None:
        self.res = resolution
        self.observations = observations
        self.seen_events = seen_events
        self.clouds = clouds
        self.events = events
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
        kind = action.kind
        if kind in (ActionKind.UPLOAD_FILE, ActionKind.IMPORT_FILE):
            return await self._add_file(action, cloud)
        if kind is ActionKind.WAIT_FILE:
            file = await self._file(action.account, action.target.name, cloud, refresh=True)
            if file is None:
                raise _Deferred(f"{action.target.name} is not in the account any more")
            return f"{file.id} processed"
        if kind is ActionKind.DELETE_FILE:
            file_id = str((action.before or {})["file_id"])
            await cloud.delete_file(file_id)
            return f"Deleted {file_id}, a second copy of {action.target.name}"
        if kind is ActionKind.CANCEL_JOB:
            job = await cloud.cancel_job(str((action.before or {})["job_id"]))
            return f"Cancelled job {job.id}"
        if kind is ActionKind.DELETE_JOB:
            job_id = str((action.before or {})["job_id"])
            await cloud.delete_job(job_id)
            return f"Deleted job {job_id}"
        if kind is ActionKind.CREATE_JOB:
            return await self._create_job(action, cloud)
        if kind is ActionKind.WAIT_JOB:
            return await self._follow_job(action, cloud)
        if kind in (ActionKind.CREATE_DEPLOYMENT, ActionKind.UPDATE_DEPLOYMENT):
            return await self._put_deployment(action, cloud)
        if kind is ActionKind.EVALUATE_MODEL:
            d = self.res.deployments[action.target.name]
            if d.selection is None or d.eval_key is None:
                raise _Deferred("nothing to evaluate yet")
            self.events.progress(str(action.target), f"Evaluating {d.selection.model_name}", 0, 1)
            verdict = await evaluate(cloud, d)
            self.evals[d.eval_key] = verdict.passed
            self.events.progress(str(action.target), f"Evaluating {d.selection.model_name}", 1, 1)
            return verdict.message
        if kind is ActionKind.DELETE_DEPLOYMENT:
            operation = await cloud.begin_delete_deployment(action.target.name)
            await operation.result()
            return f"Deleted Deployment {action.target.name}"
        if kind is ActionKind.WAIT_DEPLOYMENT:
            try:
                deployment = await cloud.get_deployment(action.target.name)
            except NotFound:
                return f"Deployment {action.target.name} is gone"
            self.events.progress(str(action.target), f"Provisioning {action.target.name}",
                                 1 if deployment.provisioning_state == "Succeeded" else 0, 1)
            if deployment.provisioning_state == "Failed":
                raise PermanentCloudError(f"Deployment {action.target.name} failed to provision")
            if deployment.provisioning_state != "Succeeded":
                raise _Deferred(f"provisioning state {deployment.provisioning_state}")
            return f"Deployment {action.target.name} provisioned"
        raise AssertionError(f"unhandled action kind {kind}")

    # -- files ----------------------------------------------------------------------------------
    async def _add_file(self, action: Action, cloud: Cloud) -> str:
        need = self.res.files[(action.account, action.target.name)]
        key = str(action.target)
        if need.ref.path is not None:
            def on_progress(done: int, total: int) -> None:
                self.events.progress(key, f"Uploading {need.ref.display or need.name}", done, total)

            file = await cloud.upload_file(need.ref.path, filename=need.name, add_bom=True, on_progress=on_progress)
            verb = "Uploaded"
        else:
            assert need.ref.url is not None
            file = await cloud.import_file(need.ref.url, filename=need.name)
            verb = "Imported"
        self.files[(action.account, need.name)] = file
        self.added_now.add((action.account, need.name))
        return f"{verb} {need.name} as {file.id}"

    async def _file(self, account: str, name: str, cloud: Cloud, *, refresh: bool) -> ObservedFile | None:
        """The current copy of a data file; raises _Deferred while it is processing."""
        file = self.files.get((account, name))
        if file is None:
            need = self.res.files.get((account, name))
            file = need.observed if need else None
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
    async def _create_job(self, action: Action, cloud: Cloud) -> str:
        r = self.res.jobs[action.target.name]
        model = r.model
        if model is None:
            model = await self._parent_model(r, cloud)
        training = await self._file(r.account, r.training.name, cloud, refresh=True)
        if training is None:
            raise _Deferred(f"{r.training.name} is not uploaded yet")
        validation_id = None
        if r.validation is not None:
            validation = await self._file(r.account, r.validation.name, cloud, refresh=True)
            if validation is None:
                raise _Deferred(f"{r.validation.name} is not uploaded yet")
            validation_id = validation.id
        request = JobRequest(
            model=model, training_file=training.id, validation_file=validation_id, method=r.spec.method,
            hyperparameters=r.spec.hyperparameters, suffix=r.suffix, seed=r.seed, training_type=r.spec.training_type,
        )
        job = await cloud.create_job(request)
        self.created_jobs[r.spec.name] = job.id
        return f"Created job {job.id} from {model}"

    async def _parent_model(self, r: planning.JobResolution, cloud: Cloud) -> str:
        parent = self.res.jobs.get(r.spec.from_job or "")
        parent_id = self.created_jobs.get(parent.spec.name) if parent else None
        if parent is not None and parent.matched is not None:
            parent_id = parent.matched.id
        if parent_id is None:
            raise _Deferred(f"waiting for FineTuneJob {r.spec.from_job}")
        job = await cloud.get_job(parent_id)
        if job.status != "succeeded" or not job.fine_tuned_model:
            raise _Deferred(f"waiting for FineTuneJob {r.spec.from_job} (job {job.id} is {job.status})")
        return job.fine_tuned_model

    async def _follow_job(self, action: Action, cloud: Cloud) -> str:
        job_id = str((action.before or {})["job_id"])
        job = await cloud.get_job(job_id)
        listed = await cloud.list_job_events(job_id)  # newest first, as the service lists them
        observed = self.observations.get(action.account)
        self._report_training(action, job, observed.checkpoints.get(job_id, ()) if observed is not None else (),
                              listed)
        oldest_first = sorted(enumerate(listed), key=lambda pair: (pair[1].created_at, -pair[0]))
        for _, event in oldest_first:
            if event.id not in self.seen_events:
                self.seen_events.add(event.id)
                if event.type == "message":
                    self.events.message(f"{action.target}: {event.message}")
        if job.status == "succeeded":
            return f"Job {job.id} succeeded: {job.fine_tuned_model}"
        if job.status in planning.FAILED_JOB:
            raise PermanentCloudError(f"Job {job.id} {job.status}: "
                                      f"{job.error_code or 'error'}: {job.error_message or 'no message'}")
        raise _Deferred(f"job {job.id} is {job.status}")

    def _report_training(self, action: Action, job: ObservedJob, checkpoints: Sequence[ObservedCheckpoint],
                         listed: Sequence[ObservedEvent]) -> None:
        """Epochs trained so far, of the job's resolved n_epochs (the unit the CLI shows for a job)."""
        total = trained_epochs_total(job)
        if job.status == "succeeded":
            self.events.progress(str(action.target), f"Training {action.target.name}", total or 1.0, total or 1.0)
        elif job.status == "running":
            self.events.progress(str(action.target), f"Training {action.target.name}",
                                 trained_epochs(job, checkpoints, listed), total)

    # -- deployments ----------------------------------------------------------------------------
    async def _put_deployment(self, action: Action, cloud: Cloud) -> str:
        d = self.res.deployments[action.target.name]
        if d.selection is None:
            raise _Deferred(f"waiting for FineTuneJob {d.spec.model.from_job}")
        if d.eval_pending:
            verdict = self.evals.get(d.eval_key or "")
            if verdict is None:
                raise _Deferred("waiting for the eval gate")
            if not verdict:
                raise _Deferred("the candidate failed the eval gate; the deployment keeps what it serves")
        request = DeploymentRequest(
            name=d.spec.name, model_name=d.selection.model_name, model_version=d.selection.model_version,
            sku=d.spec.sku, capacity=d.spec.capacity, tags=dict(d.tags),
        )
        key = str(action.target)
        self.events.progress(key, f"Provisioning {d.spec.name}", 0, 1)
        operation = await cloud.begin_create_deployment(request)
        deployment = await operation.result()
        state = deployment.provisioning_state if deployment is not None else "Succeeded"
        if state == "Failed":
            raise PermanentCloudError(f"Deployment {d.spec.name} failed to provision")
        self.events.progress(key, f"Provisioning {d.spec.name}", 1, 1)
        verb = "Created" if action.kind is ActionKind.CREATE_DEPLOYMENT else "Updated"
        return f"{verb} Deployment {d.spec.name} ({d.selection.model_name}, {d.spec.sku.value} x{d.spec.capacity})"


def _cloud_message(exc: PermanentCloudError) -> str:
    parts = [exc.message]
    if exc.code:
        parts.append(f"({exc.code})")
    return " ".join(parts)
