"""Crash safety from outside: ``kill -9`` a running ``apply --wait`` at random points, then rerun.

Given a project whose two FineTuneJobs share one training file (identical data is uploaded
once) and whose two Deployments serve their models,
when ``tunekeeper apply --wait`` is killed with SIGKILL at seeded random moments (a random number
of finished actions plus a random fraction of a second into the next), several times, and then
run to the end,
then the embedded emulator holds exactly one upload, two jobs and two deployments, and the
next plan has nothing to do.
"""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from .cli_helpers import console_script, inventory, process_env, run_process, write_project

SEED = 20261125
KILLS = 4
# Speed at which one whole apply --wait takes a few seconds beyond the interpreter's start-up,
# so that kill points land in uploads, job creation, training and ARM provisioning alike.
SPEED = {"TUNEKEEPER_EMULATOR_SPEED": "400"}


def _two_of_everything(folder: Path) -> Path:
    write_project(folder)
    manifest = folder / "support.yaml"
    text = manifest.read_text()
    second = text.replace("support-bot", "support-bot-b").replace("seed: 7", "seed: 8")
    manifest.write_text(text + "---\n" + second)
    return folder


def _apply_until_killed(project: Path, *, after_lines: int, jitter: float) -> bool:
    """Run ``apply --wait``; SIGKILL it ``jitter`` seconds after its ``after_lines``-th finished action
    (0: ``jitter`` seconds after start). Returns whether it was killed (False: it finished first)."""
    process = subprocess.Popen(
        [*console_script(), "apply", ".", "--wait", "--no-progress"],
        cwd=project,
        env=process_env(SPEED),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    finished = threading.Event()
    seen = 0

    def watch() -> None:
        nonlocal seen
        assert process.stderr is not None
        for line in process.stderr:
            if line.startswith("✓"):
                seen += 1
                if seen >= after_lines:
                    finished.set()
        finished.set()

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    if after_lines > 0:
        finished.wait(timeout=60)
    time.sleep(jitter)
    killed = process.poll() is None
    if killed:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    reader.join(timeout=10)
    return killed


@pytest.mark.slow
def test_killed_apply_leaves_nothing_twice(tmp_path: Path) -> None:
    project = _two_of_everything(tmp_path / "repo")
    rng = random.Random(SEED)
    killed = 0
    partial = 0  # kills that left some, but not all, of the objects behind
    for round_ in range(KILLS):
        # Seeded random kill points: a random number of finished actions (upload, job creations,
        # deployments), then a random fraction of a second into whatever runs next. The first kill
        # follows the upload, so it always lands mid-run: the file exists, the deployments do not.
        after = 1 if round_ == 0 else rng.randint(0, 3)
        killed += _apply_until_killed(
            project, after_lines=after, jitter=rng.uniform(0.0, 0.3) + (1.0 if after == 0 else 0)
        )
        if (project / ".tunekeeper" / "emulator").is_dir():
            now = inventory(project)
            assert now.duplicates() == {"files": [], "deployments": []}
            assert len(now.jobs) <= 2, now.jobs
            created = sum(now.uploaded.values()) + len(now.jobs) + sum(now.deployments.values())
            partial += 0 < created < 5
    assert killed >= 1, "every apply finished before its kill point; the test proved nothing"
    assert partial >= 1, "no kill landed between the first and the last object created"

    final = run_process("apply", ".", "--wait", "--timeout", "120", cwd=project, env=SPEED)
    assert final.exit_code == 0, final

    held = inventory(project)
    assert sum(held.uploaded.values()) == 1, held.uploaded
    assert len(held.jobs) == 2, held.jobs
    assert sorted(held.deployments.elements()) == ["support-bot", "support-bot-b"]

    settled = run_process("plan", ".", "--detailed-exitcode", cwd=project, env=SPEED)
    assert settled.exit_code == 0, settled
