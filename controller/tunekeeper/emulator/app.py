"""The emulator's aiohttp application: middleware chain and route table for both planes.

``build_app(ctx)`` is called by server.py (the threaded server and the CLI). Middleware runs in
this order for every request:

1. request ids: every answer carries ``apim-request-id``, ``x-request-id`` and
   ``x-ms-request-id`` (Azure's gateways add them; the SDKs surface them in errors), and errors
   raised by handlers (``azure_errors``) become JSON answers shaped for their plane;
2. fault injection (faults.py), so injected 429/5xx look like they came from Azure's front door;
3. bounds: a body larger than its route allows is refused with 413 before it is read (by its
   Content-Length) or while it is read (``client_max_size`` per request): 512 MB for a file
   upload (Azure's limit), 20 MB for chat (images), 1 MB for every other JSON route; a request
   other than an upload that is not answered within ``REQUEST_SECONDS`` (a body sent slowly or
   never finished) gets 408. Uploads bound the wait for each chunk instead (files.py);
4. authentication (the security model, docs/emulator.md). Open mode (the default, loopback
   only): the data plane (``/openai/...``) takes the ``api-key`` header or any
   ``Authorization: Bearer`` token, ARM (``/subscriptions/...``) any bearer token, and the admin
   endpoints (``/_emulator/...``) nothing. With ``config.require_auth`` (set by ``tunekeeper
   emulator --api-key`` and required by ``--allow-remote``) every route, admin included, needs
   the key: ``api-key: KEY`` or ``Authorization: Bearer KEY``, compared in constant time;
5. the data-plane ``api-version`` check.

This module wires; it holds no route logic of its own.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from tunekeeper.emulator import admin, arm, faults
from tunekeeper.emulator.azure_errors import (
    EmulatorHttpError,
    arm_route_not_found,
    arm_unauthorized,
    dataplane_unauthorized,
    internal_failure,
    request_timeout,
    request_too_large,
    resource_not_found,
    unsupported_api_version,
)
from tunekeeper.emulator.context import CONTEXT, DATAPLANE_API_VERSIONS, EmulatorContext
from tunekeeper.emulator.dataplane import add_dataplane_routes

log = logging.getLogger("tunekeeper.emulator")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DATAPLANE_PREFIX = "/openai"
ARM_PREFIX = "/subscriptions"
# Files up to 512 MB may be uploaded (Azure's limit); the slack covers multipart framing.
MAX_UPLOAD_REQUEST_BYTES = 512 * 1024 * 1024 + 1024 * 1024
MAX_UPLOAD_PART_REQUEST_BYTES = 64 * 1024 * 1024 + 1024 * 1024  # one part of an /uploads upload
MAX_CHAT_REQUEST_BYTES = 20 * 1024 * 1024  # messages may carry images as data URLs
MAX_JSON_REQUEST_BYTES = 1024 * 1024  # every other route: small JSON (jobs, deployments, admin)
REQUEST_SECONDS = 60.0  # a non-upload request answered within this, or 408


REQUEST_ID: web.RequestKey[str] = web.RequestKey("tunekeeper_request_id", str)


def build_app(ctx: EmulatorContext) -> web.Application:
    app = web.Application(
        middlewares=[
            _request_id_middleware,
            faults.faults_middleware,
            _bounds_middleware,
            _auth_middleware,
            _api_version_middleware,
        ],
        client_max_size=MAX_JSON_REQUEST_BYTES,
    )
    app[CONTEXT] = ctx
    add_dataplane_routes(app)
    arm.add_arm_routes(app)
    admin.add_admin_routes(app)
    return app


_ACCOUNT_DATAPLANE = re.compile(r"^/accounts/[^/]+(?P<rest>/.*)?$")


def _is_dataplane(path: str) -> bool:
    """``/openai/...`` (the default account) or ``/accounts/{name}/openai/...`` (another one)."""
    account = _ACCOUNT_DATAPLANE.match(path)
    if account is not None:
        path = account["rest"] or ""
    return path == DATAPLANE_PREFIX or path.startswith(DATAPLANE_PREFIX + "/")


def _is_arm(path: str) -> bool:
    return path.lower().startswith(ARM_PREFIX + "/") or path.lower() == ARM_PREFIX


@web.middleware
async def _request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = str(uuid.uuid4())
    request[REQUEST_ID] = request_id  # for handlers that stream, whose headers leave before ours
    response: web.StreamResponse
    try:
        response = await handler(request)
    except EmulatorHttpError as exc:
        response = exc.response()
    except web.HTTPException as exc:
        if exc.status in (404, 405) and _is_arm(request.path):
            response = arm_route_not_found(request.path).response()
        elif exc.status in (404, 405) and _is_dataplane(request.path):
            response = resource_not_found().response()
        else:
            response = exc
    except ConnectionResetError:
        # The client went away mid-request (a stalled upload, a killed process): nobody to answer,
        # and no failure of ours to log. aiohttp discards what is written to a closed connection.
        response = web.Response(status=499, reason="Client Closed Request")
    except Exception:
        log.exception("Failed %s %s (request %s)", request.method, request.path, request_id)
        response = internal_failure(_is_arm(request.path)).response()
    if not response.prepared:
        response.headers["apim-request-id"] = request_id
        response.headers["x-request-id"] = request_id
        response.headers["x-ms-request-id"] = request_id
        if _is_arm(request.path):
            response.headers["x-ms-correlation-request-id"] = request.headers.get(
                "x-ms-correlation-request-id", request_id
            )
    return response


def body_limit(method: str, path: str) -> int:
    """The most bytes a request to ``path`` may carry (any account's data plane)."""
    account = _ACCOUNT_DATAPLANE.match(path)
    lowered = (account["rest"] or "" if account is not None else path).lower()
    if method == "POST" and lowered.rstrip("/") == "/openai/files":
        return MAX_UPLOAD_REQUEST_BYTES
    if method == "POST" and lowered.startswith("/openai/uploads/") and lowered.rstrip("/").endswith("/parts"):
        return MAX_UPLOAD_PART_REQUEST_BYTES
    if lowered.startswith("/openai/deployments/") and lowered.endswith("/chat/completions"):
        return MAX_CHAT_REQUEST_BYTES
    return MAX_JSON_REQUEST_BYTES


def _is_upload(method: str, path: str) -> bool:
    return body_limit(method, path) in (MAX_UPLOAD_REQUEST_BYTES, MAX_UPLOAD_PART_REQUEST_BYTES)


@web.middleware
async def _bounds_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    limit = body_limit(request.method, request.path)
    arm = _is_arm(request.path)
    if request.content_length is not None and request.content_length > limit:
        raise request_too_large(limit, arm)
    bounded = request.clone(client_max_size=limit)
    try:
        if _is_upload(request.method, request.path):
            return await handler(bounded)  # streamed: files.py bounds the wait for each chunk
        async with asyncio.timeout(REQUEST_SECONDS):
            return await handler(bounded)
    except web.HTTPRequestEntityTooLarge:
        raise request_too_large(limit, arm) from None
    except TimeoutError:
        raise request_timeout(REQUEST_SECONDS, arm) from None


@web.middleware
async def _auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    config = request.app[CONTEXT].config
    if _is_dataplane(path):
        key = request.headers.get("api-key")
        if config.require_auth:
            if not _has_key(request, config.api_key):
                raise dataplane_unauthorized()
        elif not ((key is not None and _same(key, config.api_key)) or _bearer_token(request)):
            raise dataplane_unauthorized()
    elif _is_arm(path):
        if "Authorization" not in request.headers:
            raise arm_unauthorized(missing=True)
        token = _bearer_token(request)
        if not token or (config.require_auth and not _same(token, config.api_key)):
            raise arm_unauthorized(missing=False)
    elif config.require_auth and not _has_key(request, config.api_key):  # /_emulator admin, and the rest
        raise dataplane_unauthorized()
    return await handler(request)


def _has_key(request: web.Request, api_key: str) -> bool:
    key = request.headers.get("api-key")
    token = _bearer_token(request)
    return (key is not None and _same(key, api_key)) or (bool(token) and _same(token, api_key))


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )


def _bearer_token(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@web.middleware
async def _api_version_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if _is_dataplane(request.path):
        version = request.query.get("api-version")
        if not version:
            raise resource_not_found()
        if version not in DATAPLANE_API_VERSIONS:
            raise unsupported_api_version()
    return await handler(request)
