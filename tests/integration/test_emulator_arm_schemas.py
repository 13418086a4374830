"""ARM list responses against the published API: the account models list (Accounts_ListModels)
and a deployment's SKU list (Deployments_ListSkus), on the API version the SDK speaks.

The trimmed 2026-09-01 document in the Azure reference leaves out ``AccountModel``,
``ModelDeprecationInfo`` and ``CapacityConfig``, so bodies are checked against the definitions
azure-mgmt-cognitiveservices was generated from (its models' attribute maps): every key must
be one the API defines, with the declared type, at every depth. The checker is checked on
Microsoft's ListAccountModels example. Also: the deprecation dates ARM shows are the ones the
data-plane models list shows, and the SKU capacity fields tell what a PUT would be granted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
import pytest
import requests
from azure.mgmt.cognitiveservices import models as arm_models
from tunekeeper.cloud.loopback import DEV_TOKEN
from tunekeeper.emulator import catalog

SDK_ARM_VERSION = "2025-09-01"
AUTH = {"Authorization": f"Bearer {DEV_TOKEN}"}
CAPACITY_FIELDS = {"minimum", "maximum", "step", "default", "allowedValues"}  # ListDeploymentSkus example


def contract_errors(body: Any, type_name: str, where: str = "(body)") -> list[str]:
    """Where ``body`` breaks the SDK's definition ``type_name`` ('str', '[Sku]', '{str}', a model)."""
    if body is None:
        return []
    if type_name.startswith("[") and type_name.endswith("]"):
        if not isinstance(body, list):
            return [f"{where}: expected a list, got {body!r}"]
        item_type = type_name[1:-1]
        return [e for i, item in enumerate(body) for e in contract_errors(item, item_type, f"{where}[{i}]")]
    if type_name.startswith("{") and type_name.endswith("}"):
        if not isinstance(body, dict):
            return [f"{where}: expected a map, got {body!r}"]
        return [e for k, v in body.items() for e in contract_errors(v, type_name[1:-1], f"{where}.{k}")]
    simple = {"str": str, "int": int, "bool": bool, "float": (int, float), "iso-8601": str, "object": object}
    if type_name in simple:
        ok = isinstance(body, simple[type_name]) and not (type_name == "int" and isinstance(body, bool))
        return [] if ok else [f"{where}: expected {type_name}, got {body!r}"]
    model = getattr(arm_models, type_name)
    if not isinstance(body, dict):
        return [f"{where}: expected a {type_name} object, got {body!r}"]
    by_key = {spec["key"]: spec["type"] for spec in model._attribute_map.values()}
    errors = [f"{where}.{key}: not a property of {type_name}" for key in body if key not in by_key]
    return errors + [e for key, value in body.items() if key in by_key
                     for e in contract_errors(value, by_key[key], f"{where}.{key}")]


@pytest.fixture
def arm(emulator: Any) -> Iterator[Any]:
    with requests.Session() as session:
        base = emulator.url + emulator.arm_account_path

        def call(method: str, path: str, **kwargs: Any) -> requests.Response:
            return session.request(method, base + path, params={"api-version": SDK_ARM_VERSION}, headers=AUTH,
                                   timeout=10, **kwargs)

        yield call


def deploy(emulator: Any, arm: Any, name: str, sku: str, capacity: int) -> None:
    body = {"sku": {"name": sku, "capacity": capacity},
            "properties": {"model": {"format": "OpenAI", "name": "gpt-4.1-mini", "version": "2025-04-14"}}}
    assert arm("PUT", f"/deployments/{name}", json=body).status_code == 201
    emulator.clock.advance(3600)
    assert arm("GET", f"/deployments/{name}").json()["properties"]["provisioningState"] == "Succeeded"


def test_the_checker_accepts_microsofts_example_and_reports_a_broken_body(reference_dir: Path) -> None:
    example_path = reference_dir / "arm" / "2026-09-01" / "examples" / "ListAccountModels.json"
    example = json.loads(example_path.read_text())
    body = example["responses"]["200"]["body"]
    assert contract_errors(body, "AccountModelListResult") == []

    broken = {"value": [{"name": "m", "deprecation": {"fineTune": 17, "retired": "yes"}}]}
    assert len(contract_errors(broken, "AccountModelListResult")) == 2


def test_account_models_list_matches_the_api_and_carries_deprecation_dates(
    emulator: Any, arm: Any, openai_client: openai.AzureOpenAI
) -> None:
    listed = arm("GET", "/models")
    assert listed.status_code == 200
    assert contract_errors(listed.json(), "AccountModelListResult") == []

    arm_dates = {(m["name"], m["version"]): m["deprecation"] for m in listed.json()["value"]}
    for base in catalog.MODELS:
        shown = arm_dates[(base.name, base.version)]
        model = openai_client.models.retrieve(base.id)
        planned: dict[str, int] = model.deprecation  # type: ignore[attr-defined]  # an Azure field
        assert shown["deprecationStatus"] == "Planned"
        assert shown["inference"] == iso(planned["inference"])
        if base.can_fine_tune:
            assert shown["fineTune"] == iso(planned["fine_tune"])
        else:
            assert "fineTune" not in shown and "fine_tune" not in planned


def iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_sku_list_matches_the_api_and_its_capacity_says_what_a_put_is_granted(
    emulator: Any, arm: Any
) -> None:
    deploy(emulator, arm, "chat", "Standard", 10)
    deploy(emulator, arm, "other", "Standard", 250)

    skus = arm("GET", "/deployments/chat/skus")
    assert skus.status_code == 200
    assert contract_errors(skus.json(), "DeploymentSkuListResult") == []
    by_name = {s["sku"]["name"]: s for s in skus.json()["value"]}
    standard = by_name["Standard"]
    assert set(standard["capacity"]) == CAPACITY_FIELDS
    # 300 Standard in quota, 250 held by "other": "chat" may have 1..50.
    assert standard["sku"]["capacity"] == 10
    capacity = standard["capacity"]
    assert (capacity["minimum"], capacity["maximum"], capacity["step"]) == (1, 50, 1)
    assert standard["capacity"]["allowedValues"] == list(range(1, 51))
    assert standard["capacity"]["default"] == 10

    too_much = {"sku": {"name": "Standard", "capacity": 51}}
    assert arm("PATCH", "/deployments/chat", json=too_much).status_code == 400
    enough = {"sku": {"name": "Standard", "capacity": 50}}
    assert arm("PATCH", "/deployments/chat", json=enough).status_code in (200, 202)
