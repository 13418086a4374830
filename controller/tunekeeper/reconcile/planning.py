"""``plan``: desired + observed -> an ordered list of typed, executable actions. Pure.

Called by the CLI (``tunekeeper plan``) and by ``converge`` (with the loop's one ``Resolution``).
It reads no clock, environment, network or disk. ``plan`` is a thin assembly of per-kind
planners, each a pure function from the resolution to its actions and blocked resources:

- ``plan_jobs``: create, follow, replace (cancel + delete the previous job), cancel twins;
- ``plan_files``: upload or import the files the jobs need, wait for their processing, delete
  a second copy of an upload the service ran twice;
- ``plan_deployments``: evaluate, create, update, follow; adopt (re-tag) a 0.1 deployment;
- ``plan_prune``: delete this owner's deployments its whole stack no longer declares;
- ``plan_gc``: delete this owner's models (jobs) and files nothing uses any more;
- ``quota_warnings``: say so before a run would exceed the account's file or job limits.

Every action's payload carries what apply needs (see ``model.py``); ``before``/``after`` derive
from it for display.

Ownership (``Desired.owner``, markers in ``markers.py``): only this owner's objects are adopted,
changed or deleted, plus 0.1 (legacy) objects a manifest declares, which are adopted. Deleting
follows the inventory, not the files read: prune and garbage collection happen only when the run
loaded its whole stack (``Desired.complete``), and only for objects carrying this owner's mark.
Their actions are ``last`` (PruneLast): apply runs them after every other change succeeded, in
the order deployments, models, files. Never deleted: another owner's or an unmarked object; a
model any deployment serves (whoever owns the deployment); a model a running job trains from; a
file any job in the account names; a deployment with ``deletionPolicy: Retain``.

Garbage, for this owner: a deployment no manifest declares; a finished job no FineTuneJob
matches, when its resource is gone (``NO_LONGER_DECLARED``), or when it is one of a declared
resource's replaced jobs beyond its ``retainPrevious`` newest succeeded ones
(``BEYOND_RETENTION``; failed or cancelled replaced jobs hold no model and always go); a file no
job names and no manifest needs (``UNUSED``), removed with the results files of the jobs it
served. The plan foresees the cascade: a model whose only deployment is pruned in the same plan
is deleted in it too, and so is a file whose jobs go.

Replacement: when the previous job of a FineTuneJob (``resolution.py`` says how it is found)
succeeded or is still running, a spec change is a replacement: cancel it if running, then
create the new job, both ``REQUIRES_NEW_TRAINING`` and only when ``allowReplacement`` is true;
otherwise ``ReplacementNotAllowed``. The previous job and its model stay (retention): reverting
the manifest re-adopts it with no new training (``ROLLBACK``). When it failed or was cancelled,
nothing paid for would be lost, so the new job is simply created (``SPEC_CHANGED``). A failed or
cancelled job whose spec did not change is never retried automatically: its error is reported
(blocked, ``JOB_FAILED``) until the manifest changes or ``apply --replace`` asks for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import orjson

from tunekeeper.cloud.base import DeploymentRequest, ObservedDeployment, ObservedJob
from tunekeeper.errors import PlanError, ReplacementNotAllowed
from tunekeeper.reconcile import gates as gating
from tunekeeper.reconcile import markers
from tunekeeper.reconcile.model import (
    PLAN_FORMAT_VERSION,
    Action,
    ActionKind,
    Blocked,
    DeploymentPayload,
    DeploymentRefPayload,
    DeploymentView,
    EvalPayload,
    FilePayload,
    FileRefPayload,
    JobPayload,
    JobRefPayload,
    Known,
    ModelDeletePayload,
    Observation,
    Plan,
    Reason,
    ResourceKey,
)
from tunekeeper.reconcile.resolution import (
    ACTIVE_JOB,
    EMBEDDED_ACCOUNT,
    FAILED_JOB,
    GONE_FILE,
    PROVISIONING,
    DeploymentResolution,
    FileNeed,
    JobResolution,
    Resolution,
    account_of,
    accounts_used,
    deployed,
    deployed_anywhere,
    job_error,
    recency,
    resolve,
)
from tunekeeper.resources.specs import Desired

__all__ = [
    "ACTIVE_JOB",
    "EMBEDDED_ACCOUNT",
    "FAILED_JOB",
    "GONE_FILE",
    "PROVISIONING",
    "DeploymentResolution",
    "FileNeed",
    "JobResolution",
    "Resolution",
    "account_of",
    "accounts_used",
    "deployed",
    "job_error",
    "plan",
    "plan_deployments",
    "plan_files",
    "plan_gc",
    "plan_jobs",
    "plan_prune",
    "quota_warnings",
    "resolve",
    "root_relative",
    "touched_state",
]

# The account's published fine-tuning limits (Azure OpenAI quotas and limits).
MAX_FINE_TUNE_FILES = 50  # files with purpose fine-tune
MAX_JOBS = 100  # fine-tuning jobs kept by the resource
MAX_ACTIVE_JOBS = 21  # one running and twenty queued


@dataclass(slots=True)
class Part:
    """What one per-kind planner contributes to the plan."""

    actions: list[Action] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)
    matched: int = 0  # resources of this kind already as declared
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class JobsPart(Part):
    needed_files: set[tuple[str, str]] = field(default_factory=set)  # (account, remote name) the jobs need
    # FineTuneJob -> why it cannot go on (dependents block)
    stuck: dict[str, str] = field(default_factory=dict)


def plan(
    desired: Desired, observed: Mapping[str, Observation], *, digests: Mapping[Path, str],
    known: Known | None = None, resolution: Resolution | None = None, replace: frozenset[str] = frozenset(),
) -> Plan:
    """Ordered actions that move the accounts toward ``desired``. Pure; raises ReplacementNotAllowed.

    ``resolution`` is the loop's ``resolve`` result when the caller has it (converge), so
    matching runs once per loop. ``replace`` names FineTuneJobs to train again on purpose
    (``apply --replace``).
    """
    known = known or Known()
    res = resolution if resolution is not None else resolve(desired, observed, digests=digests, known=known)
    jobs = plan_jobs(res, observed, replace=replace)
    prune = plan_prune(res, desired, observed)
    parts: list[Part] = [
        plan_files(res, observed, jobs.needed_files, root=desired.root),
        jobs,
        plan_deployments(res, desired, known, jobs.stuck),
        prune,
        plan_gc(res, desired, observed, [*jobs.actions, *prune.actions]),
    ]
    actions = tuple(sorted((a for p in parts for a in p.actions), key=Action.sort_key))
    blocked = tuple(sorted((b for p in parts for b in p.blocked), key=lambda b: (b.target, b.account)))
    warnings = [w for p in parts for w in p.warnings] + quota_warnings(observed, actions)
    touched = touched_state(res, observed, actions)
    fingerprint = hashlib.sha256(orjson.dumps(sorted(touched.items()))).hexdigest()
    return Plan(
        PLAN_FORMAT_VERSION,
        fingerprint,
        actions,
        blocked,
        sum(p.matched for p in parts),
        touched,
        tuple(warnings),
        tuple(n for p in parts for n in p.notes),
        desired.owner.id,
        desired.owner.label,
    )


# -- jobs ------------------------------------------------------------------------------------------------
def plan_jobs(res: Resolution, observed: Mapping[str, Observation], *,
              replace: frozenset[str] = frozenset()) -> JobsPart:
    """Create, follow or replace each FineTuneJob's training run; cancel twins of a retried create."""
    part = JobsPart()
    refused: list[str] = []
    unknown = sorted(replace - set(res.jobs))
    if unknown:
        raise PlanError(f"--replace names FineTuneJob {unknown[0]!r}, which these manifests do not declare",
                        hint="write --replace FineTuneJob/NAME with a declared name")
    for r in sorted(res.jobs.values(), key=lambda r: (r.depth, r.spec.name)):
        key = ResourceKey("FineTuneJob", r.spec.name)
        parent = res.jobs.get(r.spec.from_job) if r.spec.from_job else None
        if r.matched is not None and r.spec.name in replace:
            _plan_replaced_job(part, r, key, observed, res)
            continue
        if r.matched is not None:
            _plan_matched_job(part, r, key)
            continue
        if parent is not None and parent.spec.name in part.stuck:
            part.stuck[r.spec.name] = f"its parent {part.stuck[parent.spec.name]}"
            part.blocked.append(
                Blocked(
                    key,
                    Reason.JOB_FAILED,
                    f"Parent FineTuneJob {parent.spec.name} did not succeed; nothing to train from.",
                    r.account,
                )
            )
            continue
        bad_file = next((n for n in (r.training, r.validation)
                         if n is not None and n.observed is not None and n.observed.status == "error"), None)
        if bad_file is not None:
            part.stuck[r.spec.name] = f"FineTuneJob {r.spec.name} has a data file that failed processing"
            part.blocked.append(
                Blocked(
                    key,
                    Reason.FILE_FAILED,
                    f"Data file {bad_file.ref.display or bad_file.name} "
                    "failed processing; fix it and apply again.",
                    r.account,
                )
            )
            part.needed_files.add((bad_file.account, bad_file.name))
            continue
        reason = Reason.NOT_IN_ACCOUNT
        previous = r.previous
        if previous is not None and previous.status not in FAILED_JOB:
            changed = _changed_fields(r, previous, res)
            if not r.spec.allow_replacement:
                refused.append(
                    f"{r.spec.source}: FineTuneJob {r.spec.name}: changing "
                    f"{', '.join(changed) or 'the spec'} needs a new training run "
                    f"(job {previous.id} would be replaced)"
                )
                continue
            if previous.status in ACTIVE_JOB:  # stop paying for a run nobody wants; a finished one is kept
                part.actions.append(Action(ActionKind.CANCEL_JOB, key, Reason.REQUIRES_NEW_TRAINING,
                                           _job_ref(previous), r.account, r.depth))
            reason = Reason.REQUIRES_NEW_TRAINING
        elif previous is not None:
            reason = Reason.SPEC_CHANGED
        if r.model is None:
            reason = Reason.WAITING_FOR_PARENT
        _plan_create(part, r, res, reason)
    if refused:
        raise ReplacementNotAllowed(
            "A spec change needs a new training run and the resource does not allow replacement:\n  "
            + "\n  ".join(refused),
            hint="create a new FineTuneJob (the usual promotion path), or set spec.allowReplacement: true",
        )
    return part


def _plan_create(part: JobsPart, r: JobResolution, res: Resolution, reason: Reason) -> None:
    needs = [n for n in (r.training, r.validation) if n is not None]
    part.needed_files.update((n.account, n.name) for n in needs)
    if r.model is not None and not all(n.ready for n in needs) and reason is Reason.NOT_IN_ACCOUNT:
        reason = Reason.WAITING_FOR_FILES
    key = ResourceKey("FineTuneJob", r.spec.name)
    part.actions.append(Action(ActionKind.CREATE_JOB, key, reason, job_payload(r, res), r.account, r.depth))


def _plan_matched_job(part: JobsPart, r: JobResolution, key: ResourceKey) -> None:
    job = r.matched
    assert job is not None
    if job.status in FAILED_JOB:
        part.stuck[r.spec.name] = f"FineTuneJob {r.spec.name} {job.status}"
    for twin in r.duplicates:  # a create the service ran twice (a retried request): one training is enough
        part.actions.append(
            Action(ActionKind.CANCEL_JOB, key, Reason.DUPLICATE, _job_ref(twin), r.account, r.depth)
        )
    if job.status == "succeeded":
        part.matched += 1
        if r.newer is not None:
            part.notes.append(
                f"FineTuneJob/{r.spec.name} re-adopts job {job.id} ({job.fine_tuned_model}), kept for "
                f"rollback: no new training (job {r.newer.id} is newer)."
            )
    elif job.status in FAILED_JOB:
        part.blocked.append(Blocked(key, Reason.JOB_FAILED, f"Job {job.id} {job.status}: {job_error(job)} "
                                    "Change the manifest (for example the seed), or apply --replace "
                                    f"FineTuneJob/{r.spec.name}, to train again.", r.account))
    else:
        part.actions.append(
            Action(ActionKind.WAIT_JOB, key, Reason.JOB_RUNNING, _job_ref(job), r.account, r.depth)
        )


def _plan_replaced_job(
    part: JobsPart, r: JobResolution, key: ResourceKey, observed: Mapping[str, Observation], res: Resolution
) -> None:
    """``apply --replace``: delete the matched job (cancelled first if it runs) and train again.

    Its markers are the resource's own, so it must go before the new job exists (two jobs with
    one identity would be twins). A model that serves a deployment is never deleted: refused.
    """
    job = r.matched
    assert job is not None
    if deployed_anywhere(job, observed.values()):
        raise PlanError(
            f"{r.spec.source}: FineTuneJob {r.spec.name}: its model {job.fine_tuned_model} serves a "
            "deployment, so --replace would delete what is serving",
            hint="point the deployment elsewhere first, or change the seed to train a new model beside it",
        )
    if job.status in ACTIVE_JOB:
        part.actions.append(
            Action(ActionKind.CANCEL_JOB, key, Reason.REPLACE_REQUESTED, _job_ref(job), r.account, r.depth)
        )
    part.actions.append(Action(ActionKind.DELETE_MODEL, key, Reason.REPLACE_REQUESTED, _model_delete(job),
                               r.account, r.depth))
    _plan_create(part, r, res, Reason.REPLACE_REQUESTED)


def _job_ref(job: ObservedJob) -> JobRefPayload:
    return JobRefPayload(job.id, job.status, job.model, job.fine_tuned_model)


def _model_delete(job: ObservedJob) -> ModelDeletePayload:
    return ModelDeletePayload(job.id, job.status, job.fine_tuned_model, tuple(job.result_files))


def job_payload(r: JobResolution, res: Resolution) -> JobPayload:
    """The whole job request of a FineTuneJob (its model named by parent while the parent trains)."""
    parent = res.jobs.get(r.spec.from_job) if r.spec.from_job else None
    return JobPayload(
        model=r.model, training_file=_file_name(r.training),
        validation_file=_file_name(r.validation) if r.validation else None,
        method=r.spec.method, hyperparameters=r.spec.hyperparameters, suffix=r.suffix, seed=r.seed,
        training_type=r.spec.training_type, fingerprint=r.fingerprint,
        parent=r.spec.from_job if r.model is None else None,
        parent_job_id=parent.matched.id
        if r.model is None and parent is not None and parent.matched
        else None,
    )


def _file_name(need: FileNeed) -> str:
    """The name apply finds the file by: the copy in the account (maybe a legacy one), or the upload's."""
    return need.observed.filename if need.observed is not None else need.name


def replacements(res: Resolution) -> dict[str, tuple[str, ...]]:
    """FineTuneJob -> the manifest fields whose change needs a new training run (for the PR comment)."""
    return {name: tuple(_changed_fields(r, r.previous, res)) for name, r in sorted(res.jobs.items())
            if r.matched is None and r.previous is not None}


def _changed_fields(r: JobResolution, previous: ObservedJob, res: Resolution) -> list[str]:
    """Manifest fields whose change makes ``previous`` not this resource's job any more."""
    changed: list[str] = []
    if r.model is not None and previous.model != r.model:
        changed.append("spec.fromJob" if r.spec.from_job else "spec.baseModel")
    elif r.model is None and r.spec.from_job:
        changed.append("spec.fromJob")
    names = {fid: name for (acc, name), need in res.files.items() if acc == r.account
             for fid in ([need.observed.id] if need.observed else [])}
    if names.get(previous.training_file) != r.training.name:
        changed.append("spec.trainingFile")
    wanted_validation = r.validation.name if r.validation else None
    if (names.get(previous.validation_file or "") if previous.validation_file else None) != wanted_validation:
        changed.append("spec.validationFile")
    if (previous.method or "supervised") != r.spec.method.value:
        changed.append("spec.method")
    changed.extend(f"spec.hyperparameters.{n}" for n in markers.hyperparameter_differences(previous, r.spec))
    if r.spec.seed is not None and previous.seed != r.spec.seed:
        changed.append("spec.seed")
    if (previous.suffix or None) != r.suffix:
        changed.append("spec.suffix")
    if r.spec.training_type is not None and previous.training_type not in (None, r.spec.training_type.value):
        changed.append("spec.trainingType")
    return changed


# -- files -----------------------------------------------------------------------------------------------
def plan_files(res: Resolution, observed: Mapping[str, Observation], needed: Iterable[tuple[str, str]], *,
               root: Path) -> Part:
    """Upload or import each needed file once; wait for its processing; drop a twin upload nobody uses."""
    part = Part()
    used = {
        acc: {j.training_file for j in obs.jobs} | {j.validation_file for j in obs.jobs if j.validation_file}
        for acc, obs in observed.items()
    }
    for (account, name), need in sorted(res.files.items()):
        if need.observed is None:
            continue
        held = need.observed.filename
        for extra in sorted(observed[account].files, key=lambda f: f.id):
            if (extra.filename == held and extra.id != need.observed.id and extra.status not in GONE_FILE
                    and extra.id not in used[account]):
                part.actions.append(
                    Action(
                        ActionKind.DELETE_FILE,
                        ResourceKey("File", held),
                        Reason.DUPLICATE,
                        FileRefPayload(extra.id, held, extra.status),
                        account,
                    )
                )
    for account, name in sorted(set(needed)):
        need = res.files[(account, name)]
        key = ResourceKey("File", name)
        file = need.observed
        if file is None:
            kind = ActionKind.UPLOAD_FILE if need.ref.path is not None else ActionKind.IMPORT_FILE
            payload = FilePayload(
                name,
                need.digest,
                root_relative(need.ref.path, root) if need.ref.path else None,
                need.ref.url,
                need.ref.display or (need.ref.path.name if need.ref.path else ""),
            )
            part.actions.append(Action(kind, key, Reason.NOT_IN_ACCOUNT, payload, account))
        elif file.status == "error":
            part.blocked.append(
                Blocked(
                    key,
                    Reason.FILE_FAILED,
                    f"File {file.id} ({need.ref.display}) failed processing: "
                    f"{file.status_details or 'no details given'}. Fix the data and apply again.",
                    account,
                )
            )
        elif file.status != "processed":
            part.actions.append(
                Action(
                    ActionKind.WAIT_FILE,
                    ResourceKey("File", file.filename),
                    Reason.FILE_PROCESSING,
                    FileRefPayload(file.id, file.filename, file.status),
                    account,
                )
            )
    return part


def root_relative(path: Path, root: Path) -> str:
    """A local path as a saved plan records it: relative to the stack root, in POSIX form."""
    try:
        return PurePosixPath(*path.relative_to(root).parts).as_posix()
    except ValueError:
        return path.as_posix()


# -- deployments -----------------------------------------------------------------------------------------
def plan_deployments(res: Resolution, desired: Desired, known: Known, stuck: Mapping[str, str]) -> Part:
    """Evaluate, create, update or follow each declared Deployment."""
    part = Part()
    owner = desired.owner.id
    for d in res.deployments.values():
        key = ResourceKey("Deployment", d.spec.name)
        current = d.observed
        if current is not None and markers.declared_name(current) != d.spec.name:
            part.blocked.append(
                Blocked(
                    key,
                    Reason.NOT_OWNED,
                    f"Deployment {d.spec.name} exists and was not created "
                    "by tunekeeper; it is left alone. Rename the Deployment or delete the existing "
                    "one.",
                    d.account,
                )
            )
            continue
        holder = markers.deployment_owner(current) if current is not None else None
        if holder is not None and holder != owner:
            part.blocked.append(
                Blocked(
                    key,
                    Reason.NOT_OWNED,
                    f"Deployment {d.spec.name} belongs to another stack "
                    f"(owner {holder}); it is left alone. Rename the Deployment, or set the same "
                    "owner in both stacks' tunekeeper.yaml if they are one.",
                    d.account,
                )
            )
            continue
        if d.refusal is not None:
            part.blocked.append(Blocked(key, d.refusal.reason, d.refusal.message, d.account))
            continue
        why_stuck = stuck.get(d.spec.model.from_job or "")
        if d.selection is None and why_stuck is not None:
            part.blocked.append(
                Blocked(key, Reason.JOB_FAILED, f"Nothing to deploy: {why_stuck}.", d.account)
            )
            continue
        kind = ActionKind.CREATE_DEPLOYMENT if current is None else ActionKind.UPDATE_DEPLOYMENT
        if d.selection is None:
            label = f"FineTuneJob/{d.spec.model.from_job} ({d.spec.model.checkpoint})"
            payload = DeploymentPayload(d.spec.name, None, label, d.spec.sku.value, d.spec.capacity,
                                        DeploymentView.of(current))
            part.actions.append(Action(kind, key, Reason.WAITING_FOR_PARENT, payload, d.account, 1))
            continue
        payload = deployment_payload(d)
        if d.eval_pending:
            part.actions.append(Action(ActionKind.EVALUATE_MODEL, key, Reason.EVAL_PENDING,
                                       eval_payload(d, desired.root), d.account))
            part.actions.append(Action(kind, key, Reason.EVAL_PENDING, payload, d.account))
            continue
        if current is None:
            reason = Reason.DRIFT if d.spec.name in known.deployments else Reason.NOT_IN_ACCOUNT
            part.actions.append(Action(kind, key, reason, payload, d.account))
            continue
        if current.provisioning_state == "Deleting":  # on its way out (by someone else): recreate once gone
            part.actions.append(
                Action(
                    ActionKind.WAIT_DEPLOYMENT,
                    key,
                    Reason.DRIFT,
                    DeploymentRefPayload(d.spec.name, DeploymentView.of(current)),
                    d.account,
                )
            )
            continue
        if _deployment_differs(current, d):
            manifest_changed = any(current.tags.get(k) != d.tags.get(k)
                                   for k in (markers.SPEC_HASH_TAG, markers.DELETION_POLICY_TAG))
            reason = Reason.SPEC_CHANGED if manifest_changed else Reason.DRIFT
            job = res.jobs.get(d.spec.model.from_job or "")
            if job is not None and job.newer is not None and current.model_name != d.selection.model_name:
                reason = Reason.ROLLBACK
            elif holder is None:
                reason = Reason.ADOPTED
            part.actions.append(Action(kind, key, reason, payload, d.account))
        elif current.provisioning_state in PROVISIONING:
            part.actions.append(
                Action(
                    ActionKind.WAIT_DEPLOYMENT,
                    key,
                    Reason.PROVISIONING,
                    DeploymentRefPayload(d.spec.name, DeploymentView.of(current)),
                    d.account,
                )
            )
        elif current.provisioning_state == "Failed":
            part.blocked.append(
                Blocked(
                    key,
                    Reason.DEPLOYMENT_FAILED,
                    f"Deployment {d.spec.name} failed to provision "
                    "with this spec; change the manifest or delete the deployment to try again.",
                    d.account,
                )
            )
        else:
            part.matched += 1
    return part


def deployment_payload(d: DeploymentResolution) -> DeploymentPayload:
    """The whole ARM body of a Deployment whose model is known."""
    assert d.selection is not None
    request = DeploymentRequest(
        name=d.spec.name,
        model_name=d.selection.model_name,
        model_version=d.selection.model_version,
        sku=d.spec.sku,
        capacity=d.spec.capacity,
        tags=dict(sorted(d.tags.items())),
        source=d.source,
    )
    return DeploymentPayload(d.spec.name, request, d.selection.label, d.spec.sku.value, d.spec.capacity,
                             DeploymentView.of(d.observed), d.eval_key if d.eval_pending else None)


def eval_payload(d: DeploymentResolution, root: Path) -> EvalPayload:
    """The eval gate's run: a temporary candidate deployment (tagged as ours, so a crash leftover is
    pruned)."""
    assert d.selection is not None and d.eval_key is not None and d.spec.gates.eval_file is not None
    ref = d.spec.gates.eval_file
    name = gating.candidate_name(d.spec.name)
    tags = markers.deployment_tags(
        name,
        spec_hash="eval",
        deletion_policy=d.spec.deletion_policy,
        owner=d.tags.get(markers.OWNER_TAG),
        manifest=d.tags.get(markers.MANIFEST_TAG),
    )
    candidate = DeploymentRequest(
        name=name,
        model_name=d.selection.model_name,
        model_version=d.selection.model_version,
        sku=d.spec.sku,
        capacity=1,
        tags=tags,
        source=d.source,
    )
    path = root_relative(ref.path, root) if ref.path is not None else ""
    return EvalPayload(d.spec.name, candidate, path, ref.display or path, d.eval_key)


def _deployment_differs(current: ObservedDeployment, d: DeploymentResolution) -> bool:
    assert d.selection is not None
    if current.model_name != d.selection.model_name:
        return True
    if d.selection.model_version is not None and current.model_version != d.selection.model_version:
        return True
    if current.sku != d.spec.sku.value or (current.capacity or 0) != d.spec.capacity:
        return True
    # the manifest tag only scopes pruning: a moved manifest is re-tagged with the next real change
    return any(current.tags.get(k) != v for k, v in d.tags.items() if k != markers.MANIFEST_TAG)


# -- prune and garbage collection ----------------------------------------------------------------------
def plan_prune(res: Resolution, desired: Desired, observed: Mapping[str, Observation]) -> Part:
    """Delete this owner's deployments the whole stack no longer declares (only in a complete run)."""
    part = Part()
    declared = {(d.account, d.spec.name) for d in res.deployments.values()}
    # a candidate of a pending eval gate is the evaluation's own business (crash leftovers are reused)
    declared |= {
        (d.account, gating.candidate_name(d.spec.name)) for d in res.deployments.values() if d.eval_pending
    }
    read = set(desired.files)
    for account in sorted(observed):
        for dep in sorted(observed[account].deployments, key=lambda x: x.name):
            name = markers.declared_name(dep)
            if (
                name is None
                or name != dep.name
                or (account, name) in declared
                or dep.provisioning_state == "Deleting"
            ):
                continue
            holder = markers.deployment_owner(dep)
            if holder is None:
                if dep.tags.get(markers.MANIFEST_TAG) in read:
                    part.warnings.append(
                        f"Deployment {dep.name} was created by tunekeeper 0.1 from "
                        f"{dep.tags[markers.MANIFEST_TAG]}, which no longer declares it; it carries no "
                        "owner mark, so it is left alone. Delete it by hand once nothing uses it."
                    )
                continue
            if holder != desired.owner.id or not desired.complete:
                continue
            if dep.tags.get(markers.DELETION_POLICY_TAG, "Delete") != "Delete":
                continue
            part.actions.append(
                Action(
                    ActionKind.DELETE_DEPLOYMENT,
                    ResourceKey("Deployment", dep.name),
                    Reason.NO_LONGER_DECLARED,
                    DeploymentRefPayload(dep.name, DeploymentView.of(dep)),
                    account,
                    last=True,
                )
            )
    return part


def plan_gc(res: Resolution, desired: Desired, observed: Mapping[str, Observation],
            planned: Iterable[Action]) -> Part:
    """Delete this owner's models and files nothing uses any more (only in a complete run).

    ``planned`` are the deletions already in the plan (pruned deployments, a replaced job): what
    they free is collected in the same plan, so every deletion apply makes was shown.
    """
    part = Part()
    if not desired.complete:
        return part
    planned = list(planned)
    gone_deployments = {(a.account, a.target.name) for a in planned if a.kind is ActionKind.DELETE_DEPLOYMENT}
    # what deployments serve, in every observed account: a model may be served from another one
    served = {d.model_name for acc, o in observed.items() for d in o.deployments
              if (acc, d.name) not in gone_deployments}
    for account in sorted(observed):
        gone_jobs = {a.payload.job_id for a in planned
                     if a.account == account and isinstance(a.payload, ModelDeletePayload)}
        models = _plan_gc_models(res, desired, observed[account], account, served, gone_jobs)
        part.actions.extend(models)
        gone_jobs |= {a.payload.job_id for a in models if isinstance(a.payload, ModelDeletePayload)}
        part.actions.extend(_plan_gc_files(res, desired, observed[account], account, gone_jobs))
    return part


def _plan_gc_models(res: Resolution, desired: Desired, obs: Observation, account: str,
                    served: set[str], gone_jobs: set[str]) -> list[Action]:
    owner = desired.owner.id
    file_owner = {f.id: mark.owner for f in obs.files if (mark := markers.file_mark(f.filename)) is not None}
    trained_from = {j.model for j in obs.jobs if j.status in ACTIVE_JOB}
    kept = {r.matched.id for r in res.jobs.values() if r.matched is not None} | {
        r.previous.id for r in res.jobs.values() if r.previous is not None and r.previous.status in ACTIVE_JOB
    }
    retain: dict[str, int] = {}
    for r in res.jobs.values():
        if r.account == account:
            retain[r.suffix] = max(retain.get(r.suffix, 0), r.spec.retain_previous)
    ours = [j for j in obs.jobs if file_owner.get(j.training_file) == owner and j.id not in kept
            and j.id not in gone_jobs]
    actions: list[Action] = []
    succeeded_by_suffix: dict[str, list[ObservedJob]] = {}
    for job in ours:
        if job.status == "succeeded" and (job.suffix or "") in retain:
            succeeded_by_suffix.setdefault(job.suffix or "", []).append(job)
    newness = recency(obs.jobs)
    within_retention = {j.id for suffix, jobs in succeeded_by_suffix.items()
                        for j in sorted(jobs, key=lambda j: newness[j.id], reverse=True)[:retain[suffix]]}
    for job in sorted(ours, key=lambda j: j.id):
        target = ResourceKey("Model", job.id)
        if job.status in ACTIVE_JOB:
            if (job.suffix or "") not in retain:  # its FineTuneJob is gone: stop paying for the run
                actions.append(Action(ActionKind.CANCEL_JOB, target, Reason.NO_LONGER_DECLARED, _job_ref(job),
                                      account, last=True))
            continue
        if (
            job.id in within_retention
            or _model_names(job, obs) & served
            or job.fine_tuned_model in trained_from
        ):
            continue
        reason = Reason.BEYOND_RETENTION if (job.suffix or "") in retain else Reason.NO_LONGER_DECLARED
        actions.append(
            Action(ActionKind.DELETE_MODEL, target, reason, _model_delete(job), account, last=True)
        )
    return actions


def _model_names(job: ObservedJob, obs: Observation) -> set[str]:
    """Every name a deployment could serve this job's work by: its model, its checkpoints (ids and models)."""
    names = {c.id for c in obs.checkpoints.get(job.id, ())} | {
        c.fine_tuned_model_checkpoint for c in obs.checkpoints.get(job.id, ())}
    if job.fine_tuned_model:
        names.add(job.fine_tuned_model)
        names.add(job.id)
    return names


def _plan_gc_files(res: Resolution, desired: Desired, obs: Observation, account: str,
                   gone_jobs: set[str]) -> list[Action]:
    owner = desired.owner.id
    named = {fid for j in obs.jobs if j.id not in gone_jobs
             for fid in (j.training_file, j.validation_file, *j.result_files) if fid}
    needed = {name for (acc, _), need in res.files.items() if acc == account for name in need.names}
    actions: list[Action] = []
    for f in sorted(obs.files, key=lambda f: (f.filename, f.id)):
        mark = markers.file_mark(f.filename)
        if (mark is None or mark.owner != owner or f.status in GONE_FILE or f.id in named
                or f.filename in needed):
            continue
        actions.append(Action(ActionKind.DELETE_FILE, ResourceKey("File", f.filename), Reason.UNUSED,
                              FileRefPayload(f.id, f.filename, f.status), account, last=True))
    return actions


def quota_warnings(observed: Mapping[str, Observation], actions: Iterable[Action]) -> list[str]:
    """Sentences for each account a run would push past its file or job limits."""
    warnings: list[str] = []
    actions = list(actions)
    for account in sorted(observed):
        obs = observed[account]
        mine = [a for a in actions if a.account == account]
        uploads = sum(1 for a in mine if a.kind in (ActionKind.UPLOAD_FILE, ActionKind.IMPORT_FILE))
        deletes = sum(1 for a in mine if a.kind is ActionKind.DELETE_FILE)
        files = sum(1 for f in obs.files if f.purpose == "fine-tune" and f.status not in GONE_FILE)
        if files + uploads - deletes > MAX_FINE_TUNE_FILES:
            warnings.append(
                f"Account {account} holds {files} fine-tuning files; with {uploads} more it would exceed "
                f"its limit of {MAX_FINE_TUNE_FILES}. Delete unused files (tunekeeper gc removes this "
                "stack's) before applying."
            )
        creates = sum(1 for a in mine if a.kind is ActionKind.CREATE_JOB)
        removed = sum(1 for a in mine if a.kind is ActionKind.DELETE_MODEL)
        if len(obs.jobs) + creates - removed > MAX_JOBS:
            warnings.append(
                f"Account {account} keeps {len(obs.jobs)} fine-tuning jobs; {creates} more would exceed "
                f"its limit of {MAX_JOBS}. Lower retainPrevious or delete unused models."
            )
        active = sum(1 for j in obs.jobs if j.status in ACTIVE_JOB)
        if creates and active + creates > MAX_ACTIVE_JOBS:
            warnings.append(
                f"Account {account} has {active} fine-tuning jobs queued or running; {creates} more would "
                f"exceed its limit of {MAX_ACTIVE_JOBS}: the service refuses them until some finish."
            )
    return warnings


# -- stale-plan check ------------------------------------------------------------------------------------
def touched_state(
    res: Resolution, observed: Mapping[str, Observation], actions: Iterable[Action]
) -> dict[str, str]:
    """For each action's target, a short hash of the observed state the action depends on.

    Progress (a job's status, a deployment's provisioning state) is left out: a saved plan is
    stale when what it would change changed, not when training moved on.
    """
    out: dict[str, str] = {}
    for action in actions:
        label = f"{action.account}:{action.target}"
        obs = observed.get(action.account)
        if obs is None:
            continue
        value: object
        if action.target.kind == "File":
            value = sorted(
                f.id for f in obs.files if f.filename == action.target.name and f.status not in GONE_FILE
            )
        elif action.target.kind == "FineTuneJob":
            r = res.jobs.get(action.target.name)
            value = [r.matched.id if r and r.matched else None, r.previous.id if r and r.previous else None]
        else:
            dep = next((d for d in obs.deployments if d.name == action.target.name), None)
            value = None if dep is None else [dep.model_name, dep.model_version, dep.sku, dep.capacity,
                                              sorted(dep.tags.items())]
        out[label] = hashlib.sha256(orjson.dumps(value)).hexdigest()[:16]
    return out
