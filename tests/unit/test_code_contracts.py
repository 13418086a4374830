"""The code's own contracts, checked on every test run: the layer rules (import-linter,
configured in pyproject.toml) and strict typing of the package (mypy --strict).

A higher layer may import a lower one, never the reverse; the emulator imports none of the
controller's layers; only ``cloud/`` talks to the Azure and OpenAI SDKs.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (it comes with the project's dev extra)")
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
        check=False,
    )


def test_layer_contracts_are_kept() -> None:
    if importlib.util.find_spec("importlinter") is None:
        pytest.skip("import-linter is not installed (it comes with the project's dev extra)")
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports"))], cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_package_type_checks_strictly() -> None:
    result = _run("mypy", "controller")
    assert result.returncode == 0, result.stdout + result.stderr
