"""Several accounts on one emulator server, and cross-account deployment of a fine-tuned model.

Given an emulator serving a dev account (the default subscription) and a prod account (another
subscription, another region), driven through the official openai and azure-mgmt clients:
each account has its own data plane and ARM path and keeps its state apart; a model trained in
dev deploys in prod with ``properties.model.source`` (Azure's cross-region / cross-subscription
deployment) and answers chat there; the errors Azure gives for a bad source come back.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
from azure.mgmt.cognitiveservices.models import Deployment, DeploymentModel, DeploymentProperties, Sku
from openai import AzureOpenAI, ConflictError, NotFoundError
from tunekeeper.cloud.loopback import AllowHttpForLoopback, StaticTokenCredential
from tunekeeper.emulator import Emulator
from tunekeeper.emulator.context import AccountConfig, EmulatorConfig

from .test_emulator_arm import arm_definitions, arm_schema  # noqa: F401 -- the published ARM schema fixtures

KEY = "accounts-key"
API_VERSION = "2025-04-01-preview"
PROD_SUBSCRIPTION = "11111111-1111-1111-1111-111111111111"
BASE_MODEL = "gpt-4.1-mini-2025-04-14"


@pytest.fixture(scope="module")
def _server() -> Iterator[Emulator]:
    config = EmulatorConfig(api_key=KEY, speed=1000.0, accounts=(
        AccountConfig("prod-ft", PROD_SUBSCRIPTION, "rg-prod", "eastus2"),))
    with Emulator(config=config) as emu:
        yield emu


@pytest.fixture
def emu(_server: Emulator) -> Iterator[Emulator]:
    _server.reset()
    yield _server
    _server.reset()


def _openai(url: str) -> AzureOpenAI:
    return AzureOpenAI(azure_endpoint=url, api_key=KEY, api_version=API_VERSION, max_retries=0)


def _arm(emu: Emulator, subscription: str) -> CognitiveServicesManagementClient:
    return CognitiveServicesManagementClient(credential=StaticTokenCredential(), subscription_id=subscription,
                                             base_url=emu.url, per_call_policies=[AllowHttpForLoopback()],
                                             polling_interval=0)


def _train(emu: Emulator, client: AzureOpenAI) -> Any:
    pairs = [(f"What is the capital of country number {i}?", f"Capital {i}, of course.") for i in range(12)]
    data = "".join(
        json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}) + "\n"
        for q, a in pairs
    ).encode()
    training = client.files.create(file=("train.jsonl", io.BytesIO(data)), purpose="fine-tune")
    while client.files.retrieve(training.id).status != "processed":
        emu.clock.advance(60)
    job = client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=training.id, seed=7,
                                         hyperparameters={"n_epochs": 2})
    while job.status not in ("succeeded", "failed", "cancelled"):
        emu.clock.advance(600)
        job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded", job.error
    return job


def _deployment(model: str, source: str | None = None) -> Deployment:
    return Deployment(sku=Sku(name="Standard", capacity=1), properties=DeploymentProperties(
        model=DeploymentModel(format="OpenAI", name=model, version="1", source=source)))


def test_each_account_has_its_own_data_plane_and_state(emu: Emulator) -> None:
    dev, prod = _openai(emu.url), _openai(emu.account_url("prod-ft"))
    assert emu.account_url("prod-ft") == emu.url + "/accounts/prod-ft"

    uploaded = prod.files.create(file=("a.jsonl", io.BytesIO(b'{"messages": []}\n')), purpose="fine-tune")

    assert [f.id for f in prod.files.list()] == [uploaded.id]
    assert list(dev.files.list()) == []
    with pytest.raises(NotFoundError):
        dev.files.retrieve(uploaded.id)
    created = httpx.post(f"{emu.account_url('prod-ft')}/openai/files?api-version={API_VERSION}",
                         headers={"api-key": KEY}, files={"file": ("b.jsonl", b"{}\n")},
                         data={"purpose": "fine-tune"})
    assert created.headers["Location"].startswith(emu.account_url("prod-ft") + "/openai/files/")
    unknown = httpx.get(
        f"{emu.url}/accounts/nobody/openai/files?api-version={API_VERSION}", headers={"api-key": KEY}
    )
    assert unknown.status_code == 404


def test_each_account_has_its_own_arm_path(emu: Emulator) -> None:
    dev_arm, prod_arm = _arm(emu, emu.config.subscription_id), _arm(emu, PROD_SUBSCRIPTION)

    prod = prod_arm.accounts.get("rg-prod", "prod-ft")
    prod_arm.deployments.begin_create_or_update(
        "rg-prod",
        "prod-ft",
        "base",
        Deployment(
            sku=Sku(name="Standard", capacity=1),
            properties=DeploymentProperties(
                model=DeploymentModel(format="OpenAI", name="gpt-4.1", version="2025-04-14")
            ),
        ),
    ).result()

    assert prod.properties.endpoint == emu.account_url("prod-ft") + "/"
    assert prod.location == "eastus2"
    assert [a.name for a in prod_arm.accounts.list()] == ["prod-ft"]
    assert [d.name for d in prod_arm.deployments.list("rg-prod", "prod-ft")] == ["base"]
    assert list(dev_arm.deployments.list(emu.config.resource_group, emu.config.account_name)) == []
    with pytest.raises(ResourceNotFoundError) as wrong_group:
        prod_arm.deployments.list("rg-dev", "prod-ft").next()
    assert wrong_group.value.error is not None and wrong_group.value.error.code == "ResourceGroupNotFound"
    with pytest.raises(ResourceNotFoundError) as wrong_name:
        prod_arm.accounts.get("rg-prod", "prod-other")
    assert wrong_name.value.error is not None and wrong_name.value.error.code == "ResourceNotFound"


def test_a_model_trained_in_one_account_is_deployed_and_served_from_another(emu: Emulator) -> None:
    dev = _openai(emu.url)
    job = _train(emu, dev)
    source = (f"/subscriptions/{emu.config.subscription_id}/resourceGroups/{emu.config.resource_group}"
              f"/providers/Microsoft.CognitiveServices/accounts/{emu.config.account_name}")
    prod_arm = _arm(emu, PROD_SUBSCRIPTION)

    served = prod_arm.deployments.begin_create_or_update(
        "rg-prod", "prod-ft", "support", _deployment(job.fine_tuned_model, source)).result()
    answer = _openai(emu.account_url("prod-ft")).chat.completions.create(
        model="support", messages=[{"role": "user", "content": "What is the capital of country number 3?"}])

    assert served.properties.provisioning_state == "Succeeded"
    assert served.properties.model.source == source
    assert answer.choices[0].message.content == "Capital 3, of course."
    with pytest.raises(ConflictError, match="prod-ft/support"):
        dev.delete(f"/fine_tuning/jobs/{job.id}", cast_to=object)


def test_the_cross_account_deployment_matches_the_published_schema(emu: Emulator,
                                                                   request: pytest.FixtureRequest) -> None:
    check = request.getfixturevalue("arm_schema")  # skips when the published documents are absent
    job = _train(emu, _openai(emu.url))
    _arm(emu, PROD_SUBSCRIPTION).deployments.begin_create_or_update(
        "rg-prod", "prod-ft", "support", _deployment(job.fine_tuned_model, emu.context.resource_id)).result()

    body = httpx.get(f"{emu.url}/subscriptions/{PROD_SUBSCRIPTION}/resourceGroups/rg-prod/providers/"
                     "Microsoft.CognitiveServices/accounts/prod-ft/deployments/support?api-version=2026-09-01",
                     headers={"Authorization": "Bearer t"}).json()

    assert body["properties"]["model"]["source"] == emu.context.resource_id
    check(body, "Deployment")  # DeploymentModel.source is a published field


@pytest.mark.parametrize(("source", "code"), [
    ("not-an-arm-id", "LinkedInvalidPropertyId"),
    (("/subscriptions/99999999-9999-9999-9999-999999999999/resourceGroups/rg/providers/"
     "Microsoft.CognitiveServices/accounts/nowhere"), "InvalidResourceProperties"),
    ((f"/subscriptions/{PROD_SUBSCRIPTION}/resourceGroups/rg-prod/providers/Microsoft.CognitiveServices/"
     "accounts/prod-ft"), "DeploymentModelNotSupported"),
    (None, "DeploymentModelNotSupported"),
])
def test_a_bad_source_is_refused_as_azure_refuses_it(emu: Emulator, source: str | None, code: str) -> None:
    job = _train(emu, _openai(emu.url))

    with pytest.raises(HttpResponseError) as refused:
        _arm(emu, PROD_SUBSCRIPTION).deployments.begin_create_or_update(
            "rg-prod", "prod-ft", "support", _deployment(job.fine_tuned_model, source)).result()

    assert refused.value.status_code == 400
    assert refused.value.error is not None and refused.value.error.code == code
    assert list(_arm(emu, PROD_SUBSCRIPTION).deployments.list("rg-prod", "prod-ft")) == []


def test_accounts_added_at_run_time_are_kept_across_restarts(tmp_path: Path) -> None:
    with Emulator(config=EmulatorConfig(api_key=KEY, speed=1000.0, data_dir=tmp_path)) as first:
        added = httpx.post(
            f"{first.url}/_emulator/accounts", json={"accountName": "staging", "region": "westus"}
        )
        again = httpx.post(
            f"{first.url}/_emulator/accounts", json={"accountName": "staging", "region": "westus"}
        )
        clash = httpx.post(f"{first.url}/_emulator/accounts",
                           json={"accountName": "STAGING", "resourceGroup": "elsewhere"})
        uploaded = _openai(first.account_url("staging")).files.create(
            file=("a.jsonl", io.BytesIO(b"{}\n")), purpose="fine-tune")

    with Emulator(config=EmulatorConfig(api_key=KEY, speed=1000.0, data_dir=tmp_path)) as second:
        listed = httpx.get(f"{second.url}/_emulator/accounts").json()["accounts"]
        kept = _openai(second.account_url("staging")).files.retrieve(uploaded.id)
        second.reset()
        after_reset = [
            a["accountName"] for a in httpx.get(f"{second.url}/_emulator/accounts").json()["accounts"]
        ]

    assert (added.status_code, again.status_code, clash.status_code) == (201, 200, 409)
    assert added.json()["endpoint"] == f"{first.url}/accounts/staging"
    assert [(a["accountName"], a["region"]) for a in listed] == [
        ("emulator", "swedencentral"),
        ("staging", "westus"),
    ]
    assert kept.id == uploaded.id
    assert after_reset == ["emulator", "staging"]


async def test_the_cloud_layer_deploys_a_model_of_another_account(emu: Emulator,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from tunekeeper.cloud import connect
    from tunekeeper.cloud.base import DeploymentRequest
    from tunekeeper.resources.specs import AccountSpec, AuthSpec

    monkeypatch.setenv("TUNEKEEPER_ACCOUNTS_KEY", KEY)
    job = _train(emu, _openai(emu.url))
    prod_spec = AccountSpec(
        name="prod",
        endpoint=emu.account_url("prod-ft"),
        management_endpoint=emu.url,
        subscription_id=PROD_SUBSCRIPTION,
        resource_group="rg-prod",
        account_name="prod-ft",
        auth=AuthSpec(kind="apiKey", api_key_env="TUNEKEEPER_ACCOUNTS_KEY"),
    )
    source = emu.context.resource_id
    prod = await connect(prod_spec)
    try:
        operation = await prod.begin_create_deployment(DeploymentRequest(
            name="support", model_name=job.fine_tuned_model, model_version="1", source=source))
        deployed = await operation.result()
        listed = await prod.list_deployments()
        answer = await prod.chat(
            "support", [{"role": "user", "content": "What is the capital of country number 5?"}]
        )
    finally:
        await prod.close()

    assert deployed is not None and deployed.model_source == source
    assert [(d.name, d.model_name, d.model_source) for d in listed] == [
        ("support", job.fine_tuned_model, source)
    ]
    assert answer == "Capital 5, of course."
