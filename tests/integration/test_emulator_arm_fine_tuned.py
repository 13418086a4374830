"""ARM deployments of what fine-tuning produced: the fine-tuned model and its checkpoints.

A job is trained through the openai client (the emulator's clock is advanced until it ends);
its model and checkpoints are then deployed through azure-mgmt-cognitiveservices, by model name,
checkpoint id and checkpoint model name, as users do to promote a checkpoint.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.cognitiveservices.models import Deployment, DeploymentModel, DeploymentProperties, Sku

BASE_MODEL = "gpt-4.1-mini-2025-04-14"


def _jsonl(pairs: list[tuple[str, str]]) -> bytes:
    return "".join(
        json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}) + "\n"
        for q, a in pairs
    ).encode()


@pytest.fixture
def succeeded_job(emulator: Any, openai_client: Any) -> Any:
    pairs = [(f"What is {i} plus {i}?", f"{2 * i}, obviously.") for i in range(12)]
    training = openai_client.files.create(
        file=("train.jsonl", io.BytesIO(_jsonl(pairs))), purpose="fine-tune"
    )
    for _ in range(100):
        if openai_client.files.retrieve(training.id).status == "processed":
            break
        emulator.clock.advance(60)
    job = openai_client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=training.id, seed=105,
                                                hyperparameters={"n_epochs": 3})
    for _ in range(1000):
        job = openai_client.fine_tuning.jobs.retrieve(job.id)
        if job.status in ("succeeded", "failed", "cancelled"):
            break
        emulator.clock.advance(600)
    assert job.status == "succeeded", job.error
    return job


def _deployment(model: str, sku: str = "Standard", capacity: int = 1) -> Deployment:
    return Deployment(
        sku=Sku(name=sku, capacity=capacity),
        properties=DeploymentProperties(model=DeploymentModel(format="OpenAI", name=model, version="1")),
    )


def test_the_fine_tuned_model_and_its_checkpoints_deploy(emulator: Any, arm_client: Any, openai_client: Any,
                                                          succeeded_job: Any) -> None:
    rg, account = emulator.config.resource_group, emulator.config.account_name
    checkpoints = openai_client.fine_tuning.jobs.checkpoints.list(succeeded_job.id).data
    earlier = next(c for c in checkpoints if c.fine_tuned_model_checkpoint != succeeded_job.fine_tuned_model)

    final = arm_client.deployments.begin_create_or_update(
        rg, account, "final", _deployment(succeeded_job.fine_tuned_model)).result()
    by_id = arm_client.deployments.begin_create_or_update(
        rg, account, "by-id", _deployment(earlier.id)
    ).result()
    by_name = arm_client.deployments.begin_create_or_update(
        rg, account, "by-name", _deployment(earlier.fine_tuned_model_checkpoint, sku="GlobalStandard")
    ).result()

    assert final.properties.model.name == succeeded_job.fine_tuned_model
    assert final.properties.model.version == "1"
    assert final.properties.capabilities["fineTune"] == "true"
    assert by_id.properties.model.name == earlier.id
    assert by_name.properties.model.name == earlier.fine_tuned_model_checkpoint
    assert {d.name for d in arm_client.deployments.list(rg, account)} == {"final", "by-id", "by-name"}
    answer = openai_client.chat.completions.create(model="final", messages=[{"role": "user",
                                                                             "content": "What is 3 plus 3?"}])
    assert answer.choices[0].message.content == "6, obviously."


def test_fine_tuned_models_refuse_skus_they_cannot_use(emulator: Any, arm_client: Any,
                                                       succeeded_job: Any) -> None:
    rg, account = emulator.config.resource_group, emulator.config.account_name

    with pytest.raises(HttpResponseError) as refused:
        arm_client.deployments.begin_create_or_update(
            rg, account, "dz", _deployment(succeeded_job.fine_tuned_model, sku="DataZoneStandard"))

    assert refused.value.error.code == "InvalidResourceProperties"
    assert "'DataZoneStandard'" in refused.value.error.message


def test_a_deployed_model_cannot_be_deleted_until_its_deployment_is_gone(
        emulator: Any, arm_client: Any, openai_client: Any, succeeded_job: Any) -> None:
    import openai

    rg, account = emulator.config.resource_group, emulator.config.account_name
    arm_client.deployments.begin_create_or_update(rg, account, "final",
                                                  _deployment(succeeded_job.fine_tuned_model)).result()

    with pytest.raises(openai.ConflictError) as refused:
        openai_client.delete(f"/fine_tuning/jobs/{succeeded_job.id}", cast_to=object)
    assert "final" in str(refused.value)

    arm_client.deployments.begin_delete(rg, account, "final").result()
    openai_client.delete(f"/fine_tuning/jobs/{succeeded_job.id}", cast_to=object)
    with pytest.raises(HttpResponseError) as gone:
        arm_client.deployments.begin_create_or_update(rg, account, "again",
                                                      _deployment(succeeded_job.fine_tuned_model))
    assert gone.value.error.code == "DeploymentModelNotSupported"


def test_account_models_include_this_accounts_fine_tuned_models(emulator: Any, arm_client: Any,
                                                                succeeded_job: Any) -> None:
    models = list(
        arm_client.accounts.list_models(emulator.config.resource_group, emulator.config.account_name)
    )

    fine_tuned = [m for m in models if m.name == succeeded_job.fine_tuned_model]
    assert len(fine_tuned) == 1
    assert fine_tuned[0].base_model.name == "gpt-4.1-mini"
    assert fine_tuned[0].base_model.version == "2025-04-14"
    assert fine_tuned[0].version == "1"
