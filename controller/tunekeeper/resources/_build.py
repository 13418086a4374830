"""Schema-valid manifest values -> typed specs, checking what a schema cannot say about one resource.

The loader calls :func:`build` for each document that passed its schema. Here live the rules
about a single field that need code: an endpoint's scheme and host, a data reference's form
(relative path inside the repository root, or an https URL), and path containment (no ``..``
escape, no symlink out). Whether a data file exists is checked here too when asked.

Must not: look at other resources (``_checks.py`` does), read file contents, touch the network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tunekeeper.diagnostics import Diagnostic
from tunekeeper.netaddr import is_loopback_host
from tunekeeper.resources._schema import field_path
from tunekeeper.resources._yaml import Document, NodePath
from tunekeeper.resources.specs import (
    DEFAULT_MANAGEMENT_ENDPOINT,
    AccountSpec,
    AuthSpec,
    DataRef,
    DeletionPolicy,
    DeploymentSpec,
    FineTuneJobSpec,
    Gates,
    Hyperparameters,
    Method,
    MetricGate,
    ModelRef,
    SecretKeyRef,
    Sku,
    SourceRef,
    TrainingType,
)

Spec = AccountSpec | FineTuneJobSpec | DeploymentSpec


@dataclass(frozen=True, slots=True)
class Origin:
    """Where one document came from: the manifest file (absolute and as displayed) and its positions."""

    file: Path  # absolute
    display: str
    document: Document

    def at(
        self,
        path: NodePath,
        message: str,
        hint: str | None = None,
        *,
        severity: str = "error",
        key: bool = False,
        code: str = "TK-R000",
    ) -> Diagnostic:
        pos = self.document.position(path, key=key)
        return Diagnostic(
            self.display,
            pos.line,
            pos.column,
            "error" if severity == "error" else "warning",
            message,
            hint=hint,
            field_path=field_path(path) or None,
            code=code,
        )

    @property
    def source(self) -> SourceRef:
        return SourceRef(self.display, self.document.start.line, self.document.start.column)


def _endpoint(value: str, path: NodePath, origin: Origin, out: list[Diagnostic]) -> str:
    name = field_path(path)
    parts = urlsplit(value)
    if parts.username or parts.password:
        out.append(
            origin.at(
                path,
                f"{name} must not contain credentials",
                "use spec.auth (Entra ID, or apiKeyFromEnv) instead",
                code="TK-R001",
            )
        )
    elif parts.scheme == "http" and not is_loopback_host(parts.hostname):
        out.append(
            origin.at(
                path,
                f"{name} must use https, got {value!r}",
                "http is accepted only for loopback hosts (localhost, 127.0.0.1, ::1), i.e. a local emulator",
                code="TK-R002",
            )
        )
    elif parts.scheme not in ("http", "https") or not parts.hostname:
        out.append(
            origin.at(
                path,
                f"{name} must be an https URL, got {value!r}",
                "for example https://my-resource.openai.azure.com",
                code="TK-R002",
            )
        )
    return value.rstrip("/")


def data_ref(
    value: str, path: NodePath, origin: Origin, root: Path, check_data: bool, out: list[Diagnostic]
) -> DataRef:
    """A data reference: an https URL to import, or a path relative to the manifest inside ``root``."""
    name = field_path(path)
    if "://" in value:
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname:
            out.append(
                origin.at(
                    path,
                    f"{name} must be an https URL or a relative path, got {value!r}",
                    "data is imported over https only (for example an Azure Blob SAS URL)",
                    code="TK-R010",
                )
            )
        return DataRef(url=value, display=value)
    if os.path.isabs(value) or value.startswith("~"):
        out.append(
            origin.at(
                path,
                f"{name} must be a path relative to the manifest, got {value!r}",
                "write the path relative to the folder of this manifest file",
                code="TK-R011",
            )
        )
        return DataRef(path=Path(value), display=value)
    written = Path(os.path.normpath(origin.file.parent / value))
    real_root = root.resolve()
    if not _inside(written, root) and not _inside(written, real_root):
        out.append(
            origin.at(
                path,
                f"{name} {value!r} points outside the repository root {_show_root(root)}",
                "keep training data inside the repository (no '..' above its root)",
                code="TK-R012",
            )
        )
        return DataRef(path=written, display=value)
    resolved = written.resolve()
    if not _inside(resolved, real_root):
        out.append(
            origin.at(
                path,
                f"{name} {value!r} is a symlink to {resolved}, outside the repository root",
                "copy the file into the repository instead of linking to it",
                code="TK-R013",
            )
        )
        return DataRef(path=resolved, display=value)
    if check_data:
        if not resolved.exists():
            out.append(
                origin.at(
                    path,
                    f"{name} {value!r} does not exist",
                    f"looked for {_relative(resolved)} (paths are relative to the manifest's folder)",
                    code="TK-R014",
                )
            )
        elif not resolved.is_file():
            out.append(
                origin.at(
                    path, f"{name} {value!r} is not a file", "point it at a .jsonl file", code="TK-R015"
                )
            )
    return DataRef(path=resolved, display=value)


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _show_root(root: Path) -> str:
    return str(root)


def _relative(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # pragma: no cover - another drive on Windows
        return str(path)


def _auto(value: Any) -> Any:
    return None if value == "auto" else value


def build(
    kind: str, value: dict[str, Any], origin: Origin, root: Path, check_data: bool, out: list[Diagnostic]
) -> Spec:
    """One spec from a schema-valid document; single-resource problems go to ``out``."""
    name: str = value["metadata"]["name"]
    spec: dict[str, Any] = value["spec"]
    if kind == "Account":
        auth = spec.get("auth", {})
        secret = auth.get("apiKeyFromSecret")
        if "apiKeyFromEnv" in auth:
            auth_spec = AuthSpec("apiKey", auth["apiKeyFromEnv"])
        elif secret is not None:
            auth_spec = AuthSpec(
                "apiKey", api_key_secret=SecretKeyRef(secret["name"], secret.get("key", "apiKey"))
            )
        else:
            auth_spec = AuthSpec()
        if urlsplit(spec["endpoint"]).scheme == "http" and "managementEndpoint" not in spec:
            # Otherwise ARM calls would go to Azure's public management endpoint with Entra ID, and
            # fail with azure-identity's page-long list of credentials it could not find.
            out.append(
                origin.at(
                    ("spec", "endpoint"),
                    "an http (loopback emulator) endpoint needs "
                    "spec.managementEndpoint too; deployments would otherwise be managed through "
                    f"{DEFAULT_MANAGEMENT_ENDPOINT} with Entra ID",
                    f"add managementEndpoint: {spec['endpoint'].rstrip('/')} (the emulator serves ARM "
                    "on the same port)",
                    code="TK-R003",
                )
            )
        return AccountSpec(
            name=name,
            endpoint=_endpoint(spec["endpoint"], ("spec", "endpoint"), origin, out),
            subscription_id=spec["subscriptionId"],
            resource_group=spec["resourceGroup"],
            account_name=spec["accountName"],
            management_endpoint=_endpoint(
                spec.get("managementEndpoint", DEFAULT_MANAGEMENT_ENDPOINT),
                ("spec", "managementEndpoint"),
                origin,
                out,
            ),
            auth=auth_spec,
            source=origin.source,
        )
    if kind == "FineTuneJob":
        method = spec.get("method", {})
        hyper = method.get("hyperparameters", {})
        training = data_ref(spec["trainingFile"], ("spec", "trainingFile"), origin, root, check_data, out)
        validation = (
            data_ref(spec["validationFile"], ("spec", "validationFile"), origin, root, check_data, out)
            if "validationFile" in spec
            else None
        )
        return FineTuneJobSpec(
            name=name,
            account=spec.get("account"),
            base_model=spec.get("baseModel"),
            from_job=spec.get("fromJob"),
            method=Method(method.get("type", "supervised")),
            hyperparameters=Hyperparameters(
                n_epochs=_auto(hyper.get("n_epochs")),
                batch_size=_auto(hyper.get("batch_size")),
                learning_rate_multiplier=_float(_auto(hyper.get("learning_rate_multiplier"))),
                beta=_float(_auto(hyper.get("beta"))),
                grader=method.get("grader"),
            ),
            training_file=training,
            validation_file=validation,
            training_type=TrainingType(spec["trainingType"]) if "trainingType" in spec else None,
            seed=spec.get("seed"),
            suffix=spec.get("suffix"),
            allow_replacement=bool(spec.get("allowReplacement", False)),
            retain_previous=int(spec.get("retainPrevious", 3)),
            source=origin.source,
        )
    model = spec["model"]
    sku = spec.get("sku", {})
    gates = spec.get("gates", {})
    eval_file = (
        data_ref(gates["evalFile"], ("spec", "gates", "evalFile"), origin, root, check_data, out)
        if "evalFile" in gates
        else None
    )
    if eval_file is not None and eval_file.url is not None:
        out.append(
            origin.at(
                ("spec", "gates", "evalFile"),
                "spec.gates.evalFile must be a path in the repository, not a URL",
                "commit the eval set next to the manifest",
                code="TK-R016",
            )
        )
    return DeploymentSpec(
        name=name,
        account=spec.get("account"),
        model=(
            ModelRef(from_job=model["fromJob"], checkpoint=model.get("checkpoint", "final"))
            if "fromJob" in model
            else ModelRef(base_model=model["name"], version=model.get("version"))
        ),
        sku=Sku(sku.get("name", "Standard")),
        capacity=int(sku.get("capacity", 1)),
        gates=Gates(
            metrics=tuple(
                MetricGate(g["metric"], g["op"], float(g["threshold"])) for g in gates.get("metrics", [])
            ),
            eval_file=eval_file,
        ),
        deletion_policy=DeletionPolicy(spec.get("deletionPolicy", "Delete")),
        source=origin.source,
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
