"""An in-memory Kubernetes API for the operator's end-to-end tests: kmock's emulator on a loopback port.

No cluster exists where these tests run: kmock (by kopf's author) serves the Kubernetes API from
memory (discovery, list, watch, create, merge patch, delete with finalizers). It runs in its own
thread and event loop, so the operator (kopf's ``KopfRunner``, another thread) and the test's
blocking HTTP client both talk to it over HTTP, as kubectl and an operator would.

What kmock 0.8 does not do, ``ApiServer`` does as the API server would: name an object created
with ``generateName`` (kopf's Events), stamp ``uid``, ``generation`` and ``resourceVersion`` on
create (kopf's JSON patches test ``resourceVersion``), and bump ``generation`` when a spec changes.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import kmock
import requests
import yaml

GROUP_VERSION = "tunekeeper.io/v1alpha1"
PLURALS = {"Account": "accounts", "FineTuneJob": "finetunejobs", "Deployment": "deployments"}


class ApiServer(kmock.KubernetesEmulator):
    """kmock's emulator plus the metadata the API server sets (see the module docstring)."""

    async def _handle(self, request: Any) -> Any:
        data = request.data
        if request.resource is not None and isinstance(data, dict):
            meta = data.setdefault("metadata", {})
            if request.action == kmock.action.CREATE:
                if not meta.get("name") and meta.get("generateName"):
                    meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:8]}"
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("generation", 1)
                meta.setdefault("resourceVersion", "1")
                meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            elif request.action == kmock.action.UPDATE and "spec" in data and request.subresource != "status":
                current = await self.objects_of(request)
                if current is not None:
                    meta["generation"] = int(current.get("metadata", {}).get("generation", 1)) + 1
        return await super()._handle(request)

    async def objects_of(self, request: Any) -> dict[str, Any] | None:
        key = (request.resource, request.namespace, request.name)
        if key in self.objects and not self.objects[key].deleted:
            found: dict[str, Any] = self.objects[key].raw
            return found
        return None


class KubeApi:
    """kmock's KubernetesEmulator served on 127.0.0.1, with a small kubectl-like client."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kube-api", daemon=True)
        self._emulator: ApiServer | None = None
        self._server: kmock.Server | None = None
        self.url = ""
        self.http: requests.Session | None = None

    def start(self) -> KubeApi:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        self.http = requests.Session()
        return self

    async def _start(self) -> None:
        emulator = ApiServer()
        await emulator.__aenter__()
        for kind, plural in PLURALS.items():
            emulator.resources[f"{GROUP_VERSION}/{plural}"] = kmock.ResourceInfo(
                kind=kind,
                namespaced=True,
                subresources={"status"},
                verbs={"get", "list", "watch", "create", "patch", "update", "delete"},
            )
        for kind, plural in (("Secret", "secrets"), ("ConfigMap", "configmaps"), ("Event", "events")):
            emulator.resources[f"v1/{plural}"] = kmock.ResourceInfo(
                kind=kind, namespaced=True, verbs={"get", "list", "watch", "create", "patch", "delete"}
            )
        # kopf waits for the CRD and Namespace resources to be discoverable before it watches anything;
        # the tests run it cluster-wide (-A), so it never lists namespaces (a path kmock 0.8 misreads)
        emulator.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = kmock.ResourceInfo(
            kind="CustomResourceDefinition", namespaced=False, verbs={"get", "list", "watch"}
        )
        emulator.resources["v1/namespaces"] = kmock.ResourceInfo(
            kind="Namespace", namespaced=False, verbs={"get"}
        )
        emulator.resources["kopf.dev/v1/clusterkopfpeerings"] = kmock.ResourceInfo(
            kind="ClusterKopfPeering", namespaced=False, verbs={"get", "list", "watch", "create", "patch"}
        )
        server = kmock.Server(emulator)
        await server.__aenter__()
        self._emulator, self._server = emulator, server
        self.url = str(server.url).rstrip("/")

    def stop(self) -> None:
        if self.http is not None:
            self.http.close()

        async def _stop() -> None:
            if self._server is not None:
                await self._server.__aexit__(None, None, None)
            if self._emulator is not None:
                await self._emulator.__aexit__(None, None, None)

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def kubeconfig(self, folder: Path) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "kmock",
            "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
            "users": [{"name": "test", "user": {"token": "test-token"}}],
            "contexts": [
                {"name": "kmock", "context": {"cluster": "kmock", "user": "test", "namespace": "default"}}
            ],
        }
        path = folder / "kubeconfig"
        path.write_text(yaml.safe_dump(config))
        return path

    # -- kubectl-like ---------------------------------------------------------------------------------
    @staticmethod
    def path(kind: str, namespace: str = "default", name: str | None = None) -> str:
        if kind == "ClusterKopfPeering":
            base = "/apis/kopf.dev/v1/clusterkopfpeerings"
        elif kind in PLURALS:
            base = f"/apis/{GROUP_VERSION}/namespaces/{namespace}/{PLURALS[kind]}"
        else:
            base = f"/api/v1/namespaces/{namespace}/{kind.lower()}s"
        return f"{base}/{name}" if name else base

    def apply(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """Create ``document`` (as ``kubectl create``)."""
        assert self.http is not None
        body = dict(document)
        meta = dict(body.get("metadata", {}))
        if body["kind"] != "ClusterKopfPeering":
            meta.setdefault("namespace", "default")
        body["metadata"] = meta
        response = self.http.post(
            self.url + self.path(body["kind"], meta.get("namespace", "")), json=body, timeout=10
        )
        response.raise_for_status()
        created: dict[str, Any] = response.json()
        return created

    def secret(self, name: str, data: Mapping[str, str]) -> None:
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name},
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
            }
        )

    def config_map(self, name: str, data: Mapping[str, str]) -> None:
        self.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": dict(data)})

    def get(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any] | None:
        assert self.http is not None
        response = self.http.get(self.url + self.path(kind, namespace, name), timeout=10)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    def patch_spec(self, kind: str, name: str, spec: Mapping[str, Any], namespace: str = "default") -> None:
        """Merge ``spec`` into the object's spec (as ``kubectl patch --type merge``)."""
        assert self.http is not None
        response = self.http.patch(
            self.url + self.path(kind, namespace, name),
            json={"spec": spec},
            headers={"Content-Type": "application/merge-patch+json"},
            timeout=10,
        )
        response.raise_for_status()

    def delete(self, kind: str, name: str, namespace: str = "default") -> None:
        assert self.http is not None
        self.http.delete(self.url + self.path(kind, namespace, name), timeout=10).raise_for_status()

    def events(self, namespace: str = "default") -> list[dict[str, Any]]:
        assert self.http is not None
        response = self.http.get(f"{self.url}/api/v1/namespaces/{namespace}/events", timeout=10)
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json().get("items", [])
        return items


def condition(obj: Mapping[str, Any] | None, type_: str) -> dict[str, Any]:
    """The condition of ``type_`` in an object's status ({} when absent)."""
    for found in ((obj or {}).get("status") or {}).get("conditions") or []:
        if found.get("type") == type_:
            return dict(found)
    return {}


def wait_for(check: Callable[[], Any], *, timeout: float = 60.0, what: str = "the condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last seen: {last!r}")
