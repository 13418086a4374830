"""A pull request can commit anything under ``.tunekeeper/``, and CI then runs ``plan`` on it.

Found when trying tunekeeper as an attacker: ``.tunekeeper/state.json`` committed as a link to
``/dev/zero`` made ``plan`` read until memory ran out, and ``.tunekeeper`` committed as a link to a
folder elsewhere made every command write its state, locks and upload records there. Each command
runs here as a separate process with a memory cap, so a regression fails the test instead of the
machine.
"""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

from .cli_helpers import Outcome, console_script, copy_example, process_env
from .test_ownership import git_init

MEMORY_CAP = 3 << 30


def capped(*args: str, cwd: Path) -> Outcome:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    done = subprocess.run([*console_script(), *args], cwd=cwd, env=process_env(), capture_output=True,
                          text=True, timeout=120, check=False, preexec_fn=limit)
    return Outcome(done.returncode, done.stdout, done.stderr)


def test_a_state_file_committed_as_a_link_to_dev_zero_reads_as_absent(tmp_path: Path) -> None:
    repo = copy_example("clippy", tmp_path)
    (repo / ".tunekeeper").mkdir()
    (repo / ".tunekeeper" / "state.json").symlink_to("/dev/zero")
    git_init(repo)
    planned = capped("plan", cwd=repo)
    assert planned.exit_code == 0, planned
    assert "to create" in planned.stdout
    applied = capped("apply", cwd=repo)
    assert applied.exit_code == 0, applied
    state = repo / ".tunekeeper" / "state.json"
    assert not state.is_symlink() and state.read_bytes().startswith(b"{")  # the link was replaced


def test_a_state_folder_committed_as_a_link_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    repo = copy_example("clippy", tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / ".tunekeeper").symlink_to(outside)
    git_init(repo)
    for command in (["plan"], ["apply"], ["status"], ["gc", "--dry-run"]):
        outcome = capped(*command, cwd=repo)
        assert outcome.exit_code == 1, (command, outcome)
        assert "is a link to" in outcome.stderr and "outside the repository" in outcome.stderr, outcome
        assert "remove the link" in outcome.stderr
    assert list(outside.iterdir()) == []  # nothing was written there
