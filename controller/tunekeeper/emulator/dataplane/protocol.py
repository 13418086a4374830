"""Request/response conventions shared by every data-plane handler.

Ids (``file-<32hex>``, ``ftjob-<32hex>``, ...), the api-version a request asked for, JSON
bodies, cursor paging (``after``/``limit``/``has_more``) and the split between what a stored
document returns (its public keys) and what the emulator keeps for itself (keys starting with
``_``). Used by files.py, jobs.py, model_list.py and chat.py; holds no route of its own.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from aiohttp import web

from tunekeeper.emulator.azure_errors import invalid_payload, resource_not_found
from tunekeeper.emulator.context import CONTEXT, EmulatorContext

PREVIEW_API_VERSION = "2025-04-01-preview"
STABLE_API_VERSION = "2024-10-21"


ACCOUNT_PREFIX = "/accounts/{account}"  # the data-plane endpoint of an account other than the default


class Routes:
    """Registers each data-plane route twice: at ``/openai/...`` for the default account and at
    ``/accounts/{account}/openai/...`` for the others (each account's own endpoint)."""

    def __init__(self, app: web.Application) -> None:
        self._router = app.router

    def add(
        self, method: str, path: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> None:
        self._router.add_route(method, path, handler)
        self._router.add_route(method, ACCOUNT_PREFIX + path, handler)


def context(request: web.Request) -> EmulatorContext:
    """The account a data-plane request addresses (404 as Azure's gateway answers, for none)."""
    root = request.app[CONTEXT]
    name = request.match_info.get("account")
    if name is None:
        return root
    found = root.accounts.get(name)
    if found is None:
        raise resource_not_found()
    return found


def new_id(prefix: str) -> str:
    """A fresh id such as ``file-1a2b...`` (32 hex digits, like Azure's)."""
    return f"{prefix}-{uuid.uuid4().hex}"


def derived_id(prefix: str, *parts: object) -> str:
    """A stable id computed from ``parts`` (same inputs, same id): checkpoints, events, result files."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:32]
    return f"{prefix}-{digest}"


def is_preview(request: web.Request) -> bool:
    return request.query.get("api-version") == PREVIEW_API_VERSION


def require_preview(request: web.Request) -> None:
    """Operations that exist only in the preview api-version answer like an unknown path on stable."""
    if not is_preview(request):
        raise resource_not_found()


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """The document as the API returns it: private ``_`` keys removed."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def json_response(body: object, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


async def json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise invalid_payload(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise invalid_payload("The request body must be a JSON object.")
    return body


def location(request: web.Request, path: str) -> str:
    """Absolute URL of ``path`` (under the account's /openai) on the host the client used."""
    return f"{request.scheme}://{request.host}{context(request).endpoint_path}/openai{path}"


def int_query(request: web.Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_payload(
            f"The query parameter '{name}' must be an integer, got '{raw}'.", param=name
        ) from None
    if not low <= value <= high:
        raise invalid_payload(f"The query parameter '{name}' must be between {low} and {high}, got {value}.",
                              param=name)
    return value


def page(
    items: Sequence[dict[str, Any]],
    *,
    after: str | None,
    limit: int,
    key: Callable[[dict[str, Any]], str] = lambda d: str(d["id"]),
) -> tuple[list[dict[str, Any]], bool]:
    """Cursor paging over an already ordered list: items following ``after``, at most ``limit``.

    An ``after`` id that is not in the list yields an empty page (the cursor points past
    everything still there), which is what a client that pages until ``has_more`` is false needs.
    """
    start = 0
    if after:
        ids = [key(item) for item in items]
        if after not in ids:
            return [], False
        start = ids.index(after) + 1
    chunk = list(items[start:start + limit])
    return chunk, start + limit < len(items)


def list_body(data: list[dict[str, Any]], *, has_more: bool | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"object": "list", "data": data}
    if has_more is not None:
        body["has_more"] = has_more
    return body
