"""``plan``: desired + observed -> an ordered list of actions. Pure.

Called by the CLI (``tunekeeper plan``), by ``converge`` and by ``apply`` (to re-check a saved
plan). It reads no clock, environment, network or disk: data-file digests come in as an
argument (``compute_digests`` does that I/O), earlier knowledge as ``Known``.

How a FineTuneJob's "previous" job is found (for replacement): the job id the state file
recorded for the resource (``Known.jobs``) when it is still in the account, otherwise the
newest owned job (training file with a content-hashed name) carrying the resource's effective
suffix that matches no declared resource. When the previous job succeeded or is still
running, a spec change is a replacement: cancel (if running) and delete it, then create the
new job, all with ``REQUIRES_NEW_TRAINING`` and only when ``allowReplacement`` is true;
otherwise ``ReplacementNotAllowed``. When it failed or was cancelled, nothing paid for would be
lost, so the new job is simply created (``SPEC_CHANGED``). A failed or cancelled job whose spec
did not change is never retried automatically: its error is reported (blocked, ``JOB_FAILED``)
until the manifest changes.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tunekeeper.cloud.base import ObservedDeployment, ObservedFile, ObservedJob
from tunekeeper.errors import PlanError, ReplacementNotAllowed
from tunekeeper.reconcile import gates as gating
from tunekeeper.reconcile import markers
from tunekeeper.reconcile.model import (
    PLAN_FORMAT_VERSION,
    Action,
    ActionKind,
    Blocked,
    Known,
    Observation,
    Plan,
    Reason,
    ResourceKey,
)
from tunekeeper.reconcile.render import redact_url
from tunekeeper.resources.specs import DataRef, DeploymentSpec, Desired, FineTuneJobSpec

EMBEDDED_ACCOUNT = "embedded"
ACTIVE_JOB = frozenset({"created", "validating_files", "queued", "pending", "running", "pausing", "paused",
                        "resuming", "cancelling"})
FAILED_JOB = frozenset({"failed", "cancelled"})
GONE_FILE = frozenset({"deleted", "deleting"})
PROVISIONING = frozenset({"Accepted", "Creating", "Moving", "Updating"})


@dataclass(frozen=True, slots=True)
class FileNeed:
    """A data file some job needs in an account, under its content-hashed name."""

    account: str
    name: str  # tk-<sha256[:16]>-<original name>
    ref: DataRef
    digest: str
    observed: ObservedFile | None  # the best copy in the account (processed > processing > error)

    @property
    def ready(self) -> bool:
        return self.observed is not None and self.observed.status == "processed"


@dataclass(frozen=True, slots=True)
class JobResolution:
    """What plan learned about one FineTuneJob."""

    spec: FineTuneJobSpec
    account: str
    depth: int  # 0 for a base-model job, parent's depth + 1 for fromJob
    fingerprint: str
    seed: int
    suffix: str
    training: FileNeed
    validation: FileNeed | None
    model: str | None  # the base model to train from; None while the parent has no fine-tuned model
    matched: ObservedJob | None  # the job that is this resource (adoption rule in markers.py)
    previous: ObservedJob | None  # an earlier job of this resource with another fingerprint
    duplicates: tuple[ObservedJob, ...] = ()  # other jobs that also match and still train (a retried create)

    @property
    def succeeded(self) -> bool:
        return self.matched is not None and self.matched.status == "succeeded" and bool(self.matched.fine_tuned_model)

    @property
    def failed(self) -> bool:
        return self.matched is not None and self.matched.status in FAILED_JOB


@dataclass(frozen=True, slots=True)
class DeploymentResolution:
    spec: DeploymentSpec
    account: str
    observed: ObservedDeployment | None
    selection: gating.Selection | None  # None while the model is not known yet
    refusal: gating.Refusal | None  # why it cannot be deployed (failed job, gate, checkpoint)
    spec_hash: str | None
    tags: Mapping[str, str] = field(default_factory=dict)
    eval_key: str | None = None  # set when the eval gate must judge ``selection`` before it is served
    eval_pending: bool = False  # the eval gate has not judged ``selection`` yet


@dataclass(frozen=True, slots=True)
class Resolution:
    """Desired resources matched against observations; shared by plan, apply and status."""

    jobs: Mapping[str, JobResolution]
    deployments: Mapping[str, DeploymentResolution]
    files: Mapping[tuple[str, str], FileNeed]  # (account, name) -> need


def account_of(desired: Desired, name: str | None) -> str:
    """The account a resource lives in: its own, the only declared one, or the embedded emulator."""
    if name:
        return name
    if len(desired.accounts) == 1:
        return desired.accounts[0].name
    return EMBEDDED_ACCOUNT


def accounts_used(desired: Desired) -> set[str]:
    """Every account some declared resource lives in."""
    names = {account_of(desired, j.account) for j in desired.jobs}
    return names | {account_of(desired, d.account) for d in desired.deployments}


def resolve(
    desired: Desired, observed: Mapping[str, Observation], *, digests: Mapping[Path, str],
    known: Known | None = None,
) -> Resolution:
    """Match every declared resource to what the accounts hold. Pure."""
    known = known or Known()
    for spec_account in accounts_used(desired):
        if spec_account not in observed:
            raise PlanError(f"Account {spec_account!r} was not observed",
                            hint="observe every account the manifests name before planning")
    files: dict[tuple[str, str], FileNeed] = {}
    jobs: dict[str, JobResolution] = {}
    fingerprints: dict[str, str] = {}
    needs_of: dict[str, tuple[FileNeed, FileNeed | None]] = {}
    specs = {j.name: j for j in desired.jobs}

    def need(account: str, ref: DataRef, owner: FineTuneJobSpec) -> FileNeed:
        try:
            digest = markers.data_digest(ref, digests)
        except KeyError:
            raise PlanError(f"{owner.source}: no digest for {ref.display or ref.path}",
                            hint="compute_digests(desired) must run before plan") from None
        name = markers.remote_filename(ref, digest)
        key = (account, name)
        if key not in files:
            files[key] = FileNeed(account, name, ref, digest, _best_file(observed[account].files, name))
        return files[key]

    def fingerprint(spec: FineTuneJobSpec, seen: frozenset[str] = frozenset()) -> str:
        if spec.name in fingerprints:
            return fingerprints[spec.name]
        if spec.name in seen:
            raise PlanError(f"{spec.source}: fromJob chain loops back to FineTuneJob {spec.name!r}")
        if spec.from_job is not None:
            parent = specs.get(spec.from_job)
            if parent is None:
                raise PlanError(f"{spec.source}: fromJob names FineTuneJob {spec.from_job!r}, which is not declared")
            base = "job:" + fingerprint(parent, seen | {spec.name})
        else:
            base = spec.base_model or ""
        account = account_of(desired, spec.account)
        training = need(account, spec.training_file, spec)
        validation = need(account, spec.validation_file, spec) if spec.validation_file else None
        fp = markers.job_fingerprint(spec, base=base, training_digest=training.digest,
                                     validation_digest=validation.digest if validation else None)
        fingerprints[spec.name] = fp
        needs_of[spec.name] = (training, validation)
        return fp

    for spec in desired.jobs:
        fingerprint(spec)

    all_jobs = {acc: obs.jobs for acc, obs in observed.items()}
    file_ids = {acc: _ids_by_name(obs.files) for acc, obs in observed.items()}
    orphan_ids = {acc: _orphan_ids(obs) for acc, obs in observed.items()}

    def resolve_job(spec: FineTuneJobSpec) -> JobResolution:
        if spec.name in jobs:
            return jobs[spec.name]
        account = account_of(desired, spec.account)
        fp = fingerprints[spec.name]
        depth = 0
        model: str | None = spec.base_model
        if spec.from_job is not None:
            parent = resolve_job(specs[spec.from_job])
            depth = parent.depth + 1
            model = parent.matched.fine_tuned_model if parent.succeeded and parent.matched else None
        training, validation = needs_of[spec.name]
        seed = markers.effective_seed(spec, fp)
        matched = None
        candidates: list[ObservedJob] = []
        if model is not None:
            ids = file_ids[account]
            # Data files deleted after training: their ids are gone from the account. The job
            # still counts when its seed was derived (it encodes the data digests) or the state
            # file recorded it for this resource.
            orphans = orphan_ids[account]
            if spec.seed is not None:
                known_job = next((j for j in all_jobs[account] if j.id == known.jobs.get(spec.name)), None)
                orphans = frozenset({known_job.training_file, known_job.validation_file or ""}) & orphans \
                    if known_job else frozenset()
            training_ids = ids.get(training.name, orphans)
            validation_ids = ids.get(validation.name, orphans) if validation else None
            candidates = [
                j for j in all_jobs[account]
                if markers.job_matches(j, spec, model=model, training_ids=training_ids,
                                       validation_ids=validation_ids, seed=seed)
            ]
            matched = _preferred(candidates)
        duplicates = tuple(sorted((j for j in candidates if j is not matched and j.status in ACTIVE_JOB),
                                  key=lambda j: j.id))
        resolution = JobResolution(spec, account, depth, fp, seed, markers.effective_suffix(spec), training,
                                   validation, model, matched, None, duplicates)
        jobs[spec.name] = resolution
        return resolution

    for spec in sorted(desired.jobs, key=lambda s: s.name):
        resolve_job(spec)

    # previous jobs: only once every resource has its match, so no resource claims another's job
    claimed = {r.matched.id for r in jobs.values() if r.matched is not None}
    for name, r in list(jobs.items()):
        if r.matched is None:
            jobs[name] = _with_previous(r, all_jobs[r.account], file_ids[r.account], claimed, known)

    deployments: dict[str, DeploymentResolution] = {}
    for dspec in sorted(desired.deployments, key=lambda s: s.name):
        deployments[dspec.name] = _resolve_deployment(dspec, account_of(desired, dspec.account), observed, jobs,
                                                      markers.manifest_label(desired.root, dspec.source.path),
                                                      digests, known)
    return Resolution(jobs=jobs, deployments=deployments, files=files)


def _with_previous(
    r: JobResolution, account_jobs: Iterable[ObservedJob], file_ids: Mapping[str, frozenset[str]],
    claimed: set[str], known: Known,
) -> JobResolution:
    by_id = {j.id: j for j in account_jobs}
    known_id = known.jobs.get(r.spec.name)
    if known_id and known_id in by_id and known_id not in claimed:
        return _replace_previous(r, by_id[known_id])
    owned_files = {fid for name, ids in file_ids.items() if markers.is_owned_filename(name) for fid in ids}
    others = {job_id for name, job_id in known.jobs.items() if name != r.spec.name}  # known to be another's
    candidates = [
        j for j in account_jobs
        if j.id not in claimed and j.id not in others and j.training_file in owned_files
        and (j.suffix or None) == r.suffix
    ]
    if not candidates:
        return r
    return _replace_previous(r, max(candidates, key=lambda j: (j.created_at, j.id)))


def _replace_previous(r: JobResolution, previous: ObservedJob) -> JobResolution:
    return dataclasses.replace(r, previous=previous)


def _resolve_deployment(
    spec: DeploymentSpec, account: str, observed: Mapping[str, Observation], jobs: Mapping[str, JobResolution],
    manifest: str, digests: Mapping[Path, str], known: Known,
) -> DeploymentResolution:
    obs = observed[account]
    current = next((d for d in obs.deployments if d.name == spec.name), None)
    job_res = jobs.get(spec.model.from_job) if spec.model.from_job else None
    if spec.model.from_job and job_res is None:
        raise PlanError(f"{spec.source}: fromJob names FineTuneJob {spec.model.from_job!r}, which is not declared")
    refusal: gating.Refusal | None = None
    selection: gating.Selection | None = None
    if job_res is not None and job_res.failed and job_res.matched is not None:
        refusal = gating.Refusal(Reason.JOB_FAILED, f"FineTuneJob {job_res.spec.name} {job_res.matched.status}: "
                                 f"{job_error(job_res.matched)}")
    else:
        matched = job_res.matched if job_res else None
        chosen = gating.select_model(
            spec.model, matched, obs.checkpoints.get(matched.id, ()) if matched else (),
            obs.results.get(matched.id) if matched else None,
        )
        if isinstance(chosen, gating.Refusal):
            refusal = chosen
        elif chosen is not None:
            failures = gating.failed_gates(spec.gates.metrics, chosen.metrics)
            if failures:
                refusal = gating.Refusal(Reason.GATE_FAILED, f"Model {chosen.label} of FineTuneJob "
                                         f"{spec.model.from_job} failed its gates: " + "; ".join(failures) + ".")
            else:
                selection = chosen
    key: str | None = None
    pending = False
    eval_ref = spec.gates.eval_file
    if selection is not None and eval_ref is not None and (current is None or current.model_name != selection.model_name):
        try:
            eval_digest = markers.data_digest(eval_ref, digests)
        except KeyError:
            raise PlanError(f"{spec.source}: no digest for {eval_ref.display or eval_ref.path}",
                            hint="compute_digests(desired) must run before plan") from None
        key = gating.eval_key(spec.name, selection.model_name, eval_digest)
        verdict = known.evals.get(key)
        if verdict is None:
            pending = True
        elif not verdict:
            refusal = gating.Refusal(Reason.GATE_FAILED, f"Model {selection.label} of FineTuneJob "
                                     f"{spec.model.from_job} failed the eval set {eval_ref.display}; "
                                     "the deployment keeps what it serves.")
            selection = None
    spec_hash = None
    tags: Mapping[str, str] = {}
    if selection is not None:
        spec_hash = markers.deployment_spec_hash(selection.model_name, selection.model_version,
                                                 spec.sku.value, spec.capacity)
        tags = markers.deployment_tags(spec.name, spec_hash=spec_hash, deletion_policy=spec.deletion_policy,
                                       manifest=manifest)
    return DeploymentResolution(spec, account, current, selection, refusal, spec_hash, tags, key, pending)


def plan(
    desired: Desired, observed: Mapping[str, Observation], *, digests: Mapping[Path, str],
    known: Known | None = None,
) -> Plan:
    """Ordered actions that move the accounts toward ``desired``. Pure; raises ReplacementNotAllowed."""
    known = known or Known()
    res = resolve(desired, observed, digests=digests, known=known)
    actions: list[Action] = []
    blocked: list[Blocked] = []
    refused: list[str] = []
    matched = 0
    needed_files: set[tuple[str, str]] = set()

    claimed = {r.matched.id for r in res.jobs.values() if r.matched is not None}
    stuck: dict[str, str] = {}  # FineTuneJob name -> why it cannot go on (its dependents are blocked too)
    for r in sorted(res.jobs.values(), key=lambda r: (r.depth, r.spec.name)):
        key = ResourceKey("FineTuneJob", r.spec.name)
        parent = res.jobs.get(r.spec.from_job) if r.spec.from_job else None
        if r.matched is not None and r.matched.status in FAILED_JOB:
            stuck[r.spec.name] = f"FineTuneJob {r.spec.name} {r.matched.status}"
        if r.matched is not None:
            job = r.matched
            for twin in r.duplicates:  # a create the service ran twice (a retried request): one training is enough
                actions.append(Action(ActionKind.CANCEL_JOB, key, Reason.DUPLICATE,
                                      {"job_id": twin.id, "status": twin.status, "model": twin.model}, None,
                                      r.account, r.depth))
            if r.spec.allow_replacement:
                for old in superseded(r, observed[r.account], claimed):
                    actions.append(Action(ActionKind.DELETE_JOB, key, Reason.REQUIRES_NEW_TRAINING,
                                          {"job_id": old.id, "status": old.status, "model": old.model}, None,
                                          r.account, r.depth))
            if job.status == "succeeded":
                matched += 1
            elif job.status in FAILED_JOB:
                blocked.append(Blocked(key, Reason.JOB_FAILED, f"Job {job.id} {job.status}: {job_error(job)} "
                                       "Change the manifest (for example the seed) to train again.", r.account))
            else:
                actions.append(Action(ActionKind.WAIT_JOB, key, Reason.JOB_RUNNING,
                                      {"job_id": job.id, "status": job.status}, None, r.account, r.depth))
            continue
        if parent is not None and parent.spec.name in stuck:
            stuck[r.spec.name] = f"its parent {stuck[parent.spec.name]}"
            blocked.append(Blocked(key, Reason.JOB_FAILED,
                                   f"Parent FineTuneJob {parent.spec.name} did not succeed; nothing to train from.",
                                   r.account))
            continue
        bad_file = next((n for n in (r.training, r.validation)
                         if n is not None and n.observed is not None and n.observed.status == "error"), None)
        if bad_file is not None:
            stuck[r.spec.name] = f"FineTuneJob {r.spec.name} has a data file that failed processing"
            blocked.append(Blocked(key, Reason.FILE_FAILED, f"Data file {bad_file.ref.display or bad_file.name} "
                                   "failed processing; fix it and apply again.", r.account))
            needed_files.add((bad_file.account, bad_file.name))
            continue
        after = _job_after(r)
        previous = r.previous
        reason = Reason.NOT_IN_ACCOUNT
        if previous is not None and previous.status not in FAILED_JOB:
            changed = _changed_fields(r, previous, res)
            if not r.spec.allow_replacement:
                refused.append(
                    f"{r.spec.source}: FineTuneJob {r.spec.name}: changing {', '.join(changed) or 'the spec'} needs "
                    f"a new training run (job {previous.id} would be replaced)"
                )
                continue
            before = {"job_id": previous.id, "status": previous.status, "model": previous.model}
            if previous.status in ACTIVE_JOB:
                actions.append(Action(ActionKind.CANCEL_JOB, key, Reason.REQUIRES_NEW_TRAINING, before, None,
                                      r.account, r.depth))
            if not deployed(previous, observed[r.account]):
                # a deployed model stays until its deployment moved to the new one; deleted then
                actions.append(Action(ActionKind.DELETE_JOB, key, Reason.REQUIRES_NEW_TRAINING, before, None,
                                      r.account, r.depth))
            reason = Reason.REQUIRES_NEW_TRAINING
        elif previous is not None:
            reason = Reason.SPEC_CHANGED
        if r.model is None:
            reason = Reason.WAITING_FOR_PARENT
        files_ready = True
        for need in (r.training, r.validation):
            if need is None:
                continue
            needed_files.add((need.account, need.name))
            files_ready = files_ready and need.ready
        if r.model is not None and not files_ready and reason is Reason.NOT_IN_ACCOUNT:
            reason = Reason.WAITING_FOR_FILES
        actions.append(Action(ActionKind.CREATE_JOB, key, reason, None, after, r.account, r.depth))

    if refused:
        raise ReplacementNotAllowed(
            "A spec change needs a new training run and the resource does not allow replacement:\n  "
            + "\n  ".join(refused),
            hint="create a new FineTuneJob (the usual promotion path), or set spec.allowReplacement: true",
        )

    used = {acc: {j.training_file for j in obs.jobs} | {j.validation_file for j in obs.jobs if j.validation_file}
            for acc, obs in observed.items()}
    for (account, name), need in sorted(res.files.items()):
        if need.observed is None:
            continue
        for extra in sorted(observed[account].files, key=lambda f: f.id):
            if (extra.filename == name and extra.id != need.observed.id and extra.status not in GONE_FILE
                    and extra.id not in used[account]):
                actions.append(Action(ActionKind.DELETE_FILE, ResourceKey("File", name), Reason.DUPLICATE,
                                      {"file_id": extra.id, "status": extra.status}, None, account))

    for account, name in sorted(needed_files):
        need = res.files[(account, name)]
        key = ResourceKey("File", name)
        file = need.observed
        if file is None:
            kind = ActionKind.UPLOAD_FILE if need.ref.path is not None else ActionKind.IMPORT_FILE
            actions.append(Action(kind, key, Reason.NOT_IN_ACCOUNT, None,
                                  {"source": redact_url(need.ref.url) if need.ref.url else
                                   (need.ref.display or str(need.ref.path)),
                                   "sha256": need.digest}, account))
        elif file.status == "error":
            blocked.append(Blocked(key, Reason.FILE_FAILED,
                                   f"File {file.id} ({need.ref.display}) failed processing: "
                                   f"{file.status_details or 'no details given'}. Fix the data and apply again.",
                                   account))
        elif file.status != "processed":
            actions.append(Action(ActionKind.WAIT_FILE, key, Reason.FILE_PROCESSING,
                                  {"file_id": file.id, "status": file.status}, None, account))

    declared = {(d.account, d.spec.name) for d in res.deployments.values()}
    # a candidate of a pending eval gate is the evaluation's own business (crash leftovers are reused)
    declared |= {(d.account, gating.candidate_name(d.spec.name)) for d in res.deployments.values() if d.eval_pending}
    for d in res.deployments.values():
        key = ResourceKey("Deployment", d.spec.name)
        current = d.observed
        if current is not None and markers.owner_of(current) != d.spec.name:
            blocked.append(Blocked(key, Reason.NOT_OWNED, f"Deployment {d.spec.name} exists and was not created by "
                                   "tunekeeper; it is left alone. Rename the Deployment or delete the existing one.",
                                   d.account))
            continue
        if d.refusal is not None:
            blocked.append(Blocked(key, d.refusal.reason, d.refusal.message, d.account))
            continue
        if d.selection is None and d.spec.model.from_job in stuck:
            blocked.append(Blocked(key, Reason.JOB_FAILED, f"Nothing to deploy: {stuck[d.spec.model.from_job]}.",
                                   d.account))
            continue
        if d.selection is None:
            kind = ActionKind.CREATE_DEPLOYMENT if current is None else ActionKind.UPDATE_DEPLOYMENT
            actions.append(Action(kind, key, Reason.WAITING_FOR_PARENT, _deployment_before(current),
                                  {"model": f"FineTuneJob/{d.spec.model.from_job} ({d.spec.model.checkpoint})",
                                   "sku": d.spec.sku.value, "capacity": d.spec.capacity}, d.account, 1))
            continue
        after = _deployment_after(d)
        if d.eval_pending:
            assert d.spec.gates.eval_file is not None
            actions.append(Action(ActionKind.EVALUATE_MODEL, key, Reason.EVAL_PENDING, None,
                                  {"model": after["model"], "eval_file": d.spec.gates.eval_file.display,
                                   "candidate": gating.candidate_name(d.spec.name)}, d.account))
            kind = ActionKind.CREATE_DEPLOYMENT if current is None else ActionKind.UPDATE_DEPLOYMENT
            actions.append(Action(kind, key, Reason.EVAL_PENDING, _deployment_before(current), after, d.account))
            continue
        if current is None:
            reason = Reason.DRIFT if d.spec.name in known.deployments else Reason.NOT_IN_ACCOUNT
            actions.append(Action(ActionKind.CREATE_DEPLOYMENT, key, reason, None, after, d.account))
            continue
        if current.provisioning_state == "Deleting":  # on its way out (by someone else): recreate once gone
            actions.append(Action(ActionKind.WAIT_DEPLOYMENT, key, Reason.DRIFT,
                                  {"provisioning_state": current.provisioning_state}, None, d.account))
            continue
        differs = _deployment_differs(current, d)
        if differs:
            manifest_changed = any(current.tags.get(k) != d.tags.get(k)
                                   for k in (markers.SPEC_HASH_TAG, markers.DELETION_POLICY_TAG))
            reason = Reason.SPEC_CHANGED if manifest_changed else Reason.DRIFT
            actions.append(Action(ActionKind.UPDATE_DEPLOYMENT, key, reason, _deployment_before(current), after,
                                  d.account))
        elif current.provisioning_state in PROVISIONING:
            actions.append(Action(ActionKind.WAIT_DEPLOYMENT, key, Reason.PROVISIONING,
                                  {"provisioning_state": current.provisioning_state}, None, d.account))
        elif current.provisioning_state == "Failed":
            blocked.append(Blocked(key, Reason.DEPLOYMENT_FAILED, f"Deployment {d.spec.name} failed to provision "
                                   "with this spec; change the manifest or delete the deployment to try again.",
                                   d.account))
        else:
            matched += 1

    for account in sorted(observed):
        for dep in sorted(observed[account].deployments, key=lambda x: x.name):
            owner = markers.owner_of(dep)
            if owner is None or owner != dep.name or (account, owner) in declared:
                continue
            if dep.tags.get(markers.DELETION_POLICY_TAG, "Delete") != "Delete" or dep.provisioning_state == "Deleting":
                continue
            if not markers.in_scope(dep, desired.files):
                continue
            actions.append(Action(ActionKind.DELETE_DEPLOYMENT, ResourceKey("Deployment", dep.name),
                                  Reason.NO_LONGER_DECLARED, _deployment_before(dep), None, account))

    ordered = tuple(sorted(actions, key=Action.sort_key))
    touched = touched_state(res, observed, ordered)
    fingerprint = hashlib.sha256(orjson.dumps(sorted(touched.items()))).hexdigest()
    return Plan(PLAN_FORMAT_VERSION, fingerprint, ordered,
                tuple(sorted(blocked, key=lambda b: (b.target, b.account))), matched, touched)


def superseded(r: JobResolution, obs: Observation, claimed: set[str]) -> list[ObservedJob]:
    """Finished earlier jobs of a replaced resource (owned, same suffix, older), no longer deployed."""
    assert r.matched is not None
    owned_files = {f.id for f in obs.files if markers.is_owned_filename(f.filename)}
    return sorted(
        (j for j in obs.jobs
         if j.id not in claimed and j.status not in ACTIVE_JOB and (j.suffix or None) == r.suffix
         and j.training_file in owned_files and j.created_at <= r.matched.created_at and not deployed(j, obs)),
        key=lambda j: j.id,
    )


def deployed(job: ObservedJob, obs: Observation) -> bool:
    """Does any deployment in the account serve this job's model or one of its checkpoints?"""
    names = {c.id for c in obs.checkpoints.get(job.id, ())} | {
        c.fine_tuned_model_checkpoint for c in obs.checkpoints.get(job.id, ())}
    if job.fine_tuned_model:
        names.add(job.fine_tuned_model)
    return any(d.model_name in names for d in obs.deployments)


def touched_state(res: Resolution, observed: Mapping[str, Observation], actions: Iterable[Action]) -> dict[str, str]:
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
            value = sorted(f.id for f in obs.files if f.filename == action.target.name and f.status not in GONE_FILE)
        elif action.target.kind == "FineTuneJob":
            r = res.jobs.get(action.target.name)
            value = [r.matched.id if r and r.matched else None, r.previous.id if r and r.previous else None]
        else:
            dep = next((d for d in obs.deployments if d.name == action.target.name), None)
            value = None if dep is None else [dep.model_name, dep.model_version, dep.sku, dep.capacity,
                                              sorted(dep.tags.items())]
        out[label] = hashlib.sha256(orjson.dumps(value)).hexdigest()[:16]
    return out


def _job_after(r: JobResolution) -> dict[str, object]:
    after: dict[str, object] = {
        "model": r.model or f"FineTuneJob/{r.spec.from_job} (when it succeeds)",
        "method": r.spec.method.value,
        "training_file": r.training.name,
        "seed": r.seed,
        "suffix": r.suffix,
    }
    if r.validation is not None:
        after["validation_file"] = r.validation.name
    hp = markers.hyperparameters_set(r.spec.hyperparameters)
    if hp:
        after["hyperparameters"] = hp
    if r.spec.training_type is not None:
        after["training_type"] = r.spec.training_type.value
    return after


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


def _deployment_before(current: ObservedDeployment | None) -> dict[str, object] | None:
    if current is None:
        return None
    return {"model": current.model_name, "version": current.model_version, "sku": current.sku,
            "capacity": current.capacity, "provisioning_state": current.provisioning_state}


def _deployment_after(d: DeploymentResolution) -> dict[str, object]:
    assert d.selection is not None
    return {"model": d.selection.model_name, "version": d.selection.model_version, "sku": d.spec.sku.value,
            "capacity": d.spec.capacity, "checkpoint": d.selection.label, "tags": dict(sorted(d.tags.items()))}


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


def _best_file(files: Iterable[ObservedFile], name: str) -> ObservedFile | None:
    rank = {"processed": 0, "running": 1, "pending": 1, "uploaded": 1, "error": 2}
    candidates = [f for f in files if f.filename == name and f.status not in GONE_FILE]
    if not candidates:
        return None
    return min(candidates, key=lambda f: (rank.get(f.status, 1), f.created_at, f.id))


def _ids_by_name(files: Iterable[ObservedFile]) -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for f in files:
        if f.status not in GONE_FILE:
            out.setdefault(f.filename, set()).add(f.id)
    return {k: frozenset(v) for k, v in out.items()}


def _orphan_ids(obs: Observation) -> frozenset[str]:
    """File ids jobs refer to that the account no longer lists (deleted after training)."""
    present = {f.id for f in obs.files if f.status not in GONE_FILE}
    used = {j.training_file for j in obs.jobs} | {j.validation_file for j in obs.jobs if j.validation_file}
    return frozenset(used - present)


def _preferred(jobs: list[ObservedJob]) -> ObservedJob | None:
    """Succeeded beats running beats failed; then the newest (for running jobs, the oldest).

    ``jobs`` are in the service's listing order, newest first. ``created_at`` has whole seconds,
    so twins of one retried create usually tie on it; their place in the listing then says
    which is older (a random id would pick either)."""
    if not jobs:
        return None
    age = {j.id: index for index, j in enumerate(jobs)}  # larger: listed later, created earlier

    def rank(j: ObservedJob) -> tuple[int, int, int]:
        state = 0 if j.status == "succeeded" else 1 if j.status not in FAILED_JOB else 2
        # the newest finished job, but the oldest running one (it is furthest along)
        if state == 1:
            return (state, j.created_at, -age[j.id])
        return (state, -j.created_at, age[j.id])

    return min(jobs, key=rank)


def job_error(job: ObservedJob) -> str:
    if job.error_message or job.error_code:
        return f"{job.error_code or 'error'}: {job.error_message or 'no message'}".rstrip(".") + "."
    return "no error reported."
