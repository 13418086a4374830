"""The operator's pure parts: status conditions by Kubernetes conventions, data-source references,
manifest labels and who still uses a resource (table-driven, no sockets)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tunekeeper.operator.settings import OperatorSettings
from tunekeeper.operator.stack import Resource, Stack, configmap_ref, label_of
from tunekeeper.operator.status import (
    camel,
    failure_conditions,
    resource_status,
    run_conditions,
    settle_conditions,
)
from tunekeeper.reconcile import (
    Action,
    ActionKind,
    Blocked,
    Condition,
    Plan,
    Reason,
    ResourceKey,
    ResourceStatus,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
T1 = datetime(2026, 1, 1, 13, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "reason"), [("wait_job", "WaitJob"), ("JOB_FAILED", "JobFailed"), ("gate failed", "GateFailed")]
)
def test_reasons_are_one_camel_case_word(text: str, reason: str) -> None:
    assert camel(text) == reason


def test_every_condition_of_the_kind_is_written_on_the_first_visit() -> None:
    out = settle_conditions(
        "FineTuneJob", (), [Condition("Ready", "False", "NotCreated", "No job yet.")], 3, T0
    )
    assert [c["type"] for c in out] == ["DataValidated", "Succeeded", "Progressing", "Degraded", "Ready"]
    assert {c["status"] for c in out if c["type"] != "Ready"} == {"Unknown"}
    assert all(
        c["observedGeneration"] == 3 and c["lastTransitionTime"] == "2026-01-01T12:00:00Z" for c in out
    )


def test_transition_time_moves_only_when_status_flips() -> None:
    first = settle_conditions(
        "Deployment", (), [Condition("Ready", "False", "Provisioning", "Creating.")], 1, T0
    )
    previous = tuple(Condition.from_dict(c) for c in first)
    same = settle_conditions(
        "Deployment", previous, [Condition("Ready", "False", "Updating", "Other.")], 2, T1
    )
    flipped = settle_conditions("Deployment", previous, [Condition("Ready", "True", "Serving", "Up.")], 2, T1)
    ready = {c["type"]: c for c in same}["Ready"]
    assert ready["lastTransitionTime"] == "2026-01-01T12:00:00Z" and ready["reason"] == "Updating"
    assert {c["type"]: c for c in flipped}["Ready"]["lastTransitionTime"] == "2026-01-01T13:00:00Z"


def row(kind: str = "FineTuneJob", ready: str = "False") -> ResourceStatus:
    return ResourceStatus(
        kind=kind,
        name="bot",
        account="prod",
        conditions=(Condition("Ready", ready, "TrainingRunning", "Epoch 1 of 3 finished."),),
        job_id="ftjob-1",
        job_status="running",
    )


def action(kind: ActionKind, target: ResourceKey, reason: Reason) -> Action:
    """An action with what apply would need left empty (the operator reads only kind and target)."""
    required = {f.name: None for f in dataclasses.fields(Action) if f.default is dataclasses.MISSING}
    return Action(**{**required, "kind": kind, "target": target, "reason": reason})


def plan(*actions: Action, blocked: tuple[Blocked, ...] = ()) -> Plan:
    return Plan("1", "fp", actions, blocked)


@pytest.mark.parametrize(
    ("remaining", "errors", "degraded", "progressing"),
    [
        (
            plan(action(ActionKind.WAIT_JOB, ResourceKey("FineTuneJob", "bot"), Reason.JOB_RUNNING)),
            {},
            ("False", "AsExpected"),
            ("True", "TrainingRunning"),
        ),
        (plan(), {}, ("False", "AsExpected"), ("False", "Settled")),
        (
            plan(
                blocked=(
                    Blocked(ResourceKey("FineTuneJob", "bot"), Reason.JOB_FAILED, "Job failed: bad data."),
                )
            ),
            {},
            ("True", "JobFailed"),
            ("False", "Stopped"),
        ),
        (plan(), {"FineTuneJob/bot": "quota exceeded"}, ("True", "CloudError"), ("False", "Stopped")),
        (
            plan(action(ActionKind.WAIT_JOB, ResourceKey("FineTuneJob", "other"), Reason.JOB_RUNNING)),
            {},
            ("False", "AsExpected"),
            ("False", "Settled"),
        ),
    ],
)
def test_progressing_and_degraded_come_from_the_last_plan(
    remaining: Plan,
    errors: dict[str, str],
    degraded: tuple[str, str],
    progressing: tuple[str, str],
) -> None:
    found = {
        c.type: (c.status, c.reason) for c in run_conditions("FineTuneJob", "bot", row(), remaining, errors)
    }
    assert found == {"Degraded": degraded, "Progressing": progressing}


def test_status_fields_are_spelled_as_kubernetes_does_and_none_clears() -> None:
    status = resource_status("FineTuneJob", row())
    assert status["jobId"] == "ftjob-1" and status["jobStatus"] == "running" and status["account"] == "prod"
    assert status["fineTunedModel"] is None and status["metrics"] is None and status["checkpoints"] == []
    assert resource_status("Deployment", row("Deployment"))["deployment"] is None


def test_a_failed_resource_is_not_ready_degraded_and_stopped() -> None:
    found = {
        c.type: c
        for c in failure_conditions("FineTuneJob", "InvalidData", "training.jsonl:2: bad.", data=True)
    }
    assert found["Ready"].status == "False" and found["Degraded"].status == "True"
    assert found["DataValidated"].reason == "InvalidData" and found["Progressing"].status == "False"
    assert [c.type for c in failure_conditions("Account", "CredentialsMissing", "No Secret.")] == ["Ready"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("configmap:support-data/training.jsonl", ("support-data", "training.jsonl")),
        ("configmap:a.b/x_y-z.jsonl", ("a.b", "x_y-z.jsonl")),
        ("configmap:Bad/x.jsonl", None),
        ("configmap:a/../x", None),
        ("configmap:a/..", None),
        ("configmap:a/b/c", None),
        ("data/training.jsonl", None),
        ("https://example.com/t.jsonl", None),
    ],
)
def test_configmap_references(value: str, expected: tuple[str, str] | None) -> None:
    assert configmap_ref(value) == expected


def resource(kind: str, name: str, spec: dict[str, object], *, deleting: bool = False) -> Resource:
    meta: dict[str, object] = {"name": name, "namespace": "ml", "uid": f"uid-{name}"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return Resource(kind, {"metadata": meta, "spec": spec})


def test_the_label_names_cluster_namespace_kind_name_and_uid() -> None:
    settings = OperatorSettings(data_dir=Path("/data"), cluster_name="west")
    assert label_of(settings, resource("Deployment", "bot", {})) == "k8s/west/ml/Deployment/bot/uid-bot"


def test_a_resource_in_use_names_its_users() -> None:
    account = resource("Account", "prod", {})
    parent = resource("FineTuneJob", "base", {"baseModel": "gpt-4.1"})
    child = resource("FineTuneJob", "child", {"fromJob": "base"})
    deployment = resource("Deployment", "bot", {"model": {"fromJob": "child"}})
    leaving = resource("Deployment", "old", {"model": {"fromJob": "base"}}, deleting=True)
    everything = [account, parent, child, deployment, leaving]
    assert Stack.users_of(everything, parent) == [
        "FineTuneJob/child"
    ]  # the leaving Deployment does not count
    assert Stack.users_of(everything, child) == ["Deployment/bot"]
    assert Stack.users_of(everything, account) == ["Deployment/bot", "FineTuneJob/base", "FineTuneJob/child"]
    assert Stack.users_of(everything, deployment) == []
