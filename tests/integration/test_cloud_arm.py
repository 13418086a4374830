"""AzureCloud's ARM deployments against the real emulator over HTTP: long-running create, update
and delete, nextLink paging, per-account serialisation, RequestConflict waited out, quota
errors, and the azure-core retry policy under injected faults.

Every long-running operation costs about one second of real time: the emulator's Retry-After is
whole seconds (at least 1), and the SDK poller honours it, as it must.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.mgmt.cognitiveservices.models import Deployment, DeploymentModel, DeploymentProperties
from azure.mgmt.cognitiveservices.models import Sku as ArmSku
from tunekeeper.cloud import AzureCloud, CloudSettings, DeploymentRequest, connect
from tunekeeper.errors import NotFound, PermanentCloudError, TransientCloudError
from tunekeeper.resources.specs import Sku

from .cloud_helpers import TEST_API_KEY, account_for

FAST = CloudSettings(polling_interval=0.05, arm_retry_backoff_factor=0.05, conflict_initial_delay=0.05,
                     conflict_max_delay=0.2, conflict_timeout=30.0)
OWNER_TAGS = {"tunekeeper.io/managed-by": "tunekeeper", "tunekeeper.io/resource": "Deployment/bot"}


def base_model(name: str, *, capacity: int = 1, sku: Sku = Sku.GLOBAL_STANDARD,
               tags: dict[str, str] | None = None) -> DeploymentRequest:
    return DeploymentRequest(name=name, model_name="gpt-4.1-mini", model_version="2025-04-14", sku=sku,
                             capacity=capacity, tags=tags or {})


@pytest.fixture
def cloud_settings() -> CloudSettings:
    return FAST


@pytest.fixture
def provisioning_speed(emulator: Any) -> Iterator[Callable[[float], None]]:
    """Sets how fast the emulator provisions (Azure's durations divided by the speed), so that a
    second operation reliably arrives while the first one still holds the account; restored after."""
    original = emulator.clock.speed

    def set_speed(speed: float) -> None:
        emulator.clock.speed = speed

    try:
        yield set_speed
    finally:
        emulator.clock.speed = original


# -- the lifecycle -------------------------------------------------------------------------
async def test_create_update_and_delete_follow_the_long_running_operations(cloud: AzureCloud) -> None:
    operation = await cloud.begin_create_deployment(base_model("bot", capacity=2, tags=OWNER_TAGS))
    created = await operation.result()

    assert operation.done()
    assert created is not None
    assert (created.name, created.model_name, created.model_version, created.model_format) == (
        "bot", "gpt-4.1-mini", "2025-04-14", "OpenAI")
    assert (created.sku, created.capacity, created.provisioning_state) == ("GlobalStandard", 2, "Succeeded")
    assert created.tags == OWNER_TAGS and created.etag
    assert await cloud.get_deployment("bot") == created
    assert [d.name for d in await cloud.list_deployments()] == ["bot"]

    capacity_only = await (await cloud.begin_update_deployment("bot", capacity=5)).result()
    assert capacity_only is not None and (capacity_only.sku, capacity_only.capacity) == ("GlobalStandard", 5)
    assert capacity_only.tags == OWNER_TAGS

    retagged = await (
        await cloud.begin_update_deployment("bot", sku=Sku.STANDARD, tags={"team": "a"})
    ).result()
    assert retagged is not None and (retagged.sku, retagged.capacity, retagged.tags) == (
        "Standard",
        5,
        {"team": "a"},
    )
    assert (await cloud.get_deployment("bot")).tags == {"team": "a"}

    deleting = await cloud.begin_delete_deployment("bot")
    assert await deleting.result() is None
    with pytest.raises(NotFound) as caught:
        await cloud.get_deployment("bot")
    assert caught.value.code == "DeploymentNotFound" and caught.value.request_id
    assert await cloud.list_deployments() == []


async def test_deleting_what_is_already_gone_succeeds(cloud: AzureCloud) -> None:
    operation = await cloud.begin_delete_deployment("never-existed")
    assert await operation.result() is None
    assert operation.done()


async def test_list_deployments_follows_next_link(cloud: AzureCloud, emulator: Any, arm_client: Any) -> None:
    body = Deployment(sku=ArmSku(name="GlobalStandard", capacity=1), properties=DeploymentProperties(
        model=DeploymentModel(format="OpenAI", name="gpt-4.1-mini", version="2025-04-14")))
    names = {f"d{i:02d}" for i in range(23)}
    for name in sorted(names):  # one PUT each, finished by moving the clock instead of polling
        arm_client.deployments.begin_create_or_update(
            emulator.config.resource_group, emulator.config.account_name, name, body, polling=False)
        emulator.clock.advance(60)
    before = cloud.request_count

    listed = await cloud.list_deployments()

    assert {d.name for d in listed} == names
    assert all(d.provisioning_state == "Succeeded" for d in listed)
    assert cloud.request_count - before == 2  # pages of 20 and 3


# -- one operation at a time -----------------------------------------------------------------
async def test_operations_of_one_account_are_serialised_in_process(cloud: AzureCloud) -> None:
    first = await cloud.begin_create_deployment(base_model("one"))
    second = await cloud.begin_create_deployment(base_model("two"))  # waits for the first to finish

    assert first.done()
    results = await asyncio.gather(first.result(), second.result())
    assert [r.provisioning_state for r in results if r] == ["Succeeded", "Succeeded"]
    assert {d.name for d in await cloud.list_deployments()} == {"one", "two"}


async def test_a_request_conflict_from_another_client_is_waited_out(
    emulator: Any, provisioning_speed: Callable[[float], None],
) -> None:
    provisioning_speed(100.0)  # a base-model create holds the account for 0.3 s
    async with (
        await connect(account_for(emulator), api_key=TEST_API_KEY, settings=FAST) as first,
        await connect(account_for(emulator), api_key=TEST_API_KEY, settings=FAST) as second,
    ):
        racing = await first.begin_create_deployment(base_model("first"))
        started = second.request_count

        # 409 RequestConflict, then accepted
        waited = await second.begin_create_deployment(base_model("second"))

        assert second.request_count - started >= 2  # the refused PUT and the accepted one
        done = await asyncio.gather(racing.result(), waited.result())
        assert [d.provisioning_state for d in done if d] == ["Succeeded", "Succeeded"]
        assert {d.name for d in await first.list_deployments()} == {"first", "second"}


async def test_a_conflict_that_outlasts_the_deadline_surfaces_as_transient(
    emulator: Any, provisioning_speed: Callable[[float], None],
) -> None:
    impatient = CloudSettings(conflict_initial_delay=0.05, conflict_timeout=0.15, polling_interval=0.05)
    async with (
        await connect(account_for(emulator), api_key=TEST_API_KEY, settings=FAST) as first,
        await connect(account_for(emulator), api_key=TEST_API_KEY, settings=impatient) as second,
    ):
        provisioning_speed(1.0)  # the first create holds the account for 30 s
        await first.begin_create_deployment(base_model("slow"))

        with pytest.raises(TransientCloudError) as caught:
            await second.begin_create_deployment(base_model("blocked"))
        assert (caught.value.status_code, caught.value.code) == (409, "RequestConflict")

        provisioning_speed(1000.0)
        emulator.clock.advance(60)  # the first operation is over; the failed attempt left no lock behind
        recovered = await (await second.begin_create_deployment(base_model("blocked"))).result()
        assert recovered is not None and recovered.provisioning_state == "Succeeded"


# -- errors --------------------------------------------------------------------------------
async def test_capacity_beyond_quota_is_permanent_with_a_quota_hint(cloud: AzureCloud) -> None:
    with pytest.raises(PermanentCloudError) as caught:
        await cloud.begin_create_deployment(base_model("huge", capacity=1_000_000))
    error = caught.value
    assert (error.status_code, error.code) == (400, "InsufficientQuota")
    assert error.hint and "capacity" in error.hint
    assert error.request_id
    assert await cloud.list_deployments() == []
    # the refused request released the account's lock
    assert await (await cloud.begin_create_deployment(base_model("fits"))).result() is not None


async def test_unknown_model_is_permanent(cloud: AzureCloud) -> None:
    with pytest.raises(PermanentCloudError) as caught:
        await cloud.begin_create_deployment(
            DeploymentRequest(name="x", model_name="no-such-model", model_version="1")
        )
    assert caught.value.status_code == 400 and caught.value.code


# -- retries (azure-core's policy) ----------------------------------------------------------
async def test_throttled_arm_calls_wait_for_retry_after(cloud: AzureCloud, emulator: Any) -> None:
    emulator.faults.add("GET /subscriptions/*/deployments", status=429, retry_after=1.0, times=1)
    before = cloud.request_count
    started = time.monotonic()

    assert await cloud.list_deployments() == []

    assert time.monotonic() - started >= 1.0
    assert cloud.request_count - before == 2


async def test_server_errors_on_arm_are_retried_and_counted(cloud: AzureCloud, emulator: Any) -> None:
    emulator.faults.add("PUT /subscriptions/*/deployments/bot", status=500, times=2)
    before = cloud.request_count

    created = await (await cloud.begin_create_deployment(base_model("bot"))).result()

    assert created is not None and created.provisioning_state == "Succeeded"
    assert [d.name for d in await cloud.list_deployments()] == ["bot"]
    assert cloud.request_count - before >= 3 + 1 + 1  # 3 PUT attempts, >= 1 poll, the list


async def test_persistent_arm_errors_surface_as_transient(emulator: Any) -> None:
    emulator.faults.add("GET /subscriptions/*/deployments/*", status=500)
    settings = CloudSettings(arm_retry_total=2, arm_retry_backoff_factor=0.01)
    async with await connect(account_for(emulator), api_key=TEST_API_KEY, settings=settings) as limited:
        with pytest.raises(TransientCloudError) as caught:
            await limited.get_deployment("bot")
        assert limited.request_count == 3
    assert (caught.value.status_code, caught.value.code) == (500, "InternalServerError")
