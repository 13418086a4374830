"""The Learn "Customize a model with fine-tuning" SDK walk-through, run against the emulator.

Runs ``examples/sdk_walkthrough.py`` itself (its ``main``) with only the environment that
``tunekeeper emulator`` prints; its waits move the emulator's clock instead of sleeping. Then
checks what the walk-through saw and that the emulator holds nothing afterwards.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .emulator_process import start_emulator

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "sdk_walkthrough.py"
RESULTS_COLUMNS = ["step", "train_loss", "train_mean_token_accuracy", "valid_loss",
                   "validation_mean_token_accuracy", "full_valid_loss", "full_valid_mean_token_accuracy"]


@pytest.fixture(scope="module")
def walkthrough() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sdk_walkthrough", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["sdk_walkthrough"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _environment(emulator: Any) -> dict[str, str]:
    """What ``tunekeeper emulator`` tells users to export, for this emulator."""
    cfg = emulator.config
    return {
        "AZURE_OPENAI_ENDPOINT": emulator.url,
        "AZURE_OPENAI_API_KEY": cfg.api_key,
        "OPENAI_API_VERSION": "2025-04-01-preview",
        "AZURE_ARM_BASE_URL": emulator.url,
        "AZURE_SUBSCRIPTION_ID": cfg.subscription_id,
        "AZURE_RESOURCE_GROUP": cfg.resource_group,
        "AZURE_OPENAI_ACCOUNT": cfg.account_name,
    }


def test_the_seed_walkthrough_runs_unchanged_against_the_emulator(emulator: Any, walkthrough: ModuleType,
                                                                  tmp_path: Path) -> None:
    lines: list[str] = []
    seen = walkthrough.main(["--workdir", str(tmp_path), "--poll-seconds", "10"], env=_environment(emulator),
                            wait=emulator.clock.advance, say=lines.append)

    # the uploads carried a byte order mark and were accepted
    assert (tmp_path / "training_set.jsonl").read_bytes().startswith(b"\xef\xbb\xbf")
    assert seen.training_file_id.startswith("file-") and seen.validation_file_id.startswith("file-")
    # the job ran to the end on the requested base model
    assert seen.status == "succeeded"
    assert seen.fine_tuned_model.startswith(f"{walkthrough.BASE_MODEL}.ft-")
    assert seen.job_id.split("-", 1)[1] in seen.fine_tuned_model
    assert seen.event_messages and any("succeeded" in m.lower() for m in seen.event_messages)
    assert seen.checkpoints and all(":ckpt-step-" in c for c in seen.checkpoints)
    # results.csv has the documented columns and a row per step
    assert seen.results_csv is not None and seen.results_csv.name == "results.csv"
    rows = list(csv.reader(io.StringIO(seen.results_csv.read_text())))
    assert rows[0] == RESULTS_COLUMNS and len(rows) > 1
    # the ARM deployment came up with the sku spelled as ARM spells it
    assert seen.deployment["sku"] == {"name": "Standard", "capacity": 1}
    assert seen.deployment["properties"]["model"] == {  # type: ignore[index]
        "format": "OpenAI", "name": seen.fine_tuned_model, "version": "1"}
    assert seen.deployment["properties"]["provisioningState"] == "Succeeded"  # type: ignore[index]
    # the fine-tuned deployment answers from its training data
    assert seen.answer == seen.expected_answer
    # and everything was cleaned up
    assert seen.cleaned_up
    assert emulator.store.list("deployment") == []
    assert emulator.store.list("job") == []
    assert emulator.store.list("file") == []
    assert any(line.startswith("Deleted job") for line in lines)


def test_the_script_runs_against_the_tunekeeper_emulator_command(tmp_path: Path) -> None:
    """As documented: start ``tunekeeper emulator``, export what it prints, run the script."""
    server, exported = start_emulator("--port", "0", "--speed", "20000")
    try:
        clean_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "OPENAI_", "TEMP_AUTH"))
        }
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "--workdir", str(tmp_path), "--poll-seconds", "0.2"],
            env={**clean_env, **exported},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert re.search(r"^Job ID: ftjob-\w+", done.stdout, re.MULTILINE)
    assert "Deployment gpt-41-ft-walkthrough: Succeeded" in done.stdout
    assert "Deleted the training, validation and results files" in done.stdout
    assert (tmp_path / "results.csv").is_file()


def test_the_walkthrough_names_missing_settings(walkthrough: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stopped:
        walkthrough.main(["--workdir", str(tmp_path)], env={"AZURE_OPENAI_ENDPOINT": "http://127.0.0.1:1"})

    assert "AZURE_OPENAI_API_KEY" in str(stopped.value) and "AZURE_OPENAI_ACCOUNT" in str(stopped.value)
