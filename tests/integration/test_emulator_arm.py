"""The emulator's ARM deployments API, driven through azure-mgmt-cognitiveservices over real HTTP.

Where the SDK cannot say something (raw status codes and headers of the LRO protocol, pause and
resume, which 14.1.0 lacks, a wrong api-version) the test speaks plain HTTP with ``requests``.
Every ARM body is checked against the published 2026-09-01 definitions (``arm_schema``), made
strict: an object may carry only the properties the spec declares. Time moves with
``emulator.clock.advance``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.mgmt.cognitiveservices.models import (
    Deployment,
    DeploymentModel,
    DeploymentProperties,
    PatchResourceTagsAndSku,
    Sku,
)
from tunekeeper.cloud.loopback import DEV_TOKEN
from tunekeeper.emulator.arm import (
    ARM_API_VERSIONS,
    CREATE_SECONDS,
    DEVELOPER_LIFETIME_SECONDS,
    IDLE_LIMIT_SECONDS,
    PAGE_SIZE,
    deployments_using,
)

SEED_ARM_VERSION = "2024-10-01"
SDK_ARM_VERSION = "2025-09-01"
AUTH = {"Authorization": f"Bearer {DEV_TOKEN}"}
PROXY_RESOURCE = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "type": {"type": "string"},
        "systemData": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "createdBy": {"type": "string"},
                "createdByType": {"enum": ["User", "Application", "ManagedIdentity", "Key"]},
                "createdAt": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$"},
                "lastModifiedBy": {"type": "string"},
                "lastModifiedByType": {"enum": ["User", "Application", "ManagedIdentity", "Key"]},
                "lastModifiedAt": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$"},
            },
        },
    },
}


# -- fixtures and helpers -----------------------------------------------------------------------
@pytest.fixture(scope="session")
def arm_definitions(reference_dir: Path) -> dict[str, Any]:
    """The 2026-09-01 definitions, strict: unknown properties are errors, external refs inlined."""
    spec_path = reference_dir / "arm" / "2026-09-01" / "cognitiveservices.trimmed.json"
    if not spec_path.is_file():
        pytest.skip(f"{spec_path} is not present")
    definitions: dict[str, Any] = copy.deepcopy(json.loads(spec_path.read_text())["definitions"])
    deployment = definitions["Deployment"]
    deployment.pop("allOf", None)
    deployment["properties"] = {**PROXY_RESOURCE["properties"], **deployment["properties"]}

    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[-1]
                if ref.startswith("#/definitions/") and name in definitions:
                    return node
                return {}  # not in the trimmed file (common-types, CallRateLimit, ...): any value
            fixed = {k: fix(v) for k, v in node.items()}
            if (
                fixed.get("type") == "object"
                and "properties" in fixed
                and "additionalProperties" not in fixed
            ):
                fixed["additionalProperties"] = False
            return fixed
        if isinstance(node, list):
            return [fix(v) for v in node]
        return node

    return {name: fix(body) for name, body in definitions.items()}


@pytest.fixture
def arm_schema(arm_definitions: dict[str, Any]) -> Callable[[Any, str], None]:
    import jsonschema

    def check(body: Any, definition: str) -> None:
        schema = {"$ref": f"#/definitions/{definition}", "definitions": arm_definitions}
        jsonschema.Draft4Validator(schema).validate(body)

    return check


def _caller(emu: Any, session: requests.Session) -> Callable[..., requests.Response]:
    base = emu.url + emu.arm_account_path

    def call(method: str, path: str, *, api_version: str | None = SEED_ARM_VERSION, absolute: bool = False,
             headers: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
        url = path if absolute else base + path
        params = {} if api_version is None else {"api-version": api_version}
        return session.request(method, url, params=params, headers={**AUTH, **(headers or {})}, timeout=10,
                               **kwargs)

    return call


@pytest.fixture
def arm(emulator: Any) -> Iterator[Callable[..., requests.Response]]:
    """Plain HTTP to the ARM account of the emulator: ``arm("PUT", "/deployments/x", json=...)``."""
    with requests.Session() as session:
        yield _caller(emulator, session)


@pytest.fixture(scope="module")
def _real_time_server() -> Iterator[Any]:
    from tunekeeper.emulator import Emulator

    with Emulator(speed=1.0) as emu:
        yield emu


@pytest.fixture
def real_time(_real_time_server: Any) -> Iterator[Any]:
    """An emulator at speed 1, for looking at operations while they run (30 s of provisioning
    is 30 s of real time, so no test is racing the server; the clock is advanced instead)."""
    _real_time_server.reset()
    yield _real_time_server
    _real_time_server.reset()


@pytest.fixture
def real_time_arm(real_time: Any) -> Iterator[Callable[..., requests.Response]]:
    with requests.Session() as session:
        yield _caller(real_time, session)


def _body(model: str = "gpt-4.1", version: str | None = "2025-04-14", sku: str = "Standard",
          capacity: int = 1, **extra: Any) -> dict[str, Any]:
    body_model: dict[str, Any] = {"format": "OpenAI", "name": model}
    if version is not None:
        body_model["version"] = version
    return {"sku": {"name": sku, "capacity": capacity}, "properties": {"model": body_model}, **extra}


def _sdk_deployment(name: str = "gpt-4.1", version: str = "2025-04-14", sku: str = "Standard",
                    capacity: int = 1, tags: dict[str, str] | None = None) -> Deployment:
    return Deployment(
        sku=Sku(name=sku, capacity=capacity),
        tags=tags,
        properties=DeploymentProperties(model=DeploymentModel(format="OpenAI", name=name, version=version)),
    )


def _finish_operations(emulator: Any) -> None:
    """Jump past any provisioning in progress (longer than any ARM operation takes)."""
    emulator.clock.advance(3600)


def _create_now(
    emulator: Any, arm: Callable[..., requests.Response], name: str, **body: Any
) -> dict[str, Any]:
    response = arm("PUT", f"/deployments/{name}", json=_body(**body))
    assert response.status_code == 201, response.text
    _finish_operations(emulator)
    created = arm("GET", f"/deployments/{name}")
    assert created.status_code == 200
    return dict(created.json())


def _error(response: requests.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"])
    return dict(body["error"])


# -- create, read, update, delete through the SDK ---------------------------------------------
def test_create_through_the_sdk_waits_for_provisioning(emulator: Any, arm_client: Any,
                                                       arm_schema: Callable[[Any, str], None],
                                                       arm: Callable[..., requests.Response]) -> None:
    rg, account = emulator.config.resource_group, emulator.config.account_name

    poller = arm_client.deployments.begin_create_or_update(
        rg, account, "chat", _sdk_deployment(sku="standard", capacity=10, tags={"owner": "tunekeeper"}))
    deployment = poller.result()

    assert deployment.properties.provisioning_state == "Succeeded"
    assert deployment.sku.name == "Standard" and deployment.sku.capacity == 10
    assert deployment.tags == {"owner": "tunekeeper"}
    assert deployment.type == "Microsoft.CognitiveServices/accounts/deployments"
    assert deployment.id == f"{emulator.arm_account_path}/deployments/chat"
    assert deployment.properties.model.name == "gpt-4.1" and deployment.properties.model.format == "OpenAI"
    assert deployment.properties.current_capacity == 10
    assert deployment.properties.rai_policy_name == "Microsoft.DefaultV2"
    assert {r.key: r.count for r in deployment.properties.rate_limits} == {"request": 10, "token": 10_000}
    assert re.fullmatch(r'"[^"]+"', deployment.etag)
    raw = arm("GET", "/deployments/chat", api_version=SDK_ARM_VERSION)
    arm_schema(raw.json(), "Deployment")
    assert not any(key.startswith("_") for key in raw.json())
    stored = emulator.store.get("deployment", "chat")
    assert stored["properties"]["provisioningState"] == "Succeeded"


def test_put_answers_201_with_async_operation_then_provisions_with_the_clock(
        real_time: Any, real_time_arm: Callable[..., requests.Response],
        arm_schema: Callable[[Any, str], None]) -> None:
    emulator, arm = real_time, real_time_arm
    created = arm("PUT", "/deployments/support", json=_body(sku="standard", tags={"team": "support"}))

    assert created.status_code == 201
    arm_schema(created.json(), "Deployment")
    assert created.json()["properties"]["provisioningState"] == "Accepted"
    assert created.json()["sku"] == {"name": "Standard", "capacity": 1}
    assert created.json()["tags"] == {"team": "support"}
    retry_after = int(created.headers["Retry-After"])
    assert 1 <= retry_after <= CREATE_SECONDS
    status_url = created.headers["Azure-AsyncOperation"]
    assert (
        f"/subscriptions/{emulator.config.subscription_id}/providers/Microsoft.CognitiveServices/locations/"
        f"{emulator.config.region}/operationStatuses/" in status_url
    )
    in_progress = arm("GET", status_url, absolute=True, api_version=None)
    assert in_progress.status_code == 200 and in_progress.json()["status"] == "InProgress"

    emulator.clock.advance(emulator.clock.scaled(CREATE_SECONDS) / 2)
    assert arm("GET", "/deployments/support").json()["properties"]["provisioningState"] == "Creating"
    _finish_operations(emulator)

    done = arm("GET", status_url, absolute=True, api_version=None)
    assert done.json()["status"] == "Succeeded" and "endTime" in done.json()
    got = arm("GET", "/deployments/support")
    assert got.json()["properties"]["provisioningState"] == "Succeeded"
    assert got.json()["etag"] != created.json()["etag"]


def test_put_on_an_existing_deployment_updates_it(emulator: Any, arm_client: Any,
                                                  arm: Callable[..., requests.Response]) -> None:
    before = _create_now(emulator, arm, "chat", capacity=5)

    updated = arm("PUT", "/deployments/chat", json=_body(capacity=7, tags={"v": "2"}))

    assert updated.status_code == 200
    assert "Azure-AsyncOperation" in updated.headers
    _finish_operations(emulator)
    after = arm_client.deployments.get(emulator.config.resource_group, emulator.config.account_name, "chat")
    assert after.sku.capacity == 7 and after.tags == {"v": "2"}
    assert after.properties.provisioning_state == "Succeeded"
    assert after.etag != before["etag"]
    assert after.system_data.created_at.isoformat()[:19] == before["systemData"]["createdAt"][:19]


def test_patch_changes_capacity_and_tags_through_the_sdk(emulator: Any, arm_client: Any,
                                                         arm: Callable[..., requests.Response]) -> None:
    _create_now(emulator, arm, "chat", capacity=5)
    rg, account = emulator.config.resource_group, emulator.config.account_name

    result = arm_client.deployments.begin_update(
        rg,
        account,
        "chat",
        PatchResourceTagsAndSku(sku=Sku(name="Standard", capacity=20), tags={"env": "prod"}),
    ).result()

    assert result.sku.capacity == 20 and result.tags == {"env": "prod"}
    assert result.properties.provisioning_state == "Succeeded"
    usage = {u.name.value: u for u in arm_client.accounts.list_usages(rg, account).value}
    assert usage["OpenAI.Standard"].current_value == 20


def test_patch_of_tags_only_answers_at_once(emulator: Any, arm: Callable[..., requests.Response],
                                            arm_schema: Callable[[Any, str], None]) -> None:
    before = _create_now(emulator, arm, "chat")

    patched = arm("PATCH", "/deployments/chat", json={"tags": {"a": "b"}})

    assert patched.status_code == 200
    arm_schema(patched.json(), "Deployment")
    assert patched.json()["tags"] == {"a": "b"} and patched.json()["etag"] != before["etag"]


def test_patch_of_sku_answers_202_with_location(real_time: Any,
                                                real_time_arm: Callable[..., requests.Response]) -> None:
    emulator, arm = real_time, real_time_arm
    _create_now(emulator, arm, "chat")

    patched = arm("PATCH", "/deployments/chat", json={"sku": {"name": "Standard", "capacity": 3}})

    assert patched.status_code == 202
    result = arm("GET", patched.headers["Location"], absolute=True, api_version=None)
    assert result.status_code == 202 and "Retry-After" in result.headers
    _finish_operations(emulator)
    result = arm("GET", patched.headers["Location"], absolute=True, api_version=None)
    assert result.status_code == 200 and result.json()["sku"]["capacity"] == 3


def test_delete_through_the_sdk_and_again_when_absent(emulator: Any, arm_client: Any,
                                                      arm: Callable[..., requests.Response]) -> None:
    _create_now(emulator, arm, "chat")
    rg, account = emulator.config.resource_group, emulator.config.account_name

    arm_client.deployments.begin_delete(rg, account, "chat").result()

    with pytest.raises(ResourceNotFoundError) as missing:
        arm_client.deployments.get(rg, account, "chat")
    assert missing.value.error.code == "DeploymentNotFound"
    assert emulator.store.get("deployment", "chat") is None
    arm_client.deployments.begin_delete(rg, account, "chat").result()  # absent: 204, still succeeds
    assert arm("DELETE", "/deployments/chat").status_code == 204


def test_delete_answers_202_and_deleting_until_done(real_time: Any,
                                                    real_time_arm: Callable[..., requests.Response]) -> None:
    emulator, arm = real_time, real_time_arm
    _create_now(emulator, arm, "chat")

    deleted = arm("DELETE", "/deployments/chat")

    assert deleted.status_code == 202
    assert {"Location", "Azure-AsyncOperation", "Retry-After"} <= set(deleted.headers)
    assert arm("GET", "/deployments/chat").json()["properties"]["provisioningState"] == "Deleting"
    _finish_operations(emulator)
    assert arm("GET", deleted.headers["Location"], absolute=True, api_version=None).status_code == 204
    assert arm("GET", "/deployments/chat").status_code == 404


def test_list_pages_with_next_link(emulator: Any, arm_client: Any, arm: Callable[..., requests.Response],
                                   arm_schema: Callable[[Any, str], None]) -> None:
    names = [f"d{i:02d}" for i in range(PAGE_SIZE + 5)]
    for name in names:
        _create_now(emulator, arm, name)

    first = arm("GET", "/deployments")

    arm_schema(first.json(), "DeploymentListResult")
    assert len(first.json()["value"]) == PAGE_SIZE
    second = arm("GET", first.json()["nextLink"], absolute=True, api_version=None)
    arm_schema(second.json(), "DeploymentListResult")
    assert len(second.json()["value"]) == 5 and "nextLink" not in second.json()
    listed = [d.name for d in arm_client.deployments.list(emulator.config.resource_group,
                                                          emulator.config.account_name)]
    assert listed == names


def test_deployment_names_are_case_insensitive_like_arm(
    emulator: Any, arm: Callable[..., requests.Response]
) -> None:
    _create_now(emulator, arm, "Chat")

    assert arm("GET", "/deployments/chat").json()["name"] == "Chat"
    lowered = emulator.url + emulator.arm_account_path.lower() + "/deployments/CHAT"
    assert arm("GET", lowered, absolute=True).status_code == 200


# -- what users meet in the field ---------------------------------------------------------------
def test_a_second_operation_while_one_runs_gets_request_conflict(
        real_time: Any, real_time_arm: Callable[..., requests.Response]) -> None:
    from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
    from tunekeeper.cloud.loopback import AllowHttpForLoopback, StaticTokenCredential

    emulator, arm = real_time, real_time_arm
    arm_client = CognitiveServicesManagementClient(
        credential=StaticTokenCredential(), subscription_id=emulator.config.subscription_id,
        base_url=emulator.url, per_call_policies=[AllowHttpForLoopback()], polling_interval=0)
    assert arm("PUT", "/deployments/first", json=_body()).status_code == 201
    rg, account = emulator.config.resource_group, emulator.config.account_name

    with pytest.raises(ResourceExistsError) as conflict:
        arm_client.deployments.begin_create_or_update(rg, account, "second", _sdk_deployment())

    assert conflict.value.status_code == 409
    assert conflict.value.error.code == "RequestConflict"
    assert conflict.value.error.message == (
        f"Another operation is being performed on the parent resource '{emulator.arm_account_path}'. "
        "Please try again later.")
    busy = arm("DELETE", "/deployments/first")
    assert busy.status_code == 409
    assert "Retry-After" not in busy.headers and 0 < int(busy.headers["retry-after-ms"])
    _finish_operations(emulator)
    assert arm("PUT", "/deployments/second", json=_body()).status_code == 201
    arm_client.close()


def test_capacity_beyond_quota_gets_insufficient_quota(emulator: Any, arm_client: Any,
                                                       arm: Callable[..., requests.Response]) -> None:
    limit = emulator.config.quota["Standard"]
    _create_now(emulator, arm, "big", capacity=limit - 10)
    rg, account = emulator.config.resource_group, emulator.config.account_name

    with pytest.raises(HttpResponseError) as refused:
        arm_client.deployments.begin_create_or_update(rg, account, "more", _sdk_deployment(capacity=11))

    assert refused.value.status_code == 400
    assert refused.value.error.code == "InsufficientQuota"
    assert "require 11 new capacity" in refused.value.error.message
    assert f"current available capacity 10. The current quota usage is {limit - 10} and the quota limit is " \
           f"{limit}" in refused.value.error.message
    assert emulator.store.get("deployment", "more") is None
    other_sku = arm_client.deployments.begin_create_or_update(
        rg, account, "more", _sdk_deployment(sku="GlobalStandard", capacity=11)).result()
    assert other_sku.sku.name == "GlobalStandard"
    patched = arm("PATCH", "/deployments/big", json={"sku": {"capacity": limit + 1}})
    assert patched.status_code == 400 and _error(patched)["code"] == "InsufficientQuota"


@pytest.mark.parametrize("model", [
    {"name": "gpt-5-imaginary", "version": "2030-01-01"},
    {"name": "gpt-4.1", "version": "1999-01-01"},
    {"name": "ftchkpt-0123456789abcdef0123456789abcdef", "version": "1"},
    {"name": "gpt-4.1-2025-04-14.ft-0123456789abcdef0123456789abcdef", "version": "1"},
    {"name": "gpt-4.1-2025-04-14.ft-0123456789abcdef0123456789abcdef:ckpt-step-10", "version": "1"},
])
def test_a_model_that_does_not_exist_gets_deployment_model_not_supported(
        emulator: Any, arm_client: Any, model: dict[str, str]) -> None:
    rg, account = emulator.config.resource_group, emulator.config.account_name

    with pytest.raises(HttpResponseError) as refused:
        arm_client.deployments.begin_create_or_update(rg, account, "x", _sdk_deployment(**model))

    assert refused.value.status_code == 400
    assert refused.value.error.code == "DeploymentModelNotSupported"
    assert f"Name:{model['name']}" in refused.value.error.message
    assert emulator.store.get("deployment", "x") is None


def test_a_format_other_than_openai_is_not_supported(
    emulator: Any, arm: Callable[..., requests.Response]
) -> None:
    body = _body()
    body["properties"]["model"]["format"] = "Meta"

    refused = arm("PUT", "/deployments/x", json=body)

    assert refused.status_code == 400 and _error(refused)["code"] == "DeploymentModelNotSupported"


@pytest.mark.parametrize(("model", "version", "sku"), [
    ("o4-mini", "2025-04-16", "Standard"),
    ("text-embedding-3-small", "1", "DeveloperTier"),
])
def test_a_sku_the_model_does_not_support_gets_invalid_resource_properties(
        emulator: Any, arm_client: Any, model: str, version: str, sku: str) -> None:
    rg, account = emulator.config.resource_group, emulator.config.account_name

    with pytest.raises(HttpResponseError) as refused:
        arm_client.deployments.begin_create_or_update(rg, account, "x", _sdk_deployment(model, version, sku))

    assert refused.value.status_code == 400
    assert refused.value.error.code == "InvalidResourceProperties"
    assert refused.value.error.message == (
        f"The specified SKU '{sku}' of account deployment is not supported by the model '{model}' "
        f"version: '{version}'.")


def test_an_unknown_sku_name_and_bad_capacity_are_refused(arm: Callable[..., requests.Response]) -> None:
    unknown = arm("PUT", "/deployments/x", json=_body(sku="Premium"))
    zero = arm("PUT", "/deployments/x", json=_body(capacity=0))
    garbage = arm("PUT", "/deployments/x", data=b"{not json", headers={"Content-Type": "application/json"})

    assert unknown.status_code == 400 and _error(unknown)["code"] == "InvalidResourceProperties"
    assert zero.status_code == 400 and _error(zero)["code"] == "InvalidResourceProperties"
    assert garbage.status_code == 400 and _error(garbage)["code"] == "InvalidRequestContent"


def test_old_api_versions_size_with_scale_settings(
    emulator: Any, arm: Callable[..., requests.Response]
) -> None:
    body = {"properties": {"model": {"format": "OpenAI", "name": "gpt-4o", "version": "2024-08-06"},
                           "scaleSettings": {"scaleType": "Standard", "capacity": 4}}}

    created = arm("PUT", "/deployments/old", json=body, api_version="2021-10-01")

    assert created.status_code == 201
    assert created.json()["sku"] == {"name": "Standard", "capacity": 4}


def test_a_base_model_without_version_gets_the_newest(
    emulator: Any, arm: Callable[..., requests.Response]
) -> None:
    created = _create_now(emulator, arm, "latest", model="gpt-4o", version=None)

    assert created["properties"]["model"] == {"format": "OpenAI", "name": "gpt-4o", "version": "2024-08-06"}


def test_a_deployment_without_traffic_for_15_days_is_removed(
    emulator: Any, arm: Callable[..., requests.Response], openai_client: Any
) -> None:
    _create_now(emulator, arm, "idle")
    _create_now(emulator, arm, "busy")

    created_at = emulator.store.get("deployment", "idle")["_created_at"]
    emulator.clock.advance(created_at + IDLE_LIMIT_SECONDS - 2 * 3600 - emulator.clock.now())
    openai_client.chat.completions.create(model="busy", messages=[{"role": "user", "content": "Hello"}])
    assert emulator.store.get("deployment", "busy")["_last_used_at"] is not None
    assert arm("GET", "/deployments/idle").status_code == 200
    emulator.clock.advance(3 * 3600)

    assert arm("GET", "/deployments/idle").status_code == 404
    assert arm("GET", "/deployments/busy").status_code == 200
    assert [d["name"] for d in arm("GET", "/deployments").json()["value"]] == ["busy"]


@pytest.mark.parametrize("sent", ["developertier", "Developer"])
def test_a_developer_deployment_lives_24_hours(emulator: Any, arm: Callable[..., requests.Response],
                                               sent: str) -> None:
    created = _create_now(emulator, arm, "dev", sku=sent, capacity=50)
    assert created["sku"] == {"name": "DeveloperTier", "capacity": 50}  # the portal's name is echoed as ARM's
    emulator.store.put("deployment", "dev", {**emulator.store.get("deployment", "dev"),
                                              "_last_used_at": emulator.clock.now() + 20 * 3600})

    created_at = emulator.store.get("deployment", "dev")["_created_at"]
    emulator.clock.advance(created_at + DEVELOPER_LIFETIME_SECONDS - 2 * 3600 - emulator.clock.now())
    assert arm("GET", "/deployments/dev").status_code == 200
    emulator.clock.advance(2 * 3600)

    assert arm("GET", "/deployments/dev").status_code == 404


def test_pause_and_resume_for_standard_skus_only(emulator: Any, arm: Callable[..., requests.Response],
                                                 arm_schema: Callable[[Any, str], None]) -> None:
    _create_now(emulator, arm, "chat")
    _create_now(emulator, arm, "dev", sku="DeveloperTier")

    paused = arm("POST", "/deployments/chat/pause", api_version="2026-09-01")
    again = arm("POST", "/deployments/chat/pause", api_version="2026-09-01")
    arm_schema(paused.json(), "Deployment")
    assert paused.status_code == 200 and paused.json()["properties"]["deploymentState"] == "Paused"
    assert again.status_code == 200 and again.json()["etag"] == paused.json()["etag"]
    assert emulator.store.get("deployment", "chat")["properties"]["deploymentState"] == "Paused"
    resumed = arm("POST", "/deployments/chat/resume", api_version="2026-09-01")
    assert resumed.json()["properties"]["deploymentState"] == "Running"
    refused = arm("POST", "/deployments/dev/pause", api_version="2026-09-01")
    assert (
        refused.status_code == 400
        and "Standard, DataZoneStandard and GlobalStandard" in _error(refused)["message"]
    )


def test_deployment_skus(emulator: Any, arm_client: Any, arm: Callable[..., requests.Response],
                         arm_schema: Callable[[Any, str], None]) -> None:
    _create_now(emulator, arm, "chat")

    skus = arm("GET", "/deployments/chat/skus", api_version="2026-09-01")

    arm_schema(skus.json(), "DeploymentSkuListResult")
    names = {s.sku.name for s in arm_client.deployments.list_skus(emulator.config.resource_group,
                                                                  emulator.config.account_name, "chat")}
    assert {"Standard", "GlobalStandard", "DeveloperTier"} <= names


# -- identity, api-versions --------------------------------------------------------------------
@pytest.mark.parametrize("version", [SEED_ARM_VERSION, SDK_ARM_VERSION, "2023-05-01", "2024-04-01-preview",
                                     "2024-06-01-preview", "2025-06-01", "2026-09-01"])
def test_published_api_versions_are_served(arm: Callable[..., requests.Response], version: str) -> None:
    assert version in ARM_API_VERSIONS
    assert arm("GET", "/deployments", api_version=version).status_code == 200


@pytest.mark.parametrize(("version", "code"), [
    (None, "MissingApiVersionParameter"),
    ("2019-01-01", "NoRegisteredProviderFound"),
    ("latest", "InvalidApiVersionParameter"),
])
def test_unknown_api_versions_get_arm_errors(arm: Callable[..., requests.Response], version: str | None,
                                             code: str) -> None:
    refused = arm("GET", "/deployments", api_version=version)

    assert refused.status_code == 400
    assert _error(refused)["code"] == code
    if version is not None:
        assert SEED_ARM_VERSION in _error(refused)["message"]


def test_only_the_configured_account_exists(emulator: Any, arm: Callable[..., requests.Response],
                                            arm_client: Any) -> None:
    cfg = emulator.config
    providers = "providers/Microsoft.CognitiveServices/accounts"
    other_sub = f"{emulator.url}/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/" \
                f"{cfg.resource_group}/{providers}/{cfg.account_name}/deployments"
    other_rg = f"{emulator.url}/subscriptions/{cfg.subscription_id}/resourceGroups/elsewhere/{providers}/" \
               f"{cfg.account_name}/deployments"

    assert _error(arm("GET", other_sub, absolute=True))["code"] == "SubscriptionNotFound"
    assert _error(arm("GET", other_rg, absolute=True))["code"] == "ResourceGroupNotFound"
    with pytest.raises(ResourceNotFoundError) as missing:
        list(arm_client.deployments.list(cfg.resource_group, "another-account"))
    assert missing.value.error.code == "ResourceNotFound"
    assert "'Microsoft.CognitiveServices/accounts/another-account'" in missing.value.error.message


def test_arm_requires_a_bearer_token(emulator: Any) -> None:
    url = f"{emulator.url}{emulator.arm_account_path}/deployments?api-version={SEED_ARM_VERSION}"

    anonymous = requests.get(url, timeout=10)
    with_key = requests.get(url, headers={"api-key": emulator.config.api_key}, timeout=10)

    assert anonymous.status_code == 401 and with_key.status_code == 401
    assert _error(anonymous)["code"] == "AuthenticationFailed"


# -- account-level reads ------------------------------------------------------------------------
def test_usages_follow_deployed_capacity(
    emulator: Any,
    arm_client: Any,
    arm: Callable[..., requests.Response],
    arm_schema: Callable[[Any, str], None],
) -> None:
    _create_now(emulator, arm, "a", capacity=30)
    _create_now(emulator, arm, "b", capacity=12)
    _create_now(emulator, arm, "c", sku="GlobalStandard", capacity=5)

    account_usages = arm("GET", "/usages", api_version="2026-09-01")
    arm_schema(account_usages.json(), "UsageListResult")
    by_name = {u.name.value: u for u in arm_client.accounts.list_usages(emulator.config.resource_group,
                                                                          emulator.config.account_name).value}
    regional = {u.name.value: u for u in arm_client.usages.list(emulator.config.region)}

    assert by_name["OpenAI.Standard"].current_value == 42
    assert by_name["OpenAI.Standard"].limit == emulator.config.quota["Standard"]
    assert by_name["OpenAI.GlobalStandard"].current_value == 5
    assert regional["OpenAI.Standard"].current_value == 42


def test_account_models_list_the_catalog(emulator: Any, arm_client: Any) -> None:
    models = list(
        arm_client.accounts.list_models(emulator.config.resource_group, emulator.config.account_name)
    )

    by_key = {(m.name, m.version): m for m in models}
    for model in models:  # every key is one the published API defines (the SDK keeps others aside)
        assert not model.additional_properties, (model.name, model.additional_properties)
        assert all(not sku.additional_properties for sku in model.skus or [])
    assert by_key[("gpt-4.1", "2025-04-14")].capabilities["fineTune"] == "true"
    assert by_key[("gpt-4o", "2024-05-13")].capabilities["fineTune"] == "false"
    assert by_key[("gpt-4o", "2024-08-06")].is_default_version is True
    assert by_key[("gpt-4o", "2024-05-13")].is_default_version is False


def test_account_get(emulator: Any, arm_client: Any) -> None:
    account = arm_client.accounts.get(emulator.config.resource_group, emulator.config.account_name)

    assert account.name == emulator.config.account_name and account.kind == "OpenAI"
    assert account.properties.endpoint == emulator.url + "/"
    assert [a.name for a in arm_client.accounts.list()] == [emulator.config.account_name]
    assert [a.id for a in arm_client.accounts.list_by_resource_group(emulator.config.resource_group)] == [
        account.id
    ]


def test_deployments_using_reports_deployments_of_a_model(
        real_time: Any, real_time_arm: Callable[..., requests.Response]) -> None:
    emulator, arm = real_time, real_time_arm
    _create_now(emulator, arm, "one")
    _create_now(emulator, arm, "two", model="gpt-4o", version="2024-08-06")
    assert arm("DELETE", "/deployments/two").status_code == 202

    assert deployments_using(emulator.context, {"gpt-4.1"}) == ["one"]
    assert deployments_using(emulator.context, {"gpt-4o"}) == ["two"]  # still deleting: still in use
    _finish_operations(emulator)
    assert deployments_using(emulator.context, {"gpt-4o", "gpt-4.1"}) == ["one"]
    assert deployments_using(emulator.context, {"nothing"}) == []


def test_deployments_and_running_operations_survive_a_restart(tmp_path: Path) -> None:
    from tunekeeper.emulator import Emulator

    def put(emu: Any, name: str) -> requests.Response:
        return requests.put(f"{emu.url}{emu.arm_account_path}/deployments/{name}",
                            params={"api-version": SEED_ARM_VERSION}, json=_body(), headers=AUTH, timeout=10)

    with Emulator(data_dir=tmp_path, speed=1.0) as first:
        assert put(first, "kept").status_code == 201
    with Emulator(data_dir=tmp_path, speed=1.0) as second:
        assert put(second, "other").status_code == 409  # the create is still running after the restart
        second.clock.advance(CREATE_SECONDS)
        got = requests.get(f"{second.url}{second.arm_account_path}/deployments/kept",
                           params={"api-version": SEED_ARM_VERSION}, headers=AUTH, timeout=10)

    assert got.status_code == 200 and got.json()["properties"]["provisioningState"] == "Succeeded"
