"""The Azure OpenAI data plane (files, fine-tuning jobs, models, chat) on ``openai.AsyncAzureOpenAI``.

Used by ``cloud/azure.py`` (``AzureCloud``), which builds the client, its credentials and its
counting httpx client. Every call goes through the official client: its retry policy (with
``max_retries``, honouring Retry-After), its auto-pagination, and — for the two operations the
SDK lacks (``POST /files/import``, ``DELETE /fine_tuning/jobs/{id}``) — its low-level
``post``/``delete`` methods. SDK objects are turned into the ``Observed*`` values of
``cloud/base.py`` right here; nothing from ``openai`` leaves this module.

It must not retry by itself, log secrets, or read a whole training file into memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import quote

import openai
from openai.types import FileObject

from tunekeeper.cloud._errors import translated
from tunekeeper.cloud._streams import UploadStream
from tunekeeper.cloud._uploads import PartUploader
from tunekeeper.cloud.base import (
    JobRequest,
    ObservedCheckpoint,
    ObservedEvent,
    ObservedFile,
    ObservedJob,
    ObservedModel,
    ProgressCallback,
)
from tunekeeper.errors import NotFound
from tunekeeper.resources.specs import Hyperparameters, Method, TrainingType

# Request body field for the training tier. Not in the 2025-04-01-preview spec; Azure documents
# it for the Python SDK as ``extra_body={"trainingType": ...}`` with these spellings.
TRAINING_TYPE_FIELD = "trainingType"
TRAINING_TYPE_VALUES: Mapping[TrainingType, str] = {
    TrainingType.STANDARD: "Standard",
    TrainingType.GLOBAL: "GlobalStandard",
    TrainingType.DEVELOPER: "Developer",
}


class DataPlane:
    """Files, fine-tuning jobs, models and chat of one Azure OpenAI resource."""

    def __init__(
        self, client: openai.AsyncAzureOpenAI, *, page_size: int = 100, files_page_size: int = 10_000,
        redact: Sequence[str] = (), multipart_above: int = 64 << 20, part_size: int = 32 << 20,
        upload_records: Path | None = None,
    ) -> None:
        self._client = client
        self._page_size = page_size
        self._files_page_size = files_page_size
        self._redact = tuple(redact)
        self._multipart_above = multipart_above
        self._part_size = part_size
        self._upload_records = upload_records
        self.last_upload: PartUploader | None = None  # the last upload sent in parts, for tests

    # -- files ---------------------------------------------------------------------------
    async def list_files(self) -> list[ObservedFile]:
        with translated("List files", redact=self._redact):
            pages = self._client.files.list(limit=self._files_page_size)
            return [observed_file(_dump(f)) async for f in pages]

    async def get_file(self, file_id: str) -> ObservedFile:
        with translated(f"Get file {file_id}", redact=self._redact):
            return observed_file(_dump(await self._client.files.retrieve(file_id)))

    async def upload_file(
        self, path: Path, *, filename: str, purpose: str = "fine-tune",
        add_bom: bool = False, on_progress: ProgressCallback | None = None,
    ) -> ObservedFile:
        """One ``POST /files``; above ``multipart_above`` bytes, resumable parts through /uploads."""
        with UploadStream(path, add_bom=add_bom, on_progress=on_progress) as stream:
            if stream.size > self._multipart_above:
                with UploadStream(path, add_bom=add_bom) as source:
                    uploader = PartUploader(self._client, endpoint=str(self._client.base_url),
                                            part_size=self._part_size, records=self._upload_records,
                                            redact=self._redact)
                    self.last_upload = uploader
                    return observed_file(await uploader.upload(
                        cast(IO[bytes], source), source.size, filename=filename, purpose=purpose,
                        on_progress=on_progress))
            with translated(f"Upload file {filename}", redact=self._redact):
                created = await self._client.files.create(
                    file=(filename, cast(IO[bytes], stream)), purpose=cast(Any, purpose),
                )
        return observed_file(_dump(created))

    async def import_file(self, url: str, *, filename: str, purpose: str = "fine-tune") -> ObservedFile:
        body = {"purpose": purpose, "filename": filename, "content_url": url}
        with translated(f"Import file {filename}", redact=self._redact):
            created = await self._client.post("/files/import", body=body, cast_to=FileObject)
        return observed_file(_dump(created))

    async def download_file(self, file_id: str) -> bytes:
        """The whole content in memory (the ``Cloud`` contract returns bytes; used for results.csv)."""
        with translated(f"Download file {file_id}", redact=self._redact):
            response = await self._client.files.content(file_id)
            return response.content

    async def delete_file(self, file_id: str) -> None:
        try:
            with translated(f"Delete file {file_id}", redact=self._redact):
                await self._client.files.delete(file_id)
        except NotFound:
            return

    # -- fine-tuning jobs ------------------------------------------------------------------
    async def list_jobs(self) -> list[ObservedJob]:
        with translated("List fine-tuning jobs", redact=self._redact):
            pages = self._client.fine_tuning.jobs.list(limit=self._page_size)
            return [observed_job(_dump(j)) async for j in pages]

    async def get_job(self, job_id: str) -> ObservedJob:
        with translated(f"Get fine-tuning job {job_id}", redact=self._redact):
            return observed_job(_dump(await self._client.fine_tuning.jobs.retrieve(job_id)))

    async def create_job(self, request: JobRequest) -> ObservedJob:
        body = job_body(request)
        extra = {key: body.pop(key) for key in list(body) if key == TRAINING_TYPE_FIELD}
        with translated(f"Create fine-tuning job on {request.model}", redact=self._redact):
            created = await self._client.fine_tuning.jobs.create(**cast(Any, body), extra_body=extra or None)
        return observed_job(_dump(created))

    async def cancel_job(self, job_id: str) -> ObservedJob:
        with translated(f"Cancel fine-tuning job {job_id}", redact=self._redact):
            return observed_job(_dump(await self._client.fine_tuning.jobs.cancel(job_id)))

    async def delete_job(self, job_id: str) -> None:
        """``DELETE /fine_tuning/jobs/{id}`` (204); the SDK has no method for it."""
        try:
            with translated(f"Delete fine-tuning job {job_id}", redact=self._redact):
                await self._client.delete(f"/fine_tuning/jobs/{quote(job_id, safe='')}", cast_to=type(None))
        except NotFound:
            return

    async def list_job_events(self, job_id: str, *, after: str | None = None) -> list[ObservedEvent]:
        """Events in the order the service lists them (newest first on Azure), all pages."""
        with translated(f"List events of fine-tuning job {job_id}", redact=self._redact):
            jobs = self._client.fine_tuning.jobs
            pages = (jobs.list_events(job_id, limit=self._page_size, after=after) if after
                     else jobs.list_events(job_id, limit=self._page_size))
            return [observed_event(_dump(e)) async for e in pages]

    async def list_checkpoints(self, job_id: str) -> list[ObservedCheckpoint]:
        with translated(f"List checkpoints of fine-tuning job {job_id}", redact=self._redact):
            pages = self._client.fine_tuning.jobs.checkpoints.list(job_id, limit=self._page_size)
            return [observed_checkpoint(_dump(c), job_id) async for c in pages]

    # -- models and chat -------------------------------------------------------------------
    async def list_models(self) -> list[ObservedModel]:
        with translated("List models", redact=self._redact):
            return [observed_model(_dump(m)) async for m in self._client.models.list()]

    async def chat(self, deployment: str, messages: Sequence[Mapping[str, object]]) -> str:
        with translated(f"Chat with deployment {deployment}", redact=self._redact):
            completion = await self._client.chat.completions.create(
                model=deployment, messages=cast(Any, [dict(m) for m in messages]),
            )
        if not completion.choices:
            return ""
        return completion.choices[0].message.content or ""


# -- request bodies ----------------------------------------------------------------------
def job_body(request: JobRequest) -> dict[str, Any]:
    """The ``POST /fine_tuning/jobs`` body for a ``JobRequest``.

    Supervised: ``method: {type: supervised}`` and top-level ``hyperparameters`` (the
    2025-04-01-preview ``SupervisedMethodRequest`` has only ``type``). DPO: hyperparameters,
    ``beta`` included, under ``method.dpo.hyperparameters``. Reinforcement: ``grader`` and
    hyperparameters under ``method.reinforcement``. Unset hyperparameters are omitted ("auto").
    The training tier goes in ``trainingType`` (see ``TRAINING_TYPE_VALUES``).
    """
    body: dict[str, Any] = {"model": request.model, "training_file": request.training_file}
    if request.validation_file:
        body["validation_file"] = request.validation_file
    if request.suffix:
        body["suffix"] = request.suffix
    if request.seed is not None:
        body["seed"] = request.seed
    hyper = _hyperparameters(request.hyperparameters)
    if request.method is Method.SUPERVISED:
        body["method"] = {"type": "supervised"}
        if hyper:
            body["hyperparameters"] = hyper
    elif request.method is Method.DPO:
        if request.hyperparameters.beta is not None:
            hyper["beta"] = request.hyperparameters.beta
        body["method"] = {"type": "dpo", "dpo": {"hyperparameters": hyper}}
    else:
        reinforcement: dict[str, Any] = {"hyperparameters": hyper}
        if request.hyperparameters.grader is not None:
            reinforcement["grader"] = dict(request.hyperparameters.grader)
        body["method"] = {"type": "reinforcement", "reinforcement": reinforcement}
    if request.training_type is not None:
        body[TRAINING_TYPE_FIELD] = TRAINING_TYPE_VALUES[request.training_type]
    return body


def _hyperparameters(hyper: Hyperparameters) -> dict[str, Any]:
    values = {
        "n_epochs": hyper.n_epochs,
        "batch_size": hyper.batch_size,
        "learning_rate_multiplier": hyper.learning_rate_multiplier,
    }
    return {key: value for key, value in values.items() if value is not None}


# -- observed values from response objects -------------------------------------------------
def _dump(obj: Any) -> dict[str, Any]:
    """An SDK response model as a plain dict: exactly the fields the service sent, Azure's extras included."""
    return cast(dict[str, Any], obj.model_dump(mode="json", exclude_unset=True, warnings=False))


def observed_file(data: Mapping[str, Any]) -> ObservedFile:
    details = data.get("status_details")
    return ObservedFile(
        id=str(data["id"]),
        filename=str(data.get("filename") or ""),
        purpose=str(data.get("purpose") or ""),
        bytes=_int_or_none(data.get("bytes")),
        status=str(data.get("status") or "pending"),
        created_at=int(data.get("created_at") or 0),
        status_details=str(details) if details else None,
    )


def observed_job(data: Mapping[str, Any]) -> ObservedJob:
    method = _mapping(data.get("method"))
    method_type = str(method.get("type") or "supervised")
    hyper = {k: v for k, v in _mapping(data.get("hyperparameters")).items() if v is not None}
    method_hyper = _mapping(_mapping(method.get(method_type)).get("hyperparameters"))
    hyper.update({k: v for k, v in method_hyper.items() if v is not None})
    error = _mapping(data.get("error"))
    training_type = data.get(TRAINING_TYPE_FIELD) or data.get("training_type")
    return ObservedJob(
        id=str(data["id"]),
        status=str(data.get("status") or "pending"),
        model=str(data.get("model") or ""),
        training_file=str(data.get("training_file") or ""),
        created_at=int(data.get("created_at") or 0),
        validation_file=data.get("validation_file") or None,
        fine_tuned_model=data.get("fine_tuned_model") or None,
        suffix=data.get("suffix") or None,
        seed=_int_or_none(data.get("seed")),
        method=method_type,
        hyperparameters=hyper,
        training_type=str(training_type) if training_type else None,
        finished_at=_int_or_none(data.get("finished_at")),
        estimated_finish=_int_or_none(data.get("estimated_finish")),
        trained_tokens=_int_or_none(data.get("trained_tokens")),
        result_files=tuple(str(f) for f in data.get("result_files") or ()),
        error_code=_mapping_str(error, "code"),
        error_message=_mapping_str(error, "message"),
    )


def observed_event(data: Mapping[str, Any]) -> ObservedEvent:
    payload = data.get("data")
    return ObservedEvent(
        id=str(data["id"]),
        created_at=int(data.get("created_at") or 0),
        level=str(data.get("level") or "info"),
        message=str(data.get("message") or ""),
        type=str(data.get("type") or "message"),
        data=dict(payload) if isinstance(payload, Mapping) else None,
    )


def observed_checkpoint(data: Mapping[str, Any], job_id: str) -> ObservedCheckpoint:
    metrics = {str(k): float(v) for k, v in _mapping(data.get("metrics")).items() if _is_number(v)}
    return ObservedCheckpoint(
        id=str(data["id"]),
        job_id=str(data.get("fine_tuning_job_id") or job_id),
        fine_tuned_model_checkpoint=str(data.get("fine_tuned_model_checkpoint") or ""),
        step_number=int(data.get("step_number") or 0),
        metrics=metrics,
        created_at=int(data.get("created_at") or 0),
    )


def observed_model(data: Mapping[str, Any]) -> ObservedModel:
    capabilities = _mapping(data.get("capabilities"))
    created = data.get("created_at", data.get("created"))
    return ObservedModel(
        id=str(data["id"]),
        created_at=int(created or 0),
        base_model=data.get("model") or None,
        fine_tune=data.get("fine_tune") or None,
        can_fine_tune=bool(capabilities.get("fine_tune", False)),
        can_chat=bool(capabilities.get("chat_completion", False)),
        lifecycle_status=data.get("lifecycle_status") or None,
        status=data.get("status") or None,
    )


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _mapping_str(value: Mapping[str, Any], key: str) -> str | None:
    item = value.get(key)
    return str(item) if item else None


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
