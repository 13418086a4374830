"""The kopf handlers: thin, level-based, all alike.

Loaded by ``tunekeeper-operator`` (or ``kopf run -m tunekeeper.operator.handlers``). For each of
Account, FineTuneJob and Deployment: an index keeps every object of the kind by namespace (so a
run reads its namespace from memory, not from the API); create, update (of ``spec``), resume and
a timer all ask the namespace's ``Stack`` for a run and write the resource's verdict into its
status; deletion runs the finalizer: it waits while another resource still uses this one, then
asks for a run without it, in which the core prunes what it created by its deletion policy.

Errors: a verdict's permanent error is ``kopf.PermanentError`` (Ready=False is already in the
status written with it), a transient one ``kopf.TemporaryError(delay=Retry-After)``. Long
training is followed by the timer, which returns at once; no handler waits for a job. Settings
come from ``memo`` (the entry point) or the environment. Must not: decide what to change.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import kopf

from tunekeeper.operator import metrics
from tunekeeper.operator.kube import Kube
from tunekeeper.operator.settings import OperatorSettings
from tunekeeper.operator.stack import Resource, RunResult, Stack, Verdict
from tunekeeper.resources import API_VERSION

GROUP, VERSION = API_VERSION.split("/")
PLURALS: Mapping[str, str] = {
    "Account": "accounts",
    "FineTuneJob": "finetunejobs",
    "Deployment": "deployments",
}
FINALIZER = "tunekeeper.io/finalizer"
# kopf fixes a timer's interval when the handler is registered; the environment is all there is then.
TIMER_INTERVAL = OperatorSettings.from_env().interval

log = logging.getLogger("tunekeeper.operator")


class Operator:
    """What one operator process holds: its settings, the API client, a Stack per namespace."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self.kube = Kube()
        self.stacks: dict[str, Stack] = {}

    def stack(self, namespace: str) -> Stack:
        if namespace not in self.stacks:
            self.stacks[namespace] = Stack(namespace, self.settings, self.kube, _post_event)
        return self.stacks[namespace]

    async def close(self) -> None:
        for stack in self.stacks.values():
            await stack.close()
        await self.kube.close()


def _post_event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    kopf.event(
        kopf.Body(cast("kopf.RawBody", _plain(body))), type=type_, reason=reason, message=message[:1024]
    )


def _plain(body: Mapping[str, Any]) -> dict[str, Any]:
    """A detached copy of a body (kopf's bodies are live views)."""
    copied: dict[str, Any] = json.loads(json.dumps(body, default=dict))
    return copied


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    ours = memo.get("tunekeeper_settings")
    if not isinstance(ours, OperatorSettings):
        ours = OperatorSettings.from_env()
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="tunekeeper.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="tunekeeper.io", key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    memo["operator"] = Operator(ours)
    if ours.metrics_port:
        metrics.serve(ours.metrics_port)
    logger.info(
        "Started with data folder %s, cluster %s, every %gs", ours.data_dir, ours.cluster_name, ours.interval
    )


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In the cluster, the pod's ServiceAccount; elsewhere, the kubeconfig (``KUBECONFIG``, read now)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    operator = memo.get("operator")
    if isinstance(operator, Operator):
        await operator.close()


@kopf.on.probe(id="namespaces")
def probe(memo: kopf.Memo, **_: Any) -> int:
    """For the liveness endpoint: how many namespaces this replica reconciles."""
    operator = memo.get("operator")
    return len(operator.stacks) if isinstance(operator, Operator) else 0


# -- indexes: every object of a kind, by namespace --------------------------------------------------
@kopf.index(GROUP, VERSION, PLURALS["Account"])
def tk_accounts(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, dict[str, Any]]:
    return {namespace or "default": _plain(body)}


@kopf.index(GROUP, VERSION, PLURALS["FineTuneJob"])
def tk_jobs(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, dict[str, Any]]:
    return {namespace or "default": _plain(body)}


@kopf.index(GROUP, VERSION, PLURALS["Deployment"])
def tk_deployments(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, dict[str, Any]]:
    return {namespace or "default": _plain(body)}


def _snapshot(
    namespace: str, indexes: Mapping[str, Any], current: tuple[str, Mapping[str, Any]] | None = None
) -> Callable[[], Sequence[Resource]]:
    """The namespace's resources when a run starts; the handler's own body wins over the index's copy."""

    def read() -> list[Resource]:
        found: dict[str, Resource] = {}
        for kind, index in (
            ("Account", indexes["tk_accounts"]),
            ("FineTuneJob", indexes["tk_jobs"]),
            ("Deployment", indexes["tk_deployments"]),
        ):
            for body in index.get(namespace, []):
                resource = Resource(kind, body)
                found[resource.key] = resource
        if current is not None:
            resource = Resource(current[0], _plain(current[1]))
            found[resource.key] = resource
        return sorted(found.values(), key=lambda r: r.key)

    return read


def _finish(kind: str, name: str, result: RunResult, patch: kopf.Patch) -> None:
    verdict: Verdict | None = result.verdict(f"{kind}/{name}")
    if verdict is None:
        return
    for key, value in verdict.status.items():
        patch.status[key] = value
    if verdict.retry_after is not None:
        raise kopf.TemporaryError("Azure asked to retry later.", delay=verdict.retry_after)
    if verdict.permanent is not None:
        raise kopf.PermanentError(verdict.permanent)


def _register(kind: str) -> None:
    plural = PLURALS[kind]

    @kopf.on.resume(GROUP, VERSION, plural, id="reconcile")
    @kopf.on.create(GROUP, VERSION, plural, id="reconcile")
    @kopf.on.update(GROUP, VERSION, plural, id="reconcile", field="spec")
    async def reconcile(
        body: kopf.Body, name: str, namespace: str | None, patch: kopf.Patch, memo: Any, **kwargs: Any
    ) -> None:
        since = time.monotonic()
        namespace = namespace or "default"
        operator: Operator = memo["operator"]
        result = await operator.stack(namespace).reconcile(
            _snapshot(namespace, kwargs, (kind, body)), since=since
        )
        _finish(kind, name, result, patch)

    @kopf.timer(GROUP, VERSION, plural, id="follow", interval=TIMER_INTERVAL, initial_delay=TIMER_INTERVAL)
    async def follow(
        body: kopf.Body, name: str, namespace: str | None, patch: kopf.Patch, memo: Any, **kwargs: Any
    ) -> None:
        operator: Operator = memo["operator"]
        # a run of the namespace that another resource's timer started moments ago serves this one too
        since = time.monotonic() - operator.settings.interval / 2
        namespace = namespace or "default"
        result = await operator.stack(namespace).reconcile(
            _snapshot(namespace, kwargs, (kind, body)), since=since
        )
        _finish(kind, name, result, patch)

    @kopf.on.delete(GROUP, VERSION, plural, id="finalize")
    async def finalize(body: kopf.Body, name: str, namespace: str | None, memo: Any, **kwargs: Any) -> None:
        operator: Operator = memo["operator"]
        namespace = namespace or "default"
        read = _snapshot(namespace, kwargs, (kind, body))
        target = Resource(kind, _plain(body))
        users = Stack.users_of(read(), target)
        if users:
            message = f"{kind} {name} is still used by {', '.join(users)}; it is deleted once they are gone."
            _post_event(target.body, "Warning", "StillInUse", message)
            raise kopf.TemporaryError(message, delay=operator.settings.interval)
        result = await operator.stack(namespace).reconcile(
            read, since=time.monotonic(), deleting={target.key}
        )
        if result.unfinished is not None:
            raise kopf.TemporaryError(
                f"Cleaning up after {kind} {name} waits: {result.unfinished}",
                delay=operator.settings.interval,
            )
        if result.left_out:
            raise kopf.TemporaryError(
                f"Cleaning up after {kind} {name} waits until {', '.join(result.left_out)} can be "
                "reconciled: only a run that reads every resource of the namespace deletes anything.",
                delay=operator.settings.interval,
            )
        if target.key in result.remaining:
            raise kopf.TemporaryError(
                f"Cleaning up after {kind} {name}.", delay=min(5.0, operator.settings.interval)
            )
        _post_event(target.body, "Normal", "Finalized", _left_behind(target))


def _left_behind(target: Resource) -> str:
    if target.kind == "Deployment":
        if target.spec.get("deletionPolicy", "Delete") == "Retain":
            return f"Deployment {target.name} is left in the account (deletionPolicy Retain)."
        return f"Deployment {target.name} is deleted from the account (deletionPolicy Delete)."
    if target.kind == "FineTuneJob":
        job = target.status.get("jobId") or "no job"
        return (
            f"FineTuneJob {target.name} is no longer managed; the model of {job} and its data files are "
            "garbage-collected once no deployment uses them."
        )
    return f"Account {target.name} is no longer used by any resource."


for _kind in PLURALS:
    _register(_kind)
