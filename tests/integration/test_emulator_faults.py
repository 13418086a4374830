"""Fault injection in the emulator, as the official clients and their retry policies meet it.

Rules are added from Python (``emulator.faults.add``), over HTTP (``/_emulator/faults``) and
from a file given at start (``Emulator(faults_file=...)``). The clients are the real ones: the
``openai`` AzureOpenAI client with its own retries and ``azure-mgmt-cognitiveservices`` with
azure-core's RetryPolicy. Assertions are on what the caller sees and on the rule set.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests
from openai import AzureOpenAI
from tunekeeper.cloud.loopback import DEV_TOKEN
from tunekeeper.emulator import Emulator
from tunekeeper.emulator.faults import Faults
from tunekeeper.errors import ManifestError

ARM_VERSION = "2025-09-01"
DATAPLANE_API_VERSION = "2025-04-01-preview"
TEST_API_KEY = "test-key"  # the key the shared emulator fixture is started with (tests/conftest.py)


@pytest.fixture
def retrying_openai(emulator: Any) -> Iterator[AzureOpenAI]:
    """An AzureOpenAI client that retries, as users run it."""
    client = AzureOpenAI(azure_endpoint=emulator.url, api_key=TEST_API_KEY, api_version=DATAPLANE_API_VERSION,
                         max_retries=3)
    yield client
    client.close()


def _files_url(emulator: Any) -> str:
    return f"{emulator.url}/openai/files?api-version={DATAPLANE_API_VERSION}"


def _get_files(emulator: Any) -> requests.Response:
    return requests.get(_files_url(emulator), headers={"api-key": TEST_API_KEY}, timeout=10)


def _arm_list_url(emulator: Any) -> str:
    return f"{emulator.url}{emulator.arm_account_path}/deployments?api-version={ARM_VERSION}"


# -- throttling and server errors ----------------------------------------------------------------
def test_openai_retries_honour_retry_after_and_succeed(emulator: Any, retrying_openai: AzureOpenAI) -> None:
    emulator.faults.add("GET /openai/files", status=429, retry_after=0.3, times=2)

    started = time.monotonic()
    files = retrying_openai.files.list()
    elapsed = time.monotonic() - started

    assert list(files) == []
    assert elapsed >= 0.6  # two waits of the advertised 0.3 s
    assert emulator.faults.list() == []  # used up


def test_the_azure_client_retries_a_throttled_arm_call(emulator: Any, arm_client: Any) -> None:
    emulator.faults.add("GET /subscriptions/*/deployments", status=429, retry_after=1, times=1)

    started = time.monotonic()
    listed = list(arm_client.deployments.list(emulator.config.resource_group, emulator.config.account_name))
    elapsed = time.monotonic() - started

    assert listed == []
    assert elapsed >= 1.0
    assert emulator.faults.list() == []


def test_injected_errors_use_each_planes_error_shape(emulator: Any) -> None:
    emulator.faults.add("* /openai/*", status=429, retry_after=2)
    emulator.faults.add("GET /subscriptions/*", status=429, retry_after=2)

    data_plane = _get_files(emulator)
    arm = requests.get(_arm_list_url(emulator), headers={"Authorization": f"Bearer {DEV_TOKEN}"}, timeout=10)

    assert data_plane.status_code == 429 and arm.status_code == 429
    assert data_plane.json()["error"]["code"] == "tooManyRequests"
    assert arm.json()["error"]["code"] == "TooManyRequests"
    assert data_plane.headers["Retry-After"] == "2" and data_plane.headers["retry-after-ms"] == "2000"
    assert arm.headers["Retry-After"] == "2"


def test_server_errors_surface_without_retries_and_heal_with_them(emulator: Any, openai_client: AzureOpenAI,
                                                                  retrying_openai: AzureOpenAI) -> None:
    emulator.faults.add("GET /openai/files", status=500, times=1)
    emulator.faults.add("GET /openai/files", status=503, retry_after=0.1, times=1)

    with pytest.raises(openai.InternalServerError) as first:
        openai_client.files.list()
    with pytest.raises(openai.InternalServerError) as second:
        openai_client.files.list()
    assert first.value.status_code == 500 and first.value.body["code"] == "internalFailure"  # type: ignore[index]
    assert second.value.status_code == 503 and second.value.body["code"] == "serviceUnavailable"  # type: ignore[index]
    assert list(openai_client.files.list()) == []

    emulator.faults.add("GET /openai/files", status=503, retry_after=0.1, times=2)
    assert list(retrying_openai.files.list()) == []
    assert emulator.faults.list() == []


def test_arm_server_error_is_retried_by_the_azure_client(emulator: Any, arm_client: Any) -> None:
    emulator.faults.add("GET /subscriptions/*/deployments", status=503, retry_after=1, times=1)

    assert (
        list(arm_client.deployments.list(emulator.config.resource_group, emulator.config.account_name)) == []
    )
    assert emulator.faults.list() == []


def test_rules_match_method_and_path(emulator: Any) -> None:
    emulator.faults.add("POST /openai/files", status=500)
    emulator.faults.add("GET /openai/fine_tuning/*", status=500)

    assert _get_files(emulator).status_code == 200
    assert len(emulator.faults.list()) == 2
    jobs = requests.get(f"{emulator.url}/openai/fine_tuning/jobs?api-version={DATAPLANE_API_VERSION}",
                        headers={"api-key": TEST_API_KEY}, timeout=10)
    assert jobs.status_code == 500


# -- latency and dropped connections -------------------------------------------------------------
def test_latency_slows_the_answer_and_lets_it_through(emulator: Any, openai_client: AzureOpenAI) -> None:
    emulator.faults.add("GET /openai/files", latency=0.4)

    started = time.monotonic()
    files = openai_client.files.list()

    assert time.monotonic() - started >= 0.4
    assert list(files) == []


def test_a_dropped_connection_is_a_connection_error_and_retries_recover(
        emulator: Any, openai_client: AzureOpenAI, retrying_openai: AzureOpenAI, arm_client: Any) -> None:
    emulator.faults.add("GET /openai/files", drop=True, times=1)

    with pytest.raises(openai.APIConnectionError):
        openai_client.files.list()

    emulator.faults.add("GET /openai/files", drop=True, times=1)
    assert list(retrying_openai.files.list()) == []
    emulator.faults.add("GET /subscriptions/*/deployments", drop=True, times=1)
    assert (
        list(arm_client.deployments.list(emulator.config.resource_group, emulator.config.account_name)) == []
    )
    assert emulator.faults.list() == []


# -- probability is repeatable ---------------------------------------------------------------------
def test_probability_is_deterministic_per_seed(emulator: Any) -> None:
    def outcomes() -> list[int]:
        return [_get_files(emulator).status_code for _ in range(30)]

    emulator.faults.add("GET /openai/files", status=500, probability=0.5, seed=7)
    first = outcomes()
    emulator.faults.clear()
    emulator.faults.add("GET /openai/files", status=500, probability=0.5, seed=7)
    second = outcomes()

    assert first == second
    assert 0 < first.count(500) < 30 and set(first) == {200, 500}


# -- the admin endpoints ------------------------------------------------------------------------------
def test_admin_endpoint_adds_lists_and_removes_rules(emulator: Any) -> None:
    admin = f"{emulator.url}/_emulator/faults"

    added = requests.post(
        admin, json={"pattern": "GET /openai/files", "status": 503, "retry_after": 1}, timeout=10
    )
    assert added.status_code == 201
    rule_id = added.json()["id"]
    assert added.json()["pattern"] == "GET /openai/files"
    assert [r["id"] for r in requests.get(admin, timeout=10).json()["faults"]] == [rule_id]
    assert _get_files(emulator).status_code == 503

    assert requests.delete(f"{admin}/{rule_id}", timeout=10).status_code == 204
    assert requests.delete(f"{admin}/{rule_id}", timeout=10).status_code == 404
    assert _get_files(emulator).status_code == 200
    assert emulator.faults.list() == []


@pytest.mark.parametrize("rule", [
    {"status": 500},
    {"pattern": "GET /openai/files", "status": 200},
    {"pattern": "GET /openai/files", "probability": 2},
    {"pattern": "FETCH /openai/files"},
    {"pattern": "GET /openai/files", "times": 0},
    {"pattern": "GET /openai/files", "status": 500, "drop": True},
    {"pattern": "GET /openai/files", "colour": "red"},
])
def test_admin_endpoint_refuses_bad_rules(emulator: Any, rule: dict[str, Any]) -> None:
    refused = requests.post(f"{emulator.url}/_emulator/faults", json=rule, timeout=10)

    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalidPayload"
    assert emulator.faults.list() == []


def test_admin_paths_are_never_faulted(emulator: Any) -> None:
    emulator.faults.add("* *", status=500)

    assert _get_files(emulator).status_code == 500
    assert requests.get(f"{emulator.url}/_emulator/faults", timeout=10).status_code == 200
    assert requests.delete(f"{emulator.url}/_emulator/faults", timeout=10).status_code == 204
    assert _get_files(emulator).status_code == 200


def test_admin_clock_and_reset(emulator: Any) -> None:
    clock = requests.get(f"{emulator.url}/_emulator/clock", timeout=10).json()
    advanced = requests.post(f"{emulator.url}/_emulator/clock/advance", json={"seconds": 86400}, timeout=10)
    assert advanced.status_code == 200
    assert advanced.json()["now"] >= clock["now"] + 86400
    assert emulator.clock.now() >= clock["now"] + 86400
    assert requests.post(f"{emulator.url}/_emulator/clock/advance", json={"seconds": -1},
                         timeout=10).status_code == 400

    emulator.store.put("deployment", "leftover", {"name": "leftover"})
    emulator.faults.add("GET /openai/files", status=500)
    assert requests.post(f"{emulator.url}/_emulator/reset", timeout=10).status_code == 204

    assert emulator.store.list("deployment") == [] and emulator.faults.list() == []
    assert emulator.clock.now() < clock["now"] + 3600


# -- rules from a file ---------------------------------------------------------------------------------
def test_rules_from_a_yaml_file_apply_from_the_start(tmp_path: Path) -> None:
    rules = tmp_path / "faults.yaml"
    rules.write_text(
        "faults:\n"
        "  - pattern: GET /openai/files\n"
        "    status: 503\n"
        "    retry_after: 1\n"
        "    times: 1\n"
        "  - {pattern: '* /subscriptions/*', latency: 0.01}\n"
    )

    with Emulator(api_key=TEST_API_KEY, speed=1000.0, faults_file=rules) as emu:
        assert [r["pattern"] for r in emu.faults.list()] == ["GET /openai/files", "* /subscriptions/*"]
        first = _get_files(emu)
        second = _get_files(emu)

    assert first.status_code == 503 and first.headers["Retry-After"] == "1"
    assert second.status_code == 200


def test_rules_from_a_json_list(tmp_path: Path) -> None:
    rules = tmp_path / "faults.json"
    rules.write_text(json.dumps([{"pattern": "POST /openai/fine_tuning/jobs", "status": 429, "times": 3}]))

    faults = Faults.load(rules)

    assert faults.list()[0]["pattern"] == "POST /openai/fine_tuning/jobs"
    assert faults.list()[0]["remaining"] == 3


def test_a_bad_rules_file_names_file_line_and_field(tmp_path: Path) -> None:
    rules = tmp_path / "faults.yaml"
    rules.write_text(
        "faults:\n"
        "  - pattern: GET /openai/files\n"
        "    status: 503\n"
        "  - pattern: GET /openai/models\n"
        "    probability: 3\n"
    )

    with pytest.raises(ManifestError) as bad:
        Faults.load(rules)

    (diagnostic,) = bad.value.diagnostics
    assert diagnostic.path == str(rules) and diagnostic.line == 4
    assert diagnostic.field_path == "faults[1]" and "probability" in diagnostic.message
    assert diagnostic.hint
    with pytest.raises(ManifestError) as missing:
        Faults.load(tmp_path / "nope.yaml")
    assert "cannot read" in missing.value.diagnostics[0].message
    broken = tmp_path / "broken.yaml"
    broken.write_text("faults: [\n")
    with pytest.raises(ManifestError):
        Faults.load(broken)
