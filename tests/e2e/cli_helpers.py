"""Shared by the CLI end-to-end tests: run ``tunekeeper`` on a private copy of an example folder,
and count what the embedded emulator's store holds afterwards.

Each test copies an example into its own tmp dir, so its ``.tunekeeper/`` (state file and the
embedded emulator's data) is its own. ``run`` calls the click command in-process (fast);
``run_process`` runs the installed console script in a subprocess (real exit codes, signals).
``inventory`` opens the data dir with a fresh emulator and asks it, through the official
``openai`` and ``azure-mgmt-cognitiveservices`` clients, what exists.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "manifests" / "examples"
# Simulated Azure work runs this many times faster than real time in these tests.
FAST = "20000"
BASE_ENV = {"TUNEKEEPER_EMULATOR_SPEED": FAST, "NO_COLOR": "1", "COLUMNS": "200"}


def example_names() -> list[str]:
    return sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if EXAMPLES.is_dir() else []


def copy_example(name: str, tmp_path: Path) -> Path:
    """A private copy of ``manifests/examples/<name>`` (without any state) under ``tmp_path``."""
    target = tmp_path / name
    shutil.copytree(EXAMPLES / name, target, ignore=shutil.ignore_patterns(".tunekeeper", "__pycache__"))
    return target


@dataclass(frozen=True, slots=True)
class Outcome:
    exit_code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:  # shown by pytest when an assertion on it fails
        return f"exit {self.exit_code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def run(*args: str | Path, env: Mapping[str, str] | None = None) -> Outcome:
    """``tunekeeper ARGS`` in-process through click's runner (stdout and stderr kept apart)."""
    from tunekeeper.cli import main

    runner = CliRunner()
    result = runner.invoke(
        main, [str(a) for a in args], env={**BASE_ENV, **(env or {})}, catch_exceptions=False
    )
    return Outcome(result.exit_code, result.stdout, result.stderr)


def console_script() -> list[str]:
    script = Path(sys.executable).parent / "tunekeeper"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tunekeeper"]


def process_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, **BASE_ENV, **(extra or {})}


def run_process(
    *args: str | Path, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 120
) -> Outcome:
    """``tunekeeper ARGS`` as a subprocess of the installed console script."""
    done = subprocess.run(
        [*console_script(), *map(str, args)], cwd=cwd, env=process_env(env), capture_output=True, text=True,
        timeout=timeout, check=False,
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True, slots=True)
class Inventory:
    """What an emulator data dir holds, as the official clients list it."""

    uploaded: Counter[str]  # filename -> count, purpose fine-tune only (not results files)
    jobs: tuple[tuple[str, str, str | None], ...]  # (id, status, suffix)
    deployments: Counter[str]  # name -> count
    results: int = 0  # results files (purpose fine-tune-results) the jobs left

    def duplicates(self) -> dict[str, list[str]]:
        return {
            "files": sorted(n for n, c in self.uploaded.items() if c > 1),
            "deployments": sorted(n for n, c in self.deployments.items() if c > 1),
        }


def inventory(project: Path) -> Inventory:
    """Open ``project``'s embedded emulator data with a fresh emulator and list what it holds, in
    every account it serves (the default one, and those ``TUNEKEEPER_EMULATE`` added)."""
    from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
    from openai import AzureOpenAI
    from tunekeeper.cloud.loopback import AllowHttpForLoopback, StaticTokenCredential
    from tunekeeper.emulator import Emulator

    data_dir = project / ".tunekeeper" / "emulator"
    assert data_dir.is_dir(), f"no embedded emulator state under {project}"
    files: list[object] = []
    results = 0
    jobs: list[object] = []
    deployments: list[object] = []
    with Emulator(data_dir=data_dir, api_key="inventory-key", speed=float(FAST)) as emulator:
        for account in emulator.accounts:
            client = AzureOpenAI(azure_endpoint=emulator.url + account.endpoint_path, api_key="inventory-key",
                                 api_version="2025-04-01-preview", max_retries=0)
            arm = CognitiveServicesManagementClient(
                credential=StaticTokenCredential(), subscription_id=account.config.subscription_id,
                base_url=emulator.url, per_call_policies=[AllowHttpForLoopback()], polling_interval=0,
            )
            try:
                listed = list(client.files.list())
                files += [f for f in listed if f.purpose == "fine-tune"]
                results += sum(1 for f in listed if f.purpose == "fine-tune-results")
                jobs += list(client.fine_tuning.jobs.list(limit=100))
                deployments += list(arm.deployments.list(account.config.resource_group,
                                                         account.config.account_name))
            finally:
                client.close()
                arm.close()
    return Inventory(
        uploaded=Counter(f.filename for f in files),  # type: ignore[attr-defined]
        jobs=tuple((j.id, j.status, j.suffix) for j in jobs),  # type: ignore[attr-defined]
        deployments=Counter(str(d.name) for d in deployments),  # type: ignore[attr-defined]
        results=results,
    )


def write_project(folder: Path, *, name: str = "support-bot", epochs: int = 2,
                  training_lines: list[str] | None = None) -> Path:
    """A small project: one FineTuneJob and one Deployment of its final model, both called ``name``."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    if training_lines is None:
        training_lines = [
            json.dumps(
                {
                    "messages": [
                        {"role": "system", "content": "You are a helpful support assistant."},
                        {"role": "user", "content": f"How do I reset my password, case {i}?"},
                        {
                            "role": "assistant",
                            "content": f"Open Settings, choose Security, then Reset password ({i}).",
                        },
                    ]
                }
            )
            for i in range(12)
        ]
    (folder / "data").mkdir(exist_ok=True)
    (folder / "data" / "train.jsonl").write_text("\n".join(training_lines) + "\n", encoding="utf-8")
    (folder / "support.yaml").write_text(
        "apiVersion: tunekeeper.io/v1alpha1\n"
        "kind: FineTuneJob\n"
        "metadata:\n"
        f"  name: {name}\n"
        "spec:\n"
        "  baseModel: gpt-4.1-mini-2025-04-14\n"
        "  method:\n"
        "    type: supervised\n"
        "    hyperparameters:\n"
        f"      n_epochs: {epochs}\n"
        "  trainingFile: data/train.jsonl\n"
        "  seed: 7\n"
        "---\n"
        "apiVersion: tunekeeper.io/v1alpha1\n"
        "kind: Deployment\n"
        "metadata:\n"
        f"  name: {name}\n"
        "spec:\n"
        "  model:\n"
        f"    fromJob: {name}\n"
        "    checkpoint: final\n"
        "  sku:\n"
        "    name: Standard\n"
        "    capacity: 1\n",
        encoding="utf-8",
    )
    return folder
