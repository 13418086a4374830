"""The emulator's ARM management plane for its Azure OpenAI accounts.

Serves, under ``/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/
accounts/{account}``, what the fine-tuning lifecycle needs from Azure Resource Manager:

- ``deployments`` (Deployments_List/Get/CreateOrUpdate/Update/Delete/Pause/Resume/ListSkus) with
  Azure's long-running-operation protocol: PUT answers 201 (create) or 200 (update) with
  ``Azure-AsyncOperation`` and ``Retry-After``; PATCH of sku/capacity and DELETE answer 202 with
  ``Location`` and ``Azure-AsyncOperation``. Operation status lives at
  ``/subscriptions/{sub}/providers/Microsoft.CognitiveServices/locations/{region}/operationStatuses/{id}``
  and the final result at ``.../operationResults/{id}``.
- ``models`` (Accounts_ListModels: the base catalog plus this account's fine-tuned models),
  ``usages`` (Accounts_ListUsages) and the subscription-level ``locations/{region}/usages``,
  and minimal Accounts_Get / Accounts_List(ByResourceGroup) for the accounts the server has.

It is called by app.py (``add_arm_routes``) and by the data plane (``deployments_using`` when a
fine-tuned model is deleted; ``sweep`` before a deployment answers chat). It must not serve an
account the server does not have (``context.Accounts``), nor import the controller layers.

Behaviour modelled on what users meet in Azure (codes and messages as Azure writes them):

- Only the subscriptions / resource groups / accounts of the server's accounts exist (names
  compared case-insensitively, as ARM does): 404 ``SubscriptionNotFound`` /
  ``ResourceGroupNotFound`` / ``ResourceNotFound``; a missing deployment is 404 ``DeploymentNotFound``.
- ``api-version`` must be one of ``ARM_API_VERSIONS``: missing -> 400
  ``MissingApiVersionParameter``; malformed -> 400 ``InvalidApiVersionParameter``; well-formed but
  not served -> 400 ``NoRegisteredProviderFound`` (ARM's answer for a version the resource provider
  does not register), each listing the supported versions.
- One deployment operation at a time per account: a PUT/PATCH/DELETE/pause/resume while another
  is in progress gets 409 ``RequestConflict`` "Another operation is being performed on the parent
  resource '...'. Please try again later." (plus, as an emulator courtesy, ``retry-after-ms``
  saying when the running operation ends; no ``Retry-After``, which azure-core would auto-retry).
- Capacity beyond the account's quota for the SKU (``EmulatorConfig.quota``, summed over the
  account's deployments of that SKU) gets 400 ``InsufficientQuota`` with Azure's wording.
- A model (base name+version, fine-tuned model id, checkpoint id or checkpoint name) that does not
  exist, or a format other than OpenAI, gets 400 ``DeploymentModelNotSupported``; a SKU the model
  does not support gets 400 ``InvalidResourceProperties`` "The specified SKU ... is not supported by
  the model ...".
- ``properties.model.source`` (a fine-tuned model trained in another account, the training
  account's ARM resource id, as Azure's cross-region / cross-subscription deployment sends it):
  the model is looked up in that account, and the deployment serves it from this one. Not an
  account resource id: 400 ``LinkedInvalidPropertyId``; no such account on this server: 400
  ``InvalidResourceProperties`` naming the source; the model is not in the source account: 400
  ``DeploymentModelNotSupported`` (Azure's answer for a model that does not exist). The source
  is echoed in ``properties.model.source``. A job whose model a deployment of any account
  serves cannot be deleted (409, as within one account).
- Provisioning: Accepted -> Creating -> Succeeded over ``CREATE_SECONDS`` (base model) or
  ``CREATE_FINE_TUNED_SECONDS`` (fine-tuned), updates and deletes over ``UPDATE_SECONDS`` /
  ``DELETE_SECONDS``, all divided by the clock's speed. ``Retry-After`` is the remaining scaled
  time rounded up to whole seconds (at least 1), so pollers come back when it is done.
- A deployment without traffic for 15 days is removed, and a DeveloperTier deployment lives 24
  hours; both are judged by the emulator clock lazily (``sweep``) on every ARM request.

State: deployments are store documents of kind ``deployment`` (id = deployment name) holding the
ARM body plus private ``_``-prefixed keys (``_created_at``, ``_last_used_at`` set by chat
completions, ``_sku_key`` the catalog SKU, ``_op`` the operation in progress); operations are
documents of kind ``arm_operation``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tunekeeper.emulator import catalog
from tunekeeper.emulator.azure_errors import ArmError
from tunekeeper.emulator.context import ACCOUNT_RESOURCE_ID, CONTEXT, EmulatorContext

# Microsoft.CognitiveServices api-versions that have accounts/deployments (stable and preview
# folders of azure-rest-api-specs). 2024-10-01 is what the Learn walk-through sends, 2025-09-01 is
# azure-mgmt-cognitiveservices 14.1.0's default, 2025-07-01-preview is what the fine-tuning docs'
# REST sample sends, 2026-09-01 is the newest stable (the reference schema).
ARM_API_VERSIONS: tuple[str, ...] = (
    "2021-10-01", "2022-03-01", "2022-10-01", "2022-12-01", "2023-05-01", "2023-10-01-preview",
    "2024-04-01-preview", "2024-06-01-preview", "2024-10-01", "2025-04-01-preview", "2025-06-01",
    "2025-07-01-preview", "2025-09-01", "2025-12-01", "2026-03-01", "2026-05-01", "2026-07-01",
    "2026-09-01",
)

DEPLOYMENT_TYPE = "Microsoft.CognitiveServices/accounts/deployments"
PAGE_SIZE = 20  # deployments per list page; more come through nextLink ($skipToken)

# Durations of Azure work in seconds of emulated time (divided by the clock's speed).
CREATE_SECONDS = 30.0
CREATE_FINE_TUNED_SECONDS = 120.0
UPDATE_SECONDS = 10.0
DELETE_SECONDS = 10.0
IDLE_LIMIT_SECONDS = 15 * 24 * 3600.0  # a deployment with no traffic for 15 days is removed
DEVELOPER_LIFETIME_SECONDS = 24 * 3600.0  # a DeveloperTier deployment lives 24 hours
OPERATION_RETENTION_SECONDS = 24 * 3600.0  # finished operation records are kept this long

DEFAULT_RAI_POLICY = "Microsoft.DefaultV2"
DEFAULT_UPGRADE_OPTION = "OnceNewDefaultVersionAvailable"
UPGRADE_OPTIONS = ("OnceNewDefaultVersionAvailable", "OnceCurrentVersionExpired", "NoAutoUpgrade")
PAUSABLE_SKUS = frozenset({"Standard", "DataZoneStandard", "GlobalStandard"})

# ARM spelling of each SKU, keyed by lower case; values are (ARM name, catalog/quota key).
_SKUS: Mapping[str, tuple[str, str]] = {
    "standard": ("Standard", "Standard"),
    "globalstandard": ("GlobalStandard", "GlobalStandard"),
    "datazonestandard": ("DataZoneStandard", "DataZoneStandard"),
    "developertier": ("DeveloperTier", "Developer"),
    # Leniency: Azure's name is "DeveloperTier" (the fine-tuning docs send "developertier"); the
    # portal calls the type "Developer", so that spelling is accepted, but echoed as ARM spells it.
    "developer": ("DeveloperTier", "Developer"),
    "provisionedmanaged": ("ProvisionedManaged", "ProvisionedManaged"),
    "globalprovisionedmanaged": ("GlobalProvisionedManaged", "GlobalProvisionedManaged"),
    "datazoneprovisionedmanaged": ("DataZoneProvisionedManaged", "DataZoneProvisionedManaged"),
}



def _arm_sku_name(key: str) -> str:
    """ARM's spelling of a catalog/quota SKU key ("Developer" -> "DeveloperTier")."""
    return next((arm for arm, k in _SKUS.values() if k == key), key)


_API_VERSION_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_ACCOUNT_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.CognitiveServices/"
    r"accounts/(?P<account>[^/]+)(?P<rest>(?:/[^/]+)*)/?$",
    re.IGNORECASE,
)
_LOCATION_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.CognitiveServices/locations/(?P<location>[^/]+)/"
    r"(?P<what>usages|operationStatuses|operationResults)(?:/(?P<op>[^/]+))?/?$",
    re.IGNORECASE,
)
_RG_PATH = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)(?:/.*)?$", re.IGNORECASE)
_SUB_PATH = re.compile(r"^/subscriptions/(?P<sub>[^/]+)(?:/.*)?$", re.IGNORECASE)
_ACCOUNTS_LIST_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)(?:/resourceGroups/(?P<rg>[^/]+))?/providers/Microsoft\.CognitiveServices/"
    r"accounts/?$",
    re.IGNORECASE,
)

# ARM handlers of one process run on one event loop, but the store is shared with test threads;
# this lock makes sweep + check + write of a deployment operation atomic.
_LOCK = threading.RLock()


# --------------------------------------------------------------------------------------------
# public API for the rest of the emulator
# --------------------------------------------------------------------------------------------
def add_arm_routes(app: web.Application) -> None:
    """Route every ``/subscriptions/...`` request (any method) to the ARM dispatcher."""
    app.router.add_route("*", "/subscriptions/{tail:.*}", _dispatch)


def deployments_using(ctx: EmulatorContext, model_ids: set[str]) -> list[str]:
    """The deployments (in any state until they are gone) whose model is one of ``model_ids`` of
    ``ctx``'s account: its own (by name) and other accounts' that name it as their source
    (``account/name``)."""
    users = []
    for account in ctx.accounts:
        sweep(account)
        for doc in account.store.list("deployment"):
            model = doc.get("properties", {}).get("model", {})
            if model.get("name") not in model_ids or _model_account(account, model) is not ctx:
                continue
            users.append(doc["name"] if account is ctx else f"{account.config.account_name}/{doc['name']}")
    return users


def _model_account(ctx: EmulatorContext, model: Mapping[str, Any]) -> EmulatorContext | None:
    """The account a stored deployment's model lives in: its source, or its own account."""
    source = model.get("source")
    return ctx if not source else ctx.accounts.by_resource_id(str(source))


def model_account(ctx: EmulatorContext, deployment: Mapping[str, Any]) -> EmulatorContext | None:
    """For chat: the account whose model a deployment of ``ctx`` serves (None: that account is gone)."""
    return _model_account(ctx, deployment.get("properties", {}).get("model", {}))


def sweep(ctx: EmulatorContext) -> None:
    """Bring deployments up to the clock: finish due operations, remove idle and expired ones."""
    with _LOCK:
        now = ctx.clock.now()
        for doc in ctx.store.list("deployment"):
            _advance_deployment(ctx, doc, now)
        for op in ctx.store.list("arm_operation"):
            if op["_ready_at"] + OPERATION_RETENTION_SECONDS < now:
                ctx.store.delete("arm_operation", op["name"])


# --------------------------------------------------------------------------------------------
# dispatch
# --------------------------------------------------------------------------------------------
Handler = Callable[[web.Request, "_Target"], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class _Target:
    """What a request addresses once the path has been matched and checked."""

    ctx: EmulatorContext
    api_version: str
    rest: tuple[str, ...]  # path segments after the account (or after locations/{region})
    origin: str  # scheme://host:port of this emulator as the client sees it
    location: str = ""  # the {region} of a subscription-level locations/... path
    resource_group: str = ""  # of an accounts listing scoped to one resource group


async def _dispatch(request: web.Request) -> web.StreamResponse:
    """Match the path, check api-version and identity, bring state up to the clock, handle.

    ``ArmError`` raised here is rendered by app.py's outermost middleware.
    """
    handler, target = _route(request, request.app[CONTEXT])
    for account in target.ctx.accounts.in_subscription(target.ctx.config.subscription_id):
        sweep(account)
    return await handler(request, target)


def _route(request: web.Request, root: EmulatorContext) -> tuple[Handler, _Target]:
    path = request.path
    method = request.method.upper()
    origin = f"{request.scheme}://{request.host}"

    location = _LOCATION_PATH.match(path)
    if location:
        ctx = _check_subscription(root, location["sub"])[0]
        version = _api_version(request, location["location"])
        what = location["what"].lower()
        rest = (what,) + ((location["op"],) if location["op"] else ())
        if what in ("operationstatuses", "operationresults") and location["op"]:
            # an operation is the business of the account that started it
            ctx = next((c for c in _check_subscription(root, location["sub"])
                        if c.store.get("arm_operation", location["op"]) is not None), ctx)
        target = _Target(ctx, version, rest, origin, location["location"])
        if what == "usages" and not location["op"]:
            return _only(method, "GET", _location_usages, path), target
        if what in ("operationstatuses", "operationresults") and location["op"]:
            return _only(
                method, "GET", _operation_status if what == "operationstatuses" else _operation_result, path
            ), target
        raise _not_found_path(path)

    listing = _ACCOUNTS_LIST_PATH.match(path)
    if listing:
        found = _check_subscription(root, listing["sub"])
        if listing["rg"] is not None:
            found = _check_resource_group(root, listing["sub"], listing["rg"])
        target = _Target(found[0], _api_version(request, found[0].config.region), (), origin,
                         resource_group=listing["rg"] or "")
        return _only(method, "GET", _list_accounts, path), target

    account = _ACCOUNT_PATH.match(path)
    if not account:
        rg = _RG_PATH.match(path)
        if rg:
            _check_resource_group(root, rg["sub"], rg["rg"])
        elif (sub := _SUB_PATH.match(path)) is not None:
            _check_subscription(root, sub["sub"])
        raise _not_found_path(path)
    _check_resource_group(root, account["sub"], account["rg"])
    found_account = root.accounts.find(account["sub"], account["rg"], account["account"])
    if found_account is None:
        raise ArmError(
            404,
            "ResourceNotFound",
            f"The Resource 'Microsoft.CognitiveServices/accounts/{account['account']}' under resource group "
            f"'{account['rg']}' was not found. For more details please go to "
            "https://aka.ms/ARMResourceNotFoundFix",
        )
    ctx = found_account
    version = _api_version(request, ctx.config.region)
    rest = tuple(s for s in account["rest"].split("/") if s)
    target = _Target(ctx, version, rest, origin)
    head = rest[0].lower() if rest else ""
    if not rest:
        return _only(method, "GET", _get_account, path), target
    if head == "deployments" and len(rest) == 1:
        return _only(method, "GET", _list_deployments, path), target
    if head == "deployments" and len(rest) == 2:
        handlers: dict[str, Handler] = {
            "GET": _get_deployment,
            "PUT": _put_deployment,
            "PATCH": _patch_deployment,
            "DELETE": _delete_deployment,
        }
        if method not in handlers:
            raise _method_not_allowed(method, path)
        return handlers[method], target
    if head == "deployments" and len(rest) == 3:
        action = rest[2].lower()
        if action in ("pause", "resume"):
            return _only(
                method, "POST", _pause_deployment if action == "pause" else _resume_deployment, path
            ), target
        if action == "skus":
            return _only(method, "GET", _list_deployment_skus, path), target
    if head == "models" and len(rest) == 1:
        return _only(method, "GET", _list_account_models, path), target
    if head == "usages" and len(rest) == 1:
        return _only(method, "GET", _account_usages, path), target
    raise _not_found_path(path)


def _only(method: str, allowed: str, handler: Handler, path: str) -> Handler:
    if method != allowed:
        raise _method_not_allowed(method, path)
    return handler


def _method_not_allowed(method: str, path: str) -> ArmError:
    return ArmError(405, "MethodNotAllowed", f"The requested method '{method}' is not allowed on '{path}'.")


def _not_found_path(path: str) -> ArmError:
    return ArmError(404, "InvalidResourceType",
                    f"The resource type could not be found in the namespace 'Microsoft.CognitiveServices' "
                    f"for the path '{path}'.")


def _check_subscription(root: EmulatorContext, sub: str) -> list[EmulatorContext]:
    """The accounts of subscription ``sub`` (at least one), or Azure's 404."""
    found = root.accounts.in_subscription(sub)
    if not found:
        raise ArmError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")
    return found


def _check_resource_group(root: EmulatorContext, sub: str, rg: str) -> list[EmulatorContext]:
    """The accounts of resource group ``rg`` of ``sub`` (at least one), or Azure's 404."""
    _check_subscription(root, sub)
    found = root.accounts.in_subscription(sub, rg)
    if not found:
        raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
    return found


def _api_version(request: web.Request, location: str) -> str:
    values = request.query.getall("api-version", [])
    supported = ", ".join(ARM_API_VERSIONS)
    if not values:
        raise ArmError(400, "MissingApiVersionParameter",
                       "The api-version query parameter (?api-version=) is required for all requests.")
    version = values[-1]
    if not _API_VERSION_SHAPE.match(version):
        raise ArmError(400, "InvalidApiVersionParameter",
                       f"The api-version '{version}' is invalid. The supported versions are '{supported}'.")
    if version not in ARM_API_VERSIONS:
        raise ArmError(400, "NoRegisteredProviderFound",
                       f"No registered resource provider found for location '{location}' and API version "
                       f"'{version}' for type 'accounts'. The supported api-versions are '{supported}'.")
    return version


# --------------------------------------------------------------------------------------------
# helpers: documents, time, responses
# --------------------------------------------------------------------------------------------
def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json",
                        headers=dict(headers or {}))


def _iso(ts: float) -> str:
    moment = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def _etag() -> str:
    return f'"{uuid.uuid4()}"'


def _public(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The ARM body of a stored document (private ``_`` keys removed)."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def _account_id(ctx: EmulatorContext) -> str:
    return ctx.resource_id


def _find(ctx: EmulatorContext, name: str) -> dict[str, Any] | None:
    doc = ctx.store.get("deployment", name)
    if doc is not None:
        return doc
    lowered = name.lower()  # ARM resource names are case-insensitive
    return next((d for d in ctx.store.list("deployment") if d["name"].lower() == lowered), None)


def _require(ctx: EmulatorContext, name: str) -> dict[str, Any]:
    doc = _find(ctx, name)
    if doc is None:
        raise ArmError(404, "DeploymentNotFound", f"The specified deployment '{name}' could not be found.")
    return doc


def _advance_deployment(ctx: EmulatorContext, doc: dict[str, Any], now: float) -> None:
    op = doc.get("_op")
    if op is not None:
        if now >= op["ready_at"]:
            if op["action"] == "delete":
                ctx.store.delete("deployment", doc["name"])
                return
            doc["_op"] = None
            doc["properties"]["provisioningState"] = "Succeeded"
            doc["etag"] = _etag()
            ctx.store.put("deployment", doc["name"], doc)
        elif (op["action"] == "create" and doc["properties"]["provisioningState"] == "Accepted"
              and now >= op["started"] + (op["ready_at"] - op["started"]) / 4):
            doc["properties"]["provisioningState"] = "Creating"
            doc["etag"] = _etag()
            ctx.store.put("deployment", doc["name"], doc)
        return
    if doc["properties"].get("provisioningState") != "Succeeded":
        return
    last_used = max(float(doc.get("_last_used_at") or 0.0), float(doc["_created_at"]))
    expired_idle = now - last_used >= IDLE_LIMIT_SECONDS
    expired_developer = (
        doc.get("_sku_key") == "Developer" and now - doc["_created_at"] >= DEVELOPER_LIFETIME_SECONDS
    )
    if expired_idle or expired_developer:
        ctx.store.delete("deployment", doc["name"])


def _busy_operation(ctx: EmulatorContext) -> dict[str, Any] | None:
    now = ctx.clock.now()
    for doc in ctx.store.list("deployment"):
        op = doc.get("_op")
        if op is not None and now < op["ready_at"]:
            return dict(op)
    return None


def _check_not_busy(ctx: EmulatorContext) -> None:
    busy = _busy_operation(ctx)
    if busy is not None:
        # Azure sends no Retry-After here, and azure-core retries any answer that has one, so the
        # SDK would hide the conflict; the emulator only hints, in retry-after-ms, when the running
        # operation ends, for callers that wait on purpose.
        remaining = max(0.0, busy["ready_at"] - ctx.clock.now())
        raise ArmError(409, "RequestConflict",
                       f"Another operation is being performed on the parent resource '{_account_id(ctx)}'. "
                       "Please try again later.",
                       headers={"retry-after-ms": str(max(1, math.ceil(remaining * 1000)))})


def _start_operation(
    ctx: EmulatorContext, doc: dict[str, Any], action: str, seconds: float
) -> dict[str, Any]:
    now = ctx.clock.now()
    op_id = uuid.uuid4().hex
    op: dict[str, Any] = {
        "id": op_id,
        "action": action,
        "started": now,
        "ready_at": now + ctx.clock.scaled(seconds),
    }
    doc["_op"] = op
    ctx.store.put("arm_operation", op_id, {
        "name": op_id, "_deployment": doc["name"], "_action": action, "_started": now,
        "_ready_at": op["ready_at"],
    })
    return op


def _retry_after(ctx: EmulatorContext, ready_at: float) -> str:
    remaining = max(0.0, ready_at - ctx.clock.now())
    return str(max(1, math.ceil(remaining)))


def _operation_headers(ctx: EmulatorContext, target: _Target, op: Mapping[str, Any], *,
                       location: bool) -> dict[str, str]:
    base = (
        f"{target.origin}/subscriptions/{ctx.config.subscription_id}/providers/Microsoft.CognitiveServices"
        f"/locations/{ctx.config.region}"
    )
    query = f"?api-version={target.api_version}"
    headers = {
        "Azure-AsyncOperation": f"{base}/operationStatuses/{op['id']}{query}",
        "Retry-After": _retry_after(ctx, op["ready_at"]),
    }
    if location:
        headers["Location"] = f"{base}/operationResults/{op['id']}{query}"
    return headers


# --------------------------------------------------------------------------------------------
# request bodies
# --------------------------------------------------------------------------------------------
async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise ArmError(400, "InvalidRequestContent",
                       f"The request content was invalid and could not be deserialized: '{exc}'.") from None
    if not isinstance(body, dict):
        raise ArmError(
            400,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: expected a JSON object.",
        )
    return body


def _sku(raw: Any) -> tuple[str, str, int]:
    """(ARM sku name, catalog key, capacity) from a request's ``sku``."""
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise ArmError(
            400,
            "InvalidResourceProperties",
            'The \'sku\' of the account deployment is required, e.g. {"name": "Standard", "capacity": 1}.',
        )
    known = _SKUS.get(raw["name"].lower())
    if known is None:
        raise ArmError(
            400,
            "InvalidResourceProperties",
            f"The specified SKU '{raw['name']}' of account deployment is not supported. Supported SKUs: "
            f"{', '.join(sorted({v[0] for v in _SKUS.values()}))}.",
        )
    capacity = raw.get("capacity", 1)
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise ArmError(
            400,
            "InvalidResourceProperties",
            f"The specified capacity '{capacity}' of account deployment is invalid; it must be a whole "
            "number of at least 1.",
        )
    return known[0], known[1], capacity


def _tags(raw: Any) -> dict[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise ArmError(400, "InvalidRequestContent", "The 'tags' must be an object of string values.")
    if len(raw) > 50:
        raise ArmError(400, "InvalidTagCount", "The number of tags exceeds the limit of 50.")
    return dict(raw)


@dataclass(frozen=True, slots=True)
class _ModelChoice:
    """A validated deployment model."""

    format: str
    name: str
    version: str
    fine_tuned: bool
    base: catalog.BaseModel
    source: str | None = None  # the training account's resource id, as the request named it


def _source_account(ctx: EmulatorContext, source: object) -> EmulatorContext:
    """The account ``properties.model.source`` names (a Microsoft.CognitiveServices account id)."""
    if not isinstance(source, str) or ACCOUNT_RESOURCE_ID.match(source) is None:
        raise ArmError(
            400,
            "LinkedInvalidPropertyId",
            f"Property id '{source}' at path 'properties.model.source' is invalid. Expect fully qualified "
            "resource Id that start with '/subscriptions/{subscriptionId}' and name a "
            "'Microsoft.CognitiveServices/accounts' resource.",
        )
    found = ctx.accounts.by_resource_id(source)
    if found is None:
        raise ArmError(
            400,
            "InvalidResourceProperties",
            f"The source account '{source}' of the deployment model could not be found. The source must be "
            "an existing Azure OpenAI resource that holds the fine-tuned model.",
        )
    return found


def _model(ctx: EmulatorContext, raw: Any) -> _ModelChoice:
    from tunekeeper.emulator.models import resolve_model

    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise ArmError(400, "InvalidResourceProperties",
                       "The 'properties.model' of the account deployment is required, e.g. "
                       "{\"format\": \"OpenAI\", \"name\": \"gpt-4.1\", \"version\": \"2025-04-14\"}.")
    fmt = raw.get("format") or "OpenAI"
    name = raw["name"]
    source = raw.get("source")
    model_ctx = ctx if source is None else _source_account(ctx, source)
    version = raw.get("version")
    if version is not None and not isinstance(version, str):
        version = str(version)
    described = f"Format:{fmt},Name:{name},Version:{version or ''}"
    if not isinstance(fmt, str) or fmt.lower() != "openai":
        raise ArmError(400, "DeploymentModelNotSupported",
                       f"The model '{described}' of account deployment is not supported.")
    resolved = resolve_model(model_ctx, name, version)
    if resolved is None:
        raise ArmError(400, "DeploymentModelNotSupported",
                       f"The model '{described}' of account deployment is not supported.")
    fine_tuned = resolved.kind != "base"
    if not fine_tuned and (name != resolved.base.name or (version and version != resolved.base.version)):
        # ARM names base models by name + version ("gpt-4.1" + "2025-04-14"), never by data-plane id.
        raise ArmError(400, "DeploymentModelNotSupported",
                       f"The model '{described}' of account deployment is not supported.")
    if fine_tuned:
        final_version = version or "1"
    else:
        final_version = version or resolved.base.version
    return _ModelChoice("OpenAI", name, final_version, fine_tuned, resolved.base, source)


def _check_sku_supported(model: _ModelChoice, sku_name: str, sku_key: str) -> None:
    allowed = catalog.FINE_TUNED_SKUS if model.fine_tuned else model.base.skus
    if sku_key not in allowed:
        raise ArmError(400, "InvalidResourceProperties",
                       f"The specified SKU '{sku_name}' of account deployment is not supported by the model "
                       f"'{model.name}' version: '{model.version}'.")


def _capacity_used(ctx: EmulatorContext, sku_key: str, *, exclude: str | None) -> int:
    """Capacity the account's deployments of one SKU hold (``exclude``: one deployment left out)."""
    return sum(
        int(d["sku"].get("capacity", 0))
        for d in ctx.store.list("deployment")
        if d.get("_sku_key") == sku_key and d["name"] != exclude
    )


def _check_quota(
    ctx: EmulatorContext, sku_name: str, sku_key: str, capacity: int, *, exclude: str | None
) -> None:
    limit = int(ctx.config.quota.get(sku_key, 0))
    used = _capacity_used(ctx, sku_key, exclude=exclude)
    if used + capacity > limit:
        quota = f"Tokens Per Minute (thousands) - {sku_name}"
        raise ArmError(
            400,
            "InsufficientQuota",
            f"This operation require {capacity} new capacity in quota {quota}, which is bigger than the "
            f"current available capacity {max(0, limit - used)}. The current quota usage is {used} and "
            f"the quota limit is {limit} for quota {quota}.",
        )


def _capabilities(model: _ModelChoice) -> dict[str, str]:
    if not model.base.chat:
        return {"embeddings": "true", "maxContextToken": str(model.base.context_tokens)}
    caps = {"chatCompletion": "true", "maxContextToken": str(model.base.context_tokens)}
    if model.fine_tuned:
        caps["fineTune"] = "true"
    return caps


def _rate_limits(capacity: int) -> list[dict[str, Any]]:
    # Azure OpenAI: 1 capacity unit = 1,000 tokens per minute and 6 requests per minute.
    return [
        {"key": "request", "renewalPeriod": 10, "count": capacity},
        {"key": "token", "renewalPeriod": 60, "count": capacity * 1000},
    ]


# --------------------------------------------------------------------------------------------
# deployments
# --------------------------------------------------------------------------------------------
async def _list_deployments(request: web.Request, target: _Target) -> web.StreamResponse:
    docs = target.ctx.store.list("deployment")
    token = request.query.get("$skipToken", "0")
    if not token.isdigit():
        raise ArmError(400, "InvalidSkipToken", f"The $skipToken '{token}' is not valid.")
    start = int(token)
    page = docs[start:start + PAGE_SIZE]
    body: dict[str, Any] = {"value": [_public(d) for d in page]}
    if start + PAGE_SIZE < len(docs):
        url = request.url.with_query(
            {"api-version": target.api_version, "$skipToken": str(start + PAGE_SIZE)}
        )
        body["nextLink"] = f"{target.origin}{url.path_qs}"
    return _json(body)


async def _get_deployment(request: web.Request, target: _Target) -> web.StreamResponse:
    return _json(_public(_require(target.ctx, target.rest[1])))


async def _put_deployment(request: web.Request, target: _Target) -> web.StreamResponse:
    ctx = target.ctx
    name = target.rest[1]
    body = await _body(request)
    with _LOCK:
        existing = _find(ctx, name)
        _check_not_busy(ctx)
        props = body.get("properties") or {}
        if not isinstance(props, dict):
            raise ArmError(
                400, "InvalidRequestContent", "The 'properties' of the account deployment must be an object."
            )
        raw_sku = body.get("sku")
        scale = props.get("scaleSettings")
        if raw_sku is None and isinstance(scale, dict):
            # api-versions before 2023 sized deployments with properties.scaleSettings instead of sku.
            raw_sku = {"name": "Standard", "capacity": scale.get("capacity", 1)}
        sku_name, sku_key, capacity = _sku(raw_sku)
        model = _model(ctx, props.get("model"))
        _check_sku_supported(model, sku_name, sku_key)
        tags = _tags(body.get("tags"))
        upgrade = props.get("versionUpgradeOption") or DEFAULT_UPGRADE_OPTION
        if upgrade not in UPGRADE_OPTIONS:
            raise ArmError(
                400,
                "InvalidResourceProperties",
                f"The versionUpgradeOption '{upgrade}' is not valid; use one of "
                f"{', '.join(UPGRADE_OPTIONS)}.",
            )
        rai = props.get("raiPolicyName") or DEFAULT_RAI_POLICY
        if not isinstance(rai, str):
            raise ArmError(400, "InvalidResourceProperties", "The raiPolicyName must be a string.")
        _check_quota(ctx, sku_name, sku_key, capacity, exclude=existing["name"] if existing else None)

        now = ctx.clock.now()
        stamp = _iso(now)
        if existing is None:
            doc: dict[str, Any] = {
                "id": f"{_account_id(ctx)}/deployments/{name}",
                "name": name,
                "type": DEPLOYMENT_TYPE,
                "systemData": {
                    "createdBy": "tunekeeper-emulator",
                    "createdByType": "User",
                    "createdAt": stamp,
                    "lastModifiedBy": "tunekeeper-emulator",
                    "lastModifiedByType": "User",
                    "lastModifiedAt": stamp,
                },
                "_created_at": now,
                "_last_used_at": None,
            }
        else:
            doc = existing
            doc["systemData"]["lastModifiedAt"] = stamp
        doc["sku"] = {"name": sku_name, "capacity": capacity}
        doc["_sku_key"] = sku_key
        if tags is not None:
            doc["tags"] = tags
        elif existing is None:
            doc.pop("tags", None)
        doc["properties"] = {
            "model": {
                "format": model.format,
                "name": model.name,
                "version": model.version,
                **({"source": model.source} if model.source else {}),
            },
            "provisioningState": "Accepted",
            "capabilities": _capabilities(model),
            "rateLimits": _rate_limits(capacity),
            "currentCapacity": capacity,
            "versionUpgradeOption": upgrade,
            "raiPolicyName": rai,
            "deploymentState": (existing or {}).get("properties", {}).get("deploymentState", "Running"),
            "serviceTier": props.get("serviceTier")
            if props.get("serviceTier") in ("Default", "Priority")
            else "Default",
            "dynamicThrottlingEnabled": False,
        }
        doc["etag"] = _etag()
        if existing is None:
            seconds = CREATE_FINE_TUNED_SECONDS if model.fine_tuned else CREATE_SECONDS
            op = _start_operation(ctx, doc, "create", seconds)
        else:
            op = _start_operation(ctx, doc, "update", UPDATE_SECONDS)
        ctx.store.put("deployment", doc["name"], doc)
    headers = _operation_headers(ctx, target, op, location=False)
    return _json(_public(doc), 201 if existing is None else 200, headers)


async def _patch_deployment(request: web.Request, target: _Target) -> web.StreamResponse:
    ctx = target.ctx
    body = await _body(request)
    with _LOCK:
        doc = _require(ctx, target.rest[1])
        _check_not_busy(ctx)
        unknown = set(body) - {"sku", "tags"}
        if unknown:
            raise ArmError(400, "InvalidRequestContent",
                           f"Only 'sku' and 'tags' can be patched; got {', '.join(sorted(unknown))}.")
        tags = _tags(body.get("tags"))
        sku_change = body.get("sku") is not None
        if sku_change:
            raw = dict(doc["sku"])
            raw.update(body["sku"] if isinstance(body["sku"], dict) else {"name": None})
            sku_name, sku_key, capacity = _sku(raw)
            model = _stored_model(ctx, doc)
            _check_sku_supported(model, sku_name, sku_key)
            _check_quota(ctx, sku_name, sku_key, capacity, exclude=doc["name"])
            doc["sku"] = {"name": sku_name, "capacity": capacity}
            doc["_sku_key"] = sku_key
            doc["properties"]["currentCapacity"] = capacity
            doc["properties"]["rateLimits"] = _rate_limits(capacity)
        if tags is not None:
            doc["tags"] = tags
        doc["systemData"]["lastModifiedAt"] = _iso(ctx.clock.now())
        doc["etag"] = _etag()
        if not sku_change:
            ctx.store.put("deployment", doc["name"], doc)
            return _json(_public(doc))
        doc["properties"]["provisioningState"] = "Accepted"
        op = _start_operation(ctx, doc, "update", UPDATE_SECONDS)
        ctx.store.put("deployment", doc["name"], doc)
    return web.Response(status=202, headers=_operation_headers(ctx, target, op, location=True))


def _stored_model(ctx: EmulatorContext, doc: Mapping[str, Any]) -> _ModelChoice:
    """The model of an existing deployment (re-resolved; its job may since have been deleted)."""
    model = doc["properties"]["model"]
    try:
        return _model(ctx, model)
    except ArmError:
        base = catalog.find_arm(model["name"], model.get("version")) or catalog.MODELS[0]
        return _ModelChoice(model["format"], model["name"], model["version"], fine_tuned=True, base=base,
                            source=model.get("source"))


async def _delete_deployment(request: web.Request, target: _Target) -> web.StreamResponse:
    ctx = target.ctx
    with _LOCK:
        doc = _find(ctx, target.rest[1])
        if doc is None:
            return web.Response(status=204)
        _check_not_busy(ctx)
        doc["properties"]["provisioningState"] = "Deleting"
        doc["etag"] = _etag()
        op = _start_operation(ctx, doc, "delete", DELETE_SECONDS)
        ctx.store.put("deployment", doc["name"], doc)
    return web.Response(status=202, headers=_operation_headers(ctx, target, op, location=True))


async def _set_state(target: _Target, state: str) -> web.StreamResponse:
    ctx = target.ctx
    with _LOCK:
        doc = _require(ctx, target.rest[1])
        sku = doc["sku"]["name"]
        if sku not in PAUSABLE_SKUS:
            raise ArmError(
                400,
                "OperationNotSupported",
                f"Pausing and resuming is supported for Standard, DataZoneStandard and GlobalStandard "
                f"deployments only, not '{sku}'.",
            )
        _check_not_busy(ctx)
        if doc["properties"]["provisioningState"] != "Succeeded":
            raise ArmError(409, "RequestConflict",
                           f"The deployment '{doc['name']}' is in provisioning state "
                           f"'{doc['properties']['provisioningState']}'. Please try again later.")
        if doc["properties"].get("deploymentState") != state:
            doc["properties"]["deploymentState"] = state
            doc["systemData"]["lastModifiedAt"] = _iso(ctx.clock.now())
            doc["etag"] = _etag()
            ctx.store.put("deployment", doc["name"], doc)
    return _json(_public(doc))


async def _pause_deployment(request: web.Request, target: _Target) -> web.StreamResponse:
    return await _set_state(target, "Paused")


async def _resume_deployment(request: web.Request, target: _Target) -> web.StreamResponse:
    return await _set_state(target, "Running")


async def _list_deployment_skus(request: web.Request, target: _Target) -> web.StreamResponse:
    ctx = target.ctx
    doc = _require(ctx, target.rest[1])
    model = _stored_model(ctx, doc)
    allowed = catalog.FINE_TUNED_SKUS if model.fine_tuned else model.base.skus
    value = []
    for key in sorted(allowed):
        # What a PUT of this deployment with that SKU would be granted now: the account's quota
        # for the SKU less what its other deployments hold (_check_quota's rule), in steps of 1.
        available = max(0, int(ctx.config.quota.get(key, 0)) - _capacity_used(ctx, key, exclude=doc["name"]))
        current = doc["sku"]["capacity"] if key == doc.get("_sku_key") else 1
        value.append(
            {
                "resourceType": DEPLOYMENT_TYPE,
                "sku": {"name": _arm_sku_name(key), "capacity": current},
                "capacity": {
                    "minimum": 1,
                    "maximum": available,
                    "step": 1,
                    "default": min(current, available) if available else 1,
                    "allowedValues": list(range(1, available + 1)),
                },
            }
        )
    return _json({"value": value})


# --------------------------------------------------------------------------------------------
# operations
# --------------------------------------------------------------------------------------------
def _operation(target: _Target) -> dict[str, Any]:
    op = target.ctx.store.get("arm_operation", target.rest[1])
    if op is None:
        raise ArmError(404, "OperationNotFound", f"The operation '{target.rest[1]}' could not be found.")
    return op


async def _operation_status(request: web.Request, target: _Target) -> web.StreamResponse:
    ctx = target.ctx
    op = _operation(target)
    done = ctx.clock.now() >= op["_ready_at"]
    body: dict[str, Any] = {
        "id": request.path,
        "name": op["name"],
        "status": "Succeeded" if done else "InProgress",
        "startTime": _iso(op["_started"]),
    }
    if done:
        body["endTime"] = _iso(op["_ready_at"])
        return _json(body)
    return _json(body, headers={"Retry-After": _retry_after(ctx, op["_ready_at"])})


async def _operation_result(request: web.Request, target: _Target) -> web.StreamResponse:
    ctx = target.ctx
    op = _operation(target)
    if ctx.clock.now() < op["_ready_at"]:
        return web.Response(status=202, headers={"Location": str(request.url),
                                                 "Retry-After": _retry_after(ctx, op["_ready_at"])})
    if op["_action"] == "delete":
        return web.Response(status=204)
    doc = _find(ctx, op["_deployment"])
    if doc is None:
        return web.Response(status=204)
    return _json(_public(doc))


# --------------------------------------------------------------------------------------------
# account, models, usages
# --------------------------------------------------------------------------------------------
async def _get_account(request: web.Request, target: _Target) -> web.StreamResponse:
    return _json(_account_body(target, target.ctx))


async def _list_accounts(request: web.Request, target: _Target) -> web.StreamResponse:
    accounts = target.ctx.accounts.in_subscription(target.ctx.config.subscription_id,
                                                    target.resource_group or None)
    return _json({"value": [_account_body(target, a) for a in accounts]})


def _account_body(target: _Target, account: EmulatorContext) -> dict[str, Any]:
    cfg = account.config
    endpoint = f"{target.origin}{account.endpoint_path}/"
    return {
        "id": _account_id(account),
        "name": cfg.account_name,
        "type": "Microsoft.CognitiveServices/accounts",
        "kind": "OpenAI",
        "location": cfg.region,
        "sku": {"name": "S0"},
        "etag": '"emulator"',
        "tags": {},
        "properties": {
            "endpoint": endpoint,
            "endpoints": {"OpenAI Language Model Instance API": endpoint},
            "provisioningState": "Succeeded",
            "customSubDomainName": cfg.account_name,
            "publicNetworkAccess": "Enabled",
        },
    }


_MICROSOFT_SYSTEM_DATA = {"createdBy": "Microsoft", "createdByType": "Application",
                          "lastModifiedBy": "Microsoft", "lastModifiedByType": "Application"}


async def _list_account_models(request: web.Request, target: _Target) -> web.StreamResponse:
    ctx = target.ctx
    value: list[dict[str, Any]] = []
    newest: dict[str, str] = {}
    for m in catalog.MODELS:
        newest[m.name] = max(newest.get(m.name, m.version), m.version)
    for m in catalog.MODELS:
        stamp = _iso(m.created_at).split(".")[0] + "Z"
        capabilities = {
            "chatCompletion": str(m.chat).lower(),
            "embeddings": str(not m.chat).lower(),
            "fineTune": str(m.can_fine_tune).lower(),
            "inference": "true",
        }
        entry: dict[str, Any] = {
            "name": m.name,
            "format": "OpenAI",
            "version": m.version,
            "capabilities": capabilities,
            "deprecation": _arm_deprecation(m.deprecation),
            "isDefaultVersion": newest[m.name] == m.version,
            "lifecycleStatus": _lifecycle(m.lifecycle_status),
            "maxCapacity": max(ctx.config.quota.values()),
            "skus": [{"name": _arm_sku_name(key), "usageName":
                      f"OpenAI.{key}.{m.name}"} for key in sorted(m.skus)],
            "systemData": {**_MICROSOFT_SYSTEM_DATA, "createdAt": stamp, "lastModifiedAt": stamp},
        }
        if m.can_fine_tune:
            # what the fine-tuned versions of this model can do (a string map, like capabilities)
            entry["finetuneCapabilities"] = {"chatCompletion": str(m.chat).lower(), "inference": "true",
                                             "fineTune": "true"}
        value.append(entry)
    for model_id, base, created in _fine_tuned_models(ctx):
        stamp = _iso(created).split(".")[0] + "Z"
        value.append({
            "name": model_id,
            "format": "OpenAI",
            "version": "1",
            "baseModel": {"format": "OpenAI", "name": base.name, "version": base.version},
            "capabilities": {"chatCompletion": "true", "fineTune": "false", "inference": "true"},
            "deprecation": _arm_deprecation(catalog.fine_tuned_deprecation(created)),
            "isDefaultVersion": True,
            "lifecycleStatus": "GenerallyAvailable",
            "maxCapacity": max(ctx.config.quota.values()),
            "systemData": {"createdBy": "tunekeeper-emulator", "createdByType": "User", "createdAt": stamp,
                           "lastModifiedBy": "tunekeeper-emulator", "lastModifiedByType": "User",
                           "lastModifiedAt": stamp},
        })
    return _json({"value": value})


def _arm_deprecation(dates: Mapping[str, int]) -> dict[str, str]:
    """The data-plane deprecation dates (unix times) as ARM shows them: ISO 8601 UTC, with the
    retirement "Planned" (the dates are set), as in Microsoft's ListAccountModels example."""
    shown = {"deprecationStatus": "Planned", "inference": _iso_second(dates["inference"])}
    if "fine_tune" in dates:
        shown["fineTune"] = _iso_second(dates["fine_tune"])
    return shown


def _iso_second(ts: float) -> str:
    return dt.datetime.fromtimestamp(int(ts), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _lifecycle(status: str) -> str:
    return {"preview": "Preview", "generally-available": "GenerallyAvailable", "deprecating": "Deprecating",
            "deprecated": "Deprecated"}.get(status, "GenerallyAvailable")


def _fine_tuned_models(ctx: EmulatorContext) -> list[tuple[str, catalog.BaseModel, float]]:
    """(model id, base model, created) for every fine-tuned model of this account."""
    from tunekeeper.emulator.dataplane.jobs import refresh_all

    models = []
    for job in refresh_all(ctx):
        base = catalog.find(job.get("_base", ""))
        if job.get("status") == "succeeded" and job.get("fine_tuned_model") and base is not None:
            models.append((str(job["fine_tuned_model"]), base, float(job.get("finished_at") or 0)))
    return models


def _usages(ctx: EmulatorContext, *, with_current: bool) -> list[dict[str, Any]]:
    cfg = ctx.config
    used: dict[str, int] = {}
    if with_current:
        for d in ctx.store.list("deployment"):
            used[d.get("_sku_key", "")] = used.get(d.get("_sku_key", ""), 0) + int(
                d["sku"].get("capacity", 0)
            )
    value = []
    for key, limit in sorted(cfg.quota.items()):
        arm_name = _arm_sku_name(key)
        scope = (
            "Global" if key.startswith("Global") else "DataZone" if key.startswith("DataZone") else "Regional"
        )
        value.append(
            {
                "name": {
                    "value": f"OpenAI.{arm_name}",
                    "localizedValue": f"Tokens Per Minute (thousands) - {arm_name}",
                },
                "unit": "Count",
                "currentValue": float(used.get(key, 0)),
                "limit": float(limit),
                "status": "Included",
                "quotaPeriod": "00:01:00",
                "scopeType": scope,
                "scopeId": cfg.region,
            }
        )
    return value


async def _account_usages(request: web.Request, target: _Target) -> web.StreamResponse:
    return _json({"value": _usages(target.ctx, with_current=True)})


async def _location_usages(request: web.Request, target: _Target) -> web.StreamResponse:
    region = target.location.replace(" ", "").lower()
    here = next((a for a in target.ctx.accounts.in_subscription(target.ctx.config.subscription_id)
                 if a.config.region.lower() == region), None)
    return _json({"value": _usages(here or target.ctx, with_current=here is not None)})
