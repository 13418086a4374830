"""Manifests as typed specs: loading, schema validation, and the checks across resources.

The CLI and the reconcile core call :func:`load` (files and folders of YAML -> ``Desired`` plus
warnings, or one ``ManifestError`` with every problem) and :func:`find_root`. The specs in
``specs.py`` are what every lower layer sees; the JSON Schemas (``schemas/`` at the top of the
repository, shipped here as ``schemas/``) are the contract the loader validates against.

Must not: read dataset contents, touch the network, or import the Azure/OpenAI SDKs.
"""

from __future__ import annotations

from tunekeeper.diagnostics import display_path
from tunekeeper.errors import ManifestError
from tunekeeper.resources.loader import (
    SKIPPED_MANIFEST,
    TextSource,
    find_root,
    load,
    load_texts,
    load_with_diagnostics,
    manifest_files,
)
from tunekeeper.resources.specs import (
    API_VERSION,
    DEFAULT_MANAGEMENT_ENDPOINT,
    AccountSpec,
    AuthSpec,
    Checkpoint,
    DataRef,
    DeletionPolicy,
    DeploymentSpec,
    Desired,
    FineTuneJobSpec,
    Gates,
    Hyperparameters,
    Method,
    MetricGate,
    ModelRef,
    Owner,
    SecretKeyRef,
    Sku,
    SourceRef,
    TrainingType,
)

__all__ = [
    "API_VERSION",
    "DEFAULT_MANAGEMENT_ENDPOINT",
    "SKIPPED_MANIFEST",
    "AccountSpec",
    "AuthSpec",
    "Checkpoint",
    "DataRef",
    "DeletionPolicy",
    "DeploymentSpec",
    "Desired",
    "FineTuneJobSpec",
    "Gates",
    "Hyperparameters",
    "ManifestError",
    "Method",
    "MetricGate",
    "ModelRef",
    "Owner",
    "SecretKeyRef",
    "Sku",
    "SourceRef",
    "TextSource",
    "TrainingType",
    "display_path",
    "find_root",
    "load",
    "load_texts",
    "load_with_diagnostics",
    "manifest_files",
]
