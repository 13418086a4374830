"""Model deployments through ARM, on ``azure.mgmt.cognitiveservices.aio``.

Used by ``cloud/azure.py`` (``AzureCloud``), which builds the management client with its
credential, retry policy and request counter. Retries and Retry-After are the SDK's
(``AsyncRetryPolicy``); long-running operations are the SDK's pollers. Two things the SDK does
not do are done here:

* **One deployment operation at a time per account.** Azure refuses a second create, update or
  delete on an account while one is in progress. ``begin_*`` takes the account's
  ``asyncio.Lock`` before the first request and keeps it until that operation has finished
  (success or failure), so operations started by this process queue up instead of colliding.
  A background task follows each operation to its end and releases the lock even when nobody
  awaits ``Operation.result()``.
* **409 RequestConflict is waited out.** Another process (the portal, a second controller) may
  still hold the account. The first request of a ``begin_*`` is repeated after the answer's
  Retry-After, or after a delay that doubles up to ``conflict_max_delay``, until
  ``conflict_timeout`` has passed; only then is the conflict raised (as a
  ``TransientCloudError``).

Nothing from the SDK leaves this module: deployments become ``ObservedDeployment`` values and
exceptions are translated by ``cloud/_errors.py``. It must not log credentials.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from azure.core.exceptions import AzureError, HttpResponseError
from azure.core.polling import AsyncLROPoller
from azure.mgmt.cognitiveservices.aio import CognitiveServicesManagementClient
from azure.mgmt.cognitiveservices.models import (
    Deployment,
    DeploymentModel,
    DeploymentProperties,
    PatchResourceTagsAndSku,
)
from azure.mgmt.cognitiveservices.models import Sku as ArmSku

from tunekeeper.cloud._errors import headers_of, is_request_conflict, retry_after_of, translate, translated
from tunekeeper.cloud.base import DeploymentRequest, ObservedDeployment
from tunekeeper.errors import NotFound
from tunekeeper.resources.specs import Sku

log = logging.getLogger("tunekeeper.cloud")

T = TypeVar("T")


class ArmOperation:
    """A deployment operation in progress; ``result()`` waits for its end (the lock is then free)."""

    def __init__(self, task: asyncio.Task[ObservedDeployment | None]) -> None:
        self._task = task

    def done(self) -> bool:
        return self._task.done()

    async def result(self) -> ObservedDeployment | None:
        # shield: a caller giving up on waiting must not cancel the operation (nor its lock release)
        return await asyncio.shield(self._task)


class CompletedOperation:
    """An operation that needed no request, e.g. deleting a deployment that is already gone."""

    def __init__(self, value: ObservedDeployment | None = None) -> None:
        self._value = value

    def done(self) -> bool:
        return True

    async def result(self) -> ObservedDeployment | None:
        return self._value


class ArmDeployments:
    """The deployments of one Cognitive Services account."""

    def __init__(
        self,
        client: CognitiveServicesManagementClient,
        *,
        resource_group: str,
        account_name: str,
        conflict_timeout: float = 600.0,
        conflict_initial_delay: float = 2.0,
        conflict_max_delay: float = 30.0,
        redact: Sequence[str] = (),
    ) -> None:
        self._client = client
        self._resource_group = resource_group
        self._account = account_name
        self._conflict_timeout = conflict_timeout
        self._conflict_initial_delay = conflict_initial_delay
        self._conflict_max_delay = conflict_max_delay
        self._redact = tuple(redact)
        self._lock = asyncio.Lock()
        self._running: set[asyncio.Task[ObservedDeployment | None]] = set()

    async def list_deployments(self) -> list[ObservedDeployment]:
        with translated(f"List deployments of account {self._account}", redact=self._redact):
            pages = self._client.deployments.list(self._resource_group, self._account)
            return [observed_deployment(d) async for d in pages]

    async def get_deployment(self, name: str) -> ObservedDeployment:
        with translated(f"Get deployment {name}", redact=self._redact):
            found = await self._client.deployments.get(self._resource_group, self._account, name)
        return observed_deployment(found)

    async def begin_create_deployment(self, request: DeploymentRequest) -> ArmOperation:
        body = deployment_body(request)
        action = f"Create deployment {request.name}"

        def start() -> Awaitable[AsyncLROPoller[Deployment]]:
            return self._client.deployments.begin_create_or_update(
                self._resource_group, self._account, request.name, body,
            )

        return await self._begin(action, start, observed_deployment)

    async def begin_update_deployment(
        self, name: str, *, sku: Sku | None = None, capacity: int | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ArmOperation | CompletedOperation:
        """PATCH sku, capacity and/or tags (``tags`` replaces all tags). Nothing given: no request."""
        if sku is None and capacity is None and tags is None:
            return CompletedOperation(await self.get_deployment(name))
        action = f"Update deployment {name}"

        async def start() -> AsyncLROPoller[Deployment]:
            patch = PatchResourceTagsAndSku(tags=dict(tags) if tags is not None else None)
            if sku is not None or capacity is not None:
                sku_name, new_capacity = (sku.value if sku else None), capacity
                if sku_name is None or new_capacity is None:  # ARM needs the sku name; keep what is unchanged
                    current = await self._client.deployments.get(self._resource_group, self._account, name)
                    sku_name = sku_name or (current.sku.name if current.sku else Sku.STANDARD.value)
                    new_capacity = new_capacity if new_capacity is not None else (
                        current.sku.capacity if current.sku else None)
                patch.sku = ArmSku(name=sku_name, capacity=new_capacity)
            return await self._client.deployments.begin_update(
                self._resource_group, self._account, name, patch
            )

        return await self._begin(action, start, observed_deployment)

    async def begin_delete_deployment(self, name: str) -> ArmOperation | CompletedOperation:
        action = f"Delete deployment {name}"

        def start() -> Awaitable[AsyncLROPoller[None]]:
            return self._client.deployments.begin_delete(self._resource_group, self._account, name)

        try:
            return await self._begin(action, start, lambda _: None)
        except NotFound:
            return CompletedOperation(None)

    async def close(self) -> None:
        """Stop following operations still in progress (they go on in Azure)."""
        for task in list(self._running):
            task.cancel()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    # -- the lock, the conflict wait and the background follower --------------------------
    async def _begin(
        self,
        action: str,
        start: Callable[[], Awaitable[AsyncLROPoller[T]]],
        convert: Callable[[T], ObservedDeployment | None],
    ) -> ArmOperation:
        await self._lock.acquire()
        try:
            poller = await self._start_waiting_out_conflicts(action, start)
        except BaseException:
            self._lock.release()
            raise
        task = asyncio.create_task(self._follow(action, poller, convert), name=action)
        self._running.add(task)
        task.add_done_callback(self._forget)
        return ArmOperation(task)

    async def _start_waiting_out_conflicts(
        self, action: str, start: Callable[[], Awaitable[AsyncLROPoller[T]]],
    ) -> AsyncLROPoller[T]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._conflict_timeout
        delay = self._conflict_initial_delay
        while True:
            try:
                return await start()
            except HttpResponseError as exc:
                wait = conflict_wait(exc, delay, deadline - loop.time())
                if wait is None:
                    raise translate(exc, action=action, redact=self._redact) from None
            except AzureError as exc:
                raise translate(exc, action=action, redact=self._redact) from None
            await asyncio.sleep(wait)
            log.info("Waited %.1f s for another operation on account %s (RequestConflict); trying again: %s",
                     wait, self._account, action)
            delay = min(delay * 2, self._conflict_max_delay)

    async def _follow(
        self, action: str, poller: AsyncLROPoller[T], convert: Callable[[T], ObservedDeployment | None],
    ) -> ObservedDeployment | None:
        try:
            try:
                outcome = await poller.result()
            except AzureError as exc:
                raise translate(exc, action=action, redact=self._redact) from None
            return convert(outcome)
        finally:
            self._lock.release()

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here; raised again to whoever awaits result()


def conflict_wait(exc: HttpResponseError, delay: float, remaining: float) -> float | None:
    """Seconds to wait before repeating a request refused with RequestConflict; None: give up."""
    if not is_request_conflict(exc) or exc.response is None:
        return None
    hinted = retry_after_of(headers_of(exc))
    wait = hinted if hinted is not None and hinted > 0 else delay
    return wait if wait <= remaining else None


def deployment_body(request: DeploymentRequest) -> Deployment:
    """The ARM PUT body: sku (name, capacity), model (format, name, version, source) and tags."""
    return Deployment(
        sku=ArmSku(name=request.sku.value, capacity=request.capacity),
        tags=dict(request.tags) or None,
        properties=DeploymentProperties(
            model=DeploymentModel(
                format=request.model_format, name=request.model_name, version=request.model_version,
                source=request.source,
            ),
        ),
    )


def observed_deployment(found: Deployment) -> ObservedDeployment:
    properties = found.properties
    model = properties.model if properties else None
    sku = found.sku
    state = getattr(properties, "deployment_state", None) if properties else None
    return ObservedDeployment(
        name=found.name or "",
        model_name=(model.name if model else None) or "",
        model_version=model.version if model else None,
        model_format=(model.format if model else None) or "OpenAI",
        sku=(sku.name if sku else None) or "",
        capacity=sku.capacity if sku else None,
        provisioning_state=_text(properties.provisioning_state if properties else None) or "Unknown",
        tags=dict(found.tags or {}),
        etag=found.etag,
        deployment_state=_text(state),
        model_source=(model.source if model else None) or None,
    )


def _text(value: object) -> str | None:
    """An enum member's value, or the string ARM sent for a value the SDK does not know."""
    if value is None:
        return None
    return str(getattr(value, "value", value))
