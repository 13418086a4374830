"""plan / apply / status / chat / results through the installed ``tunekeeper`` console script.

Given a small project (one FineTuneJob and one Deployment called support-bot) with no Account,
so that every command targets the embedded emulator kept under the project's .tunekeeper/,
the commands keep their promises: exit codes (0 / 1 / 2 / 3), data on stdout, diagnostics on
stderr, never a traceback, nothing sent before validation passed, state kept between commands.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .cli_helpers import FAST, inventory, run, run_process, write_project


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = write_project(tmp_path / "repo")
    monkeypatch.chdir(folder)
    return folder


@pytest.mark.slow
def test_lifecycle_through_the_console_script(project: Path) -> None:
    """plan says changes (3); apply without --wait returns at once (0); --wait converges; plan says
    none (0)."""
    # Slow enough that training is still running when apply without --wait returns (a few seconds).
    # The speed a job was created with stays with it, so every command of this test uses the same.
    slow = {"TUNEKEEPER_EMULATOR_SPEED": "100"}
    planned = run_process("plan", ".", "--detailed-exitcode", cwd=project, env=slow)
    assert planned.exit_code == 3, planned
    assert "create_job" in planned.stdout and "FineTuneJob/support-bot" in planned.stdout
    assert not (project / ".tunekeeper" / "emulator").exists() or inventory(project).jobs == ()

    started = run_process("apply", ".", cwd=project, env=slow)
    assert started.exit_code == 0, started
    assert "Still in progress" in started.stdout
    held = inventory(project)
    assert list(held.uploaded.values()) == [1]
    assert len(held.jobs) <= 1  # created once the file is processed: maybe now, maybe on the next run
    assert not held.deployments

    finished = run_process("apply", ".", "--wait", "--timeout", "120", cwd=project, env=slow)
    assert finished.exit_code == 0, finished
    assert "Apply complete" in finished.stdout

    settled = run_process("plan", ".", "--detailed-exitcode", cwd=project, env=slow)
    assert settled.exit_code == 0, settled
    assert "No changes." in settled.stdout
    for outcome in (planned, started, finished, settled):
        assert "Traceback" not in outcome.stderr

    answer = run_process("chat", "support-bot", "How do I reset my password?", cwd=project, env=slow)
    assert answer.exit_code == 0, answer
    assert answer.stdout.strip()

    held = inventory(project)
    assert held.duplicates() == {"files": [], "deployments": []}
    assert len(held.jobs) == 1 and held.jobs[0][1] == "succeeded"
    assert list(held.deployments) == ["support-bot"]


@pytest.fixture
def applied(project: Path) -> Path:
    outcome = run("apply", project, "--wait", "--timeout", "120")
    assert outcome.exit_code == 0, outcome
    return project


def test_status_shows_model_checkpoints_metrics_and_deployment(applied: Path) -> None:
    as_json = run("status", applied, "-o", "json")
    assert as_json.exit_code == 0, as_json
    rows = {(r["kind"], r["name"]): r for r in json.loads(as_json.stdout)}
    job = rows[("FineTuneJob", "support-bot")]
    assert job["job_id"] and job["fine_tuned_model"]
    assert job["checkpoints"]
    assert "train_loss" in json.dumps(job["metrics"])
    deployment = rows[("Deployment", "support-bot")]
    assert "Succeeded" in json.dumps(deployment)

    as_text = run("status", applied)
    assert as_text.exit_code == 0, as_text
    assert "FineTuneJob/support-bot" in as_text.stdout and "Deployment/support-bot" in as_text.stdout
    assert job["fine_tuned_model"] in as_text.stdout


def test_results_terminal_view_json_and_png(applied: Path) -> None:
    view = run("results", "support-bot", applied)
    assert view.exit_code == 0, view
    assert "train_loss" in view.stdout and "steps" in view.stdout

    summary = run("results", "support-bot", applied, "-o", "json")
    assert summary.exit_code == 0, summary
    data = json.loads(summary.stdout)
    assert data["job"] == "support-bot" and data["steps"] > 0
    assert data["train_loss"]["final"] > 0

    png = applied / "out" / "support-bot.png"
    drawn = run("results", "support-bot", applied, "--png", png)
    assert drawn.exit_code == 0, drawn
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_typos_get_a_did_you_mean(applied: Path) -> None:
    chat = run("chat", "suport-bot", "hello", applied)
    assert chat.exit_code == 1
    assert 'No Deployment named "suport-bot". Did you mean "support-bot"?' in chat.stderr
    assert chat.stdout == ""

    results = run("results", "support-bott", applied)
    assert results.exit_code == 1
    assert 'No FineTuneJob named "support-bott". Did you mean "support-bot"?' in results.stderr


def test_bad_dataset_stops_apply_before_anything_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = json.dumps(
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    )
    lines = [good] * 12
    lines[2] = '{"messages": [{"role": "user", "content": "unterminated"'
    folder = write_project(tmp_path / "repo", training_lines=lines)
    monkeypatch.chdir(folder)

    outcome = run_process("apply", ".", "--wait", cwd=folder)
    assert outcome.exit_code == 1, outcome
    assert "data/train.jsonl:3" in outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert outcome.stdout == ""
    assert not (folder / ".tunekeeper" / "emulator").exists(), (
        "the emulator was started before validation passed"
    )


def test_bad_manifest_points_at_file_line_and_field(project: Path) -> None:
    manifest = project / "support.yaml"
    manifest.write_text(manifest.read_text().replace("n_epochs: 2", "n_epochs: 0"))
    outcome = run_process("plan", ".", cwd=project)
    assert outcome.exit_code == 1, outcome
    assert "support.yaml:10" in outcome.stderr and "n_epochs" in outcome.stderr
    assert "Traceback" not in outcome.stderr


def test_usage_errors_exit_2(project: Path) -> None:
    assert run("plan", project, "-o", "yaml").exit_code == 2
    assert run("chat").exit_code == 2
    assert run("apply", project, "--timeout", "-1").exit_code == 2


def test_plan_as_json_and_markdown_changes_nothing(project: Path) -> None:
    as_json = run("plan", project, "-o", "json")
    assert as_json.exit_code == 0, as_json
    data = json.loads(as_json.stdout)
    kinds = sorted(a["kind"] for a in data["actions"])
    assert kinds == ["create_deployment", "create_job", "upload_file"]

    as_markdown = run("plan", project, "-o", "markdown")
    assert as_markdown.exit_code == 0, as_markdown
    assert "| `+` | `support-bot` | gpt-4.1-mini-2025-04-14 (supervised, Standard) |" in as_markdown.stdout

    assert inventory(project).uploaded == {}  # planning twice sent nothing that changes the account


def test_chat_before_apply_says_what_to_do(project: Path) -> None:
    outcome = run("chat", "support-bot", "hello", project)
    assert outcome.exit_code == 1, outcome
    assert "Deployment support-bot is not serving yet" in outcome.stderr
    assert 'tunekeeper apply --wait' in outcome.stderr


def test_a_failing_gate_blocks_the_deployment_and_apply_says_so(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_project(tmp_path / "repo")
    manifest = folder / "support.yaml"
    manifest.write_text(manifest.read_text() + "  gates:\n    metrics:\n"
                        "      - {metric: train_loss, op: \"<\", threshold: 0.0001}\n")
    monkeypatch.chdir(folder)

    applied = run("apply", folder, "--wait", "--timeout", "120")
    assert applied.exit_code == 1, applied
    assert "Apply finished, but not everything matches the manifests" in applied.stdout
    assert "Deployment/support-bot" in applied.stdout and "gate failed" in applied.stdout
    assert not inventory(folder).deployments  # the candidate was never deployed

    shown = run("status", folder, "-o", "json")
    rows = {(r["kind"], r["name"]): r for r in json.loads(shown.stdout)}
    gates = {c["type"]: c for c in rows[("Deployment", "support-bot")]["conditions"]}["GatesPassed"]
    assert gates["status"] == "False" and "train_loss" in gates["message"]
    assert rows[("FineTuneJob", "support-bot")]["fine_tuned_model"]
    assert run("plan", folder).exit_code == 0
    assert run("plan", folder, "--detailed-exitcode").exit_code == 4  # blocked: a drift check must not pass


def test_results_before_training_says_what_to_do(project: Path) -> None:
    outcome = run("results", "support-bot", project)
    assert outcome.exit_code == 1, outcome
    assert "FineTuneJob/support-bot has no training job yet" in outcome.stderr
    assert 'tunekeeper apply' in outcome.stderr


def _change_capacity_in_the_portal(project: Path, name: str, capacity: int) -> None:
    """What someone does in the Azure portal: PATCH the deployment's capacity through ARM."""
    from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
    from azure.mgmt.cognitiveservices.models import PatchResourceTagsAndSku, Sku
    from tunekeeper.cloud.loopback import AllowHttpForLoopback, StaticTokenCredential
    from tunekeeper.emulator import Emulator

    with Emulator(data_dir=project / ".tunekeeper" / "emulator", speed=float(FAST)) as emulator:
        arm = CognitiveServicesManagementClient(
            credential=StaticTokenCredential(), subscription_id=emulator.config.subscription_id,
            base_url=emulator.url, per_call_policies=[AllowHttpForLoopback()], polling_interval=0)
        try:
            patch = PatchResourceTagsAndSku(sku=Sku(name="Standard", capacity=capacity))
            arm.deployments.begin_update(emulator.config.resource_group, emulator.config.account_name, name,
                                         patch).result()
        finally:
            arm.close()


def test_status_shows_sync_and_health_apart_and_a_portal_change_as_drift(applied: Path) -> None:
    def axes() -> dict[tuple[str, str], tuple[str, str, str]]:
        shown = run("status", applied, "-o", "json")
        assert shown.exit_code == 0, shown
        return {(r["kind"], r["name"]): (r["sync"]["status"], r["health"]["status"], r["sync"]["message"])
                for r in json.loads(shown.stdout)}

    synced = axes()
    assert synced[("FineTuneJob", "support-bot")][:2] == ("Synced", "Healthy")
    assert synced[("Deployment", "support-bot")][:2] == ("Synced", "Healthy")

    _change_capacity_in_the_portal(applied, "support-bot", 3)
    drifted = axes()
    text = run("status", applied)

    assert drifted[("Deployment", "support-bot")][:2] == ("Drifted", "Healthy")
    assert "capacity is 3 in the account, 1 in the manifest" in drifted[("Deployment", "support-bot")][2]
    assert drifted[("FineTuneJob", "support-bot")][:2] == ("Synced", "Healthy")
    assert "Deployment/support-bot  [embedded]  Drifted  Healthy  Ready=True" in text.stdout
    assert run("plan", applied, "--detailed-exitcode").exit_code == 3

    assert run("apply", applied, "--wait", "--timeout", "120").exit_code == 0
    assert axes()[("Deployment", "support-bot")][:2] == ("Synced", "Healthy")
