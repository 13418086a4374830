"""Data-plane models: ``GET /models`` and ``GET /models/{model-id}``.

Base models come from the shared catalog (catalog.py), with the capabilities the spec's
``Capabilities`` object names; fine-tuned models are those of succeeded, undeleted jobs.
Checkpoints are not listed here (as on Azure, they are reached through the job). Read-only.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tunekeeper.emulator import catalog
from tunekeeper.emulator.azure_errors import not_found
from tunekeeper.emulator.context import EmulatorContext
from tunekeeper.emulator.dataplane.jobs import refresh_all
from tunekeeper.emulator.dataplane.protocol import Routes, context, json_response, list_body


def add_routes(routes: Routes) -> None:
    routes.add("GET", "/openai/models", list_models)
    routes.add("GET", "/openai/models/{model_id}", get_model)


def _lifecycle(base: catalog.BaseModel, preview: bool) -> str:
    status = base.lifecycle_status
    if not preview and status in ("deprecating", "deprecated"):
        return "generally-available"  # the stable api-version knows only preview | generally-available
    return status


def base_model_body(base: catalog.BaseModel, *, preview: bool) -> dict[str, Any]:
    embeddings = not base.chat
    deprecation = base.deprecation
    return {
        "object": "model",
        "id": base.id,
        "created_at": base.created_at,
        "status": "succeeded",
        "capabilities": {
            "fine_tune": base.can_fine_tune,
            "inference": True,
            "completion": False,
            "chat_completion": base.chat,
            "embeddings": embeddings,
        },
        "lifecycle_status": _lifecycle(base, preview),
        "deprecation": deprecation,
    }


def fine_tuned_model_body(job: dict[str, Any], base: catalog.BaseModel, *, preview: bool) -> dict[str, Any]:
    return {
        "object": "model",
        "id": job["fine_tuned_model"],
        "created_at": job["finished_at"],
        "status": "succeeded",
        "model": base.id,
        "fine_tune": job["id"],
        "capabilities": {
            "fine_tune": base.can_fine_tune,  # continuous fine-tuning starts from it
            "inference": True,
            "completion": False,
            "chat_completion": base.chat,
            "embeddings": False,
        },
        "lifecycle_status": _lifecycle(base, preview),
        "deprecation": catalog.fine_tuned_deprecation(float(job["finished_at"])),
    }


def all_models(ctx: EmulatorContext, *, preview: bool) -> list[dict[str, Any]]:
    models = [base_model_body(m, preview=preview) for m in catalog.MODELS]
    for job in refresh_all(ctx):
        base = catalog.find(job["_base"])
        if job["status"] == "succeeded" and base is not None:
            models.append(fine_tuned_model_body(job, base, preview=preview))
    return models


async def list_models(request: web.Request) -> web.Response:
    preview = request.query.get("api-version", "").endswith("preview")
    return json_response(list_body(all_models(context(request), preview=preview)))


async def get_model(request: web.Request) -> web.Response:
    model_id = request.match_info["model_id"]
    preview = request.query.get("api-version", "").endswith("preview")
    for model in all_models(context(request), preview=preview):
        if model["id"] == model_id:
            return json_response(model)
    raise not_found("Model", model_id)
