"""``tunekeeper plan --out FILE`` then ``tunekeeper apply FILE``: the reviewed plan is the applied plan.

Given a small project on the embedded emulator, a saved plan is applied exactly (and only what
it says happens); a plan file edited by hand, or applied after the manifests, the data or the
account moved, is refused with what changed, and nothing is sent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .cli_helpers import inventory, run, write_project


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = write_project(tmp_path / "repo")
    monkeypatch.chdir(folder)
    return folder


def test_a_saved_plan_is_applied_exactly(project: Path) -> None:
    planned = run("plan", ".", "--out", "tk.plan")
    assert planned.exit_code == 0, planned
    document = json.loads((project / "tk.plan").read_text())
    assert document["tunekeeper_plan"] == "tunekeeper-plan/1"
    assert document["inputs"]["manifests"].keys() == {"support.yaml"}
    assert document["inputs"]["data"].keys() == {"data/train.jsonl"}
    kinds = [a["kind"] for a in document["plan"]["actions"]]
    assert kinds == ["upload_file", "create_job", "create_deployment"]
    create = document["plan"]["actions"][1]["payload"]
    assert create["type"] == "job" and create["seed"] == 7 and create["training_file"].startswith("tk-")

    applied = run("apply", "tk.plan", "--wait", "--timeout", "120")
    assert applied.exit_code == 0, applied
    held = inventory(project)
    assert list(held.uploaded.values()) == [1] and len(held.jobs) == 1
    # the deployment's model was not known when the plan was made: the next plan carries it
    assert not held.deployments
    assert "Still in progress" in applied.stdout and "create_deployment" in applied.stdout

    finished = run("apply", ".", "--wait", "--timeout", "120")
    assert finished.exit_code == 0, finished
    held = inventory(project)
    assert len(held.jobs) == 1 and list(held.deployments) == ["support-bot"]


def test_a_plan_edited_by_hand_is_refused(project: Path) -> None:
    assert run("plan", ".", "--out", "tk.plan").exit_code == 0
    document = json.loads((project / "tk.plan").read_text())
    # a costlier run than reviewed
    document["plan"]["actions"][1]["payload"]["hyperparameters"]["n_epochs"] = 40
    (project / "tk.plan").write_text(json.dumps(document))
    refused = run("apply", "tk.plan")
    assert refused.exit_code == 1, refused
    assert "was changed after it was written" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (project / ".tunekeeper" / "emulator").exists() or inventory(project).jobs == ()


def test_a_plan_is_refused_when_the_data_or_manifests_changed(project: Path) -> None:
    assert run("plan", ".", "--out", "tk.plan").exit_code == 0
    train = project / "data" / "train.jsonl"
    train.write_text(train.read_text() + train.read_text().splitlines()[0] + "\n")
    refused = run("apply", "tk.plan")
    assert refused.exit_code == 1, refused
    assert "Plan is stale: data file data/train.jsonl changed" in refused.stderr

    assert run("plan", ".", "--out", "tk.plan").exit_code == 0
    manifest = project / "support.yaml"
    manifest.write_text(manifest.read_text().replace("capacity: 1", "capacity: 2"))
    refused = run("apply", "tk.plan")
    assert refused.exit_code == 1, refused
    assert "manifest support.yaml changed" in refused.stderr
    assert not (project / ".tunekeeper" / "emulator").exists() or inventory(project).jobs == ()


def test_a_plan_is_refused_when_the_account_moved(project: Path) -> None:
    assert run("apply", ".", "--wait", "--timeout", "120").exit_code == 0
    manifest = project / "support.yaml"
    manifest.write_text(manifest.read_text().replace("capacity: 1", "capacity: 2"))
    assert run("plan", ".", "--out", "tk.plan").exit_code == 0
    # someone changes the deployment in the portal after the plan was reviewed
    manifest_3 = manifest.read_text().replace("capacity: 2", "capacity: 3")
    saved_manifest = manifest.read_text()
    manifest.write_text(manifest_3)
    assert run("apply", ".", "--wait", "--timeout", "60").exit_code == 0
    manifest.write_text(saved_manifest)
    refused = run("apply", "tk.plan")
    assert refused.exit_code == 1, refused
    assert "Plan is stale: Deployment/support-bot changed after the plan was made" in refused.stderr
