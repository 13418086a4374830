"""The cloud layer: the ``Cloud`` protocol the reconcile core talks to, and its Azure implementation.

``connect(account)`` returns an ``AzureCloud`` built on the official ``openai`` and
``azure-mgmt-cognitiveservices`` clients; the embedded emulator is reached through it too.
This is the only package that imports the SDKs; callers see only the names re-exported here.
"""

from tunekeeper.cloud.azure import AzureCloud, CloudSettings, connect
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
