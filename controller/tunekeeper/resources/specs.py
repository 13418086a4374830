"""Typed, immutable specs: what the manifests ask for, after parsing and validation.

``resources.load`` produces these from YAML; every layer below the loader sees only these
values, never raw dicts. Each spec carries ``source`` (file, line, column of its ``kind:``
document) so any later error can point back at the manifest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Literal

API_VERSION = "tunekeeper.io/v1alpha1"
DEFAULT_MANAGEMENT_ENDPOINT = "https://management.azure.com"


@dataclass(frozen=True, slots=True, order=True)
class SourceRef:
    """Where a resource (or a field of it) was written: file, 1-based line and column."""

    path: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}" if self.line else self.path


@dataclass(frozen=True, slots=True)
class SecretKeyRef:
    """A key inside a Kubernetes Secret (in the Account's namespace); only the operator reads it."""

    name: str
    key: str = "apiKey"


@dataclass(frozen=True, slots=True)
class AuthSpec:
    """How to authenticate: Entra ID (azure-identity's DefaultAzureCredential) or an api key.

    ``api_key_env`` names an environment variable, ``api_key_secret`` a Kubernetes Secret; the key
    itself is never stored in a spec.
    """

    kind: Literal["entra", "apiKey"] = "entra"
    api_key_env: str | None = None
    api_key_secret: SecretKeyRef | None = None


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """An Azure OpenAI resource: data-plane endpoint plus its ARM coordinates."""

    name: str
    endpoint: str  # https://<resource>.openai.azure.com (or http://127.0.0.1:PORT for the emulator)
    subscription_id: str
    resource_group: str
    account_name: str
    management_endpoint: str = DEFAULT_MANAGEMENT_ENDPOINT
    auth: AuthSpec = AuthSpec()
    source: SourceRef = SourceRef("<embedded>")


class Method(str, Enum):
    SUPERVISED = "supervised"
    DPO = "dpo"
    REINFORCEMENT = "reinforcement"


class TrainingType(str, Enum):
    STANDARD = "Standard"
    GLOBAL = "Global"
    DEVELOPER = "Developer"


@dataclass(frozen=True, slots=True)
class Hyperparameters:
    """None means "auto": the service chooses."""

    n_epochs: int | None = None
    batch_size: int | None = None
    learning_rate_multiplier: float | None = None
    beta: float | None = None  # DPO only
    # RFT only: the grader object as the service expects it (kept verbatim, JSON-able).
    grader: Mapping[str, object] | None = None


@dataclass(frozen=True, slots=True)
class DataRef:
    """A training or validation file: a local path (resolved, inside the repo root) or a URL to import."""

    path: Path | None = None  # absolute, resolved
    url: str | None = None
    display: str = ""  # as written in the manifest, for messages


@dataclass(frozen=True, slots=True)
class FineTuneJobSpec:
    name: str
    account: str | None  # Account name; None = the only Account, or the embedded emulator
    base_model: str | None  # e.g. "gpt-4.1-2025-04-14"; exactly one of base_model / from_job
    from_job: str | None  # name of another FineTuneJob (continuous fine-tuning)
    method: Method
    hyperparameters: Hyperparameters
    training_file: DataRef
    validation_file: DataRef | None = None
    training_type: TrainingType | None = None
    seed: int | None = None
    suffix: str | None = None
    allow_replacement: bool = False  # may a spec change that needs new training replace the job?
    retain_previous: int = 3  # models of replaced jobs kept for rollback (the newest ones)
    source: SourceRef = SourceRef("<unknown>")


class Sku(str, Enum):
    """Deployment SKU names exactly as ARM spells them."""

    STANDARD = "Standard"
    GLOBAL_STANDARD = "GlobalStandard"
    DATA_ZONE_STANDARD = "DataZoneStandard"
    DEVELOPER_TIER = "DeveloperTier"  # the portal says "Developer"; ARM's name is DeveloperTier
    PROVISIONED_MANAGED = "ProvisionedManaged"
    GLOBAL_PROVISIONED_MANAGED = "GlobalProvisionedManaged"
    DATA_ZONE_PROVISIONED_MANAGED = "DataZoneProvisionedManaged"
    GLOBAL_BATCH = "GlobalBatch"
    DATA_ZONE_BATCH = "DataZoneBatch"


# Spellings a manifest may still use for a while: the loader accepts each with a warning and
# rewrites it to ARM's spelling before the schema check, so nothing below it sees the old one.
# (kind, field path, as written) -> ARM's spelling.
DEPRECATED_SPELLINGS: Mapping[tuple[str, tuple[str, ...], str], str] = {
    ("Deployment", ("spec", "sku", "name"), "Developer"): Sku.DEVELOPER_TIER.value,
}


Checkpoint = Literal["final", "best"] | int  # int = epoch number (1-based)


@dataclass(frozen=True, slots=True)
class ModelRef:
    """What a Deployment serves: a FineTuneJob's model or checkpoint, or a base model."""

    from_job: str | None = None
    checkpoint: Checkpoint = "final"
    base_model: str | None = None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class MetricGate:
    """A promotion gate on results.csv: ``metric`` (e.g. full_valid_loss) compared to ``threshold``."""

    metric: str
    op: Literal["<", "<=", ">", ">="]
    threshold: float


@dataclass(frozen=True, slots=True)
class Gates:
    metrics: tuple[MetricGate, ...] = ()
    eval_file: DataRef | None = None  # prompts + expected answers that must pass against the candidate


class DeletionPolicy(str, Enum):
    DELETE = "Delete"  # removing the manifest deletes the deployment
    RETAIN = "Retain"  # removing the manifest leaves it in place (unmanaged)


@dataclass(frozen=True, slots=True)
class DeploymentSpec:
    name: str  # the ARM deployment name
    account: str | None
    model: ModelRef
    sku: Sku = Sku.STANDARD
    capacity: int = 1
    gates: Gates = Gates()
    deletion_policy: DeletionPolicy = DeletionPolicy.DELETE
    source: SourceRef = SourceRef("<unknown>")


@dataclass(frozen=True, slots=True)
class Owner:
    """Who a run acts for: a stack (a set of manifests managed together), as a plain value.

    ``key`` is the identity itself; ``id`` (12 hex characters of its sha256) is what the
    ownership markers carry in Azure (file names, ARM tags). The CLI derives the key from the
    repository (``resources.stack``); the operator passes its custom resource. Two runs with the
    same key act for the same owner, wherever they run.
    """

    key: str  # "name:<explicit>", "git:<root commit>:<stack path>", "path:<absolute folder>", "k8s:<uid>"...
    label: str = ""  # how to show it to people

    @property
    def id(self) -> str:
        return hashlib.sha256(self.key.encode()).hexdigest()[:12]

    def __str__(self) -> str:
        return f"{self.label or self.key} (owner {self.id})"


UNNAMED_OWNER = Owner("unnamed", "an unnamed stack")


@dataclass(frozen=True, slots=True)
class Desired:
    """All specs of one run, after cross-resource checks passed.

    ``owner`` marks everything the run creates; ``complete`` says the run loaded its whole stack
    (only then may it prune or collect garbage: a subset never deletes anything).
    """

    root: Path  # the repository root the manifests (and their data paths) live under
    accounts: tuple[AccountSpec, ...] = ()
    jobs: tuple[FineTuneJobSpec, ...] = ()
    deployments: tuple[DeploymentSpec, ...] = ()
    files: tuple[str, ...] = field(default=())  # manifest files that were read, relative to root
    owner: Owner = UNNAMED_OWNER  # the stack this run acts for (set by resources.stack or the operator)
    complete: bool = False  # the whole stack was loaded: pruning and garbage collection are allowed


def base_model_of(job: FineTuneJobSpec, jobs: Mapping[str, FineTuneJobSpec]) -> str | None:
    """The base model at the root of a ``fromJob`` chain (None when the chain is broken)."""
    seen: set[str] = set()
    while job.base_model is None and job.from_job in jobs and job.name not in seen:
        assert job.from_job is not None
        seen.add(job.name)
        job = jobs[job.from_job]
    return job.base_model
