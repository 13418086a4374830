"""Shared by the tests that run ``tunekeeper emulator`` as users do: a separate process.

``start_emulator(*args)`` starts it (the installed console script, or ``python -m tunekeeper``)
and reads its output up to the "Ctrl-C" line, returning the process and the ``export NAME=value``
lines it printed. Stopping it (SIGINT) is the caller's business.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path


def tunekeeper_command() -> list[str]:
    script = shutil.which("tunekeeper", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "tunekeeper"]


def start_emulator(*args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    process = subprocess.Popen([*tunekeeper_command(), "emulator", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    exported: dict[str, str] = {}
    assert process.stdout is not None
    for line in process.stdout:
        match = re.match(r"\s+export (\w+)=(\S+)", line)
        if match:
            exported[match[1]] = match[2]
        if "Ctrl-C" in line:
            break
    return process, exported
