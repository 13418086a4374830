"""Data-plane fine-tuning jobs: create, list, get, cancel, pause, resume, delete, events, checkpoints.

Creation checks what Azure checks (model can be fine-tuned with the method, training file
exists, is a processed ``fine-tune`` file — not pending, not in error — with at least 10 examples,
hyperparameters in range, suffix and seed well formed) and stores the job with its ``TrainingPlan``
(training.py). The job then advances with the clock only: every read calls ``refresh_job``, which computes the
job's snapshot and writes what changed into the store (status, checkpoints, the results.csv
file, the fine-tuned model name). Nothing runs in the background.

Store: kind ``job`` (the FineTuningJob object plus ``_base``, ``_plan``, ``_created``,
``_pauses``, ``_cancelled_at``, ``_checkpoints``, ``_final``), kind ``checkpoint`` (the
FineTuningJobCheckpoint object plus ``_job``), and a blob ``pairs:<job id>`` with the
(prompt, reply) pairs chat.py answers from. Events are derived from the job on every read, so
they need no rows of their own.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
from typing import Any

import orjson
from aiohttp import web

from tunekeeper.datasets import validate_bytes
from tunekeeper.emulator import arm, catalog
from tunekeeper.emulator.azure_errors import (
    DataPlaneError,
    conflict,
    invalid_payload,
    not_found,
    unexpected_state,
)
from tunekeeper.emulator.context import EmulatorContext
from tunekeeper.emulator.dataplane import training
from tunekeeper.emulator.dataplane.files import add_result_file, find_file
from tunekeeper.emulator.dataplane.protocol import (
    Routes,
    context,
    derived_id,
    int_query,
    is_preview,
    json_body,
    json_response,
    list_body,
    location,
    new_id,
    page,
    public,
    require_preview,
)

MIN_EXAMPLES = 10
SUFFIX = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
ACTIVE = frozenset({"pending", "running", "paused", "resuming", "pausing"})
TRAINING_TYPES = {
    "standard": "Standard", "1": "Standard",
    "globalstandard": "GlobalStandard", "global": "GlobalStandard", "2": "GlobalStandard",
    "developer": "Developer", "developertier": "Developer", "3": "Developer",
}


def add_routes(routes: Routes) -> None:
    routes.add("POST", "/openai/fine_tuning/jobs", create_job)
    routes.add("GET", "/openai/fine_tuning/jobs", list_jobs)
    routes.add("GET", "/openai/fine_tuning/jobs/{job_id}", get_job)
    routes.add("DELETE", "/openai/fine_tuning/jobs/{job_id}", delete_job)
    routes.add("POST", "/openai/fine_tuning/jobs/{job_id}/cancel", cancel_job)
    routes.add("POST", "/openai/fine_tuning/jobs/{job_id}/pause", pause_job)
    routes.add("POST", "/openai/fine_tuning/jobs/{job_id}/resume", resume_job)
    routes.add("GET", "/openai/fine_tuning/jobs/{job_id}/events", list_events)
    routes.add("GET", "/openai/fine_tuning/jobs/{job_id}/checkpoints", list_checkpoints)


# -- names -------------------------------------------------------------------------------------
def job_hex(job_id: str) -> str:
    return job_id.removeprefix("ftjob-")


def fine_tuned_model_name(doc: dict[str, Any]) -> str:
    name = f"{doc['_base']}.ft-{job_hex(doc['id'])}"
    return f"{name}-{doc['suffix']}" if doc.get("suffix") else name


def checkpoint_model_name(doc: dict[str, Any], step: int) -> str:
    return f"{doc['_base']}.ft-{job_hex(doc['id'])}:ckpt-step-{step}"


def checkpoint_id(job_id: str, step: int) -> str:
    return derived_id("ftchkpt", job_id, step)


def results_file_id(job_id: str) -> str:
    return derived_id("file", job_id, "results.csv")


# -- advancing with the clock ------------------------------------------------------------------
def _actions(doc: dict[str, Any]) -> training.Actions:
    return training.Actions(
        created=float(doc["_created"]),
        pauses=tuple((float(p), None if r is None else float(r)) for p, r in doc["_pauses"]),
        cancelled_at=doc["_cancelled_at"],
        failed_at=doc.get("_failed_at"),
        failure=doc.get("_failure"),
    )


def job_snapshot(ctx: EmulatorContext, doc: dict[str, Any]) -> training.Snapshot:
    plan = training.TrainingPlan.from_dict(doc["_plan"])
    return training.snapshot(plan, _actions(doc), ctx.clock.now(), fine_tuned_model_name(doc),
                             checkpoint_model_name(doc, 0).replace("ckpt-step-0", "ckpt-step-{step}"))


def refresh_job(ctx: EmulatorContext, doc: dict[str, Any]) -> dict[str, Any]:
    """Bring one job up to the clock, writing what changed; returns the document."""
    if doc.get("_final"):
        return doc
    snap = job_snapshot(ctx, doc)
    plan = training.TrainingPlan.from_dict(doc["_plan"])
    before = orjson.dumps(doc)
    doc["status"] = snap.status
    doc["finished_at"] = None if snap.finished_at is None else int(snap.finished_at)
    doc["estimated_finish"] = None if snap.estimated_finish is None else int(snap.estimated_finish)
    with ctx.store.transaction():
        wanted = {checkpoint_id(doc["id"], c.step): c for c in snap.checkpoints}
        for stale in set(doc["_checkpoints"]) - set(wanted):
            ctx.store.delete("checkpoint", stale)
        for ckpt_id, c in wanted.items():
            if ckpt_id not in doc["_checkpoints"]:
                ctx.store.put("checkpoint", ckpt_id, {
                    "object": "fine_tuning.job.checkpoint",
                    "id": ckpt_id,
                    "created_at": int(c.at),
                    "fine_tuned_model_checkpoint": checkpoint_model_name(doc, c.step),
                    "step_number": c.step,
                    "metrics": c.metrics,
                    "fine_tuning_job_id": doc["id"],
                    "_job": doc["id"],
                    "_epoch": c.epoch,
                })
        doc["_checkpoints"] = sorted(wanted, key=lambda i: wanted[i].step)
        if snap.status == "succeeded":
            result_id = results_file_id(doc["id"])
            add_result_file(
                ctx, result_id, "results.csv", training.results_csv(plan), snap.succeeded_at or 0.0
            )
            doc["fine_tuned_model"] = fine_tuned_model_name(doc)
            doc["result_files"] = [result_id]
            doc["trained_tokens"] = plan.tokens * plan.n_epochs
        if snap.status == "failed":
            if plan.failure is not None and snap.failure == plan.failure:
                doc["error"] = {
                    "code": "invalidTrainingFile",
                    "message": plan.failure,
                    "param": "training_file",
                }
            else:
                doc["error"] = {"code": "internalFailure", "message": snap.failure, "param": None}
        if snap.status in TERMINAL:
            doc["_final"] = True
        if orjson.dumps(doc) != before:
            ctx.store.put("job", doc["id"], doc)
    return doc


def inject_failure(ctx: EmulatorContext, job_id: str, message: str) -> dict[str, Any]:
    """Make a job fail now with ``message`` (for tests of failure handling); it must not be finished."""
    with ctx.store.transaction():  # called from another thread than the server's: read-modify-write at once
        doc = find_job(ctx, job_id)
        if doc is None:
            raise KeyError(f"no fine-tuning job {job_id!r}")
        if doc["status"] in TERMINAL:
            raise ValueError(f"the job {job_id} is already {doc['status']}")
        doc["_failed_at"] = ctx.clock.now()
        doc["_failure"] = message
        ctx.store.put("job", doc["id"], doc)
        return refresh_job(ctx, doc)


def find_job(ctx: EmulatorContext, job_id: str) -> dict[str, Any] | None:
    with ctx.store.transaction():
        doc = ctx.store.get("job", job_id)
        return None if doc is None else refresh_job(ctx, doc)


def _require(ctx: EmulatorContext, job_id: str) -> dict[str, Any]:
    doc = find_job(ctx, job_id)
    if doc is None:
        raise not_found("Fine tuning job", job_id)
    return doc


def refresh_all(ctx: EmulatorContext) -> list[dict[str, Any]]:
    """Every job, brought up to the clock, oldest first."""
    with ctx.store.transaction():
        return [refresh_job(ctx, doc) for doc in ctx.store.list("job")]


# -- create ------------------------------------------------------------------------------------
def _int_param(value: object, name: str, low: int, high: int) -> int | None:
    """An integer hyperparameter; None for "auto" (or -1, which Azure's examples echo for "default")."""
    if value is None or value == "auto" or value == -1:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_payload(
            f"The hyperparameter '{name}' must be an integer from {low} to {high} or 'auto', got {value!r}.",
            param=f"hyperparameters.{name}",
        )
    if not low <= value <= high:
        raise invalid_payload(f"The hyperparameter '{name}' must be between {low} and {high}, got {value}.",
                              param=f"hyperparameters.{name}")
    return value


def _float_param(value: object, name: str, low_exclusive: float, high: float) -> float | None:
    if value is None or value == "auto" or value == -1:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid_payload(f"The hyperparameter '{name}' must be a number or 'auto', got {value!r}.",
                              param=f"hyperparameters.{name}")
    if not low_exclusive < float(value) <= high:
        raise invalid_payload(f"The hyperparameter '{name}' must be greater than {low_exclusive} and at most "
                              f"{high}, got {value}.", param=f"hyperparameters.{name}")
    return float(value)


def _method(request: web.Request, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The method type and the hyperparameters given for it (top-level ones merged in)."""
    raw = body.get("method")
    top = body.get("hyperparameters") or {}
    if not isinstance(top, dict):
        raise invalid_payload("'hyperparameters' must be an object.", param="hyperparameters")
    if raw is None:
        return "supervised", dict(top)
    if not is_preview(request):
        raise invalid_payload("The field 'method' is not supported in api-version 2024-10-21; use "
                              "2025-04-01-preview.", param="method")
    if not isinstance(raw, dict) or raw.get("type") not in ("supervised", "dpo"):
        got = raw.get("type") if isinstance(raw, dict) else raw
        raise invalid_payload(
            f"'method.type' must be 'supervised' or 'dpo', got {got!r}.", param="method.type"
        )
    kind = str(raw["type"])
    section = raw.get(kind) or {}
    inner = section.get("hyperparameters") if isinstance(section, dict) else None
    if inner is not None and not isinstance(inner, dict):
        raise invalid_payload(f"'method.{kind}.hyperparameters' must be an object.",
                              param=f"method.{kind}.hyperparameters")
    merged = dict(top)
    for key, value in (inner or {}).items():
        if key in top and top[key] != value:
            raise invalid_payload(f"The hyperparameter '{key}' is given twice with different values "
                                  f"(hyperparameters and method.{kind}.hyperparameters).", param=key)
        merged[key] = value
    return kind, merged


def _training_type(body: dict[str, Any]) -> str:
    raw = body.get("trainingType", body.get("training_type"))
    if raw is None:
        return "Standard"
    key = str(raw).replace("_", "").replace("-", "").lower()
    if key not in TRAINING_TYPES:
        raise invalid_payload(
            f"'trainingType' must be one of Standard, GlobalStandard, Developer; got {raw!r}.",
            param="trainingType",
        )
    return TRAINING_TYPES[key]


def _training_data(ctx: EmulatorContext, file_id: object, field: str) -> dict[str, Any]:
    if not isinstance(file_id, str) or not file_id:
        raise invalid_payload(f"The field '{field}' is required.", param=field)
    doc = find_file(ctx, file_id)
    if doc is None:
        raise invalid_payload(f"The file '{file_id}' given as {field} does not exist.", param=field)
    if doc["purpose"] != "fine-tune":
        raise invalid_payload(f"The file '{file_id}' given as {field} has purpose '{doc['purpose']}'; "
                              "upload it with purpose 'fine-tune'.", param=field)
    if doc["status"] == "error":
        raise DataPlaneError(400, "jsonlValidationFailed",
                             f"The file '{file_id}' given as {field} failed validation: {doc['_details']}",
                             param=field)
    if doc["status"] != "processed":
        raise invalid_payload(
            f"The file '{file_id}' given as {field} is not processed yet (status "
            f"'{doc['status']}'). Wait until its status is 'processed', then create the job.",
            param=field,
        )
    return doc


def _resolve_base(ctx: EmulatorContext, name: object) -> tuple[catalog.BaseModel, dict[str, Any] | None]:
    """The base model to train, and the parent job when continuing from a fine-tuned model."""
    from tunekeeper.emulator.models import resolve_model

    if not isinstance(name, str) or not name:
        raise invalid_payload("The field 'model' is required.", param="model")
    resolved = resolve_model(ctx, name, None)
    if resolved is None or resolved.kind == "checkpoint":
        raise invalid_payload(f"The specified base model '{name}' does not exist or is not available for "
                              "fine-tuning in this resource.", param="model")
    if resolved.kind == "base" and resolved.id != name:
        raise invalid_payload(f"The specified base model '{name}' does not exist; use a model id such as "
                              f"'{resolved.base.id}'.", param="model")
    if not resolved.base.can_fine_tune:
        raise invalid_payload("The specified base model does not support fine-tuning.", param="model")
    parent = None if resolved.job_id is None else ctx.store.get("job", resolved.job_id)
    return resolved.base, parent


def _failure_when_started(
    data: bytes, filename: str, method: str, base: catalog.BaseModel, field: str
) -> str | None:
    """Why training would fail on this data for this method and model (checked by the job, like Azure)."""
    report = validate_bytes(data, filename=filename, method=method, model=base.id)
    if report.ok:
        return None
    first = report.errors[0]
    return f"The {field.replace('_', ' ')} is invalid for {method} fine-tuning of {base.id}: {first.render()}"


def _pairs(data: bytes, method: str) -> list[tuple[str, str]]:
    """(last user turn, reply) pairs of a training file, for chat answers."""
    pairs: list[tuple[str, str]] = []
    for raw in data.removeprefix(b"\xef\xbb\xbf").splitlines():
        try:
            example = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(example, dict):
            continue
        if method == "dpo":
            messages = (example.get("input") or {}).get("messages") or []
            reply_messages = example.get("preferred_output") or []
        else:
            messages = example.get("messages") or []
            reply_messages = []
        prompt, reply = "", ""
        for message in messages:
            if not isinstance(message, dict):
                continue
            if message.get("role") == "user":
                prompt, reply = message_text(message.get("content")), ""
            elif message.get("role") == "assistant" and prompt and not reply:
                reply = message_text(message.get("content"))
        for message in reply_messages:
            if isinstance(message, dict) and message.get("role") == "assistant":
                reply = message_text(message.get("content"))
        if prompt and reply:
            pairs.append((prompt, reply))
    return pairs


def message_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _check_job_limits(ctx: EmulatorContext) -> None:
    """Azure's per-resource limits: jobs kept, and jobs running or queued at once."""
    jobs = refresh_all(ctx)
    if len(jobs) >= ctx.config.max_jobs:
        raise DataPlaneError(400, "quotaExceeded",
                             f"The resource already has {len(jobs)} fine-tuning jobs, the maximum is "
                             f"{ctx.config.max_jobs}. Delete finished jobs that are no longer needed.")
    active = sum(1 for j in jobs if j["status"] not in TERMINAL)
    if active >= ctx.config.max_active_jobs:
        raise DataPlaneError(429, "quotaExceeded",
                             f"{active} fine-tuning jobs are already running or queued, the maximum is "
                             f"{ctx.config.max_active_jobs}. Retry when one of them has finished.",
                             headers={"Retry-After": str(max(1, math.ceil(ctx.clock.scaled(60))))})


async def create_job(request: web.Request) -> web.Response:
    ctx = context(request)
    body = await json_body(request)
    _check_job_limits(ctx)
    base, parent = _resolve_base(ctx, body.get("model"))
    method, given = _method(request, body)
    if method not in base.fine_tune_methods:
        supported = ", ".join(sorted(base.fine_tune_methods))
        raise invalid_payload(f"The model '{base.id}' does not support the '{method}' fine-tuning method "
                              f"(supported: {supported}).", param="method.type")
    unknown = set(given) - {"n_epochs", "batch_size", "learning_rate_multiplier", "beta", "l2_multiplier"}
    if unknown:
        raise invalid_payload(
            f"Unknown hyperparameter(s): {', '.join(sorted(unknown))}.", param="hyperparameters"
        )
    n_epochs = _int_param(given.get("n_epochs"), "n_epochs", 1, 50)
    batch_size = _int_param(given.get("batch_size"), "batch_size", 1, 256)
    lr = _float_param(given.get("learning_rate_multiplier"), "learning_rate_multiplier", 0.0, 10.0)
    beta = _float_param(given.get("beta"), "beta", 0.0, 2.0)
    if beta is not None and method != "dpo":
        raise invalid_payload("The hyperparameter 'beta' applies to the 'dpo' method only.", param="beta")
    suffix = body.get("suffix")
    if suffix is not None and (not isinstance(suffix, str) or not SUFFIX.match(suffix)):
        raise invalid_payload(
            "The suffix can contain up to 40 characters (a-z, A-Z, 0-9, - and _).", param="suffix"
        )
    seed = body.get("seed")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2**31 - 1
    ):
        raise invalid_payload(
            f"The seed must be an integer from 0 to {2**31 - 1}, got {seed!r}.", param="seed"
        )
    training_type = _training_type(body)

    train = _training_data(ctx, body.get("training_file"), "training_file")
    examples = int((train.get("_stats") or {}).get("examples", 0))
    if examples < MIN_EXAMPLES:
        raise invalid_payload(
            f"The training file '{train['id']}' has {examples} example(s), but must have at least "
            f"{MIN_EXAMPLES} examples.",
            param="training_file",
        )
    valid = None
    if body.get("validation_file") is not None:
        valid = _training_data(ctx, body.get("validation_file"), "validation_file")

    train_bytes = ctx.store.get_blob(train["id"]) or b""
    failure = await asyncio.to_thread(_failure_when_started, train_bytes, train["filename"], method, base,
                                      "training_file")
    if failure is None and valid is not None:
        failure = await asyncio.to_thread(_failure_when_started, ctx.store.get_blob(valid["id"]) or b"",
                                          valid["filename"], method, base, "validation_file")
    if seed is None:
        seed = random.randint(0, 2**31 - 1)  # Azure picks one when none is given
    n_epochs = n_epochs or training.auto_n_epochs(examples)
    batch_size = batch_size or training.auto_batch_size(examples)
    lr = lr or training.auto_learning_rate_multiplier(batch_size)
    if method == "dpo" and beta is None:
        beta = training.DEFAULT_BETA
    digest = hashlib.sha256(f"{train['_sha256']}:{valid['_sha256'] if valid else ''}".encode()).hexdigest()
    plan = training.make_plan(
        method=method, examples=examples, tokens=int((train.get("_stats") or {}).get("tokens", 0)),
        has_validation=valid is not None, n_epochs=n_epochs, batch_size=batch_size,
        learning_rate_multiplier=lr, beta=beta, seed=seed, model=base.id, data_digest=digest,
        failure=failure, speed=ctx.clock.speed,
    )
    hyper: dict[str, Any] = {"n_epochs": n_epochs, "batch_size": batch_size, "learning_rate_multiplier": lr}
    method_hyper = dict(hyper)
    if beta is not None:
        method_hyper["beta"] = beta
    now = ctx.clock.now()
    job_id = new_id("ftjob")
    doc: dict[str, Any] = {
        "object": "fine_tuning.job",
        "id": job_id,
        "created_at": int(now),
        "status": "pending",
        "model": body["model"],
        "fine_tuned_model": None,
        "training_file": train["id"],
        "validation_file": None if valid is None else valid["id"],
        "result_files": None,
        "finished_at": None,
        "organization_id": None,
        "trained_tokens": None,
        "error": None,
        "estimated_finish": None,
        "hyperparameters": hyper,
        "suffix": suffix,
        "seed": seed,
        "method": {"type": method, method: {"hyperparameters": method_hyper}},
        "integrations": body.get("integrations"),
        "trainingType": training_type,
        "_base": base.id,
        "_plan": plan.to_dict(),
        "_created": now,
        "_pauses": [],
        "_cancelled_at": None,
        "_checkpoints": [],
        "_final": False,
    }
    pairs = _pairs(train_bytes, method)
    if parent is not None:
        pairs = orjson.loads(ctx.store.get_blob(f"pairs:{parent['id']}") or b"[]") + pairs
    with ctx.store.transaction():
        ctx.store.put_blob(f"pairs:{job_id}", orjson.dumps(pairs))
        ctx.store.put("job", job_id, doc)
    refresh_job(ctx, doc)
    return json_response(public(doc), status=201,
                         headers={"Location": location(request, f"/fine_tuning/jobs/{job_id}")})


# -- read --------------------------------------------------------------------------------------
async def list_jobs(request: web.Request) -> web.Response:
    ctx = context(request)
    limit = int_query(request, "limit", 20, low=1, high=1000)
    jobs = list(reversed(refresh_all(ctx)))  # newest first
    chunk, has_more = page(jobs, after=request.query.get("after"), limit=limit)
    return json_response(list_body([public(d) for d in chunk], has_more=has_more))


async def get_job(request: web.Request) -> web.Response:
    return json_response(public(_require(context(request), request.match_info["job_id"])))


async def list_events(request: web.Request) -> web.Response:
    ctx = context(request)
    doc = _require(ctx, request.match_info["job_id"])
    limit = int_query(request, "limit", 20, low=1, high=10_000)
    events = [
        {"object": "fine_tuning.job.event", "id": derived_id("ftevent", doc["id"], e.key),
         "created_at": int(e.at), "level": e.level, "message": e.message, "type": e.type,
         **({"data": e.data} if e.data is not None else {})}
        for e in reversed(job_snapshot(ctx, doc).events)  # newest first
    ]
    chunk, has_more = page(events, after=request.query.get("after"), limit=limit)
    return json_response(list_body(chunk, has_more=has_more))


def job_checkpoints(ctx: EmulatorContext, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The kept checkpoints of a (refreshed) job, newest first."""
    found = [ctx.store.get("checkpoint", cid) for cid in doc["_checkpoints"]]
    return [c for c in reversed(found) if c is not None]


async def list_checkpoints(request: web.Request) -> web.Response:
    ctx = context(request)
    doc = _require(ctx, request.match_info["job_id"])
    limit = int_query(request, "limit", 10, low=1, high=1000)
    chunk, has_more = page(job_checkpoints(ctx, doc), after=request.query.get("after"), limit=limit)
    return json_response(list_body([public(c) for c in chunk], has_more=has_more))


# -- change ------------------------------------------------------------------------------------
def _saved(ctx: EmulatorContext, doc: dict[str, Any]) -> web.Response:
    """Stores a job a handler changed and answers with it as it now reads."""
    ctx.store.put("job", doc["id"], doc)
    return json_response(public(refresh_job(ctx, doc)))


async def cancel_job(request: web.Request) -> web.Response:
    ctx = context(request)
    doc = _require(ctx, request.match_info["job_id"])
    if doc["status"] in TERMINAL:
        raise unexpected_state(f"The job '{doc['id']}' cannot be cancelled because it is {doc['status']}.")
    doc["_cancelled_at"] = ctx.clock.now()
    return _saved(ctx, doc)


async def pause_job(request: web.Request) -> web.Response:
    require_preview(request)
    ctx = context(request)
    doc = _require(ctx, request.match_info["job_id"])
    if doc["status"] != "running":
        raise unexpected_state(f"Only a running job can be paused; the job '{doc['id']}' is {doc['status']}.")
    doc["_pauses"].append([ctx.clock.now(), None])
    return _saved(ctx, doc)


async def resume_job(request: web.Request) -> web.Response:
    require_preview(request)
    ctx = context(request)
    doc = _require(ctx, request.match_info["job_id"])
    if doc["status"] != "paused":
        raise unexpected_state(f"Only a paused job can be resumed; the job '{doc['id']}' is {doc['status']}.")
    doc["_pauses"][-1][1] = ctx.clock.now()
    return _saved(ctx, doc)


def model_ids_of(ctx: EmulatorContext, doc: dict[str, Any]) -> set[str]:
    """Every name a deployment may use for this job's model or its checkpoints."""
    ids = {fine_tuned_model_name(doc)}
    for ckpt in job_checkpoints(ctx, doc):
        ids.add(ckpt["id"])
        ids.add(ckpt["fine_tuned_model_checkpoint"])
    return ids


async def delete_job(request: web.Request) -> web.Response:
    ctx = context(request)
    doc = _require(ctx, request.match_info["job_id"])
    if doc["status"] not in TERMINAL:
        raise unexpected_state(f"The job '{doc['id']}' is {doc['status']}; cancel it before deleting it.")
    users = arm.deployments_using(ctx, model_ids_of(ctx, doc))
    if users:
        raise conflict(
            f"The fine-tuned model of job '{doc['id']}' cannot be deleted while deployment(s) "
            f"{', '.join(sorted(users))} use it or its checkpoints. Delete the deployment(s) first."
        )
    with ctx.store.transaction():
        for ckpt_id in doc["_checkpoints"]:
            ctx.store.delete("checkpoint", ckpt_id)
        ctx.store.delete_blob(f"pairs:{doc['id']}")
        ctx.store.delete("job", doc["id"])
    return web.Response(status=204)
