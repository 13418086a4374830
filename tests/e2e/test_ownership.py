"""Never delete what is still declared: the defects found when tunekeeper was tried as a new user would.

Each test reproduces one defect through the CLI, as a user meets it, and asserts what must hold:
applying a subset prunes nothing outside it; two repositories on one account never touch each
other's objects; every deletion is in the plan and counted; removed resources are cleaned up
and a replaced model is kept for rollback; a rename creates before it deletes; two applies at
once do not race; an action that keeps failing ends the run non-zero.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from .cli_helpers import copy_example, inventory, run, run_process, write_project

KEY_ENV = "TK_E2E_OWNERSHIP_KEY"


def git_init(folder: Path) -> Path:
    """Make ``folder`` a git repository with one commit (its root commit names the repository)."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", f"start {folder.name}"]):
        subprocess.run(["git", *args], cwd=folder, env=env, check=True, capture_output=True)
    return folder


def account_yaml(emulator: object) -> str:
    config = emulator.config  # type: ignore[attr-defined]
    return (
        "apiVersion: tunekeeper.io/v1alpha1\nkind: Account\nmetadata:\n  name: shared\nspec:\n"
        f"  endpoint: {emulator.url}\n  managementEndpoint: {emulator.url}\n"  # type: ignore[attr-defined]
        f"  subscriptionId: {config.subscription_id}\n  resourceGroup: {config.resource_group}\n"
        f"  accountName: {config.account_name}\n  auth:\n    type: apiKey\n    apiKeyFromEnv: {KEY_ENV}\n"
    )


def deployments_of(arm_client: object, emulator: object) -> list[str]:
    config = emulator.config  # type: ignore[attr-defined]
    return sorted(str(d.name) for d in arm_client.deployments.list(  # type: ignore[attr-defined]
        config.resource_group, config.account_name))


# -- defect 1 ----------------------------------------------------------------------------------------
def test_applying_one_file_never_prunes_what_a_sibling_declares(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    repo = git_init(copy_example("continuous", tmp_path))
    monkeypatch.chdir(repo)
    assert run("apply", "--wait", "--timeout", "120").exit_code == 0
    assert list(inventory(repo).deployments) == ["ferry"]

    planned = run("plan", "jobs.yaml")
    assert planned.exit_code == 0, planned
    assert "delete" not in planned.stdout.replace("0 to delete", "")
    applied = run("apply", "jobs.yaml")
    assert applied.exit_code == 0, applied
    assert list(inventory(repo).deployments) == ["ferry"]


def test_applying_an_account_and_one_file_never_prunes_the_others(
    emulator: object, arm_client: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = write_project(tmp_path / "repo")
    (repo / "account.yaml").write_text(account_yaml(emulator))
    text = (repo / "support.yaml").read_text()
    job, deployment = text.split("---\n")
    (repo / "support.yaml").unlink()
    (repo / "jobs.yaml").write_text(job)
    (repo / "deploy.yaml").write_text(deployment)
    git_init(repo)
    monkeypatch.chdir(repo)
    env = {KEY_ENV: emulator.config.api_key}  # type: ignore[attr-defined]
    assert run("apply", "--wait", "--timeout", "120", env=env).exit_code == 0
    assert deployments_of(arm_client, emulator) == ["support-bot"]
    applied = run("apply", "account.yaml", "jobs.yaml", env=env)
    assert applied.exit_code == 0, applied
    assert deployments_of(arm_client, emulator) == ["support-bot"]


# -- defect 2 ----------------------------------------------------------------------------------------
def test_two_repositories_on_one_account_never_delete_each_others_deployments(
    emulator: object, arm_client: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {KEY_ENV: emulator.config.api_key}  # type: ignore[attr-defined]
    repo_a = write_project(tmp_path / "a")
    (repo_a / "account.yaml").write_text(account_yaml(emulator))
    git_init(repo_a)
    repo_b = tmp_path / "b"
    repo_b.mkdir()
    (repo_b / "account.yaml").write_text(account_yaml(emulator))
    (repo_b / "team-b.yaml").write_text(
        "apiVersion: tunekeeper.io/v1alpha1\nkind: Deployment\nmetadata:\n  name: team-b-gpt\nspec:\n"
        "  model:\n    name: gpt-4.1-mini\n    version: 2025-04-14\n  sku:\n    name: GlobalStandard\n"
        "    capacity: 1\n")
    git_init(repo_b)

    monkeypatch.chdir(repo_a)
    assert run("apply", "--wait", "--timeout", "120", env=env).exit_code == 0
    monkeypatch.chdir(repo_b)
    applied_b = run("apply", "--wait", "--timeout", "120", env=env)
    assert applied_b.exit_code == 0, applied_b
    assert deployments_of(arm_client, emulator) == ["support-bot", "team-b-gpt"]
    monkeypatch.chdir(repo_a)
    planned_a = run("plan", env=env)
    assert "No changes." in planned_a.stdout, planned_a
    applied_a = run("apply", "--wait", "--timeout", "120", env=env)
    assert applied_a.exit_code == 0, applied_a
    assert deployments_of(arm_client, emulator) == ["support-bot", "team-b-gpt"]


# -- defect 3 ----------------------------------------------------------------------------------------
def test_a_replacement_shows_every_deletion_and_a_revert_trains_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = git_init(write_project(tmp_path / "repo"))
    monkeypatch.chdir(repo)
    assert run("apply", "--wait", "--timeout", "120").exit_code == 0
    (first_job,) = inventory(repo).jobs
    manifest = repo / "support.yaml"
    original = manifest.read_text()
    manifest.write_text(original.replace("n_epochs: 2", "n_epochs: 3").replace(
        "  seed: 7\n", "  seed: 7\n  allowReplacement: true\n"))

    planned = run("plan", "-o", "json")
    assert planned.exit_code == 0, planned
    deletions = [
        a for a in json.loads(planned.stdout)["actions"] if a["kind"].startswith(("delete", "cancel"))
    ]
    assert run("apply", "--wait", "--timeout", "120").exit_code == 0
    held = inventory(repo)
    # whatever the plan did not show was not deleted: the replaced job (and its model) is kept
    assert deletions == [] and first_job[0] in {j[0] for j in held.jobs} and len(held.jobs) == 2

    manifest.write_text(original)  # git revert
    reverted = run("plan")
    assert "create_job" not in reverted.stdout, reverted
    assert "no new training" in reverted.stdout, reverted
    assert run("apply", "--wait", "--timeout", "120").exit_code == 0
    assert len(inventory(repo).jobs) == 2


# -- defect 4 ----------------------------------------------------------------------------------------
def test_a_removed_fine_tune_job_is_cleaned_up_and_the_plan_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = git_init(write_project(tmp_path / "repo"))
    monkeypatch.chdir(repo)
    assert run("apply", "--wait", "--timeout", "120").exit_code == 0
    held = inventory(repo)
    assert len(held.jobs) == 1 and held.results == 1
    (repo / "support.yaml").write_text("# nothing declared any more\n")

    planned = run("plan")
    assert planned.exit_code == 0, planned
    assert "No changes" not in planned.stdout
    for kind in ("delete_deployment", "delete_model", "delete_file"):
        assert kind in planned.stdout, planned
    assert "to delete" in planned.stdout.splitlines()[-1] and "0 to delete" not in planned.stdout
    applied = run("apply", "--wait", "--timeout", "120")
    assert applied.exit_code == 0, applied
    held = inventory(repo)
    assert held.jobs == () and not held.deployments and not held.uploaded and held.results == 0


# -- defect 5 ----------------------------------------------------------------------------------------
def test_a_renamed_deployment_is_created_before_the_old_one_is_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = git_init(write_project(tmp_path / "repo"))
    monkeypatch.chdir(repo)
    assert run("apply", "--wait", "--timeout", "120").exit_code == 0
    manifest = repo / "support.yaml"
    manifest.write_text(manifest.read_text().replace("kind: Deployment\nmetadata:\n  name: support-bot",
                                                     "kind: Deployment\nmetadata:\n  name: support-bot-2"))
    planned = run("plan")
    lines = [line for line in planned.stdout.splitlines() if "Deployment/" in line]
    assert "create_deployment" in lines[0] and "support-bot-2" in lines[0], planned
    assert "delete_deployment" in lines[-1] and "Deployment/support-bot " in lines[-1] + " ", planned

    faults = tmp_path / "faults.yaml"  # the new deployment cannot be created: the old one must keep serving
    faults.write_text('faults:\n  - {pattern: "PUT /subscriptions/*/deployments/*", status: 400}\n')
    failed = run("apply", "--wait", "--timeout", "60", env={"TUNEKEEPER_EMULATOR_FAULTS": str(faults)})
    assert failed.exit_code == 1, failed
    assert list(inventory(repo).deployments) == ["support-bot"]

    assert run("apply", "--wait", "--timeout", "120").exit_code == 0
    assert list(inventory(repo).deployments) == ["support-bot-2"]


# -- defect 6 ----------------------------------------------------------------------------------------
def test_a_second_apply_waits_for_no_one_and_names_the_holder(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    repo = git_init(write_project(tmp_path / "repo"))
    monkeypatch.chdir(repo)
    assert run("plan").exit_code == 0
    holder = subprocess.Popen(["sleep", "60"])
    try:
        locks = repo / ".tunekeeper" / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        owner = json.loads(run("plan", "-o", "json").stdout)["owner"]
        since = datetime.now(UTC).isoformat()
        (locks / f"{owner['id']}-embedded.lock").write_text(json.dumps(
            {"pid": holder.pid, "host": socket.gethostname(), "since": since, "command": "tunekeeper apply"}))
        refused = run("apply")
        assert refused.exit_code == 1, refused
        assert f"pid {holder.pid}" in refused.stderr and socket.gethostname() in refused.stderr
        assert not (repo / ".tunekeeper" / "emulator").exists() or inventory(repo).jobs == ()
    finally:
        holder.kill()
        holder.wait()
    recovered = run("apply")  # the holder is gone: its lock is stale and taken over
    assert recovered.exit_code == 0, recovered
    assert "stale lock" in recovered.stderr


# -- defect 7 ----------------------------------------------------------------------------------------
@pytest.mark.slow  # two whole apply processes through a fault storm (about 20 s)
def test_a_job_create_that_keeps_failing_ends_the_run_non_zero(tmp_path: Path) -> None:
    repo = write_project(tmp_path / "repo")
    faults = tmp_path / "faults.yaml"
    # 503 with a short Retry-After: the SDK's own retries go fast, so the test measures tunekeeper's bound
    faults.write_text(
        'faults:\n  - {pattern: "POST /openai/fine_tuning/jobs", status: 503, retry_after: 0.05}\n'
    )
    env = {"TUNEKEEPER_EMULATOR_FAULTS": str(faults)}
    once = run_process("apply", ".", cwd=repo, env=env, timeout=120)
    assert once.exit_code == 1, once
    assert "FineTuneJob/support-bot" in once.stdout + once.stderr and "503" in once.stdout + once.stderr

    started = time.monotonic()
    waited = run_process("apply", ".", "--wait", cwd=repo, env=env, timeout=150)
    assert waited.exit_code == 1, waited
    assert time.monotonic() - started < 60
    assert "FineTuneJob/support-bot" in waited.stdout + waited.stderr


# -- each example folder is a stack -------------------------------------------------------------------
def test_examples_applied_one_after_another_never_prune_each_other(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The examples share one embedded account (the repository root's); each is its own stack."""
    import shutil

    from .cli_helpers import EXAMPLES

    repo = tmp_path / "repo"
    for name in ("clippy", "continuous"):
        shutil.copytree(EXAMPLES / name, repo / "examples" / name)
    git_init(repo)
    monkeypatch.chdir(repo)
    assert run("apply", "examples/clippy", "--wait", "--timeout", "120").exit_code == 0
    applied = run("apply", "examples/continuous", "--wait", "--timeout", "120")
    assert applied.exit_code == 0, applied
    assert sorted(inventory(repo).deployments) == ["clippy", "ferry"]
    again = run("plan", "examples/clippy")
    assert "No changes." in again.stdout, again
    collected = run("gc", "examples/clippy", "--dry-run")
    assert collected.exit_code == 0 and "Nothing to collect." in collected.stdout, collected
    refused = run("gc", "examples")
    assert refused.exit_code == 1 and "several stacks" in refused.stderr, refused
