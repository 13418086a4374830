"""``resolve``: match every declared resource to what the accounts hold. Pure.

Called once per loop by ``converge`` (its result feeds ``plan``, ``status`` and the error
propagation) and by ``plan`` / ``status`` when called on their own. Reads no clock, environment,
network or disk: data-file digests come in as an argument (``compute_digests`` does that I/O),
earlier knowledge as ``Known``. The adoption rule itself lives in ``markers.py``.

How a FineTuneJob's "previous" job is found (for replacement): the job id the state file
recorded for the resource (``Known.jobs``) when it is still in the account, otherwise the
newest owned job (training file with a content-hashed name) carrying the resource's effective
suffix that matches no declared resource.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tunekeeper.cloud.base import ObservedDeployment, ObservedFile, ObservedJob
from tunekeeper.errors import PlanError
from tunekeeper.reconcile import gates as gating
from tunekeeper.reconcile import markers
from tunekeeper.reconcile.model import Known, Observation, Reason
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
    name: str  # tk-<owner>-<sha256[:16]>-<original name>: the name an upload gets
    ref: DataRef
    digest: str
    observed: ObservedFile | None  # the best copy in the account (processed > processing > error)
    legacy_name: str = ""  # tk-<sha256[:16]>-<original name>: a 0.1 upload of the same bytes, adopted too

    @property
    def names(self) -> tuple[str, ...]:
        """The names a copy of this file may carry in the account (this owner's, or legacy)."""
        return (self.name, self.legacy_name) if self.legacy_name else (self.name,)

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
    newer: ObservedJob | None = (
        None  # a later succeeded job of this resource: ``matched`` is a rollback to it
    )

    @property
    def succeeded(self) -> bool:
        return (
            self.matched is not None
            and self.matched.status == "succeeded"
            and bool(self.matched.fine_tuned_model)
        )

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
    # The ARM resource id of the account that trained the model, when it is another one than the
    # deployment's (``properties.model.source``: Azure's cross-region / cross-subscription deployment).
    source: str | None = None
    source_account: str | None = None  # that account's name in the manifests


@dataclass(frozen=True, slots=True)
class Resolution:
    """Desired resources matched against observations; shared by plan, apply and status."""

    jobs: Mapping[str, JobResolution]
    deployments: Mapping[str, DeploymentResolution]
    files: Mapping[tuple[str, str], FileNeed]  # (account, name) -> need
    owner: str = ""  # the owner id this resolution matched for (Desired.owner.id)


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
    owner = desired.owner.id
    files: dict[tuple[str, str], FileNeed] = {}
    jobs: dict[str, JobResolution] = {}
    fingerprints: dict[str, str] = {}
    needs_of: dict[str, tuple[FileNeed, FileNeed | None]] = {}
    specs = {j.name: j for j in desired.jobs}

    def need(account: str, ref: DataRef, spec: FineTuneJobSpec) -> FileNeed:
        try:
            digest = markers.data_digest(ref, digests)
        except KeyError:
            raise PlanError(f"{spec.source}: no digest for {ref.display or ref.path}",
                            hint="compute_digests(desired) must run before plan") from None
        name = markers.remote_filename(ref, digest, owner)
        legacy = markers.remote_filename(ref, digest)
        key = (account, name)
        if key not in files:
            files[key] = FileNeed(
                account, name, ref, digest, best_file(observed[account].files, name, legacy), legacy
            )
        return files[key]

    def fingerprint(spec: FineTuneJobSpec, seen: frozenset[str] = frozenset()) -> str:
        if spec.name in fingerprints:
            return fingerprints[spec.name]
        if spec.name in seen:
            raise PlanError(f"{spec.source}: fromJob chain loops back to FineTuneJob {spec.name!r}")
        if spec.from_job is not None:
            parent = specs.get(spec.from_job)
            if parent is None:
                raise PlanError(
                    f"{spec.source}: fromJob names FineTuneJob {spec.from_job!r}, which is not declared"
                )
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
            training_ids = _ids_of(ids, training) or orphans
            validation_ids = (_ids_of(ids, validation) or orphans) if validation else None
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
            jobs[name] = _with_previous(r, all_jobs[r.account], file_ids[r.account], claimed, known, owner)
        elif r.matched.status == "succeeded":
            jobs[name] = _with_newer(r, all_jobs[r.account], file_ids[r.account], claimed, owner)

    deployments: dict[str, DeploymentResolution] = {}
    for dspec in sorted(desired.deployments, key=lambda s: s.name):
        resolved = _resolve_deployment(dspec, account_of(desired, dspec.account), observed, jobs,
                                       markers.manifest_label(desired.root, dspec.source.path),
                                       digests, known, owner)
        trained_in = jobs[dspec.model.from_job].account if dspec.model.from_job in jobs else resolved.account
        if trained_in != resolved.account:
            resolved = dataclasses.replace(resolved, source=account_resource_id(desired, trained_in),
                                           source_account=trained_in)
        deployments[dspec.name] = resolved
    return Resolution(jobs=jobs, deployments=deployments, files=files, owner=owner)


def account_resource_id(desired: Desired, name: str) -> str:
    """The ARM resource id of a declared Account (what ``properties.model.source`` names)."""
    spec = next((a for a in desired.accounts if a.name == name), None)
    if spec is None:
        raise PlanError(f"Account {name!r} is not declared", hint="declare the Account that trains the model")
    return (f"/subscriptions/{spec.subscription_id}/resourceGroups/{spec.resource_group}"
            f"/providers/Microsoft.CognitiveServices/accounts/{spec.account_name}")


def _with_previous(
    r: JobResolution, account_jobs: Iterable[ObservedJob], file_ids: Mapping[str, frozenset[str]],
    claimed: set[str], known: Known, owner: str,
) -> JobResolution:
    by_id = {j.id: j for j in account_jobs}
    owned_files = {fid for name, ids in file_ids.items() if adoptable_name(name, owner) for fid in ids}
    listed = {fid for ids in file_ids.values() for fid in ids}
    known_id = known.jobs.get(r.spec.name)
    # the state file is shared by the stacks of a repository: a job it names is this resource's
    # previous one only when it is this owner's (or its files are gone and nothing says whose)
    known_job = by_id.get(known_id or "")
    if (known_job is not None and known_job.id not in claimed
            and (known_job.training_file in owned_files or known_job.training_file not in listed)):
        return _replace_previous(r, known_job)
    others = {job_id for name, job_id in known.jobs.items() if name != r.spec.name}  # known to be another's
    candidates = [
        j for j in account_jobs
        if j.id not in claimed and j.id not in others and j.training_file in owned_files
        and (j.suffix or None) == r.suffix
    ]
    if not candidates:
        return r
    return _replace_previous(r, max(candidates, key=lambda j: (j.created_at, j.id)))


def _with_newer(
    r: JobResolution, account_jobs: Iterable[ObservedJob], file_ids: Mapping[str, frozenset[str]],
    claimed: set[str], owner: str,
) -> JobResolution:
    """Note a later succeeded job of the resource (same suffix, this owner's): the match is a rollback."""
    assert r.matched is not None
    listed = list(account_jobs)
    newness = recency(listed)
    owned_files = {fid for name, ids in file_ids.items() if adoptable_name(name, owner) for fid in ids}
    later = [j for j in listed
             if j.id not in claimed and j.status == "succeeded" and (j.suffix or None) == r.suffix
             and j.training_file in owned_files and newness[j.id] > newness[r.matched.id]]
    if not later:
        return r
    return dataclasses.replace(r, newer=max(later, key=lambda j: newness[j.id]))


def recency(jobs: Sequence[ObservedJob]) -> dict[str, tuple[int, int]]:
    """A sort key per job id, larger for newer: ``created_at`` has whole seconds, so two jobs of one
    second are told apart by the service's listing order (newest first)."""
    return {j.id: (j.created_at, -index) for index, j in enumerate(jobs)}


def _replace_previous(r: JobResolution, previous: ObservedJob) -> JobResolution:
    return dataclasses.replace(r, previous=previous)


def adoptable_name(filename: str, owner: str) -> bool:
    """Is a file of this name this owner's, or a legacy (0.1) one anybody may adopt?"""
    mark = markers.file_mark(filename)
    return mark is not None and mark.owner in (owner, None)


def _ids_of(ids: Mapping[str, frozenset[str]], need: FileNeed) -> frozenset[str]:
    return frozenset().union(*(ids.get(name, frozenset()) for name in need.names))


def _resolve_deployment(
    spec: DeploymentSpec,
    account: str,
    observed: Mapping[str, Observation],
    jobs: Mapping[str, JobResolution],
    manifest: str,
    digests: Mapping[Path, str],
    known: Known,
    owner: str,
) -> DeploymentResolution:
    current = next((d for d in observed[account].deployments if d.name == spec.name), None)
    job_res = jobs.get(spec.model.from_job) if spec.model.from_job else None
    # the model's checkpoints and results live in the account that trained it
    obs = observed[job_res.account] if job_res is not None else observed[account]
    if spec.model.from_job and job_res is None:
        raise PlanError(
            f"{spec.source}: fromJob names FineTuneJob {spec.model.from_job!r}, which is not declared"
        )
    refusal: gating.Refusal | None = None
    selection: gating.Selection | None = None
    if job_res is not None and job_res.failed and job_res.matched is not None:
        refusal = gating.Refusal(
            Reason.JOB_FAILED,
            f"FineTuneJob {job_res.spec.name} {job_res.matched.status}: {job_error(job_res.matched)}",
        )
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
                refusal = gating.Refusal(
                    Reason.GATE_FAILED,
                    f"Model {chosen.label} of FineTuneJob "
                    f"{spec.model.from_job} failed its gates: " + "; ".join(failures) + ".",
                )
            else:
                selection = chosen
    key: str | None = None
    pending = False
    eval_ref = spec.gates.eval_file
    if (
        selection is not None
        and eval_ref is not None
        and (current is None or current.model_name != selection.model_name)
    ):
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
                                       owner=owner, manifest=manifest)
    return DeploymentResolution(spec, account, current, selection, refusal, spec_hash, tags, key, pending)


def deployed_anywhere(job: ObservedJob, observations: Iterable[Observation]) -> bool:
    """Does a deployment of any observed account serve this job's model (across accounts too)?"""
    return any(deployed(job, obs) for obs in observations)


def deployed(job: ObservedJob, obs: Observation) -> bool:
    """Does any deployment in the account serve this job's model or one of its checkpoints?"""
    names = {c.id for c in obs.checkpoints.get(job.id, ())} | {
        c.fine_tuned_model_checkpoint for c in obs.checkpoints.get(job.id, ())}
    if job.fine_tuned_model:
        names.add(job.fine_tuned_model)
    return any(d.model_name in names for d in obs.deployments)


def best_file(files: Iterable[ObservedFile], *names: str) -> ObservedFile | None:
    """The best copy of a file known by any of ``names`` (processed > processing > error; oldest first)."""
    rank = {"processed": 0, "running": 1, "pending": 1, "uploaded": 1, "error": 2}
    candidates = [f for f in files if f.filename in names and f.status not in GONE_FILE]
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
