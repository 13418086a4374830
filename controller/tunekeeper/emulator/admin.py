"""The emulator's own admin endpoints under ``/_emulator`` (not part of any Azure API).

Open on a loopback emulator in open mode; they need the api key when the emulator requires
authentication (app.py checks it, docs/emulator.md has the security model).

For tests and for users' resilience drills against a running ``tunekeeper emulator``:

- ``GET /_emulator/faults`` lists the fault rules; ``POST`` adds one (JSON body with the fields
  of ``Faults.add``: pattern, status, probability, retry_after, latency, drop, times, seed) and
  answers 201 ``{"id": ...}``; ``DELETE /_emulator/faults`` removes all, ``DELETE
  /_emulator/faults/{id}`` one (404 when unknown).
- ``GET /_emulator/clock`` shows the emulated time; ``POST /_emulator/clock/advance
  {"seconds": N}`` jumps it forward.
- ``POST /_emulator/reset`` forgets all state (of every account), the clock offset and the fault
  rules; the accounts themselves stay.
- ``GET /_emulator/accounts`` lists the accounts served, with their ARM id and data-plane
  endpoint; ``POST /_emulator/accounts {"accountName", "subscriptionId"?, "resourceGroup"?,
  "region"?}`` adds one (201; 200 when it exists already; 409 when the name is taken by an
  account with another subscription or resource group). Added accounts survive restarts.

app.py wires these with ``add_admin_routes(app)``. Other parts that hold in-memory state can
register a callable under ``RESET_HOOKS`` to be told about a reset. Fault rules never apply to
these paths (see faults.py). Errors use the data-plane error shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tunekeeper.emulator.context import CONTEXT, AccountConfig, EmulatorContext

RESET_HOOKS: web.AppKey[list[Callable[[], None]]] = web.AppKey("tunekeeper_emulator_reset_hooks", list)


def add_admin_routes(app: web.Application) -> None:
    app.router.add_get("/_emulator/faults", _list_faults)
    app.router.add_post("/_emulator/faults", _add_fault)
    app.router.add_delete("/_emulator/faults", _clear_faults)
    app.router.add_delete("/_emulator/faults/{rule_id}", _remove_fault)
    app.router.add_get("/_emulator/clock", _get_clock)
    app.router.add_post("/_emulator/clock/advance", _advance_clock)
    app.router.add_post("/_emulator/reset", _reset)
    app.router.add_get("/_emulator/accounts", _list_accounts)
    app.router.add_post("/_emulator/accounts", _add_account)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


async def _json_body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read() or b"{}")
    except ValueError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps(
                {"error": {"code": "invalidPayload", "message": f"The body is not valid JSON: {exc}"}}
            ),
            content_type="application/json",
        ) from None


async def _list_faults(request: web.Request) -> web.Response:
    return web.json_response({"faults": request.app[CONTEXT].faults.list()})


async def _add_fault(request: web.Request) -> web.Response:
    body = await _json_body(request)
    if not isinstance(body, dict):
        return _error(400, "invalidPayload", "The body must be a JSON object describing one fault rule.")
    try:
        rule_id = request.app[CONTEXT].faults.add_dict(body)
    except ValueError as exc:
        return _error(400, "invalidPayload", str(exc))
    rule = next(r for r in request.app[CONTEXT].faults.list() if r["id"] == rule_id)
    return web.json_response(rule, status=201)


async def _clear_faults(request: web.Request) -> web.Response:
    request.app[CONTEXT].faults.clear()
    return web.Response(status=204)


async def _remove_fault(request: web.Request) -> web.Response:
    rule_id = request.match_info["rule_id"]
    if not request.app[CONTEXT].faults.remove(rule_id):
        return _error(404, "notFound", f"No fault rule with id '{rule_id}'.")
    return web.Response(status=204)


def _clock_body(request: web.Request) -> dict[str, Any]:
    ctx = request.app[CONTEXT]
    return {"now": ctx.clock.now(), "speed": ctx.clock.speed}


async def _get_clock(request: web.Request) -> web.Response:
    return web.json_response(_clock_body(request))


async def _advance_clock(request: web.Request) -> web.Response:
    body = await _json_body(request)
    seconds = body.get("seconds") if isinstance(body, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return _error(400, "invalidPayload", 'Send {"seconds": N} with N >= 0; the clock only moves forward.')
    try:
        request.app[CONTEXT].clock.advance(float(seconds))
    except (ValueError, OverflowError) as exc:
        return _error(400, "invalidPayload", f"Cannot advance the clock: {exc}.")
    return web.json_response(_clock_body(request))


def reset_state(app: web.Application) -> None:
    """Forget the state of every account, the clock offset and the fault rules; keep the accounts."""
    ctx = app[CONTEXT]
    for account in ctx.accounts:
        account.store.reset()
    ctx.clock.reset()
    ctx.faults.clear()
    for hook in app.get(RESET_HOOKS, []):
        hook()


async def _reset(request: web.Request) -> web.Response:
    reset_state(request.app)
    return web.Response(status=204)


def _account_view(request: web.Request, account: EmulatorContext) -> dict[str, Any]:
    c = account.config
    return {
        **c.identity().to_dict(),
        "id": account.resource_id,
        "endpoint": f"{request.scheme}://{request.host}{account.endpoint_path}",
    }


async def _list_accounts(request: web.Request) -> web.Response:
    accounts = request.app[CONTEXT].accounts
    return web.json_response({"accounts": [_account_view(request, a) for a in accounts]})


async def _add_account(request: web.Request) -> web.Response:
    body = await _json_body(request)
    root = request.app[CONTEXT]
    if not isinstance(body, dict) or not isinstance(body.get("accountName"), str):
        return _error(
            400,
            "invalidPayload",
            'Send {"accountName": "...", "subscriptionId"?, "resourceGroup"?, '
            '"region"?}; the others default to the default account\'s.',
        )
    fields = {
        "subscriptionId": root.config.subscription_id,
        "resourceGroup": root.config.resource_group,
        "region": root.config.region,
    }
    for key, default in list(fields.items()):
        value = body.get(key, default)
        if not isinstance(value, str):
            return _error(400, "invalidPayload", f"'{key}' must be a string.")
        fields[key] = value
    unknown = set(body) - {"accountName", *fields}
    if unknown:
        return _error(400, "invalidPayload", f"Unknown field(s): {', '.join(sorted(unknown))}.")
    try:
        known = root.accounts.get(body["accountName"]) is not None
        account = root.accounts.add(
            AccountConfig(
                body["accountName"], fields["subscriptionId"], fields["resourceGroup"], fields["region"]
            )
        )
    except ValueError as exc:
        return _error(409 if "already exists" in str(exc) else 400, "invalidPayload", str(exc))
    return web.json_response(_account_view(request, account), status=200 if known else 201)
