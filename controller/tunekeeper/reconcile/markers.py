"""Ownership markers: how tunekeeper recognises, in an account, what it created.

Called by ``plan`` (to match observed objects to manifests) and ``apply`` (to stamp what it
creates). Pure functions of specs and digests: no I/O, no clock. A re-run after a crash at any
point adopts what exists because every marker is computed from the manifest alone:

Owner
    Every marker names the owner (``Desired.owner.id``, 12 hex characters): the stack the object
    was created for. A run adopts, changes, prunes and collects only its own owner's objects;
    objects of another owner are never touched. Objects written by version 0.1, which had no
    owner in their markers, are *legacy*: they are still adopted (no new upload, no new
    training) and a legacy deployment is re-tagged with the adopting owner, but a legacy object
    that no manifest declares is never pruned or collected (nothing proves whose it is).

Files
    Uploaded as ``tk-<owner>-<sha256[:16]>-<original name>`` (``sha256`` of the bytes; for an
    imported URL, of the URL). Same owner, same bytes, same name: identical data shared by two
    jobs of a stack is uploaded once, and an upload that finished before a crash is found by its
    name. Legacy: ``tk-<sha256[:16]>-<original name>`` (read, never written).

Jobs
    A job belongs to the owner of its training file. Its *fingerprint* hashes everything that
    needs a new training run when it changes: base model (or, for ``fromJob``, the parent's
    fingerprint), training and validation file digests, method, the hyperparameters set in the
    manifest, seed, suffix and trainingType.
    Markers sent with the job: the *effective seed* (the manifest's seed, or one derived from
    the resource name and fingerprint) and the *effective suffix* (the manifest's suffix, or
    the resource name cut to the 40 characters Azure allows). Adoption rule: an observed job
    belongs to a FineTuneJob when its model, training file id, validation file id (ids of
    files carrying this owner's content-hashed names, or legacy ones), seed, suffix and method
    are equal to the desired ones, and every hyperparameter the manifest sets has the same value (values the
    service chose for "auto" are not compared). Among several matches the succeeded one wins
    (the newest), then a running one (the oldest: the others are cancelled as duplicates). When the data files
    were deleted from the account after training, a job whose file ids are no longer listed still matches if
    its seed was derived (the derived seed encodes the data digests) or the state file recorded it for the
    resource.

Deployments
    ARM tags: ``tunekeeper.io/managed-by=tunekeeper``, ``tunekeeper.io/owner`` (the owner id),
    ``tunekeeper.io/resource=Deployment/<name>``, ``tunekeeper.io/spec-hash`` (hash of the
    resolved model, sku and capacity), ``tunekeeper.io/deletion-policy`` and
    ``tunekeeper.io/manifest`` (the manifest file, relative to the repository root; for people).
    A deployment without the managed-by tag, or with another owner's tag, is never changed or
    deleted.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import orjson

from tunekeeper.cloud.base import ObservedDeployment, ObservedJob
from tunekeeper.resources.specs import DataRef, DeletionPolicy, FineTuneJobSpec, Hyperparameters

FILE_PREFIX = "tk-"
OWNER_TAG = "tunekeeper.io/owner"
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


def remote_filename(ref: DataRef, digest: str, owner: str | None = None) -> str:
    """``tk-<owner>-<sha256[:16]>-<original name>``: the name a data file carries in the account.

    Without ``owner``, the legacy (0.1) name ``tk-<sha256[:16]>-<original name>``, which is only
    looked for, never written.
    """
    if ref.path is not None:
        base = ref.path.name
    else:
        base = PurePosixPath(urlsplit(ref.url or "").path).name or "data.jsonl"
    if owner is None:
        return f"{FILE_PREFIX}{digest[:16]}-{base}"
    return f"{FILE_PREFIX}{owner}-{digest[:16]}-{base}"


@dataclass(frozen=True, slots=True)
class FileMark:
    """What a data file's name says: its owner (None for a legacy name), digest prefix and original name."""

    owner: str | None
    digest: str  # the first 16 hex characters of the sha256
    base: str


_FILE_NAME = re.compile(r"^tk-([0-9a-f]{12})-([0-9a-f]{16})-(.+)$")
_LEGACY_FILE_NAME = re.compile(r"^tk-([0-9a-f]{16})-(.+)$")


def file_mark(filename: str) -> FileMark | None:
    """Parse a content-hashed file name; None when tunekeeper did not name it."""
    found = _FILE_NAME.match(filename)
    if found:
        return FileMark(found.group(1), found.group(2), found.group(3))
    legacy = _LEGACY_FILE_NAME.match(filename)
    if legacy:
        return FileMark(None, legacy.group(1), legacy.group(2))
    return None


def is_owned_filename(filename: str) -> bool:
    """Was the file named by tunekeeper (any owner, or legacy)?"""
    return file_mark(filename) is not None


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
    name: str, *, spec_hash: str, deletion_policy: DeletionPolicy, owner: str | None = None,
    manifest: str | None = None,
) -> dict[str, str]:
    """The ARM tags of a deployment tunekeeper creates (without ``owner``: the legacy 0.1 form)."""
    tags = {
        MANAGED_BY: MANAGER,
        RESOURCE_TAG: f"Deployment/{name}",
        SPEC_HASH_TAG: spec_hash,
        DELETION_POLICY_TAG: deletion_policy.value,
    }
    if owner:
        tags[OWNER_TAG] = owner
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


def deployment_spec_hash(model_name: str, model_version: str | None, sku: str, capacity: int) -> str:
    doc = [model_name, model_version, sku, capacity]
    return hashlib.sha256(orjson.dumps(doc)).hexdigest()[:16]


def is_owned_deployment(deployment: ObservedDeployment) -> bool:
    return deployment.tags.get(MANAGED_BY) == MANAGER


def deployment_owner(deployment: ObservedDeployment) -> str | None:
    """The owner id a deployment is tagged with (None: not tunekeeper's, or legacy)."""
    if not is_owned_deployment(deployment):
        return None
    return deployment.tags.get(OWNER_TAG) or None


def declared_name(deployment: ObservedDeployment) -> str | None:
    """The Deployment resource name a deployment tunekeeper created was created for."""
    if not is_owned_deployment(deployment):
        return None
    kind, _, name = deployment.tags.get(RESOURCE_TAG, "").partition("/")
    return name if kind == "Deployment" and name else None
