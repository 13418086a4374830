"""Chat completions on deployments: ``POST /openai/deployments/{deployment}/chat/completions``.

This is an emulation, not a language model. A deployed fine-tuned model (or checkpoint) answers
with the assistant reply of the training example whose last user turn shares the most words
with the request's last user message (Jaccard overlap of lower-cased words; ties go to the
earlier example), so tests and demos can see that "the model learned its data" (in the account
that trained it, for a deployment made with ``properties.model.source``). A base model
answers with a fixed sentence saying so. Token counts in ``usage`` are estimates (about four
characters per token). ``stream: true`` sends the same answer as server-sent events.

The deployment must exist in the store (kind ``deployment``, written by arm.py) with
``provisioningState`` Succeeded, else 404 ``DeploymentNotFound`` as Azure answers; a paused
deployment answers 423. Each answer records ``_last_used_at`` on the deployment, which ARM's
idle-deployment clean-up reads.
"""

from __future__ import annotations

import math
import re
import uuid
from typing import Any

import orjson
from aiohttp import web

from tunekeeper.emulator import arm
from tunekeeper.emulator.azure_errors import DataPlaneError, invalid_payload
from tunekeeper.emulator.context import EmulatorContext
from tunekeeper.emulator.dataplane.jobs import message_text
from tunekeeper.emulator.dataplane.protocol import Routes, context, json_body, json_response
from tunekeeper.emulator.models import resolve_model

_WORD = re.compile(r"\w+")


def add_routes(routes: Routes) -> None:
    routes.add("POST", "/openai/deployments/{deployment}/chat/completions", chat_completions)


def _deployment_not_found() -> DataPlaneError:
    return DataPlaneError(
        404,
        "DeploymentNotFound",
        "The API deployment for this resource does not exist. If you created the deployment within the last "
        "5 minutes, please wait a moment and try again.",
    )


def _find_deployment(ctx: EmulatorContext, name: str) -> dict[str, Any] | None:
    doc = ctx.store.get("deployment", name)
    if doc is not None:
        return doc
    lowered = name.lower()
    return next((d for d in ctx.store.list("deployment") if str(d.get("name", "")).lower() == lowered), None)


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def closest_reply(pairs: list[list[str]], prompt: str) -> str | None:
    """The reply of the training prompt most like ``prompt`` (deterministic)."""
    asked = _words(prompt)
    best, best_score = None, -1.0
    for example_prompt, reply in pairs:
        words = _words(example_prompt)
        union = asked | words
        score = len(asked & words) / len(union) if union else 0.0
        if score > best_score:
            best, best_score = reply, score
    return best


def _estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


async def chat_completions(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    name = request.match_info["deployment"]
    body = await json_body(request)
    arm.sweep(ctx)
    deployment = _find_deployment(ctx, name)
    properties = (deployment or {}).get("properties") or {}
    if deployment is None or properties.get("provisioningState") != "Succeeded":
        raise _deployment_not_found()
    if properties.get("deploymentState") == "Paused":
        raise DataPlaneError(423, "DeploymentPaused",
                             f"The deployment '{deployment['name']}' is paused. Resume it to send requests.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid_payload("'messages' must be a non-empty array of chat messages.", param="messages")
    model = properties.get("model") or {}
    # a deployment made with properties.model.source serves a model trained in that account
    model_ctx = arm.model_account(ctx, deployment)
    resolved = None if model_ctx is None else resolve_model(model_ctx, str(model.get("name", "")),
                                                             model.get("version"))
    if resolved is None or model_ctx is None:
        raise _deployment_not_found()

    prompt = ""
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "user":
            prompt = message_text(message.get("content"))
    all_text = " ".join(message_text(m.get("content")) for m in messages if isinstance(m, dict))
    if resolved.kind == "base":
        answer = (f"This is the tunekeeper emulator, not a language model. Deployment '{deployment['name']}' "
                  f"serves the base model {resolved.base.id}, which answers every prompt with this sentence; "
                  "deploy a fine-tuned model to get answers from its training data.")
        model_name = resolved.base.id
    else:
        pairs = orjson.loads(model_ctx.store.get_blob(f"pairs:{resolved.job_id}") or b"[]")
        answer = closest_reply(pairs, prompt) or "(the training data of this model has no assistant replies)"
        model_name = resolved.id

    now = ctx.clock.now()
    fresh = _find_deployment(ctx, deployment["name"])
    if fresh is not None:
        fresh["_last_used_at"] = now
        ctx.store.put("deployment", fresh["name"], fresh)

    prompt_tokens = _estimate_tokens(all_text)
    completion_tokens = _estimate_tokens(answer)
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    if body.get("stream"):
        options = body.get("stream_options") or {}
        with_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        return await _stream(
            request, completion_id, int(now), model_name, answer, usage if with_usage else None
        )
    return json_response({
        "id": completion_id,
        "object": "chat.completion",
        "created": int(now),
        "model": model_name,
        "system_fingerprint": None,
        "choices": [{
            "index": 0,
            "finish_reason": "stop",
            "logprobs": None,
            "message": {"role": "assistant", "content": answer, "refusal": None},
        }],
        "usage": usage,
    })


async def _stream(request: web.Request, completion_id: str, created: int, model: str, answer: str,
                  usage: dict[str, int] | None) -> web.StreamResponse:
    """The answer as server-sent events, a few words per chunk, as ``stream: true`` asks."""
    from tunekeeper.emulator.app import REQUEST_ID

    request_id = request.get(REQUEST_ID, "")
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "apim-request-id": request_id, "x-request-id": request_id, "x-ms-request-id": request_id,
    })
    await response.prepare(request)

    async def send(delta: dict[str, Any], finish: str | None, extra: dict[str, Any] | None = None) -> None:
        chunk: dict[str, Any] = {
            "id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        if extra:
            chunk.update(extra)
        await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")

    await send({"role": "assistant", "content": ""}, None)
    words = answer.split(" ")
    for start in range(0, len(words), 4):
        piece = " ".join(words[start:start + 4])
        await send({"content": piece if start == 0 else " " + piece}, None)
    await send({}, "stop")
    if usage is not None:
        await response.write(b"data: " + orjson.dumps({
            "id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [], "usage": usage}) + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response
