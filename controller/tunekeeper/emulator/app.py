"""The emulator's aiohttp application: middleware chain and route table for both planes.

``build_app(ctx)`` is called by server.py (the threaded server and the CLI). Middleware runs in
this order for every request:

1. request ids: every answer carries ``apim-request-id``, ``x-request-id`` and
   ``x-ms-request-id`` (Azure's gateways add them; the SDKs surface them in errors), and errors
   raised by handlers (``azure_errors``) become JSON answers shaped for their plane;
2. fault injection (faults.py), so injected 429/5xx look like they came from Azure's front door;
3. authentication: the data plane (``/openai/...``) takes the ``api-key`` header or any
   ``Authorization: Bearer`` token; ARM (``/subscriptions/...``) requires a bearer token. The
   admin endpoints (``/_emulator/...``) need none: the emulator binds the loopback interface
   by default, and the CLI refuses other hosts unless told otherwise;
4. the data-plane ``api-version`` check.

This module wires; it holds no route logic of its own.
"""

from __future__ import annotations

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
    resource_not_found,
    unsupported_api_version,
)
from tunekeeper.emulator.context import CONTEXT, DATAPLANE_API_VERSIONS, EmulatorContext
from tunekeeper.emulator.dataplane import add_dataplane_routes

log = logging.getLogger("tunekeeper.emulator")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DATAPLANE_PREFIX = "/openai"
ARM_PREFIX = "/subscriptions"
# Files up to 512 MB may be uploaded; the slack covers multipart framing.
MAX_REQUEST_BYTES = 512 * 1024 * 1024 + 1024 * 1024


REQUEST_ID: web.RequestKey[str] = web.RequestKey("tunekeeper_request_id", str)


def build_app(ctx: EmulatorContext) -> web.Application:
    app = web.Application(
        middlewares=[
            _request_id_middleware,
            faults.faults_middleware,
            _auth_middleware,
            _api_version_middleware,
        ],
        client_max_size=MAX_REQUEST_BYTES,
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
    except Exception:
        log.exception("Failed %s %s (request %s)", request.method, request.path, request_id)
        response = internal_failure(_is_arm(request.path)).response()
    if not response.prepared:
        response.headers["apim-request-id"] = request_id
        response.headers["x-request-id"] = request_id
        response.headers["x-ms-request-id"] = request_id
        if _is_arm(request.path):
            response.headers["x-ms-correlation-request-id"] = request.headers.get(
                "x-ms-correlation-request-id", request_id)
    return response


@web.middleware
async def _auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if _is_dataplane(path):
        config = request.app[CONTEXT].config
        key = request.headers.get("api-key")
        if not (key == config.api_key or _bearer_token(request)):
            raise dataplane_unauthorized()
    elif _is_arm(path):
        if "Authorization" not in request.headers:
            raise arm_unauthorized(missing=True)
        if not _bearer_token(request):
            raise arm_unauthorized(missing=False)
    return await handler(request)


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
