"""Status: what each declared resource is, derived from observations, with Kubernetes-style conditions.

Called by ``converge`` after every loop (then written to the state file with
``record_status``) and by the CLI's ``status`` command. Condition types: FineTuneJob has
``DataValidated``, ``Succeeded`` and ``Ready``; Deployment has ``GatesPassed`` and ``Ready``.
Every row also carries Argo CD's two axes (health.py): sync (Synced / OutOfSync / Drifted, read
from the plan of the same observation) and health (Healthy / Progressing / Degraded / ...).
Conditions keep their lastTransitionTime from the state file unless their status flips.
Reads local data files only to hash them when no digests are given; changes nothing remote.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tunekeeper.errors import TunekeeperError
from tunekeeper.reconcile import gates as gating
from tunekeeper.reconcile import markers, planning
from tunekeeper.reconcile.conditions import Condition, ConditionStatus, set_condition
from tunekeeper.reconcile.health import UNKNOWN, Axis, health_of, sync_of
from tunekeeper.reconcile.model import MetricsSummary, Observation, Plan, Reason, ResourceKey
from tunekeeper.reconcile.observe import compute_digests
from tunekeeper.reconcile.state import StateEntry, StateFile
from tunekeeper.resources.specs import Desired


@dataclass(frozen=True, slots=True)
class CheckpointStatus:
    id: str
    step: int
    epoch: int | None
    model: str  # fine_tuned_model_checkpoint
    metrics: Mapping[str, float]

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "step": self.step, "epoch": self.epoch, "model": self.model,
                "metrics": dict(sorted(self.metrics.items()))}


@dataclass(frozen=True, slots=True)
class DeploymentState:
    provisioning_state: str
    model: str
    version: str | None
    sku: str
    capacity: int | None
    deployment_state: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"provisioning_state": self.provisioning_state, "model": self.model, "version": self.version,
                "sku": self.sku, "capacity": self.capacity, "deployment_state": self.deployment_state}


@dataclass(frozen=True, slots=True)
class ResourceStatus:
    """One row of ``tunekeeper status``."""

    kind: str  # FineTuneJob | Deployment
    name: str
    account: str
    conditions: tuple[Condition, ...]
    job_id: str | None = None
    job_status: str | None = None
    fine_tuned_model: str | None = None
    base_model: str | None = None
    error: str | None = None  # Azure's error for a failed job, or the last permanent apply error
    checkpoints: tuple[CheckpointStatus, ...] = ()
    metrics: MetricsSummary | None = None
    deployment: DeploymentState | None = None
    serving: str | None = None  # which model a deployment should serve ("final", "best (step 30)")
    source: str = ""  # manifest file:line
    sync: Axis = UNKNOWN  # do the accounts match the manifest? (health.sync_of)
    health: Axis = UNKNOWN  # does the resource work? (health.health_of)

    @property
    def ready(self) -> bool:
        return any(c.type == "Ready" and c.status == "True" for c in self.conditions)

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    def to_dict(self) -> dict[str, object]:
        ready = self.condition("Ready")
        out: dict[str, object] = {
            "kind": self.kind, "name": self.name, "account": self.account,
            "phase": ready.reason if ready else "Unknown",
            "job_id": self.job_id, "job_status": self.job_status, "fine_tuned_model": self.fine_tuned_model,
            "base_model": self.base_model, "error": self.error,
            "checkpoints": [c.to_dict() for c in self.checkpoints],
            "metrics": self.metrics.to_dict() if self.metrics else None,
            "conditions": [c.to_dict() for c in self.conditions],
            "source": self.source,
            "sync": self.sync.to_dict(), "health": self.health.to_dict(),
        }
        if self.kind == "Deployment":
            out["serving"] = self.serving
            dep = self.deployment.to_dict() if self.deployment else {}
            for key in ("provisioning_state", "model", "version", "sku", "capacity", "deployment_state"):
                out[key] = dep.get(key)
        return out


def status(
    desired: Desired, observations: Mapping[str, Observation], state: StateFile | None, *,
    digests: Mapping[Path, str] | None = None, now: datetime | None = None,
    errors: Mapping[str, str] | None = None, resolution: planning.Resolution | None = None,
) -> list[ResourceStatus]:
    """One ResourceStatus per declared resource, jobs first, by name (``resolution``: converge's, if
    given)."""
    now = now or datetime.now(UTC)
    errors = errors or {}
    res = resolution
    if res is None:
        digests = digests if digests is not None else compute_digests(desired)
        res = planning.resolve(desired, observations, digests=digests, known=state.known() if state else None)
    rows: list[ResourceStatus] = []
    for name in sorted(res.jobs):
        r = res.jobs[name]
        file_error = next((errors[f"File/{n.name}"] for n in (r.training, r.validation)
                           if n is not None and f"File/{n.name}" in errors), None)
        rows.append(
            _job_status(r, res, observations, state, now, errors.get(f"FineTuneJob/{name}"), file_error)
        )
    for name in sorted(res.deployments):
        rows.append(
            _deployment_status(res.deployments[name], res, state, now, errors.get(f"Deployment/{name}"))
        )
    try:
        made = planning.plan(desired, observations,
                             digests=digests if digests is not None else compute_digests(desired),
                             known=state.known() if state else None, resolution=res)
    except TunekeeperError:
        made = None  # e.g. a replacement the manifest does not allow: plan reports it; sync is Unknown
    return [_with_axes(row, made) for row in rows]


def _with_axes(row: ResourceStatus, plan: Plan | None) -> ResourceStatus:
    ready = row.condition("Ready")
    dep = row.deployment
    serving = dep is not None and dep.provisioning_state == "Succeeded"
    return dataclasses.replace(
        row, sync=sync_of(ResourceKey(row.kind, row.name), row.account, plan),
        health=health_of(ready.reason if ready else "", ready.message if ready else "", serving=serving,
                         paused=dep is not None and dep.deployment_state == "Paused"),
    )


def record_status(state: StateFile, rows: Sequence[ResourceStatus]) -> None:
    """Write what the rows teach into the state file (not saved: the caller saves)."""
    for row in rows:
        provisioned = (row.kind == "Deployment" and row.deployment is not None
                       and row.deployment.provisioning_state == "Succeeded")
        job_id = row.job_id if row.kind == "FineTuneJob" else None
        state.record(f"{row.kind}/{row.name}", StateEntry(job_id=job_id, provisioned=provisioned,
                                                         conditions=row.conditions))


def _conds(state: StateFile | None, key: str, now: datetime,
           *items: tuple[str, ConditionStatus, str, str]) -> tuple[Condition, ...]:
    conds = state.conditions(key) if state else ()
    for type_, status_, reason, message in items:
        conds = set_condition(conds, Condition(type_, status_, reason, message), now)
    return conds


def _job_status(
    r: planning.JobResolution, res: planning.Resolution, observations: Mapping[str, Observation],
    state: StateFile | None, now: datetime, error: str | None, file_error: str | None = None,
) -> ResourceStatus:
    key = f"FineTuneJob/{r.spec.name}"
    obs = observations[r.account]
    job = r.matched
    data: tuple[str, ConditionStatus, str, str]
    needs = [n for n in (r.training, r.validation) if n is not None]
    failed_file = next((n for n in needs if n.observed is not None and n.observed.status == "error"), None)
    if job is not None or all(n.ready for n in needs):
        data = ("DataValidated", "True", "FilesProcessed", "Training and validation files were processed.")
    elif failed_file is not None and failed_file.observed is not None:
        data = ("DataValidated", "False", "FileFailed",
                (f"{failed_file.ref.display or failed_file.name} failed processing: "
                f"{failed_file.observed.status_details or 'no details given'}."))
    elif file_error is not None:
        data = ("DataValidated", "False", "FileRejected", file_error.rstrip(".") + ".")
    elif any(n.observed is not None for n in needs):
        data = ("DataValidated", "Unknown", "FilesProcessing", "The service is processing the data files.")
    else:
        data = ("DataValidated", "Unknown", "NotUploaded", "The data files are not uploaded yet.")

    checkpoints: tuple[CheckpointStatus, ...] = ()
    metrics = None
    job_error = None
    if job is None:
        parent = res.jobs.get(r.spec.from_job) if r.spec.from_job else None
        if parent is not None and not parent.succeeded:
            reason, message = "WaitingForParent", f"Waiting for FineTuneJob {parent.spec.name} to succeed."
        elif r.previous is not None and r.previous.status not in planning.FAILED_JOB:
            reason, message = "SpecChanged", f"The spec changed; job {r.previous.id} no longer matches it."
        else:
            reason, message = "NotCreated", "No training job exists yet."
        succeeded: tuple[str, ConditionStatus, str, str] = ("Succeeded", "Unknown", reason, message)
        ready: tuple[str, ConditionStatus, str, str] = ("Ready", "False", reason, message)
    else:
        ordered = obs.checkpoints.get(job.id, ())
        epochs = gating.epochs_of(job, ordered)
        checkpoints = tuple(
            CheckpointStatus(c.id, c.step_number, epochs.get(c.id), c.fine_tuned_model_checkpoint, c.metrics)
            for c in ordered
        )
        metrics = obs.results.get(job.id)
        if job.status == "succeeded":
            message = f"Job {job.id} succeeded: {job.fine_tuned_model}."
            succeeded = ("Succeeded", "True", "TrainingSucceeded", message)
            ready = ("Ready", "True", "TrainingSucceeded", message)
        elif job.status in planning.FAILED_JOB:
            job_error = planning.job_error(job)
            reason = "TrainingFailed" if job.status == "failed" else "TrainingCancelled"
            message = f"Job {job.id} {job.status}: {job_error}"
            succeeded = ("Succeeded", "False", reason, message)
            ready = ("Ready", "False", reason, message)
        else:
            message = f"Job {job.id} is {job.status}."
            epochs_total = job.hyperparameters.get("n_epochs")
            if ordered:
                last = ordered[-1]
                of = f" of {epochs_total}" if isinstance(epochs_total, int) else ""
                message = (
                    f"Epoch {epochs.get(last.id, len(ordered))}{of} finished; checkpoint {last.id} available "
                    f"(step {last.step_number})."
                )
            succeeded = ("Succeeded", "Unknown", "TrainingRunning", message)
            ready = ("Ready", "False", "TrainingRunning", message)
    if error:
        ready = ("Ready", "False", "CloudError", error.rstrip(".") + ".")
    return ResourceStatus(
        kind="FineTuneJob", name=r.spec.name, account=r.account,
        conditions=_conds(state, key, now, data, succeeded, ready),
        job_id=job.id if job else None, job_status=job.status if job else None,
        fine_tuned_model=job.fine_tuned_model if job else None, base_model=r.model,
        error=job_error or error, checkpoints=checkpoints, metrics=metrics, source=str(r.spec.source),
    )


def _deployment_status(
    d: planning.DeploymentResolution, res: planning.Resolution, state: StateFile | None, now: datetime,
    error: str | None,
) -> ResourceStatus:
    key = f"Deployment/{d.spec.name}"
    current = d.observed
    gates: tuple[str, ConditionStatus, str, str]
    if d.refusal is not None and d.refusal.reason is Reason.GATE_FAILED:
        gates = ("GatesPassed", "False", "GateFailed", d.refusal.message)
    elif d.selection is not None and d.eval_pending:
        gates = ("GatesPassed", "Unknown", "EvalPending",
                 f"Metric gates passed; the eval set must still pass against {d.selection.model_name}.")
    elif d.selection is not None:
        checks = ", ".join(f"{g.metric} {d.selection.metrics[g.metric]:.4g} {g.op} {g.threshold:g}"
                           for g in d.spec.gates.metrics if g.metric in d.selection.metrics)
        gates = ("GatesPassed", "True", "GatesPassed",
                 f"Metric gates passed on {d.selection.label}: {checks}." if d.spec.gates.metrics
                 else "No gates are declared.")
    else:
        gates = ("GatesPassed", "Unknown", "WaitingForJob", "The model to judge is not trained yet.")
    holder = markers.deployment_owner(current) if current is not None else None
    owned = (current is not None and markers.declared_name(current) == d.spec.name
             and holder in (None, res.owner))
    ready: tuple[str, ConditionStatus, str, str]
    if current is not None and not owned:
        ready = (
            "Ready",
            "False",
            "NotOwned",
            f"Deployment {d.spec.name} exists and was not created by tunekeeper.",
        )
    elif d.refusal is not None:
        reason = {Reason.GATE_FAILED: "GateFailed", Reason.JOB_FAILED: "JobFailed",
                  Reason.CHECKPOINT_NOT_RETAINED: "CheckpointNotRetained"}.get(d.refusal.reason, "Blocked")
        ready = ("Ready", "False", reason, d.refusal.message)
    elif current is None:
        ready = ("Ready", "False", "NotDeployed" if d.selection else "WaitingForJob",
                 "The deployment does not exist yet." if d.selection else
                 f"Waiting for FineTuneJob {d.spec.model.from_job} to succeed.")
    elif current.provisioning_state == "Failed":
        ready = ("Ready", "False", "ProvisioningFailed", f"Deployment {d.spec.name} failed to provision.")
    elif current.provisioning_state != "Succeeded":
        ready = ("Ready", "False", "Provisioning", f"Provisioning state is {current.provisioning_state}.")
    elif d.selection is not None and current.model_name != d.selection.model_name:
        ready = (
            "Ready",
            "False",
            "Updating",
            f"Serving {current.model_name}; {d.selection.model_name} is wanted.",
        )
    elif d.selection is None:
        ready = ("Ready", "False", "WaitingForJob",
                 f"Serving {current.model_name} until FineTuneJob {d.spec.model.from_job} succeeds.")
    else:
        ready = (
            "Ready",
            "True",
            "Serving",
            f"Serving {current.model_name} ({current.sku} x{current.capacity}).",
        )
    if error:
        ready = ("Ready", "False", "CloudError", error.rstrip(".") + ".")
    job = res.jobs.get(d.spec.model.from_job) if d.spec.model.from_job else None
    return ResourceStatus(
        kind="Deployment",
        name=d.spec.name,
        account=d.account,
        conditions=_conds(state, key, now, gates, ready),
        job_id=job.matched.id if job and job.matched else None,
        fine_tuned_model=job.matched.fine_tuned_model if job and job.matched else None,
        base_model=d.spec.model.base_model,
        error=error,
        deployment=DeploymentState(
            current.provisioning_state,
            current.model_name,
            current.model_version,
            current.sku,
            current.capacity,
            current.deployment_state,
        )
        if current
        else None,
        serving=d.selection.label if d.selection else None,
        source=str(d.spec.source),
    )
