"""The real operator (kopf's ``KopfRunner``) against an in-memory Kubernetes API and the Azure emulator.

No Kubernetes cluster exists where these tests run: the Kubernetes API is kmock's in-memory
emulator (``kube_helpers.KubeApi``), Azure is the project's emulator (trains in a blink at its
test speed), and the operator is the one the image runs, with its handlers, finalizers, status
and events. The custom resources are the example CRs of ``manifests/cluster``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

# kopf fixes timer intervals when the handlers are imported: the environment must say so first
os.environ["TUNEKEEPER_INTERVAL"] = "1"
os.environ["TUNEKEEPER_FAST_CLOUD"] = "1"

from kopf.testing import KopfRunner

from .kube_helpers import KubeApi, condition, wait_for

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "manifests" / "cluster"
TEST_API_KEY = "test-key"  # the session emulator's key (tests/conftest.py)
HANDLERS = "tunekeeper.operator.handlers"


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((CLUSTER / name).read_text()) if d]


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubeApi]:
    api = KubeApi().start()
    try:
        monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(tmp_path)))
        yield api
    finally:
        api.stop()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The operator's data folder; namespace default holds a copy of the clippy example."""
    data = tmp_path / "data"
    shutil.copytree(REPO / "manifests" / "examples" / "clippy", data / "default" / "clippy")
    monkeypatch.setenv("TUNEKEEPER_DATA_DIR", str(data))
    monkeypatch.setenv("TUNEKEEPER_CLUSTER_NAME", "test")
    return data


def account(emulator: Any) -> dict[str, Any]:
    """The Account of manifests/cluster/account-emulator.yaml, pointed at this test's emulator."""
    (doc,) = documents("account-emulator.yaml")
    doc["spec"].update(
        endpoint=emulator.url,
        managementEndpoint=emulator.url,
        subscriptionId=emulator.config.subscription_id,
        resourceGroup=emulator.config.resource_group,
        accountName=emulator.config.account_name,
    )
    doc["spec"]["auth"] = {"apiKeyFromSecret": {"name": "azure-openai", "key": "apiKey"}}
    return doc


def operator(*extra: str) -> KopfRunner:
    """The operator as ``kopf run`` starts it, cluster-wide (kmock 0.8 misreads the namespace list path)."""
    return KopfRunner(["run", "--all-namespaces", *extra, "-m", HANDLERS], timeout=60)


def ready(kube: KubeApi, kind: str, name: str) -> dict[str, Any] | None:
    obj = kube.get(kind, name)
    return obj if condition(obj, "Ready").get("status") == "True" else None


@pytest.mark.slow
def test_operator_trains_deploys_switches_and_cleans_up(
    kube: KubeApi, data_dir: Path, emulator: Any, openai_client: Any
) -> None:
    # given: the operator, an Account whose key is in a Secret, and the clippy example's resources
    kube.secret("azure-openai", {"apiKey": TEST_API_KEY})
    kube.apply(account(emulator))
    job, deployment = documents("clippy.yaml")
    kept = {
        **deployment,
        "metadata": {"name": "clippy-kept"},
        "spec": {**deployment["spec"], "deletionPolicy": "Retain"},
    }
    with operator("--standalone") as runner:
        # when: the custom resources are created
        for doc in (job, deployment, kept):
            kube.apply(doc)

        # then: the job trains, its status fills in and the deployment answers chat
        trained = wait_for(lambda: ready(kube, "FineTuneJob", "clippy"), what="FineTuneJob clippy Ready")
        status = trained["status"]
        assert status["jobId"].startswith("ftjob-") and status["jobStatus"] == "succeeded"
        assert status["fineTunedModel"] and len(status["checkpoints"]) == 3
        assert status["metrics"]["final"]["train_loss"] > 0
        assert condition(trained, "DataValidated")["status"] == "True"
        assert condition(trained, "Succeeded")["reason"] == "TrainingSucceeded"
        assert condition(trained, "Degraded")["status"] == "False"
        assert all(c["observedGeneration"] == 1 and c["lastTransitionTime"] for c in status["conditions"])
        serving = wait_for(lambda: ready(kube, "Deployment", "clippy"), what="Deployment clippy Ready")
        assert serving["status"]["deployment"]["model"] == status["fineTunedModel"]
        assert condition(serving, "Progressing")["status"] == "False"
        answer = openai_client.chat.completions.create(
            model="clippy", messages=[{"role": "user", "content": "What is the capital of France?"}]
        )
        assert answer.choices[0].message.content
        reasons = {e.get("reason") for e in kube.events()}
        assert {"UploadFile", "CreateJob", "CreateDeployment"} <= reasons, reasons
        jobs = [j for j in openai_client.fine_tuning.jobs.list() if j.suffix == "clippy"]
        assert len(jobs) == 1

        # when: the Deployment is edited to serve epoch 2's checkpoint, then the model switches
        kube.patch_spec("Deployment", "clippy", {"model": {"fromJob": "clippy", "checkpoint": 2}})
        epoch2 = next(c for c in status["checkpoints"] if c["epoch"] == 2)

        def switched() -> dict[str, Any] | None:
            obj = kube.get("Deployment", "clippy")
            dep = ((obj or {}).get("status") or {}).get("deployment") or {}
            gen_ok = condition(obj, "Ready").get("observedGeneration") == 2
            return (
                obj
                if dep.get("model") == epoch2["id"] and gen_ok and ready(kube, "Deployment", "clippy")
                else None
            )

        after = wait_for(switched, what="Deployment clippy serving epoch 2")
        assert after["status"]["serving"].startswith("epoch 2")
        assert (
            openai_client.chat.completions.create(
                model="clippy", messages=[{"role": "user", "content": "Hi"}]
            )
            .choices[0]
            .message.content
        )

        # when: a change that needs a new (paid) training run is made without allowReplacement,
        # then the job says so, naming the field, its Deployment waits, and nothing is trained or deleted
        kube.patch_spec("FineTuneJob", "clippy", {"seed": 7})
        refused = wait_for(
            lambda: (
                condition(kube.get("FineTuneJob", "clippy"), "Ready").get("reason") == "ReplacementNotAllowed"
                and condition(kube.get("Deployment", "clippy"), "Ready").get("reason") == "DependencyFailed"
                and kube.get("FineTuneJob", "clippy")
            ),
            what="ReplacementNotAllowed on the job and DependencyFailed on its Deployment",
        )
        assert "spec.seed" in condition(refused, "Ready")["message"]
        assert len([j for j in openai_client.fine_tuning.jobs.list() if j.suffix == "clippy"]) == 1
        assert "clippy" in {d["name"] for d in emulator_deployments(emulator)}
        kube.patch_spec("FineTuneJob", "clippy", {"seed": 105})
        wait_for(
            lambda: ready(kube, "FineTuneJob", "clippy") and ready(kube, "Deployment", "clippy"),
            what="both Ready again once the seed is back",
        )

        # when: the Deployments are deleted, their finalizers clean up by policy
        kube.delete("Deployment", "clippy")
        kube.delete("Deployment", "clippy-kept")
        wait_for(
            lambda: (
                kube.get("Deployment", "clippy") is None and kube.get("Deployment", "clippy-kept") is None
            ),
            what="both Deployment resources gone",
        )
        names = {d["name"] for d in emulator_deployments(emulator)}
        assert "clippy" not in names and "clippy-kept" in names  # Delete deletes, Retain keeps

        # and the FineTuneJob goes too (no resource uses it any more)
        kube.delete("FineTuneJob", "clippy")
        wait_for(lambda: kube.get("FineTuneJob", "clippy") is None, what="FineTuneJob clippy gone")
        assert [j.status for j in openai_client.fine_tuning.jobs.list() if j.suffix == "clippy"] == [
            "succeeded"
        ]
        # its model stays while the retained deployment serves it; once that one is removed by hand,
        # gc deletes the model, then its data files (the Account's timer keeps the namespace reconciled)
        model = status["fineTunedModel"]
        assert model in {m.id for m in openai_client.models.list()}
        requests.delete(
            deployment_url(emulator, "clippy-kept"), headers={"Authorization": "Bearer test"}, timeout=10
        )
        wait_for(
            lambda: (
                model not in {m.id for m in openai_client.models.list()}
                and not [f for f in openai_client.files.list().data if f.filename.startswith("tk-")]
            ),
            what="the unused model and data files collected",
        )
    assert runner.exception is None, runner.output


def deployment_url(emulator: Any, name: str = "") -> str:
    c = emulator.config
    return (
        f"{emulator.url}/subscriptions/{c.subscription_id}/resourceGroups/{c.resource_group}/providers/"
        f"Microsoft.CognitiveServices/accounts/{c.account_name}/deployments{'/' + name if name else ''}"
        "?api-version=2024-10-01"
    )


def emulator_deployments(emulator: Any) -> list[dict[str, Any]]:
    response = requests.get(deployment_url(emulator), headers={"Authorization": "Bearer test"}, timeout=10)
    response.raise_for_status()
    value: list[dict[str, Any]] = response.json()["value"]
    return value


def test_invalid_resources_get_ready_false_naming_the_field_or_line(
    kube: KubeApi, data_dir: Path, emulator: Any, openai_client: Any
) -> None:
    kube.secret("azure-openai", {"apiKey": TEST_API_KEY})
    kube.apply(account(emulator))
    job, _ = documents("clippy.yaml")
    bad_spec = {
        **job,
        "metadata": {"name": "bad-epochs"},
        "spec": {**job["spec"], "method": {"type": "supervised", "hyperparameters": {"n_epochs": 0}}},
    }
    training = (data_dir / "default" / "clippy" / "data" / "training.jsonl").read_text().splitlines()
    kube.config_map("bad-data", {"training.jsonl": "\n".join([training[0], '{"messages": "not a list"}'])})
    bad_data = {
        **job,
        "metadata": {"name": "bad-data"},
        "spec": {**job["spec"], "trainingFile": "configmap:bad-data/training.jsonl", "suffix": "bad-data"},
    }
    bad_data["spec"].pop("validationFile")
    # an eval gate file is checked by the same rules as `tunekeeper validate` before anything is deployed
    good_eval = '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}'
    kube.config_map("bad-eval", {"eval.jsonl": good_eval + '\n{"messages": "not a list"}'})
    bad_eval = {
        "apiVersion": job["apiVersion"],
        "kind": "Deployment",
        "metadata": {"name": "bad-eval"},
        "spec": {
            "model": {"name": "gpt-4.1-mini", "version": "2025-04-14"},
            "sku": {"name": "Standard", "capacity": 1},
            "gates": {"evalFile": "configmap:bad-eval/eval.jsonl"},
        },
    }
    with operator("--standalone") as runner:
        kube.apply(bad_spec)
        kube.apply(bad_data)
        kube.apply(bad_eval)
        spec_ready = wait_for(
            lambda: condition(kube.get("FineTuneJob", "bad-epochs"), "Ready") or None,
            what="bad-epochs Ready condition",
        )
        data_ready = wait_for(
            lambda: condition(kube.get("FineTuneJob", "bad-data"), "DataValidated") or None,
            what="bad-data DataValidated condition",
        )
        eval_ready = wait_for(
            lambda: condition(kube.get("Deployment", "bad-eval"), "Ready") or None,
            what="bad-eval Ready condition",
        )
    assert runner.exception is None, runner.output
    assert spec_ready["status"] == "False" and spec_ready["reason"] == "InvalidSpec"
    assert "spec.method.hyperparameters.n_epochs" in spec_ready["message"]
    assert data_ready["status"] == "False" and data_ready["reason"] == "InvalidData"
    assert "configmap:bad-data/training.jsonl:2" in data_ready["message"], data_ready["message"]
    assert eval_ready["status"] == "False" and eval_ready["reason"] == "InvalidData", eval_ready
    assert "configmap:bad-eval/eval.jsonl:2" in eval_ready["message"], eval_ready["message"]
    assert openai_client.files.list().data == []  # nothing was uploaded
    assert list(openai_client.fine_tuning.jobs.list()) == []


@pytest.mark.slow
def test_two_replicas_create_one_job(
    kube: KubeApi, data_dir: Path, emulator: Any, openai_client: Any
) -> None:
    """kopf peering: the replica with the lower priority pauses while the other works."""
    kube.apply(
        {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "tunekeeper"}}
    )
    kube.secret("azure-openai", {"apiKey": TEST_API_KEY})
    kube.apply(account(emulator))
    job, _ = documents("clippy.yaml")
    with (
        operator("--peering", "tunekeeper", "--priority", "100") as first,
        operator("--peering", "tunekeeper", "--priority", "200") as second,
    ):
        wait_for(
            lambda: len((kube.get("ClusterKopfPeering", "tunekeeper") or {}).get("status") or {}) >= 2,
            what="both replicas in the peering object",
        )
        # the lower replica pauses when its peering watch delivers the other's record: give the
        # in-memory API's watch stream a moment to do so (real time: two operator threads)
        time.sleep(1.0)
        kube.apply(job)
        wait_for(lambda: ready(kube, "FineTuneJob", "clippy"), what="FineTuneJob clippy Ready")
        jobs = [j for j in openai_client.fine_tuning.jobs.list() if j.suffix == "clippy"]
    assert len(jobs) == 1, [j.id for j in jobs]
    assert first.exception is None and second.exception is None


@pytest.mark.slow
def test_throttling_is_degraded_then_retried_after_retry_after(
    kube: KubeApi, data_dir: Path, emulator: Any, openai_client: Any
) -> None:
    """Azure throttles every listing: the run reports Degraded (CloudUnavailable), retries, and recovers.

    The training data comes from a ConfigMap this time (``configmap:NAME/KEY``)."""
    kube.secret("azure-openai", {"apiKey": TEST_API_KEY})
    kube.apply(account(emulator))
    folder = data_dir / "default" / "clippy" / "data"
    kube.config_map(
        "clippy-data", {name: (folder / name).read_text() for name in ("training.jsonl", "validation.jsonl")}
    )
    job, _ = documents("clippy.yaml")
    job["spec"].update(
        trainingFile="configmap:clippy-data/training.jsonl",
        validationFile="configmap:clippy-data/validation.jsonl",
    )
    shutil.rmtree(data_dir / "default" / "clippy")  # nothing on the data volume: the ConfigMap is the source
    rule = emulator.faults.add("GET /openai/files", status=429, retry_after=0.05)
    with operator("--standalone") as runner:
        kube.apply(job)
        throttled = wait_for(
            lambda: (
                condition(kube.get("FineTuneJob", "clippy"), "Degraded").get("reason") == "CloudUnavailable"
                and kube.get("FineTuneJob", "clippy")
            ),
            what="Degraded CloudUnavailable",
        )
        assert "retrying" in condition(throttled, "Degraded")["message"]
        emulator.faults.remove(rule)
        wait_for(
            lambda: ready(kube, "FineTuneJob", "clippy"), what="FineTuneJob clippy Ready after throttling"
        )
    assert condition(kube.get("FineTuneJob", "clippy"), "Degraded")["status"] == "False"
    assert runner.exception is None, runner.output
