"""Every folder in manifests/examples/ is a test: validate -> plan -> apply --wait -> plan again.

Given a private copy of the example (its own embedded emulator under .tunekeeper/, which also
serves the Accounts an example declares: ``TUNEKEEPER_EMULATE=1``),
when it is validated, planned and applied with --wait,
then a second plan has nothing to do (``--detailed-exitcode`` exits 0), status shows each job's
fine-tuned model and metrics, its results.csv can be read, every deployment answers a chat
prompt, and the emulator holds each file, job and deployment once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .cli_helpers import Outcome, copy_example, example_names, inventory
from .cli_helpers import run as run_cli

EXAMPLES = example_names()


def run(*args: str | Path) -> Outcome:
    """The CLI with every declared Account served by the embedded emulator."""
    return run_cli(*args, env={"TUNEKEEPER_EMULATE": "1"})


@pytest.mark.skipif(not EXAMPLES, reason="manifests/examples/ holds no example folders")
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_converges_and_serves(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = copy_example(name, tmp_path)
    monkeypatch.chdir(project)

    validated = run("validate", project)
    assert validated.exit_code == 0, validated

    first = run("plan", project, "--detailed-exitcode")
    assert first.exit_code == 3, first
    assert "to create" in first.stdout

    applied = run("apply", project, "--wait", "--timeout", "120")
    assert applied.exit_code == 0, applied
    assert "Traceback" not in applied.stderr

    again = run("plan", project, "--detailed-exitcode")
    assert again.exit_code == 0, again
    assert "No changes." in again.stdout

    shown = run("status", project, "-o", "json")
    assert shown.exit_code == 0, shown
    rows = {(r["kind"], r["name"]): r for r in json.loads(shown.stdout)}
    jobs = [r for (kind, _), r in rows.items() if kind == "FineTuneJob"]
    deployments = [r for (kind, _), r in rows.items() if kind == "Deployment"]
    assert jobs or deployments, shown
    for job in jobs:
        assert job["fine_tuned_model"], job
        assert job["metrics"], job
        assert _ready(job), job
        curves = run("results", job["name"], project, "-o", "json")
        assert curves.exit_code == 0, curves
        assert json.loads(curves.stdout)["job_id"] == job["job_id"]
    for deployment in deployments:
        assert _ready(deployment), deployment
        answer = run("chat", deployment["name"], "Hello, who are you?", project)
        assert answer.exit_code == 0, answer
        assert answer.stdout.strip(), answer

    held = inventory(project)
    assert held.duplicates() == {"files": [], "deployments": []}
    assert len(held.jobs) == len(jobs)
    assert sorted(held.deployments) == sorted(d["name"] for d in deployments)


def _ready(row: dict[str, object]) -> bool:
    conditions = row.get("conditions") or []
    assert isinstance(conditions, list)
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
