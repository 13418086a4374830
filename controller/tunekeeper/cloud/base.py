"""The one interface the reconcile core talks to: ``Cloud``, and the observed values it returns.

Implemented once, for Azure, in ``cloud/azure.py`` on the official SDKs; the emulator is reached
through that same implementation. Verbs mean what they mean in the Azure SDKs: ``get_`` raises
``NotFound``, ``list_`` returns a list (never ``None``), ``delete_`` succeeds if already gone,
``begin_`` returns an ``Operation`` to wait on. Every method raises only ``tunekeeper.errors``
types. Observed values are plain frozen dataclasses: no SDK object leaves this package.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tunekeeper.resources.specs import Hyperparameters, Method, Sku, TrainingType


@dataclass(frozen=True, slots=True)
class ObservedFile:
    id: str
    filename: str
    purpose: str
    bytes: int | None
    status: str  # pending | running | processed | error | deleting | deleted
    created_at: int
    status_details: str | None = None


@dataclass(frozen=True, slots=True)
class ObservedJob:
    id: str
    status: str  # pending | running | pausing | paused | resuming | succeeded | cancelled | failed
    model: str  # the base (or parent fine-tuned) model
    training_file: str
    created_at: int
    validation_file: str | None = None
    fine_tuned_model: str | None = None
    suffix: str | None = None
    seed: int | None = None
    method: str = "supervised"
    hyperparameters: Mapping[str, object] = field(default_factory=dict)  # as the service resolved them
    training_type: str | None = None
    finished_at: int | None = None
    estimated_finish: int | None = None
    trained_tokens: int | None = None
    result_files: tuple[str, ...] = ()
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class ObservedCheckpoint:
    id: str  # ftchkpt-...
    job_id: str
    fine_tuned_model_checkpoint: str  # <base>.ft-<jobid>:ckpt-step-N
    step_number: int
    metrics: Mapping[str, float]
    created_at: int


@dataclass(frozen=True, slots=True)
class ObservedEvent:
    id: str
    created_at: int
    level: str  # info | warning | error
    message: str
    type: str = "message"  # message | metrics
    data: Mapping[str, object] | None = None


@dataclass(frozen=True, slots=True)
class ObservedModel:
    id: str
    created_at: int
    base_model: str | None = None  # set for fine-tuned models
    fine_tune: str | None = None  # job id, for fine-tuned models
    can_fine_tune: bool = False
    can_chat: bool = False
    lifecycle_status: str | None = None
    status: str | None = None


@dataclass(frozen=True, slots=True)
class ObservedDeployment:
    name: str
    model_name: str
    model_version: str | None
    model_format: str
    sku: str  # as ARM returns it, e.g. "Standard"
    capacity: int | None
    provisioning_state: str  # Accepted | Creating | Succeeded | Failed | Deleting | ...
    tags: Mapping[str, str] = field(default_factory=dict)
    etag: str | None = None
    deployment_state: str | None = None  # Running | Paused
    # the training account's ARM resource id, for a model from another account
    model_source: str | None = None


@dataclass(frozen=True, slots=True)
class JobRequest:
    """Everything ``create_job`` sends. Hyperparameters left None are sent as "auto"/omitted."""

    model: str
    training_file: str
    validation_file: str | None = None
    method: Method = Method.SUPERVISED
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)
    suffix: str | None = None
    seed: int | None = None
    training_type: TrainingType | None = None


@dataclass(frozen=True, slots=True)
class DeploymentRequest:
    """Everything ``begin_create_deployment`` PUTs through ARM."""

    name: str
    model_name: str  # base model, fine-tuned model id, or checkpoint id (ftchkpt-...)
    model_version: str | None = None  # fine-tuned models and checkpoints use "1"
    model_format: str = "OpenAI"
    sku: Sku = Sku.STANDARD
    capacity: int = 1
    tags: Mapping[str, str] = field(default_factory=dict)  # ownership markers live here
    # The ARM resource id of the account that trained ``model_name`` when it is not this one
    # (``properties.model.source``: Azure's cross-region / cross-subscription deployment of a
    # fine-tuned model); None for a model of this account or a base model.
    source: str | None = None


ProgressCallback = Callable[[int, int], None]  # (done, total), e.g. bytes uploaded


class Operation(Protocol):
    """A long-running ARM operation started by a ``begin_`` method."""

    def done(self) -> bool: ...

    async def result(self) -> ObservedDeployment | None:
        """Wait until finished; the resulting deployment, or None for a delete."""
        ...


class Cloud(Protocol):
    """One Azure OpenAI account: its data plane and its ARM deployments."""

    @property
    def request_count(self) -> int:
        """HTTP requests sent so far (retries included), for benchmarks and tests."""
        ...

    # files
    async def list_files(self) -> list[ObservedFile]: ...
    async def get_file(self, file_id: str) -> ObservedFile: ...
    async def upload_file(
        self, path: Path, *, filename: str, purpose: str = "fine-tune",
        add_bom: bool = False, on_progress: ProgressCallback | None = None,
    ) -> ObservedFile: ...
    async def import_file(self, url: str, *, filename: str, purpose: str = "fine-tune") -> ObservedFile: ...
    async def download_file(self, file_id: str) -> bytes: ...
    async def delete_file(self, file_id: str) -> None: ...

    # fine-tuning jobs
    async def list_jobs(self) -> list[ObservedJob]: ...
    async def get_job(self, job_id: str) -> ObservedJob: ...
    async def create_job(self, request: JobRequest) -> ObservedJob: ...
    async def cancel_job(self, job_id: str) -> ObservedJob: ...
    async def delete_job(self, job_id: str) -> None: ...
    async def list_job_events(self, job_id: str, *, after: str | None = None) -> list[ObservedEvent]: ...
    async def list_checkpoints(self, job_id: str) -> list[ObservedCheckpoint]: ...

    # models
    async def list_models(self) -> list[ObservedModel]: ...

    # deployments (ARM)
    async def list_deployments(self) -> list[ObservedDeployment]: ...
    async def get_deployment(self, name: str) -> ObservedDeployment: ...
    async def begin_create_deployment(self, request: DeploymentRequest) -> Operation: ...
    async def begin_update_deployment(
        self, name: str, *, sku: Sku | None = None, capacity: int | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Operation: ...
    async def begin_delete_deployment(self, name: str) -> Operation: ...

    # inference
    async def chat(self, deployment: str, messages: Sequence[Mapping[str, object]]) -> str: ...

    async def close(self) -> None: ...


CloudFactory = Callable[..., Awaitable[Cloud]]
