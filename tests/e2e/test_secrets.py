"""A known api key never lands anywhere: the whole lifecycle, every output format, every file written.

Given an emulator that requires a known key (authenticated mode), and an Account that reads it
from the environment,
when the real console script runs validate, plan (text, json, markdown, --out), apply --wait,
status (text, json), chat, results (text, json, csv, --png), a failing command and a command with
a wrong key, with TUNEKEEPER_DEBUG on,
then the key appears in none of their stdout and stderr, in nothing under the project (state
file, saved plan, PNG, upload records) and in nothing in the emulator's data dir (its SQLite
database and journal): 0 hits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tunekeeper.emulator import Emulator, EmulatorConfig

from .cli_helpers import run_process, write_project


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[Emulator, str]]:
    key = f"tk-secret-{uuid.uuid4().hex}"
    config = EmulatorConfig(
        api_key=key, require_auth=True, speed=20000.0, data_dir=tmp_path / "emulator-data"
    )
    with Emulator(config=config) as emulator:
        yield emulator, key


def _files(folder: Path) -> Iterator[Path]:
    yield from (p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.mark.slow
def test_a_known_key_is_nowhere_after_the_whole_lifecycle(
    tmp_path: Path, keyed: tuple[Emulator, str]
) -> None:
    emulator, key = keyed
    project = write_project(tmp_path / "repo")
    (project / "account.yaml").write_text(
        "apiVersion: tunekeeper.io/v1alpha1\nkind: Account\nmetadata: {name: local}\nspec:\n"
        f"  endpoint: {emulator.url}\n  managementEndpoint: {emulator.url}\n"
        f"  subscriptionId: {emulator.config.subscription_id}\n"
        f"  resourceGroup: {emulator.config.resource_group}\n"
        f"  accountName: {emulator.config.account_name}\n  auth: {{apiKeyFromEnv: TK_SECRET_KEY}}\n"
    )
    env = {"TK_SECRET_KEY": key, "TUNEKEEPER_DEBUG": "1"}
    commands: list[tuple[str, ...]] = [
        ("validate", "."),
        ("validate", ".", "-o", "json"),
        ("plan", "."),
        ("plan", ".", "-o", "json"),
        ("plan", ".", "-o", "markdown"),
        ("plan", ".", "--out", "saved.plan"),
        ("apply", ".", "--wait", "--timeout", "120"),
        ("status", "."),
        ("status", ".", "-o", "json"),
        ("chat", "support-bot", "How do I reset my password?", "."),
        ("results", "support-bot", ".", "--png", "results.png"),
        ("results", "support-bot", ".", "-o", "json"),
        ("results", "support-bot", ".", "-o", "csv"),
        ("plan", ".", "-o", "json"),
        ("chat", "no-such-deployment", "hi", "."),  # a failure, with its message
    ]
    outputs = []
    for command in commands:
        outcome = run_process(*command, cwd=project, env=env, timeout=180)
        outputs.append(outcome.stdout + outcome.stderr)
        if command[0] == "apply":
            assert outcome.exit_code == 0, outcome
    wrong = run_process("plan", ".", cwd=project, env={**env, "TK_SECRET_KEY": key[::-1]})
    assert wrong.exit_code == 1 and "401" in wrong.stdout + wrong.stderr
    outputs.append(wrong.stdout + wrong.stderr)

    written = [*_files(project), *_files(Path(emulator.config.data_dir or tmp_path))]
    assert (project / "results.png").is_file() and (project / "saved.plan").is_file()
    assert any(p.suffix.startswith(".sqlite3") for p in written)
    needle = key.encode()
    hits = [
        f"output of {' '.join(c)}"
        for c, text in zip([*commands, ("plan", "wrong key")], outputs, strict=True)
        if key in text
    ]
    hits += [str(p) for p in written if needle in p.read_bytes()]
    assert hits == []
