"""The GitHub Actions example (examples/github-actions/tunekeeper.yml) against the published
workflow schema, checked offline with check-jsonschema's vendored copy, and its promises: plan on
pull requests with one updated comment and the plan file as an artifact, apply of that file on
merge, a scheduled drift check, one concurrency group per stack that never cancels a run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / "examples" / "github-actions" / "tunekeeper.yml"


def check_schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def workflow() -> dict[Any, Any]:
    loaded = yaml.safe_load(WORKFLOW.read_text())
    loaded["on"] = loaded.pop(True)  # YAML 1.1 reads the key `on` as true
    return dict(loaded)


def steps(job: str) -> list[dict[str, Any]]:
    return list(workflow()["jobs"][job]["steps"])


def test_the_workflow_matches_the_published_schema(tmp_path: Path) -> None:
    checked = check_schema(WORKFLOW)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest", 1))
    assert check_schema(broken).returncode == 1  # the check can fail


def test_it_plans_on_pull_requests_applies_on_merge_and_checks_drift_on_a_schedule() -> None:
    flow = workflow()
    assert set(flow["on"]) >= {"pull_request", "push", "schedule"}
    assert flow["concurrency"] == {
        "group": "tunekeeper-${{ github.repository }}-ml",
        "cancel-in-progress": False,
    }

    plan = "\n".join(s.get("run", "") for s in steps("plan"))
    assert "tunekeeper plan" in plan and "-o markdown" in plan and "--detailed-exitcode" in plan
    assert "--out tunekeeper.plan" in plan
    comment = next(s for s in steps("plan") if s.get("uses", "").startswith("actions/github-script"))
    assert "updateComment" in comment["with"]["script"] and "createComment" in comment["with"]["script"]
    upload = next(s for s in steps("plan") if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["with"]["path"] == "tunekeeper.plan"

    download = next(s for s in steps("apply") if s.get("uses", "").startswith("actions/download-artifact"))
    assert download["with"]["name"] == upload["with"]["name"]
    assert any(s.get("run", "").startswith("tunekeeper apply tunekeeper.plan") for s in steps("apply"))

    drift = "\n".join(s.get("run", "") for s in steps("drift"))
    assert 'tunekeeper apply "$STACK"' in drift and "--detailed-exitcode" in drift
