"""The two things the operator reads from the Kubernetes API itself: a Secret's key, a ConfigMap's key.

Called by ``stack.py`` for an Account's ``auth.apiKeyFromSecret`` and for ``configmap:NAME/KEY``
data sources. Custom resources come from kopf's indexes, never from here. Uses the official
asynchronous client (kubernetes_asyncio), configured in-cluster or from the kubeconfig as kopf is.
Never logs or returns a Secret's value anywhere but to the caller; must not write anything.
"""

from __future__ import annotations

import base64
import os
from contextlib import AsyncExitStack
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException


class KubeError(Exception):
    """A Secret or ConfigMap is missing or unreadable; the message names it, never its content."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient


class Kube:
    """A lazily configured API client, closed at operator shutdown."""

    def __init__(self) -> None:
        self._api: Any = None
        self._stack = AsyncExitStack()

    async def _core(self) -> Any:
        if self._api is None:
            if os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_incluster_config()  # type: ignore[no-untyped-call]
                api_client = client.ApiClient()
            else:
                configuration = client.Configuration()
                # the file named now: the library reads KUBECONFIG only when it is imported
                await config.load_kube_config(
                    config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration
                )
                api_client = client.ApiClient(configuration)
            await self._stack.enter_async_context(api_client)
            self._api = client.CoreV1Api(api_client)
        return self._api

    async def secret_value(self, namespace: str, name: str, key: str) -> str:
        core = await self._core()
        try:
            secret = await core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            raise _error(exc, f"Secret {namespace}/{name}") from None
        data = secret.data or {}
        if key not in data:
            raise KubeError(f"Secret {namespace}/{name} has no key {key!r}")
        return base64.b64decode(data[key]).decode("utf-8").strip()

    async def config_map_value(self, namespace: str, name: str, key: str) -> bytes:
        core = await self._core()
        try:
            found = await core.read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            raise _error(exc, f"ConfigMap {namespace}/{name}") from None
        if found.data and key in found.data:
            return str(found.data[key]).encode("utf-8")
        if found.binary_data and key in found.binary_data:
            return base64.b64decode(found.binary_data[key])
        raise KubeError(f"ConfigMap {namespace}/{name} has no key {key!r}")

    async def close(self) -> None:
        await self._stack.aclose()
        self._api = None


def _error(exc: ApiException, what: str) -> KubeError:
    if exc.status == 404:
        return KubeError(f"{what} does not exist")
    if exc.status in (401, 403):
        return KubeError(
            f"{what} cannot be read: the operator's ServiceAccount lacks the right ({exc.status})"
        )
    return KubeError(f"{what} could not be read (HTTP {exc.status})", transient=True)
