"""Apply converges through throttling and server errors injected into the embedded emulator.

Given a faults file (named by TUNEKEEPER_EMULATOR_FAULTS) that answers uploads, job creation,
job reads and ARM calls with 429 + Retry-After and 5xx errors,
when ``tunekeeper apply --wait`` runs,
then it exits 0, the deployment answers, and nothing was created twice.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .cli_helpers import inventory, run, write_project

FAULTS = """\
faults:
  - {pattern: "POST /openai/files", status: 429, retry_after: 1, times: 2}
  - {pattern: "POST /openai/fine_tuning/jobs", status: 503, retry_after: 0.2, times: 2}
  - {pattern: "GET /openai/fine_tuning/jobs*", status: 500, probability: 0.3, seed: 11}
  - {pattern: "GET /openai/files*", status: 502, probability: 0.2, seed: 12}
  - {pattern: "PUT /subscriptions/*/deployments/*", status: 429, retry_after: 1, times: 1}
  - {pattern: "GET /subscriptions/*", status: 500, probability: 0.2, seed: 13}
"""


@pytest.mark.slow
def test_apply_converges_through_429_and_5xx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = write_project(tmp_path / "repo")
    faults = tmp_path / "faults.yaml"
    faults.write_text(FAULTS)
    monkeypatch.chdir(project)
    env = {"TUNEKEEPER_EMULATOR_FAULTS": str(faults)}

    applied = run("apply", project, "--wait", "--timeout", "120", env=env)
    assert applied.exit_code == 0, applied

    settled = run("plan", project, "--detailed-exitcode", env=env)
    assert settled.exit_code == 0, settled
    answer = run("chat", "support-bot", "How do I reset my password?", project, env=env)
    assert answer.exit_code == 0, answer

    held = inventory(project)
    assert sum(held.uploaded.values()) == 1
    assert len(held.jobs) == 1
    assert list(held.deployments) == ["support-bot"]


def test_a_bad_faults_file_is_reported_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = write_project(tmp_path / "repo")
    faults = tmp_path / "faults.yaml"
    faults.write_text("faults:\n  - {pattern: 'POST /openai/files', status: 42}\n")
    monkeypatch.chdir(project)
    outcome = run("plan", project, env={"TUNEKEEPER_EMULATOR_FAULTS": str(faults)})
    assert outcome.exit_code == 1, outcome
    assert "faults.yaml:2" in outcome.stderr and "status" in outcome.stderr
