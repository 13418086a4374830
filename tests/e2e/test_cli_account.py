"""With an Account in the manifests, the CLI talks to it (here: a running emulator on loopback).

Given an Account whose endpoint and managementEndpoint are a running emulator's URL and whose
api key comes from an environment variable,
when plan / apply --wait / status / chat run,
then they act on that emulator (no embedded one is started), and a missing key is a clear error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .cli_helpers import run, write_project

KEY_ENV = "TK_E2E_ACCOUNT_KEY"


def _with_account(folder: Path, emulator: object) -> Path:
    write_project(folder)
    config = emulator.config  # type: ignore[attr-defined]
    (folder / "account.yaml").write_text(
        "apiVersion: tunekeeper.io/v1alpha1\n"
        "kind: Account\n"
        "metadata:\n"
        "  name: local\n"
        "spec:\n"
        f"  endpoint: {emulator.url}\n"  # type: ignore[attr-defined]
        f"  managementEndpoint: {emulator.url}\n"  # type: ignore[attr-defined]
        f"  subscriptionId: {config.subscription_id}\n"
        f"  resourceGroup: {config.resource_group}\n"
        f"  accountName: {config.account_name}\n"
        "  auth:\n"
        "    type: apiKey\n"
        f"    apiKeyFromEnv: {KEY_ENV}\n",
        encoding="utf-8",
    )
    return folder


def test_commands_act_on_the_declared_account(emulator: object, openai_client: object, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    project = _with_account(tmp_path / "repo", emulator)
    monkeypatch.chdir(project)
    env = {KEY_ENV: emulator.config.api_key}  # type: ignore[attr-defined]

    planned = run("plan", project, "--detailed-exitcode", env=env)
    assert planned.exit_code == 3, planned

    applied = run("apply", project, "--wait", "--timeout", "120", env=env)
    assert applied.exit_code == 0, applied
    assert not (project / ".tunekeeper" / "emulator").exists(), "an embedded emulator was started"

    jobs = list(openai_client.fine_tuning.jobs.list())  # type: ignore[attr-defined]
    assert [j.status for j in jobs] == ["succeeded"]

    shown = run("status", project, "-o", "json", env=env)
    rows = {(r["kind"], r["name"]): r for r in json.loads(shown.stdout)}
    assert rows[("FineTuneJob", "support-bot")]["account"] == "local"
    assert rows[("FineTuneJob", "support-bot")]["job_id"] == jobs[0].id

    answer = run("chat", "support-bot", "How do I reset my password?", project, env=env)
    assert answer.exit_code == 0, answer
    assert "Settings" in answer.stdout


def test_a_missing_api_key_is_named_not_raised(emulator: object, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    project = _with_account(tmp_path / "repo", emulator)
    monkeypatch.chdir(project)
    monkeypatch.delenv(KEY_ENV, raising=False)
    outcome = run("plan", project)
    assert outcome.exit_code == 1, outcome
    assert KEY_ENV in outcome.stderr
    assert "Traceback" not in outcome.stderr
