"""The cloud layer: the ``Cloud`` protocol the reconcile core talks to, and its Azure implementation.

``connect(account)`` returns an ``AzureCloud`` built on the official ``openai`` and
``azure-mgmt-cognitiveservices`` clients; the embedded emulator is reached through it too.
This is the only package that imports the SDKs; callers see only the names re-exported here.

The Azure names (``AzureCloud``, ``CloudSettings``, ``connect``) load on first use (PEP 562):
the reconcile core imports ``tunekeeper.cloud.base`` for its types, and that must not pull in
the SDKs (about two seconds) for commands that never talk to Azure, such as ``validate``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tunekeeper.cloud.base import (
    Cloud,
    CloudFactory,
    DeploymentRequest,
    JobRequest,
    ObservedCheckpoint,
    ObservedDeployment,
    ObservedEvent,
    ObservedFile,
    ObservedJob,
    ObservedModel,
    Operation,
    ProgressCallback,
)

if TYPE_CHECKING:
    from tunekeeper.cloud.azure import AzureCloud, CloudSettings, connect

_AZURE_NAMES = frozenset({"AzureCloud", "CloudSettings", "connect"})


def __getattr__(name: str) -> Any:
    if name in _AZURE_NAMES:
        from tunekeeper.cloud import azure

        return getattr(azure, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AzureCloud",
    "Cloud",
    "CloudFactory",
    "CloudSettings",
    "DeploymentRequest",
    "JobRequest",
    "ObservedCheckpoint",
    "ObservedDeployment",
    "ObservedEvent",
    "ObservedFile",
    "ObservedJob",
    "ObservedModel",
    "Operation",
    "ProgressCallback",
    "connect",
]
