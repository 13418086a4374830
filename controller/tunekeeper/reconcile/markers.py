"""Ownership markers: how tunekeeper recognises, in an account, what it created.

Called by ``plan`` (to match observed objects to manifests) and ``apply`` (to stamp what it
creates). Pure functions of specs and digests: no I/O, no clock. A re-run after a crash at any
point adopts what exists because every marker is computed from the manifest alone:

Files
    Uploaded as ``tk-<sha256[:16]>-<original name>`` (``sha256`` of the bytes; for an imported
    URL, of the URL). Same bytes, same name: identical data shared by two jobs is uploaded once,
    and an upload that finished before a crash is found by its name.

Jobs
    A job's *fingerprint* hashes everything that needs a new training run when it changes:
    base model (or, for ``fromJob``, the parent's fingerprint), training and validation file
    digests, method, the hyperparameters set in the manifest, seed, suffix and trainingType.
    Markers sent with the job: the *effective seed* (the manifest's seed, or one derived from
    the resource name and fingerprint) and the *effective suffix* (the manifest's suffix, or
    the resource name cut to the 40 characters Azure allows). Adoption rule: an observed job
    belongs to a FineTuneJob when its model, training file id, validation file id (ids of
    files carrying the content-hashed names), seed, suffix and method are equal to the
    desired ones, and every hyperparameter the manifest sets has the same value (values the
    service chose for "auto" are not compared). Among several matches the succeeded one wins
    (the newest), then a running one (the oldest: the others are cancelled as duplicates). When the data files
    were deleted from the account after training, a job whose file ids are no longer listed still matches if
    its seed was derived (the derived seed encodes the data digests) or the state file recorded it for the
    resource.

Deployments
    ARM tags: ``tunekeeper.io/managed-by=tunekeeper``, ``tunekeeper.io/resource=Deployment/<name>``,
    ``tunekeeper.io/spec-hash`` (hash of the resolved model, sku and capacity),
    ``tunekeeper.io/deletion-policy`` and ``tunekeeper.io/manifest`` (the manifest file, relative
    to the repository root). A deployment without the managed-by tag is never changed or
    deleted; an owned one whose manifest is gone is deleted (policy Delete) only by a run that
    read that manifest's file or folder (``in_scope``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import orjson

from tunekeeper.cloud.base import ObservedDeployment, ObservedJob
from tunekeeper.resources.specs import DataRef, DeletionPolicy, FineTuneJobSpec, Hyperparameters

FILE_PREFIX = "tk-"
MANAGED_BY = "tunekeeper.io/managed-by"
MANAGER = "tunekeeper"
RESOURCE_TAG = "tunekeeper.io/resource"
SPEC_HASH_TAG = "tunekeeper.io/spec-hash"
DELETION_POLICY_TAG = "tunekeeper.io/deletion-policy"
MANIFEST_TAG = "tunekeeper.io/manifest"
MAX_TAG_VALUE = 256  # ARM's limit for a tag value
SUFFIX_MAX = 40
_SUFFIX_BAD = re.compile(r"[^A-Za-z0-9_-]")


def data_digest(ref: DataRef, digests: Mapping[Path, str]) -> str:
    """The digest naming a data file: sha256 of the local bytes, or of the URL for an import."""
    if ref.path is not None:
        digest = digests.get(ref.path)
        if digest is None:
            raise KeyError(str(ref.path))
        return digest
    assert ref.url is not None, "a DataRef has a path or a url"
    return hashlib.sha256(ref.url.encode()).hexdigest()


def remote_filename(ref: DataRef, digest: str) -> str:
    """``tk-<sha256[:16]>-<original name>``: the name a data file carries in the account."""
    if ref.path is not None:
        base = ref.path.name
    else:
        base = PurePosixPath(urlsplit(ref.url or "").path).name or "data.jsonl"
    return f"{FILE_PREFIX}{digest[:16]}-{base}"


def is_owned_filename(filename: str) -> bool:
    return filename.startswith(FILE_PREFIX) and len(filename) > len(FILE_PREFIX) + 17


def effective_suffix(spec: FineTuneJobSpec) -> str:
    """The manifest's suffix, or the resource name made into a valid suffix (<= 40 characters)."""
    if spec.suffix:
        return spec.suffix
    return _SUFFIX_BAD.sub("-", spec.name)[:SUFFIX_MAX]


def hyperparameters_set(h: Hyperparameters) -> dict[str, object]:
    """The hyperparameters the manifest sets explicitly (None = auto, left out)."""
    out: dict[str, object] = {}
    for name in ("n_epochs", "batch_size", "learning_rate_multiplier", "beta"):
        value = getattr(h, name)
        if value is not None:
            out[name] = value
    if h.grader is not None:
        out["grader"] = dict(h.grader)
    return out


def job_fingerprint(
    spec: FineTuneJobSpec, *, base: str, training_digest: str, validation_digest: str | None
) -> str:
    """Hash of everything that needs a new training run. ``base`` is the base model or the parent's
    fingerprint."""
    doc = {
        "base": base,
        "training": training_digest,
        "validation": validation_digest,
        "method": spec.method.value,
        "hyperparameters": hyperparameters_set(spec.hyperparameters),
        "seed": spec.seed,
        "suffix": effective_suffix(spec),
        "training_type": spec.training_type.value if spec.training_type else None,
    }
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


def effective_seed(spec: FineTuneJobSpec, fingerprint: str) -> int:
    """The manifest's seed, or a seed derived from the resource name and fingerprint (int32, > 0)."""
    if spec.seed is not None:
        return spec.seed
    digest = hashlib.sha256(f"{spec.name}\0{fingerprint}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % (2**31 - 1) + 1


def job_matches(
    job: ObservedJob, spec: FineTuneJobSpec, *, model: str, training_ids: frozenset[str],
    validation_ids: frozenset[str] | None, seed: int,
) -> bool:
    """The adoption rule (module docstring): is ``job`` the training run ``spec`` asks for?"""
    if job.model != model or job.training_file not in training_ids:
        return False
    if validation_ids is None:
        if job.validation_file:
            return False
    elif job.validation_file not in validation_ids:
        return False
    if job.seed != seed or (job.suffix or None) != effective_suffix(spec):
        return False
    if (job.method or "supervised") != spec.method.value:
        return False
    if spec.training_type is not None and job.training_type not in (None, spec.training_type.value):
        return False
    return not hyperparameter_differences(job, spec)


def hyperparameter_differences(job: ObservedJob, spec: FineTuneJobSpec) -> list[str]:
    """Names of hyperparameters the manifest sets to a value other than the job's."""
    diffs: list[str] = []
    for name, wanted in hyperparameters_set(spec.hyperparameters).items():
        if name == "grader" and name not in job.hyperparameters:
            continue  # jobs do not echo the grader; it is part of the fingerprint, hence of the derived seed
        seen = job.hyperparameters.get(name)
        if isinstance(wanted, (int, float)) and isinstance(seen, (int, float)) and not isinstance(seen, bool):
            if abs(float(wanted) - float(seen)) > 1e-9 * max(1.0, abs(float(wanted))):
                diffs.append(name)
        elif wanted != seen:
            diffs.append(name)
    return diffs


def deployment_tags(
    name: str, *, spec_hash: str, deletion_policy: DeletionPolicy, manifest: str | None = None
) -> dict[str, str]:
    tags = {
        MANAGED_BY: MANAGER,
        RESOURCE_TAG: f"Deployment/{name}",
        SPEC_HASH_TAG: spec_hash,
        DELETION_POLICY_TAG: deletion_policy.value,
    }
    if manifest:
        tags[MANIFEST_TAG] = manifest[-MAX_TAG_VALUE:]
    return tags


def manifest_label(root: Path, path: str) -> str:
    """A manifest's path relative to the repository root, in POSIX form (the same on every machine)."""
    candidate = Path(path)
    if candidate.is_absolute():
        try:
            candidate = candidate.relative_to(root)
        except ValueError:
            return candidate.as_posix()
    return PurePosixPath(*candidate.parts).as_posix() if candidate.parts else ""


def in_scope(deployment: ObservedDeployment, manifests_read: Iterable[str]) -> bool:
    """May this run prune ``deployment``? Only when it came from a manifest file this run read
    (the resource was removed from it) or from a folder this run read manifests from (the file
    was removed). So applying one folder never prunes what another folder declared."""
    manifest = deployment.tags.get(MANIFEST_TAG)
    if manifest is None:
        return True
    read = set(manifests_read)
    return manifest in read or str(PurePosixPath(manifest).parent) in {
        str(PurePosixPath(m).parent) for m in read
    }


def deployment_spec_hash(model_name: str, model_version: str | None, sku: str, capacity: int) -> str:
    doc = [model_name, model_version, sku, capacity]
    return hashlib.sha256(orjson.dumps(doc)).hexdigest()[:16]


def is_owned_deployment(deployment: ObservedDeployment) -> bool:
    return deployment.tags.get(MANAGED_BY) == MANAGER


def owner_of(deployment: ObservedDeployment) -> str | None:
    """The Deployment resource name an owned deployment was created for."""
    if not is_owned_deployment(deployment):
        return None
    kind, _, name = deployment.tags.get(RESOURCE_TAG, "").partition("/")
    return name if kind == "Deployment" and name else None
