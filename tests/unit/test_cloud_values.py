"""Pure parts of the Azure backend: request bodies, observed values, the upload stream, connect checks.

No socket is opened: ``connect`` only builds clients, and the refusals tested here happen
before any request exists.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from azure.mgmt.cognitiveservices.models import Deployment, DeploymentModel, DeploymentProperties
from azure.mgmt.cognitiveservices.models import Sku as ArmSku
from tunekeeper.cloud import CloudSettings, DeploymentRequest, JobRequest, connect
from tunekeeper.cloud._arm import deployment_body, observed_deployment
from tunekeeper.cloud._dataplane import (
    job_body,
    observed_checkpoint,
    observed_job,
    observed_model,
)
from tunekeeper.cloud._streams import UTF8_BOM, UploadStream
from tunekeeper.errors import PermanentCloudError
from tunekeeper.resources.specs import (
    AccountSpec,
    AuthSpec,
    Hyperparameters,
    Method,
    SecretKeyRef,
    Sku,
    TrainingType,
)


# -- job bodies ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (
            JobRequest(model="gpt-4.1-mini-2025-04-14", training_file="file-a"),
            {"model": "gpt-4.1-mini-2025-04-14", "training_file": "file-a", "method": {"type": "supervised"}},
        ),
        (
            JobRequest(
                model="m",
                training_file="file-a",
                validation_file="file-v",
                seed=7,
                suffix="bot",
                hyperparameters=Hyperparameters(n_epochs=3, learning_rate_multiplier=0.1),
                training_type=TrainingType.GLOBAL,
            ),
            {
                "model": "m",
                "training_file": "file-a",
                "validation_file": "file-v",
                "seed": 7,
                "suffix": "bot",
                "method": {"type": "supervised"},
                "hyperparameters": {"n_epochs": 3, "learning_rate_multiplier": 0.1},
                "trainingType": "GlobalStandard",
            },
        ),
        (
            JobRequest(
                model="m",
                training_file="f",
                method=Method.DPO,
                hyperparameters=Hyperparameters(n_epochs=2, batch_size=4, beta=0.2),
            ),
            {
                "model": "m",
                "training_file": "f",
                "method": {
                    "type": "dpo",
                    "dpo": {"hyperparameters": {"n_epochs": 2, "batch_size": 4, "beta": 0.2}},
                },
            },
        ),
        (
            JobRequest(
                model="o4-mini",
                training_file="f",
                method=Method.REINFORCEMENT,
                hyperparameters=Hyperparameters(n_epochs=1, grader={"type": "string_check", "name": "g"}),
            ),
            {
                "model": "o4-mini",
                "training_file": "f",
                "method": {
                    "type": "reinforcement",
                    "reinforcement": {
                        "hyperparameters": {"n_epochs": 1},
                        "grader": {"type": "string_check", "name": "g"},
                    },
                },
            },
        ),
    ],
)
def test_job_body_follows_the_preview_api(request_: JobRequest, expected: dict[str, object]) -> None:
    assert job_body(request_) == expected


# -- observed values ----------------------------------------------------------------------
def test_observed_job_merges_method_hyperparameters_and_reads_azure_fields() -> None:
    job = observed_job({
        "id": "ftjob-1", "status": "failed", "model": "gpt-4.1", "training_file": "file-t", "created_at": 10,
        "hyperparameters": {"n_epochs": -1},
        "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1, "n_epochs": 2}}},
        "trainingType": "GlobalStandard", "result_files": ["file-r"],
        "error": {"code": "invalidTrainingFile", "message": "bad line 3"},
    })
    assert job.method == "dpo"
    assert job.hyperparameters == {"n_epochs": 2, "beta": 0.1}
    assert job.training_type == "GlobalStandard"
    assert job.result_files == ("file-r",)
    assert (job.error_code, job.error_message) == ("invalidTrainingFile", "bad line 3")
    assert job.fine_tuned_model is None and job.seed is None


def test_observed_checkpoint_and_model() -> None:
    checkpoint = observed_checkpoint({
        "id": "ftchkpt-1", "created_at": 5, "fine_tuned_model_checkpoint": "m.ft-1:ckpt-step-10",
        "step_number": 10, "metrics": {"full_valid_loss": 0.5, "step": 10, "note": "x"},
    }, "ftjob-1")
    assert checkpoint.job_id == "ftjob-1"
    assert checkpoint.metrics == {"full_valid_loss": 0.5, "step": 10.0}
    model = observed_model(
        {
            "id": "gpt-4.1-mini.ft-1",
            "created_at": 3,
            "model": "gpt-4.1-mini",
            "fine_tune": "ftjob-1",
            "capabilities": {"fine_tune": False, "chat_completion": True},
            "lifecycle_status": "generally-available",
        }
    )
    assert (model.base_model, model.fine_tune, model.can_chat, model.can_fine_tune) == (
        "gpt-4.1-mini", "ftjob-1", True, False)


def test_deployment_body_and_observed_deployment_round_trip() -> None:
    body = deployment_body(DeploymentRequest(
        name="bot", model_name="gpt-4.1-mini.ft-1", model_version="1", sku=Sku.GLOBAL_STANDARD, capacity=5,
        tags={"tunekeeper.io/owner": "Deployment/bot"},
    ))
    assert body.serialize() == {
        "sku": {"name": "GlobalStandard", "capacity": 5},
        "tags": {"tunekeeper.io/owner": "Deployment/bot"},
        "properties": {"model": {"format": "OpenAI", "name": "gpt-4.1-mini.ft-1", "version": "1"}},
    }
    served = Deployment.deserialize({
        "name": "bot", "etag": "\"1\"", "sku": {"name": "GlobalStandard", "capacity": 5}, "tags": {"a": "b"},
        "properties": {"provisioningState": "Succeeded",
                       "model": {"format": "OpenAI", "name": "gpt-4.1-mini.ft-1", "version": "1"}},
    })
    observed = observed_deployment(served)
    assert (observed.name, observed.sku, observed.capacity, observed.provisioning_state) == (
        "bot", "GlobalStandard", 5, "Succeeded")
    assert (observed.model_name, observed.model_version, observed.model_format) == (
        "gpt-4.1-mini.ft-1",
        "1",
        "OpenAI",
    )
    assert observed.tags == {"a": "b"} and observed.etag == "\"1\""
    bare = observed_deployment(Deployment(sku=ArmSku(name="Standard"), properties=DeploymentProperties(
        model=DeploymentModel(name="x"))))
    assert bare.provisioning_state == "Unknown" and bare.capacity is None


# -- the upload stream --------------------------------------------------------------------
def test_upload_stream_adds_a_bom_streams_in_chunks_and_rewinds(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"a": 1}\n' * 10_000)
    seen: list[tuple[int, int]] = []
    with UploadStream(
        path, add_bom=True, on_progress=lambda done, total: seen.append((done, total))
    ) as stream:
        assert stream.adds_bom and stream.size == path.stat().st_size + 3
        first = stream.read(2)
        assert first == UTF8_BOM[:2]
        rest = b"".join(iter(lambda: stream.read(4096), b""))
        assert first + rest == UTF8_BOM + path.read_bytes()
        assert seen[-1] == (stream.size, stream.size)
        assert stream.seek(0) == 0  # what httpx does before a retry
        assert stream.read(5) == UTF8_BOM + b'{"'
        assert stream.seek(0, io.SEEK_END) == stream.size


def test_upload_stream_keeps_an_existing_bom_and_adds_none_unasked(tmp_path: Path) -> None:
    with_bom = tmp_path / "a.jsonl"
    with_bom.write_bytes(UTF8_BOM + b"{}\n")
    with UploadStream(with_bom, add_bom=True) as stream:
        assert not stream.adds_bom and stream.read() == UTF8_BOM + b"{}\n"
    plain = tmp_path / "b.jsonl"
    plain.write_bytes(b"{}\n")
    with UploadStream(plain) as stream:
        assert stream.read() == b"{}\n"


# -- connect refusals ---------------------------------------------------------------------
def _account(endpoint: str, management: str, auth: AuthSpec) -> AccountSpec:
    return AccountSpec(name="prod", endpoint=endpoint, subscription_id="sub", resource_group="rg",
                       account_name="acct", management_endpoint=management, auth=auth)


@pytest.mark.parametrize(
    ("endpoint", "management", "field"),
    [
        ("http://myresource.openai.azure.com", "https://management.azure.com", "endpoint"),
        ("https://myresource.openai.azure.com", "http://management.example.com", "managementEndpoint"),
        ("http://10.0.0.5:8080", "http://10.0.0.5:8080", "endpoint"),
    ],
)
async def test_plain_http_is_refused_unless_loopback(endpoint: str, management: str, field: str) -> None:
    with pytest.raises(PermanentCloudError) as caught:
        await connect(_account(endpoint, management, AuthSpec(kind="apiKey", api_key_env="K")), api_key="k")
    assert f"{field} " in caught.value.message and "plain http" in caught.value.message
    assert caught.value.hint is not None


async def test_a_secret_key_is_refused_by_the_cli_with_a_hint() -> None:
    account = _account("https://r.openai.azure.com", "https://management.azure.com",
                       AuthSpec(kind="apiKey", api_key_secret=SecretKeyRef("azure-openai")))
    with pytest.raises(PermanentCloudError) as caught:
        await connect(account)
    assert "azure-openai" in caught.value.message and "only the operator" in caught.value.message
    assert caught.value.hint is not None and "apiKeyFromEnv" in caught.value.hint


async def test_missing_key_variable_is_named_without_any_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TK_TEST_MISSING_KEY", raising=False)
    monkeypatch.setenv("TK_TEST_OTHER_KEY", "do-not-show-this-value")
    account = _account("https://r.openai.azure.com", "https://management.azure.com",
                       AuthSpec(kind="apiKey", api_key_env="TK_TEST_MISSING_KEY"))
    with pytest.raises(PermanentCloudError) as caught:
        await connect(account)
    text = f"{caught.value.message} {caught.value.hint}"
    assert "TK_TEST_MISSING_KEY" in text
    assert "do-not-show-this-value" not in text


async def test_loopback_account_connects_with_a_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TK_TEST_KEY", "local-key")
    account = _account(
        "http://127.0.0.1:1", "http://localhost:1", AuthSpec(kind="apiKey", api_key_env="TK_TEST_KEY")
    )
    cloud = await connect(account, settings=CloudSettings(max_retries=0))
    try:
        assert cloud.request_count == 0  # building the clients sends nothing
        assert cloud.account is account
    finally:
        await cloud.close()
